//! SPF, DKIM, DMARC and ARC verification (`cairn_smtp::authenticity`)
//! against a real name server: dnsmasq on a loopback port serving a
//! made-up `.test` zone from its command line and forwarding nothing
//! (`--no-resolv`, `--local=/test/`), with messages signed by Cairn's own
//! DKIM signer. The checks run on a glommio executor with a real blocking
//! pool, as in the SMTP session.
//!
//! dnsmasq comes from the Debian package `dnsmasq-base`. Without it the
//! tests print a notice and pass, unless `CI` is set: then they fail.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_dns::testing::{resolver_for, Dnsmasq};
use cairn_dns::Resolver;
use cairn_shards::BlockingPool;
use cairn_smtp::authenticity::{check, Checked, DmarcAction, SpfOutcome};
use cairn_smtp::dkim::{self, DkimAlgorithm, DkimKey};

const HOSTNAME: &str = "mx.cairn.test";
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The keys the zone publishes.
struct Keys {
    rsa: DkimKey,
    ed: DkimKey,
}

fn keys() -> Keys {
    Keys {
        rsa: dkim::generate(DkimAlgorithm::Rsa2048, "sel", 1_793_000_000).expect("an RSA key"),
        ed: dkim::generate(DkimAlgorithm::Ed25519, "ed", 1_793_000_000).expect("an Ed25519 key"),
    }
}

/// `--txt-record` for `name` with `record` in strings of at most 255
/// characters (dnsmasq's limit per string; commas separate them).
fn txt_arg(name: &str, record: &str) -> String {
    format!(
        "--txt-record={name},{}",
        dkim::txt_strings(record).join(",")
    )
}

/// dnsmasq serving the test zone, or `None` (see `Dnsmasq::start`).
fn start_dnsmasq(keys: &Keys) -> Option<Dnsmasq> {
    let mut records: Vec<String> = [
        "--txt-record=good.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=mta.good.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=_dmarc.good.test,v=DMARC1; p=reject",
        "--txt-record=bad.test,v=spf1 -all",
        "--txt-record=_dmarc.bad.test,v=DMARC1; p=reject",
        "--txt-record=q.test,v=spf1 -all",
        "--txt-record=_dmarc.q.test,v=DMARC1; p=quarantine",
        // Three levels of include:, the last an mx: whose host has our
        // address: one round per level, the MX host's address fetched
        // with the MX answer.
        "--txt-record=chain.test,v=spf1 include:one.chain.test -all",
        "--txt-record=one.chain.test,v=spf1 include:two.chain.test -all",
        "--txt-record=two.chain.test,v=spf1 a:nothing.chain.test mx:chain.test -all",
        "--mx-host=chain.test,mail.chain.test,10",
        "--host-record=mail.chain.test,127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    for key in [&keys.rsa, &keys.ed] {
        records.push(txt_arg(
            &dkim::record_name("good.test", &key.selector),
            &dkim::dns_record(key),
        ));
    }
    Dnsmasq::start(records)
}

fn on_a_shard<T>(fut: impl std::future::Future<Output = T>) -> T {
    cairn_shards::local::block_on(fut).expect("a glommio executor")
}

fn message(from: &str, body: &str) -> String {
    format!(
        "From: Sender <{from}>\r\n\
         To: bob@cairn.test\r\n\
         Subject: Quarterly report\r\n\
         Date: Sun, 25 Oct 2026 10:00:00 +0000\r\n\
         Message-ID: <q3@cairn.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n"
    )
}

/// `text` signed for good.test with every key of `keys`.
fn signed(keys: &[&DkimKey], text: &str) -> String {
    let mut out = String::new();
    for key in keys {
        out.push_str(&dkim::sign("good.test", key, text.as_bytes()).expect("signs"));
    }
    out.push_str(text);
    out
}

/// The header's result lines (`spf=pass …`), unfolded.
fn results(checked: &Checked) -> Vec<String> {
    let header = &checked.header;
    assert!(
        header.starts_with(&format!("Authentication-Results: {HOSTNAME};\r\n\t")),
        "{header}"
    );
    assert!(
        header.ends_with("\r\n") && !header.ends_with(";\r\n"),
        "{header}"
    );
    // RFC 5322 folding: CRLF only before white space, except the last.
    let body = &header[..header.len() - 2];
    for (i, line) in body.split("\r\n").enumerate() {
        assert!(i == 0 || line.starts_with('\t'), "{header}");
        assert!(!line.contains('\r') && !line.contains('\n'), "{header}");
        assert!(line.len() <= 998, "{header}");
    }
    body.split(";\r\n\t")
        .skip(1)
        .map(|s| s.trim().to_string())
        .collect()
}

fn method<'a>(lines: &'a [String], name: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("{name}=")))
        .collect()
}

struct Env {
    resolver: Resolver,
    pool: BlockingPool,
}

impl Env {
    async fn check(&self, helo: &str, mail_from: &str, text: &str) -> (Checked, Duration) {
        let started = Instant::now();
        let checked = check(
            &self.resolver,
            &self.pool,
            HOSTNAME,
            LOCALHOST,
            helo,
            mail_from,
            Arc::from(text.as_bytes()),
        )
        .await;
        (checked, started.elapsed())
    }
}

#[test]
fn spf_dkim_dmarc_against_dnsmasq() {
    let keys = keys();
    let Some(server) = start_dnsmasq(&keys) else {
        return;
    };
    let (pool, _threads) = BlockingPool::start(2, 16).expect("a blocking pool");
    on_a_shard(async {
        let env = Env {
            resolver: resolver_for(server.addr, Duration::from_secs(5), 1),
            pool,
        };

        // Signed by good.test (RSA in two TXT strings, and Ed25519), sent
        // from an address its SPF record lists.
        let good = signed(
            &[&keys.rsa, &keys.ed],
            &message("alice@good.test", "Here are the numbers."),
        );
        let (checked, cold) = env.check("mta.good.test", "alice@good.test", &good).await;
        let lines = results(&checked);
        assert_eq!(checked.spf, SpfOutcome::Pass, "{}", checked.header);
        assert_eq!(checked.dmarc, DmarcAction::None, "{}", checked.header);
        assert_eq!(
            method(&lines, "spf"),
            vec!["spf=pass smtp.mailfrom=alice@good.test"]
        );
        let dkim = method(&lines, "dkim");
        assert_eq!(dkim.len(), 2, "{}", checked.header);
        assert!(dkim[0].starts_with("dkim=pass header.d=good.test header.s=sel header.b="));
        assert!(dkim[1].starts_with("dkim=pass header.d=good.test header.s=ed header.b="));
        assert_eq!(
            method(&lines, "dmarc"),
            vec!["dmarc=pass (p=reject dis=none) header.from=good.test policy.dmarc=reject"]
        );
        assert_eq!(method(&lines, "arc"), vec!["arc=none"]);

        // Timings (reported, never asserted): the DNS cache is warm now.
        let mut warm = Vec::new();
        for _ in 0..20 {
            let (again, took) = env.check("mta.good.test", "alice@good.test", &good).await;
            assert_eq!(again, checked);
            warm.push(took);
        }
        warm.sort();
        eprintln!(
            "check of a {}-byte message (RSA + Ed25519 signatures): cold DNS {:?}; warm median {:?}, max {:?}",
            good.len(),
            cold,
            warm[warm.len() / 2],
            warm[warm.len() - 1]
        );

        // A 1 MiB body: the body hashes are the work (on the blocking pool).
        let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
        let big_body = line.repeat((1 << 20) / line.len());
        let big = signed(
            &[&keys.rsa, &keys.ed],
            &message("alice@good.test", &big_body),
        );
        let (checked, took) = env.check("mta.good.test", "alice@good.test", &big).await;
        assert_eq!(checked.dmarc, DmarcAction::None);
        assert_eq!(method(&results(&checked), "dkim").len(), 2);
        assert!(checked
            .header
            .contains("dkim=pass header.d=good.test header.s=ed"));
        eprintln!("check of a {}-byte message: {took:?}", big.len());

        // The body changed after signing: both signatures fail; SPF
        // still passes aligned, so DMARC passes.
        let altered = good.replace("Here are the numbers.", "Here are other numbers.");
        let (checked, _) = env
            .check("mta.good.test", "alice@good.test", &altered)
            .await;
        let lines = results(&checked);
        let dkim = method(&lines, "dkim");
        assert_eq!(dkim.len(), 2, "{}", checked.header);
        for line in dkim {
            assert!(
                line.starts_with("dkim=fail (body hash did not verify) header.d=good.test"),
                "{line}"
            );
        }
        assert_eq!(checked.dmarc, DmarcAction::None);

        // The same signed message from another path: DKIM alone carries
        // DMARC (a null reverse path checks the HELO name, which fails).
        let (checked, _) = env.check("other.test", "", &good).await;
        let lines = results(&checked);
        assert_eq!(checked.spf, SpfOutcome::None, "{}", checked.header);
        assert_eq!(method(&lines, "spf"), vec!["spf=none smtp.helo=other.test"]);
        assert!(method(&lines, "dmarc")[0].starts_with("dmarc=pass"));
        assert_eq!(checked.dmarc, DmarcAction::None);

        // A null reverse path from a HELO name that SPF lists.
        let (checked, _) = env.check("mta.good.test", "<>", &good).await;
        assert_eq!(checked.spf, SpfOutcome::Pass, "{}", checked.header);
        assert!(checked.header.contains("spf=pass smtp.helo=mta.good.test"));

        // From bad.test, whose SPF lists nobody and whose DMARC policy
        // rejects: SPF fails, DMARC fails, reject.
        let bad = message("ceo@bad.test", "Please wire the money.");
        let (checked, _) = env.check("mta.evil.test", "ceo@bad.test", &bad).await;
        let lines = results(&checked);
        assert_eq!(checked.spf, SpfOutcome::Fail, "{}", checked.header);
        assert_eq!(checked.dmarc, DmarcAction::Reject, "{}", checked.header);
        assert_eq!(
            method(&lines, "spf"),
            vec!["spf=fail smtp.mailfrom=ceo@bad.test"]
        );
        assert_eq!(method(&lines, "dkim"), vec!["dkim=none"]);
        assert_eq!(
            method(&lines, "dmarc"),
            vec!["dmarc=fail (p=reject dis=reject) header.from=bad.test policy.dmarc=reject"]
        );

        // A From of bad.test behind an envelope of good.test: SPF passes
        // but is not aligned; DMARC fails.
        let (checked, _) = env.check("mta.good.test", "alice@good.test", &bad).await;
        assert_eq!(checked.spf, SpfOutcome::Pass);
        assert_eq!(checked.dmarc, DmarcAction::Reject, "{}", checked.header);

        // p=quarantine.
        let q = message("news@q.test", "Offer inside.");
        let (checked, _) = env.check("mta.q.test", "news@q.test", &q).await;
        assert_eq!(checked.spf, SpfOutcome::Fail);
        assert_eq!(checked.dmarc, DmarcAction::Quarantine, "{}", checked.header);
        assert!(checked
            .header
            .contains("dmarc=fail (p=quarantine dis=quarantine) header.from=q.test"));

        // An include: chain three deep, ending in an mx: mechanism.
        let chained = message("x@chain.test", "Hi.");
        let (checked, took) = env.check("mta.chain.test", "x@chain.test", &chained).await;
        assert_eq!(checked.spf, SpfOutcome::Pass, "{}", checked.header);
        eprintln!("check through an SPF include chain of three and an MX: {took:?}");
        // No DMARC record anywhere up the tree.
        assert!(
            checked.header.contains("dmarc=none header.from=chain.test"),
            "{}",
            checked.header
        );
        assert_eq!(checked.dmarc, DmarcAction::None);

        // An unknown domain: no SPF record, no DMARC record.
        let (checked, _) = env
            .check(
                "mta.nowhere.test",
                "a@nowhere.test",
                &message("a@nowhere.test", "x"),
            )
            .await;
        assert_eq!(checked.spf, SpfOutcome::None, "{}", checked.header);
        assert_eq!(checked.dmarc, DmarcAction::None);

        // Garbage in: no panic, a header all the same.
        for junk in [
            "",
            "\r\n\r\n",
            "no colon at all\r\n\r\nbody",
            "DKIM-Signature: v=1; d=good.test; s=sel; b=@@@\r\nFrom: <>\r\n\r\n",
            "From: a@good.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=good.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n\r\nx",
        ] {
            let (checked, _) = env.check("\u{0}\r\n", "x@good.test\r\nInjected: 1", junk).await;
            let _ = results(&checked);
            assert!(!checked.header.contains("\r\nInjected"), "{}", checked.header);
        }
    });
    drop(server);
}

#[test]
fn dns_down_gives_temperror_quickly() {
    let keys = keys();
    let good = signed(&[&keys.ed], &message("alice@good.test", "Hello."));
    // A server that never answers (a bound socket nobody reads), and one
    // that is not there at all.
    let black_hole = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let silent = black_hole.local_addr().expect("its address");
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        s.local_addr().expect("its address")
    };
    let (pool, _threads) = BlockingPool::start(2, 16).expect("a blocking pool");
    on_a_shard(async {
        for server in [silent, closed] {
            let env = Env {
                resolver: resolver_for(server, Duration::from_millis(300), 1),
                pool: pool.clone(),
            };
            let (checked, took) = env.check("mta.good.test", "alice@good.test", &good).await;
            eprintln!("check with the DNS server at {server} down: {took:?}");
            let lines = results(&checked);
            assert_eq!(checked.spf, SpfOutcome::TempError, "{}", checked.header);
            assert_eq!(checked.dmarc, DmarcAction::None, "{}", checked.header);
            assert_eq!(
                method(&lines, "spf"),
                vec!["spf=temperror (dns lookup failed) smtp.mailfrom=alice@good.test"]
            );
            assert!(
                method(&lines, "dkim")[0].starts_with("dkim=temperror (dns lookup failed)"),
                "{}",
                checked.header
            );
            assert!(
                method(&lines, "dmarc")[0].starts_with("dmarc=temperror"),
                "{}",
                checked.header
            );
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
    });
    drop(black_hole);
}

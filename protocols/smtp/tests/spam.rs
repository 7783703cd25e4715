//! The spam score against a real name server: dnsmasq on a loopback port
//! serving a DNS blocklist zone `bl.test` from its command line and
//! forwarding nothing (`--no-resolv`, `--local=/test/`), the lookups
//! driven from a glommio executor through `cairn-shards`. The client
//! addresses are TEST-NET ones; the questions go only to the loopback
//! server.
//!
//! dnsmasq comes from the Debian package `dnsmasq-base`. Without it the
//! tests print a notice and pass, unless `CI` is set: then they fail.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_dns::testing::{resolver_for, Dnsmasq};
use cairn_dns::{Resolver, ResolverConfig};
use cairn_smtp::spam::{self, Action, DnsblZone, Facts, SpamOptions, Verdict};

/// The blocklist's name for 2001:db8::10 (listed, 127.0.0.3).
const LISTED_V6: &str = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test";

/// dnsmasq serving the blocklist `bl.test`, or `None` (see
/// `Dnsmasq::start`).
fn start_dnsmasq() -> Option<Dnsmasq> {
    Dnsmasq::start([
        // 192.0.2.10 is listed.
        "--host-record=10.2.0.192.bl.test,127.0.0.2".to_string(),
        // 192.0.2.12 gets an answer that is no listing.
        "--host-record=12.2.0.192.bl.test,192.0.2.99".to_string(),
        // 192.0.2.13 gets the list's error code.
        "--host-record=13.2.0.192.bl.test,127.255.255.254".to_string(),
        format!("--host-record={LISTED_V6},127.0.0.3"),
    ])
}

fn on_a_shard<T>(fut: impl std::future::Future<Output = T>) -> T {
    cairn_shards::local::block_on(fut).expect("a glommio executor")
}

fn options() -> SpamOptions {
    SpamOptions {
        dnsbl: vec![DnsblZone {
            zone: "bl.test".into(),
            weight: 6.0,
        }],
        ..SpamOptions::default()
    }
}

fn facts(ip: &str) -> Facts<'static> {
    Facts {
        client_ip: ip.parse::<IpAddr>().expect("an address"),
        helo: "mail.example.org",
        mail_from: "alice@example.org",
        authenticated: false,
    }
}

/// Now, as an RFC 5322 date (UTC).
fn rfc5322_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn normal_message() -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\n\
         To: Bob <bob@example.net>\r\n\
         Subject: Lunch on Friday\r\n\
         Date: {}\r\n\
         Message-ID: <1234.5678@mail.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hi Bob,\r\n\r\nShall we meet at noon at the usual place?\r\n\r\nAlice\r\n",
        rfc5322_now()
    )
    .into_bytes()
}

/// Spam by its looks, but not enough to refuse on the rules alone.
fn spammy_message() -> Vec<u8> {
    format!(
        "From: Prize Desk <desk@example.org>\r\n\
         To: Bob <bob@example.net>\r\n\
         Subject: You are a winner\r\n\
         Date: {}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         \r\n\
         <html><body><p>Claim your prize today, act now.</p>\
         <a href=\"http://198.51.100.7/claim\">Claim</a></body></html>\r\n",
        rfc5322_now()
    )
    .into_bytes()
}

fn score(
    resolver: &Resolver,
    options: &SpamOptions,
    ip: &str,
    message: &[u8],
) -> (Verdict, Duration) {
    let facts = facts(ip);
    on_a_shard(async {
        let started = Instant::now();
        let verdict = spam::score(options, resolver, &facts, message).await;
        (verdict, started.elapsed())
    })
}

#[test]
fn a_listed_client_with_a_spammy_message_is_refused() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let resolver = resolver_for(server.addr, Duration::from_secs(2), 2);
    let options = options();

    let (listed, _) = score(&resolver, &options, "192.0.2.10", &spammy_message());
    println!("listed: {listed:?}");
    assert_eq!(listed.action, Action::Reject, "{listed:?}");
    assert!(listed.score >= options.reject_score, "{listed:?}");
    assert!(listed.tests().any(|t| t == "RCVD_IN_BL_TEST"), "{listed:?}");
    assert!(listed.notes.is_empty(), "{:?}", listed.notes);
    let headers = listed.headers("mx.example.org");
    assert!(headers.contains("X-Spam-Flag: YES\r\n"), "{headers}");
    assert!(headers.contains("RCVD_IN_BL_TEST"), "{headers}");

    // The same message from an address that is not listed: tagged only.
    let (unlisted, _) = score(&resolver, &options, "192.0.2.11", &spammy_message());
    assert_eq!(unlisted.action, Action::Tag, "{unlisted:?}");
    assert!(!unlisted.tests().any(|t| t.starts_with("RCVD_IN_")));
    assert!(
        (listed.score - unlisted.score - 6.0).abs() < 0.01,
        "{} vs {}",
        listed.score,
        unlisted.score
    );
}

#[test]
fn a_normal_message_from_an_unlisted_client_is_accepted() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let resolver = resolver_for(server.addr, Duration::from_secs(2), 2);
    let options = options();
    let (verdict, _) = score(&resolver, &options, "192.0.2.11", &normal_message());
    assert_eq!(verdict.action, Action::Accept, "{verdict:?}");
    assert!(verdict.score < options.tag_score, "{verdict:?}");
    assert!(verdict.hits.is_empty(), "{verdict:?}");
    assert!(verdict.notes.is_empty(), "{:?}", verdict.notes);
    assert!(verdict
        .headers("mx.example.org")
        .contains("X-Spam-Status: No, score=0.0"));

    // A listed client with a normal message: the listing alone is not
    // enough to tag it (weight 6 over tag 5 is; here it is weighted 4).
    let light = SpamOptions {
        dnsbl: vec![DnsblZone {
            zone: "bl.test".into(),
            weight: 4.0,
        }],
        ..SpamOptions::default()
    };
    let (verdict, _) = score(&resolver, &light, "192.0.2.10", &normal_message());
    assert_eq!(
        (verdict.score, verdict.action),
        (4.0, Action::Accept),
        "{verdict:?}"
    );
}

#[test]
fn ipv6_clients_and_odd_answers() {
    let Some(server) = start_dnsmasq() else {
        return;
    };
    let resolver = resolver_for(server.addr, Duration::from_secs(2), 2);
    let options = options();
    let (verdict, _) = score(&resolver, &options, "2001:db8::10", &normal_message());
    assert_eq!(
        verdict.tests().collect::<Vec<_>>(),
        ["RCVD_IN_BL_TEST"],
        "{verdict:?}"
    );
    let (verdict, _) = score(&resolver, &options, "2001:db8::11", &normal_message());
    assert!(verdict.hits.is_empty(), "{verdict:?}");

    // An answer outside 127.0.0.0/8 is no listing (RFC 5782 §2.1).
    let (verdict, _) = score(&resolver, &options, "192.0.2.12", &normal_message());
    assert!(verdict.hits.is_empty(), "{verdict:?}");
    assert!(
        verdict
            .notes
            .iter()
            .any(|n| n.contains("outside 127.0.0.0/8")),
        "{:?}",
        verdict.notes
    );
    // Nor is the list's error code.
    let (verdict, _) = score(&resolver, &options, "192.0.2.13", &normal_message());
    assert!(verdict.hits.is_empty(), "{verdict:?}");
    assert!(
        verdict
            .notes
            .iter()
            .any(|n| n.contains("error code 127.255.255.254")),
        "{:?}",
        verdict.notes
    );
    // Private and loopback clients are not looked up (nothing listed,
    // nothing noted, even for a zone that would answer).
    let (verdict, _) = score(&resolver, &options, "127.0.0.1", &normal_message());
    assert!(
        verdict.hits.is_empty() && verdict.notes.is_empty(),
        "{verdict:?}"
    );
    let (verdict, _) = score(&resolver, &options, "10.2.0.192", &normal_message());
    assert!(
        verdict.hits.is_empty() && verdict.notes.is_empty(),
        "{verdict:?}"
    );
}

#[test]
fn a_silent_name_server_adds_nothing_and_the_bound_holds() {
    // A bound UDP socket that never reads: no answer, no ICMP error.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let addr = silent.local_addr().expect("its address");
    // Alone, the resolver would wait 2 × 5 s.
    let resolver = resolver_for(addr, Duration::from_secs(5), 2);
    let bound = Duration::from_millis(500);
    let options = SpamOptions {
        dnsbl: vec![
            DnsblZone {
                zone: "bl.test".into(),
                weight: 6.0,
            },
            DnsblZone {
                zone: "other.test".into(),
                weight: 3.0,
            },
        ],
        dnsbl_timeout: bound,
        ..SpamOptions::default()
    };
    let (verdict, took) = score(&resolver, &options, "192.0.2.10", &normal_message());
    println!("silent server: {took:?}, notes {:?}", verdict.notes);
    assert!(verdict.hits.is_empty(), "{verdict:?}");
    assert_eq!(verdict.action, Action::Accept);
    assert_eq!(verdict.notes.len(), 2, "{:?}", verdict.notes);
    assert!(
        verdict.notes.iter().all(|n| n.contains("no answer within")),
        "{:?}",
        verdict.notes
    );
    // Both zones were asked together: one bound, not two. The upper
    // bound is loose.
    assert!(took >= bound, "gave up after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn disabled_scoring_does_nothing() {
    // No name server at all: a lookup would be noted.
    let resolver = Resolver::new(ResolverConfig {
        servers: vec![],
        ..ResolverConfig::default()
    });
    let options = SpamOptions {
        enabled: false,
        ..options()
    };
    let (verdict, _) = score(&resolver, &options, "192.0.2.10", &spammy_message());
    assert_eq!((verdict.score, verdict.action), (0.0, Action::Accept));
    assert!(verdict.hits.is_empty() && verdict.notes.is_empty());
}

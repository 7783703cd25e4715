//! The parse cache through the real appliance: messages delivered by a
//! real SMTP client (lettre, to the MX listener) get their digest
//! (envelope, body structure, thread root) written at delivery, durably,
//! beside their body. After a restart, with every in-memory cache gone,
//! a real IMAP client (async-imap) fetching ENVELOPE and BODYSTRUCTURE of
//! every message is served from those digests: `/metrics` counts one
//! digest read per message and no body read. A section is streamed from
//! the range the stored MIME tree gives, and so are the header and the
//! text parts SEARCH reads: no body is read whole, nor parsed. `[storage]
//! segment_mib = 1` makes the mail span
//! several segment files, which the digests are read across.

use std::path::Path;
use std::time::Duration;

use cairn_config::Service;
use cairn_tests::{async_imap_login, AdminApi, Appliance, Setup};
use futures_lite::StreamExt;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};

const USER: &str = "dora@example.org";
const PASSWORD: &str = "a long enough password";
const MESSAGES: usize = 30;
/// About 60 KiB a message: 30 of them fill more than one 1 MiB segment.
const BODY_LINES: usize = 800;

fn deliver(port: u16, i: usize) {
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .hello_name(ClientId::Domain("mail.sender.example".into()))
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let line = format!("Line of message {i}, long enough to fill a segment soon.\r\n");
    let message = Message::builder()
        .from("Sender <sender@sender.example>".parse().expect("from"))
        .to(format!("Dora <{USER}>").parse().expect("to"))
        .subject(format!("Cached subject {i}"))
        .message_id(Some(format!("<cache{i}@sender.example>")))
        .body(line.repeat(BODY_LINES))
        .expect("message");
    mailer.send(&message).expect("delivered");
}

/// The sum over shards of the counter `name` in `/metrics`.
fn counter(appliance: &Appliance, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://{}/metrics", appliance.http))
        .and_then(|r| r.text())
        .expect("metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Segment files in every shard's log.
fn segment_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("shards"))
        .expect("shards dir")
        .filter_map(Result::ok)
        .filter_map(|shard| std::fs::read_dir(shard.path().join("log")).ok())
        .flat_map(|log| log.filter_map(Result::ok))
        .filter(|f| f.path().extension().is_some_and(|e| e == "seg"))
        .count()
}

/// Subjects (from ENVELOPE) and whether each has a BODYSTRUCTURE, for
/// every message of INBOX.
async fn summaries(port: u16) -> Vec<(String, bool)> {
    let mut s = async_imap_login(port, USER, PASSWORD).await;
    s.select("INBOX").await.expect("select");
    let fetched: Vec<_> = s
        .fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
        .await
        .expect("fetch")
        .collect()
        .await;
    let out = fetched
        .into_iter()
        .map(|f| {
            let f = f.expect("fetch");
            let subject = f
                .envelope()
                .and_then(|e| e.subject.as_ref())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default();
            (subject, f.bodystructure().is_some())
        })
        .collect();
    s.logout().await.expect("logout");
    out
}

/// The header section of message `seq`.
async fn header(port: u16, seq: u32) -> String {
    let mut s = async_imap_login(port, USER, PASSWORD).await;
    s.select("INBOX").await.expect("select");
    let fetched: Vec<_> = s
        .fetch(seq.to_string(), "BODY.PEEK[HEADER]")
        .await
        .expect("fetch")
        .collect()
        .await;
    s.logout().await.expect("logout");
    let f = fetched.into_iter().next().expect("one").expect("fetch");
    String::from_utf8_lossy(f.header().unwrap_or_default()).into_owned()
}

/// The sequence numbers SEARCH finds for `query` in INBOX.
async fn search(port: u16, query: &str) -> Vec<u32> {
    let mut s = async_imap_login(port, USER, PASSWORD).await;
    s.select("INBOX").await.expect("select");
    let mut found: Vec<u32> = s.search(query).await.expect("search").into_iter().collect();
    found.sort_unstable();
    s.logout().await.expect("logout");
    found
}

/// Waits until the appliance has sampled its counters (every second).
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn fetches_and_searches_after_a_restart_are_served_from_digests_made_at_delivery() {
    let setup =
        Setup::new("[mail_access]\nallow_plaintext_auth = true\n\n[limits]\nmax_message_size = 512000\n\n[storage]\nsegment_mib = 1\n");
    let (imap, smtp) = (
        setup.config.port(Service::Imap),
        setup.config.port(Service::Smtp),
    );
    let appliance = setup.start();
    AdminApi::new(&appliance, &setup.data).provision("example.org", &[USER.to_string()], PASSWORD);
    for i in 0..MESSAGES {
        deliver(smtp, i);
    }
    assert!(
        appliance
            .stop(libc::SIGTERM, Duration::from_secs(20))
            .is_some(),
        "the appliance did not stop"
    );
    let segments = segment_files(&setup.data);
    assert!(segments > 2, "{segments} segment files for ~2 MiB of mail");

    let appliance = setup.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let got = rt.block_on(summaries(imap));
    let want: Vec<(String, bool)> = (0..MESSAGES)
        .map(|i| (format!("Cached subject {i}"), true))
        .collect();
    assert_eq!(got, want);
    settle();
    let digests = counter(&appliance, "cairn_storage_digest_reads_total");
    let bodies = counter(&appliance, "cairn_storage_body_reads_total");
    println!("after the summary fetch: {digests} digest reads, {bodies} body reads");
    assert_eq!(digests, MESSAGES as u64, "one digest read per message");
    assert_eq!(bodies, 0, "no body read for ENVELOPE/BODYSTRUCTURE");
    assert_eq!(
        counter(&appliance, "cairn_storage_digests_rejected_total"),
        0
    );

    // A second fetch is served from memory.
    assert_eq!(rt.block_on(summaries(imap)), want);
    // A section is a range of the body, found in the stored MIME tree:
    // streamed, not parsed.
    let head = rt.block_on(header(imap, 1));
    assert!(head.contains("Subject: Cached subject 0"), "{head}");
    settle();
    assert_eq!(
        counter(&appliance, "cairn_storage_digest_reads_total"),
        MESSAGES as u64,
        "the second fetch read no digest again"
    );
    assert_eq!(counter(&appliance, "cairn_storage_body_reads_total"), 0);
    assert_eq!(counter(&appliance, "cairn_storage_body_streams_total"), 1);
    // SEARCH BODY reads each message's text part (its only one), and
    // nothing else: one range each.
    let found = rt.block_on(search(imap, "BODY \"Line of message 7,\""));
    assert_eq!(found, [8]);
    settle();
    let bodies = counter(&appliance, "cairn_storage_body_reads_total");
    let streams = counter(&appliance, "cairn_storage_body_streams_total");
    println!("after SEARCH BODY: {bodies} body reads, {streams} ranges read");
    assert_eq!(bodies, 0, "SEARCH BODY read no body whole");
    assert_eq!(streams, 1 + MESSAGES as u64);
    // A header key reads each message's header range.
    let found = rt.block_on(search(imap, "SUBJECT \"cached subject 1\" FROM sender"));
    let want: Vec<u32> = (1..=MESSAGES as u32)
        .filter(|seq| (seq - 1).to_string().starts_with('1'))
        .collect();
    assert_eq!(found, want);
    settle();
    assert_eq!(counter(&appliance, "cairn_storage_body_reads_total"), 0);
    assert_eq!(
        counter(&appliance, "cairn_storage_body_streams_total"),
        1 + 2 * MESSAGES as u64
    );
    // Again: the headers are in the shard's header cache, nothing is read.
    let again = rt.block_on(search(imap, "FROM sender SUBJECT \"cached subject 1\""));
    assert_eq!(again, want);
    settle();
    assert_eq!(
        counter(&appliance, "cairn_storage_body_streams_total"),
        1 + 2 * MESSAGES as u64,
        "the second header search read no header"
    );
    assert_eq!(counter(&appliance, "cairn_storage_body_reads_total"), 0);
}

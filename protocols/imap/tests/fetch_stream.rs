//! FETCH of the raw message streamed from storage: a 20 MiB message
//! appended with the async-imap client comes back whole and in ranges
//! (`BODY[]`, `BODY[]<o.l>`, `RFC822`); the session reads it in chunks
//! (the mailstore's streamed reads go up, its whole reads do not); the
//! streamed response is byte for byte what the parsing path writes; and a
//! body found corrupt once sent ends the connection with BYE.

use std::io::{Seek, SeekFrom, Write};
use std::sync::mpsc;
use std::time::Duration;

use cairn_imap::{ImapMesh, ImapOptions, ImapServer};
use cairn_shards::metrics::Metrics;
use cairn_storage::log::LogConfig;
use cairn_storage::mailbox::{BlobRef, Reads};
use cairn_storage::services::Services;
use cairn_storage::shard_store::shard_dir;
use cairn_storage::testing::{address_per_shard, ServiceNode};
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_lite::StreamExt;

mod common;
use common::{add_accounts, fetch_one, listen, login, Raw, Session};

const LARGE: usize = 20 * 1024 * 1024;

/// Questions for shard 0.
enum Ask {
    /// Its mailstore's reads.
    Reads(mpsc::Sender<Reads>),
    /// Where the body of an account's first INBOX message lies.
    Blob(String, mpsc::Sender<BlobRef>),
    /// Answered once the digests being made (off the shard, after
    /// delivery) are written.
    DigestsSettled(mpsc::Sender<()>),
}

struct TestServer {
    port: u16,
    user: String,
    asks: UnboundedSender<Ask>,
    node: ServiceNode,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.asks.close_channel();
    }
}

impl TestServer {
    fn reads(&self) -> Reads {
        let (tx, rx) = mpsc::channel();
        self.asks.unbounded_send(Ask::Reads(tx)).expect("ask");
        rx.recv_timeout(Duration::from_secs(30)).expect("reads")
    }

    fn first_blob(&self) -> BlobRef {
        let (tx, rx) = mpsc::channel();
        let ask = Ask::Blob(self.user.clone(), tx);
        self.asks.unbounded_send(ask).expect("ask");
        rx.recv_timeout(Duration::from_secs(30)).expect("blob")
    }

    /// Waits until the digests of the messages stored so far are written
    /// (they are made after delivery, off the shard).
    fn digests_settled(&self) {
        let (tx, rx) = mpsc::channel();
        self.asks
            .unbounded_send(Ask::DigestsSettled(tx))
            .expect("ask");
        rx.recv_timeout(Duration::from_secs(30)).expect("settled")
    }
}

async fn answer(services: Services, mut asks: UnboundedReceiver<Ask>) {
    while let Some(ask) = asks.next().await {
        match ask {
            Ask::Reads(reply) => {
                let _ = reply.send(services.mailstore.reads());
            }
            Ask::DigestsSettled(reply) => {
                services.mailstore.digests_settled().await;
                let _ = reply.send(());
            }
            Ask::Blob(account, reply) => {
                let messages = services.mailstore.messages(&account, "INBOX");
                if let Some(m) = messages.ok().and_then(|m| m.into_iter().next()) {
                    let _ = reply.send(m.blob);
                }
            }
        }
    }
}

/// One shard whose log takes records of 32 MiB, an IMAP listener on it,
/// and one account; the appliance's digests made at delivery.
fn start() -> TestServer {
    start_with(true)
}

/// [`start`], with digests made at delivery or none (then every FETCH of
/// a message's bytes parses it: the parsing path, to compare with).
fn start_with(digests: bool) -> TestServer {
    let metrics = Metrics::new(1, "test");
    let mesh = ImapMesh::new(1, 64);
    let (asks_tx, asks) = unbounded();
    let asks = std::sync::Arc::new(std::sync::Mutex::new(Some(asks)));
    let (ready_tx, ready_rx) = mpsc::channel::<(u16, String)>();
    let log = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        max_batch_bytes: 32 * 1024 * 1024,
        ..LogConfig::default()
    };
    let node = ServiceNode::start_with_log(1, log, move |services, ctx| {
        let (metrics, mesh, ready_tx, asks) = (
            metrics.clone(),
            mesh.clone(),
            ready_tx.clone(),
            asks.clone(),
        );
        async move {
            let options = ImapOptions {
                allow_plaintext_auth: true,
                ..ImapOptions::default()
            };
            // As the appliance does: summaries come from digests.
            if digests {
                services
                    .mailstore
                    .digest_with(cairn_imap::DIGESTER, ctx.blocking().clone());
            }
            let m = metrics.service("imap", ctx.id());
            let server = ImapServer::start(services.clone(), None, options, m, &mesh)
                .await
                .expect("imap server");
            let [user] = <[String; 1]>::try_from(address_per_shard(&services, 1)).expect("one");
            add_accounts(&services, &[&user], 0).await;
            if let Some(asks) = asks.lock().ok().and_then(|mut a| a.take()) {
                cairn_shards::spawn_detached(answer(services.clone(), asks));
            }
            listen(server, ctx.shutdown().clone(), |port| {
                ready_tx.send((port, user)).expect("ready");
            })
            .await;
        }
    });
    let (port, user) = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    TestServer {
        port,
        user,
        asks: asks_tx,
        node,
    }
}

/// A message of `len` bytes whose lines all differ.
fn message(len: usize) -> Vec<u8> {
    let mut out = b"From: a@example.org\r\nSubject: large\r\n\r\n".to_vec();
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("{i:012} {}\r\n", "xyz".repeat((i % 11) as usize)).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len - 2);
    out.extend_from_slice(b"\r\n");
    out
}

/// The body (`BODY[]…` or `RFC822`) of message 1 fetched with `items`.
async fn fetch_body(s: &mut Session, items: &str) -> Vec<u8> {
    let f = fetch_one(s, items).await;
    f.body().expect("a body").to_vec()
}

#[test]
fn a_large_message_streams_whole_and_in_ranges() {
    let server = start();
    let original = message(LARGE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut s = login(server.port, &server.user).await;
        s.append("INBOX", None, None, &original)
            .await
            .expect("append");
        s.select("INBOX").await.expect("select");
        let before = server.reads();
        let body = fetch_body(&mut s, "BODY.PEEK[]").await;
        assert_eq!(body.len(), original.len());
        assert!(body == original, "BODY[] differs");
        let after = server.reads();
        assert_eq!(after.streams, before.streams + 1, "streamed");
        assert_eq!(after.bodies, before.bodies, "never read whole");
        let range = fetch_body(&mut s, "BODY.PEEK[]<1000.5000>").await;
        assert!(range == original[1000..6000], "BODY[]<1000.5000> differs");
        let beyond = fetch_body(&mut s, &format!("BODY.PEEK[]<{LARGE}.10>")).await;
        assert!(beyond.is_empty());
        let rfc822 = fetch_body(&mut s, "RFC822").await;
        assert!(rfc822 == original, "RFC822 differs");
        let f = fetch_one(&mut s, "FLAGS").await;
        assert!(f.flags().any(|fl| fl == async_imap::types::Flag::Seen));
        let last = server.reads();
        assert_eq!(last.streams, before.streams + 4);
        assert_eq!(last.bodies, before.bodies);
        s.logout().await.expect("logout");
    });
}

/// APPENDs `msg` to INBOX (tag `a1`) as a synchronizing literal, or as a
/// literal8 (`~{n}`, RFC 3516) where `binary`.
fn append(raw: &mut Raw, msg: &[u8], binary: bool) {
    let literal8 = if binary { "~" } else { "" };
    raw.send(format!("a1 APPEND INBOX {literal8}{{{}}}\r\n", msg.len()).as_bytes());
    raw.until_bytes(b"+ ");
    raw.send(msg);
    raw.send(b"\r\n");
    raw.until_bytes(b"a1 OK");
}

/// The `* 1 FETCH …\r\n` response of a reply tagged `tag`.
fn untagged(reply: &[u8], tag: &[u8]) -> Vec<u8> {
    let end = reply
        .windows(tag.len() + 2)
        .rposition(|w| w.starts_with(b"\r\n") && w.ends_with(tag))
        .expect("tagged reply");
    reply[..end + 2].to_vec()
}

#[test]
fn streamed_responses_are_the_bytes_the_parsing_path_writes() {
    let server = start();
    let mut raw = Raw::login(server.port, &server.user);
    let msg = "From: Alice <alice@example.org>\r\nSubject: caf\u{e9} .\r\n\r\nline one\r\n.dot\r\n";
    append(&mut raw, msg.as_bytes(), false);
    // ENVELOPE comes from the digest, made after the append.
    server.digests_settled();
    raw.command_bytes("a2", "SELECT INBOX");
    let items =
        "UID RFC822.SIZE ENVELOPE BODY.PEEK[]<5.10> BINARY.PEEK[] BODY.PEEK[]<9999.1> BODY.PEEK[]";
    let before = server.reads();
    let streamed = raw.command_bytes("a3", &format!("FETCH 1 ({items})"));
    let middle = server.reads();
    assert_eq!(middle.streams, before.streams + 4);
    assert_eq!(middle.bodies, before.bodies);
    // BINARY.SIZE of a part: the part's range read and decoded.
    let sized = raw.command_bytes("a4", &format!("FETCH 1 ({items} BINARY.SIZE[1])"));
    let after = server.reads();
    assert_eq!(after.streams, middle.streams + 5);
    assert_eq!(after.bodies, middle.bodies);
    // The same message where no digest is kept: the parsing path.
    let plain = start_with(false);
    let mut other = Raw::login(plain.port, &plain.user);
    append(&mut other, msg.as_bytes(), false);
    other.command_bytes("a2", "SELECT INBOX");
    let parsed = other.command_bytes("a4", &format!("FETCH 1 ({items} BINARY.SIZE[1])"));
    assert_eq!(plain.reads().bodies, 1, "parsed once");
    let streamed = untagged(&streamed, b"a3");
    let (sized, parsed) = (untagged(&sized, b"a4"), untagged(&parsed, b"a4"));
    assert_eq!(
        String::from_utf8_lossy(&sized),
        String::from_utf8_lossy(&parsed)
    );
    let open = streamed.strip_suffix(b")\r\n").expect("a FETCH response");
    let text = " BINARY.SIZE[1] 16)\r\n";
    assert_eq!(
        String::from_utf8_lossy(&parsed),
        format!("{}{text}", String::from_utf8_lossy(open))
    );
    assert!(parsed == [open, text.as_bytes()].concat());
    let expected_start = format!("* 1 FETCH (UID 1 RFC822.SIZE {} ENVELOPE (", msg.len());
    assert!(streamed.starts_with(expected_start.as_bytes()));
    let tail = format!(
        " BODY[]<5> {{10}}\r\n{} BINARY[] ~{{{n}}}\r\n{msg} BODY[]<9999> {{0}}\r\n BODY[] {{{n}}}\r\n{msg})\r\n",
        &msg[5..15],
        n = msg.len()
    );
    assert!(
        String::from_utf8_lossy(&streamed).ends_with(&tail),
        "{}",
        String::from_utf8_lossy(&streamed)
    );
}

#[test]
fn sections_stream_from_the_digest_tree_as_the_parsing_path_writes_them() {
    let server = start();
    let mut raw = Raw::login(server.port, &server.user);
    let msg = "From: Alice <alice@example.org>\r\nSubject: parts\r\n\
               Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
               --b\r\nContent-Type: text/plain\r\n\r\nfirst\0part\r\n\
               --b\r\nContent-Type: message/rfc822\r\n\r\n\
               Subject: inner\r\nFrom: b@example.org\r\n\r\ninner body\r\n\
               --b--\r\n";
    append(&mut raw, msg.as_bytes(), true);
    raw.command_bytes("a2", "SELECT INBOX");
    let items = "UID BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] \
                 BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER.FIELDS.NOT (From)]<1.6> \
                 BODY.PEEK[2.TEXT] RFC822.HEADER BODY.PEEK[1]<2.3> BODY.PEEK[9] \
                 BODY.PEEK[1.TEXT] BODY.PEEK[]<0.4> BINARY.PEEK[1]<1.6> BINARY.SIZE[2] \
                 BINARY.SIZE[7]";
    // The digest made at delivery may not be there yet: then the message
    // is read and parsed once, and its summary (tree included) kept.
    let mut tries = 0;
    let (streamed, before, after) = loop {
        let before = server.reads();
        let reply = raw.command_bytes("a3", &format!("FETCH 1 ({items})"));
        let after = server.reads();
        if after.bodies == before.bodies || tries == 1 {
            break (untagged(&reply, b"a3"), before, after);
        }
        assert_eq!(after.digests, before.digests, "no digest: parsed");
        tries += 1;
    };
    assert_eq!(after.bodies, before.bodies, "no whole body read");
    if tries == 0 {
        assert_eq!(after.digests, before.digests + 1, "from the digest");
    }
    assert_eq!(after.rejected_digests, 0);
    // Eight ranges streamed and one header read for HEADER.FIELDS (the
    // other header filter's header read, empty parts not opened), and
    // the two parts BINARY decodes.
    assert!(after.streams >= before.streams + 10, "{before:?} {after:?}");
    // The same message where no digest is kept: the parsing path writes
    // the same bytes.
    let plain = start_with(false);
    let mut other = Raw::login(plain.port, &plain.user);
    append(&mut other, msg.as_bytes(), true);
    other.command_bytes("a2", "SELECT INBOX");
    let parsed = other.command_bytes("a3", &format!("FETCH 1 ({items})"));
    assert_eq!(plain.reads().bodies, 1, "parsed once");
    assert_eq!(
        String::from_utf8_lossy(&untagged(&parsed, b"a3")),
        String::from_utf8_lossy(&streamed)
    );
    assert_eq!(untagged(&parsed, b"a3"), streamed);
    let text = String::from_utf8_lossy(&streamed).into_owned();
    for part in [
        "BODY[1] {10}\r\nfirst\u{fffd}part ",
        "BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: parts\r\n\r\n ",
        "BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n ",
        "BODY[2.HEADER.FIELDS.NOT (From)]<1> {6}\r\nubject ",
        "BODY[2.TEXT] {10}\r\ninner body ",
        "BODY[1]<2> {3}\r\nrst ",
        "BODY[9] {0}\r\n ",
        "BODY[1.TEXT] {0}\r\n ",
        "BODY[]<0> {4}\r\nFrom ",
        "BINARY[1] ~{6}\r\nirst\0p ",
        "BINARY.SIZE[2] 49 ",
        "BINARY.SIZE[7] 0)",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert!(streamed.windows(10).any(|w| w == b"first\x80part"));
    assert_eq!(
        streamed.iter().filter(|&&b| b == 0).count(),
        1,
        "in BINARY only"
    );
}

/// SEARCH on a large message whose summary is not in memory: the tree is
/// decoded from its digest, the header and the text parts are read as
/// ranges (quoted-printable decoded), the attachment is never searched,
/// and no body is read whole; SORT reads the header only.
#[test]
fn searches_read_the_header_and_text_parts_not_the_attachment() {
    let server = start();
    let mut raw = Raw::login(server.port, &server.user);
    let attachment = "SECRETWORD in an attachment line\r\n".repeat(8_000);
    let msg = format!(
        "From: Alice <alice@example.org>\r\nSubject: parted search\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         hello wor=\r\nld, soft=20break\r\n\
         --b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{attachment}\
         --b\r\nContent-Type: text/html\r\n\r\n<p>closing <b>remark</b></p>\r\n\
         --b--\r\n"
    );
    assert!(msg.len() > 256 * 1024);
    append(&mut raw, msg.as_bytes(), false);
    server.digests_settled();
    // A new session: the summary cache of the shard is still empty (the
    // APPEND kept none), so the tree comes from the digest.
    let mut raw = Raw::login(server.port, &server.user);
    raw.command("s0", "SELECT INBOX");
    let before = server.reads();
    let found = |raw: &mut Raw, tag: &str, search: &str| -> String {
        let reply = raw.command(tag, search);
        let line = reply.iter().find(|l| l.starts_with("* SEARCH")).cloned();
        line.unwrap_or_default().trim_end().to_string()
    };
    assert_eq!(
        found(&mut raw, "s1", "SEARCH BODY \"hello world\""),
        "* SEARCH 1"
    );
    assert_eq!(
        found(&mut raw, "s2", "SEARCH BODY \"closing remark\""),
        "* SEARCH 1"
    );
    assert_eq!(found(&mut raw, "s3", "SEARCH BODY SECRETWORD"), "* SEARCH");
    assert_eq!(
        found(&mut raw, "s4", "SEARCH TEXT \"parted search\""),
        "* SEARCH 1"
    );
    assert_eq!(
        found(&mut raw, "s5", "SEARCH FROM alice SUBJECT parted"),
        "* SEARCH 1"
    );
    let sorted = raw.command("s6", "SORT (SUBJECT) UTF-8 ALL");
    assert!(
        sorted.iter().any(|l| l.trim_end() == "* SORT 1"),
        "{sorted:?}"
    );
    let after = server.reads();
    assert_eq!(after.bodies, before.bodies, "no body read whole");
    assert_eq!(after.rejected_digests, 0);
    // The tree came from the digest, read once: the searches after the
    // first find it in the shard's tree cache.
    assert_eq!(after.digests, before.digests + 1, "{before:?} {after:?}");
    // s1–s3 read the two text parts apart (the attachment lies between
    // them), s4 the header with the first and the last alone; s5 and the
    // SORT find the header in the shard's header cache.
    assert_eq!(after.streams, before.streams + 8, "{before:?} {after:?}");
}

#[test]
fn a_nul_goes_out_as_0x80_in_literals_and_as_it_is_in_binary() {
    let server = start();
    let mut raw = Raw::login(server.port, &server.user);
    let msg = b"Subject: nul\r\n\r\nbefore\0after\r\n";
    append(&mut raw, msg, true);
    raw.command_bytes("a2", "SELECT INBOX");
    let mapped = b"before\x80after";
    // Streamed: BODY[] as a literal, BINARY[] as a literal8.
    let streamed = raw.command_bytes("a3", "FETCH 1 (BODY.PEEK[] BINARY.PEEK[])");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        find(&streamed, mapped),
        "{}",
        String::from_utf8_lossy(&streamed)
    );
    assert!(
        find(&streamed, b"before\0after"),
        "{}",
        String::from_utf8_lossy(&streamed)
    );
    // Parsed: a section.
    let parsed = raw.command_bytes("a4", "FETCH 1 (BODY.PEEK[TEXT])");
    assert!(
        find(&parsed, mapped),
        "{}",
        String::from_utf8_lossy(&parsed)
    );
    assert!(!parsed.contains(&0), "{}", String::from_utf8_lossy(&parsed));
}

#[test]
fn a_body_found_corrupt_once_sent_ends_the_connection_with_bye() {
    let server = start();
    let mut raw = Raw::login(server.port, &server.user);
    let msg = format!("Subject: soon damaged\r\n\r\n{}\r\n", "z".repeat(200_000));
    append(&mut raw, msg.as_bytes(), false);
    // One byte of the body, past the record's header (20 bytes) and the
    // stored hash (32), changed on disk.
    let blob = server.first_blob();
    let segment = shard_dir(server.node.data_dir(), 0)
        .join("log")
        .join(format!("{:016}.seg", blob.segment));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("segment");
    file.seek(SeekFrom::Start(blob.offset + 20 + 32 + 100_000))
        .expect("seek");
    file.write_all(b"Z").expect("write");
    file.sync_all().expect("sync");
    drop(file);
    raw.command_bytes("a2", "SELECT INBOX");
    raw.send(b"a3 FETCH 1 (UID BODY.PEEK[])\r\n");
    let rest = raw.rest();
    let head = format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", msg.len());
    assert!(
        rest.starts_with(head.as_bytes()),
        "{}",
        String::from_utf8_lossy(&rest[..80.min(rest.len())])
    );
    let tail = b")\r\n* BYE [CORRUPTION] A message is damaged in storage\r\n";
    assert!(rest.ends_with(tail), "ends with BYE and no tagged reply");
    assert_eq!(rest.len(), head.len() + msg.len() + tail.len());
}

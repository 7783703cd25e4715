//! The IMAP server end to end with the async-imap client and raw
//! sockets: a two-shard node with real storage, accounts owned by each
//! shard (so that a login on shard 0 moves the session to shard 1 for
//! one of them), the listener on shard 0.

use std::sync::mpsc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use cairn_imap::{ImapMesh, ImapOptions, ImapServer};
use cairn_shards::metrics::Metrics;
use cairn_storage::testing::{address_per_shard, certificate, tls_config, ServiceNode};
use futures_lite::StreamExt;
use tokio::net::TcpStream;

mod common;
use common::{add_accounts, fetch_one, listen, login, Raw, PASSWORD};

struct Ready {
    port: u16,
    /// Accounts owned by shard 0 and by shard 1.
    a: String,
    b: String,
}

struct TestServer {
    ready: Ready,
    _node: ServiceNode,
}

fn start(options: ImapOptions) -> TestServer {
    let tls = tls_config();
    let metrics = Metrics::new(2, "test");
    let mesh = ImapMesh::new(2, 64);
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let node = ServiceNode::start(2, move |services, ctx| {
        let (metrics, options, ready_tx, mesh, tls) = (
            metrics.clone(),
            options.clone(),
            ready_tx.clone(),
            mesh.clone(),
            tls.clone(),
        );
        async move {
            let m = metrics.service("imap", ctx.id());
            let server = ImapServer::start(services.clone(), Some(tls), options, m, &mesh)
                .await
                .expect("imap server");
            if ctx.id() != 0 {
                ctx.shutdown().wait().await;
                drop(server);
                return;
            }
            let [a, b] =
                <[String; 2]>::try_from(address_per_shard(&services, 2)).expect("two shards");
            add_accounts(&services, &[&a, &b], 0).await;
            listen(server, ctx.shutdown().clone(), |port| {
                ready_tx.send(Ready { port, a, b }).expect("ready");
            })
            .await;
        }
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    TestServer { ready, _node: node }
}

fn plaintext() -> ImapOptions {
    ImapOptions {
        allow_plaintext_auth: true,
        ..ImapOptions::default()
    }
}

const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Hello there\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.org>\r\n\r\nThe body of the message.\r\n";

/// The whole mail flow with a real client, for an account on each shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flow_with_a_real_client() {
    let server = start(plaintext());
    for user in [&server.ready.a, &server.ready.b] {
        let mut s = login(server.ready.port, user).await;
        let caps = s.capabilities().await.expect("capabilities");
        assert!(caps.has_str("IDLE") && caps.has_str("UIDPLUS"));
        let names: Vec<String> = s
            .list(Some(""), Some("*"))
            .await
            .expect("list")
            .map(|n| n.expect("name").name().to_string())
            .collect()
            .await;
        assert!(
            names.contains(&"INBOX".to_string()) && names.contains(&"Sent".to_string()),
            "{names:?}"
        );
        s.append("INBOX", Some("(\\Flagged)"), None, MESSAGE)
            .await
            .expect("append");
        s.append(
            "INBOX",
            None,
            None,
            MESSAGE.replace("Hello there", "Second"),
        )
        .await
        .expect("append");
        let mb = s.select("INBOX").await.expect("select");
        assert_eq!(mb.exists, 2);
        // Flags, envelope, body, partial body.
        let f = fetch_one(&mut s, "(FLAGS ENVELOPE BODY.PEEK[] BODY.PEEK[]<0.4> UID)").await;
        assert_eq!(f.body(), Some(MESSAGE.as_bytes()));
        let env = f.envelope().expect("envelope");
        assert_eq!(env.subject.as_deref(), Some(&b"Hello there"[..]));
        assert!(f.flags().any(|fl| fl == async_imap::types::Flag::Flagged));
        assert!(f.uid.is_some());
        // STORE, SEARCH.
        let _: Vec<_> = s
            .store("2", "+FLAGS (\\Seen)")
            .await
            .expect("store")
            .collect()
            .await;
        let seen = s.search("SEEN").await.expect("search");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![2]);
        let text = s.uid_search("SUBJECT \"Second\"").await.expect("search");
        assert_eq!(text.len(), 1);
        // COPY, MOVE, EXPUNGE.
        s.copy("1", "Archive").await.expect("copy");
        s.mv("2", "Trash").await.expect("move");
        let st = s.status("Trash", "(MESSAGES)").await.expect("status");
        assert_eq!(st.exists, 1);
        let mb = s.select("INBOX").await.expect("select");
        assert_eq!(mb.exists, 1);
        let _: Vec<_> = s
            .store("1", "+FLAGS (\\Deleted)")
            .await
            .expect("store")
            .collect()
            .await;
        let gone: Vec<_> = s.expunge().await.expect("expunge").collect().await;
        assert_eq!(gone.len(), 1);
        s.select("Nope").await.expect_err("no such mailbox");
        s.logout().await.expect("logout");
    }
}

/// IDLE is woken by an APPEND from a second session, on either shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wakes_on_append() {
    let server = start(plaintext());
    for user in [&server.ready.a, &server.ready.b] {
        let mut watcher = login(server.ready.port, user).await;
        watcher.select("INBOX").await.expect("select");
        let mut idle = watcher.idle();
        idle.init().await.expect("idle");
        let mut other = login(server.ready.port, user).await;
        let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(20));
        let (woke, ()) = tokio::join!(wait, async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            other
                .append("INBOX", None, None, MESSAGE)
                .await
                .expect("append");
        });
        assert!(matches!(woke.expect("idle"), IdleResponse::NewData(_)));
        let mut watcher = idle.done().await.expect("done");
        watcher.noop().await.expect("noop");
    }
}

#[test]
fn protocol_errors_and_limits() {
    let server = start(ImapOptions {
        max_literal: 1000,
        ..plaintext()
    });
    let (mut raw, greeting) = Raw::connect(server.ready.port);
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1"),
        "{greeting}"
    );
    // Garbage gets BAD and the session goes on.
    let r = raw.command("a1", "FROBNICATE now");
    assert!(r.last().expect("reply").starts_with("a1 BAD"), "{r:?}");
    raw.send(b"\x01\x02 nonsense\r\n");
    assert!(raw.line().starts_with("* BAD"));
    let r = raw.command("a2", &format!("LOGIN {} wrong", server.ready.b));
    assert!(
        r.last()
            .expect("reply")
            .starts_with("a2 NO [AUTHENTICATIONFAILED]"),
        "{r:?}"
    );
    // A literal login, on the other shard.
    raw.send(format!("a3 LOGIN {{{}}}\r\n", server.ready.b.len()).as_bytes());
    assert!(raw.line().starts_with("+ "));
    raw.send(format!("{} {{6+}}\r\nsecret\r\n", server.ready.b).as_bytes());
    let r = raw.until("a3");
    assert!(
        r.last().expect("reply").starts_with("a3 OK [CAPABILITY"),
        "{r:?}"
    );
    let r = raw.command("a4", "SELECT nosuch");
    assert!(
        r.last().expect("reply").starts_with("a4 NO [NONEXISTENT]"),
        "{r:?}"
    );
    let r = raw.command("a5", "APPEND nosuch {3+}\r\nabc");
    assert!(
        r.last().expect("reply").starts_with("a5 NO [TRYCREATE]"),
        "{r:?}"
    );
    // Too big: refused without a continuation; the session goes on.
    raw.send(b"a6 APPEND INBOX {5000}\r\n");
    assert!(raw.line().starts_with("a6 NO [TOOBIG]"));
    raw.send(b"a7 APPEND INBOX {5000+}\r\n");
    raw.send(&vec![b'x'; 5000]);
    raw.send(b"\r\n");
    assert!(raw.line().starts_with("a7 NO [TOOBIG]"));
    let r = raw.command("a8", "NOOP");
    assert_eq!(r, vec!["a8 OK NOOP completed\r\n".to_string()]);
    // A line over the limit.
    raw.send(&vec![b'y'; 70 * 1024]);
    raw.send(b"\r\n");
    assert!(raw.line().starts_with("* BAD"));
    let r = raw.command(
        "a9",
        "STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)",
    );
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0 HIGHESTMODSEQ"),
        "{r:?}"
    );
    // Text searches are matched in UTF-8 (and its subset US-ASCII) only.
    raw.command("b0", "SELECT INBOX");
    for (tag, cmd) in [
        ("c1", "SEARCH CHARSET KOI8-R TEXT x"),
        ("c2", "UID SORT (DATE) ISO-8859-1 ALL"),
        ("c3", "SEARCH RETURN (COUNT) CHARSET EBCDIC ALL"),
    ] {
        let r = raw.command(tag, cmd);
        let last = r.last().expect("reply");
        assert!(
            last.starts_with(&format!("{tag} NO [BADCHARSET (UTF-8 US-ASCII)]")),
            "{cmd}: {r:?}"
        );
    }
    let r = raw.command("c4", "SEARCH CHARSET utf-8 TEXT x");
    assert!(r.last().expect("reply").starts_with("c4 OK"), "{r:?}");
    let r = raw.command("b1", "LOGOUT");
    assert!(r[0].starts_with("* BYE"));
}

/// LOGINDISABLED before TLS; STARTTLS, then LOGIN (moving the TLS
/// session to the other shard for one account).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_then_login() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
    let server = start(ImapOptions::default());
    for user in [&server.ready.a, &server.ready.b] {
        let tcp = TcpStream::connect(("127.0.0.1", server.ready.port))
            .await
            .expect("connect");
        let mut plain = TokioBufReader::new(tcp);
        let mut line = String::new();
        plain.read_line(&mut line).await.expect("greeting");
        assert!(
            line.contains("LOGINDISABLED") && line.contains("STARTTLS"),
            "{line}"
        );
        assert!(!line.contains("AUTH=PLAIN"), "{line}");
        plain
            .write_all(format!("a1 LOGIN {user} secret\r\n").as_bytes())
            .await
            .expect("write");
        line.clear();
        plain.read_line(&mut line).await.expect("reply");
        assert!(line.starts_with("a1 NO [PRIVACYREQUIRED]"), "{line}");
        plain.write_all(b"a2 STARTTLS\r\n").await.expect("write");
        line.clear();
        plain.read_line(&mut line).await.expect("reply");
        assert!(line.starts_with("a2 OK"), "{line}");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate().cert.der().clone()).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector
            .connect(name, plain.into_inner())
            .await
            .expect("handshake");
        let client = async_imap::Client::new(tls);
        let mut s = client
            .login(user, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login");
        let caps = s.capabilities().await.expect("capabilities");
        assert!(!caps.has_str("STARTTLS") && caps.has_str("IDLE"));
        s.select("INBOX").await.expect("select");
        s.logout().await.expect("logout");
    }
}

/// CONDSTORE/QRESYNC: a second session's changes come back as VANISHED
/// and changed flags on SELECT (QRESYNC ...); two sessions agree after NOOP.
#[test]
fn qresync_and_two_sessions() {
    let server = start(plaintext());
    for user in [&server.ready.a, &server.ready.b] {
        let mut one = Raw::login(server.ready.port, user);
        let mut two = Raw::login(server.ready.port, user);
        for i in 0..3 {
            let r = one.command(
                &format!("p{i}"),
                &format!("APPEND INBOX {{{}+}}\r\n{MESSAGE}", MESSAGE.len()),
            );
            assert!(r.last().expect("reply").contains("[APPENDUID "), "{r:?}");
        }
        let r = one.command("e", "ENABLE QRESYNC");
        assert!(r[0].starts_with("* ENABLED QRESYNC"), "{r:?}");
        let r = one.command("s", "SELECT INBOX (CONDSTORE)");
        let uidvalidity: u32 = r
            .iter()
            .find_map(|l| {
                l.strip_prefix("* OK [UIDVALIDITY ")
                    .and_then(|x| x.split(']').next())
                    .and_then(|n| n.parse().ok())
            })
            .expect("uidvalidity");
        let modseq: u64 = r
            .iter()
            .find_map(|l| {
                l.strip_prefix("* OK [HIGHESTMODSEQ ")
                    .and_then(|x| x.split(']').next())
                    .and_then(|n| n.parse().ok())
            })
            .expect("highestmodseq");
        let r = one.command("u", "UNSELECT");
        assert!(r.last().expect("reply").starts_with("u OK"), "{r:?}");
        // The second session flags one and expunges another.
        two.command("s", "SELECT INBOX");
        two.command("f", "UID STORE 2 +FLAGS (\\Flagged)");
        two.command("d", "UID STORE 3 +FLAGS (\\Deleted)");
        let r = two.command("x", "EXPUNGE");
        assert!(r.iter().any(|l| l == "* 3 EXPUNGE\r\n"), "{r:?}");
        let r = one.command(
            "q",
            &format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:3))"),
        );
        assert!(
            r.iter().any(|l| l.starts_with("* VANISHED (EARLIER) 3")),
            "{r:?}"
        );
        assert!(
            r.iter()
                .any(|l| l.contains("FETCH (UID 2 FLAGS (\\Flagged") && l.contains("MODSEQ")),
            "{r:?}"
        );
        // Two sessions on one mailbox agree after NOOP.
        two.command(
            "a",
            &format!("APPEND INBOX {{{}+}}\r\n{MESSAGE}", MESSAGE.len()),
        );
        let r = one.command("n", "NOOP");
        assert!(r.iter().any(|l| l == "* 3 EXISTS\r\n"), "{r:?}");
        one.command("g", "STORE 1 +FLAGS (\\Answered)");
        let r = two.command("n", "NOOP");
        assert!(
            r.iter()
                .any(|l| l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Answered")),
            "{r:?}"
        );
    }
}

/// A FETCH answer larger than the server's output buffer (100 messages of
/// about 4 KB, past the 256 KiB at which it writes out) arrives whole and
/// in order.
#[test]
fn a_large_fetch_streams_whole_and_in_order() {
    let server = start(plaintext());
    let mut raw = Raw::login(server.ready.port, &server.ready.b);
    let line = "x".repeat(70);
    for i in 0..100 {
        let body = format!(
            "Subject: big {i}\r\n\r\n{}",
            format!("{line}\r\n").repeat(55)
        );
        raw.send(format!("a{i} APPEND INBOX {{{}+}}\r\n", body.len()).as_bytes());
        raw.send(body.as_bytes());
        raw.send(b"\r\n");
        let done = raw.until(&format!("a{i}"));
        assert!(done.last().is_some_and(|l| l.contains("OK")), "{done:?}");
    }
    raw.command("s", "SELECT INBOX");
    let lines = raw.command(
        "f",
        "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)",
    );
    let lines = [lines, raw.command("g", "FETCH 1:* BODY.PEEK[]")].concat();
    let subjects: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Subject: big"))
        .collect();
    assert_eq!(subjects.len(), 200, "every message, twice");
    for (i, s) in subjects.iter().take(100).enumerate() {
        assert_eq!(s.trim_end(), format!("Subject: big {i}"), "in order");
    }
    let fetches = lines.iter().filter(|l| l.contains(" FETCH (")).count();
    assert_eq!(fetches, 200);
    assert!(
        lines.last().is_some_and(|l| l.starts_with("g OK")),
        "{:?}",
        lines.last()
    );
}

/// The one line of `lines` that starts with `prefix`.
fn one<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{prefix} in {lines:?}");
    found.first().map(|l| l.trim_end()).unwrap_or_default()
}

/// ESEARCH (RFC 4731) with each RETURN option, SEARCHRES `$` (RFC 5182)
/// in a later UID FETCH, and ENABLE IMAP4rev2: SEARCH answers ESEARCH,
/// no RECENT, `[CLOSED]` on a new SELECT.
#[test]
fn esearch_searchres_and_imap4rev2() {
    let server = start(plaintext());
    let mut raw = Raw::login(server.ready.port, &server.ready.b);
    let r = raw.command("c0", "CAPABILITY");
    for cap in [
        "IMAP4rev2",
        "ESEARCH",
        "SEARCHRES",
        "LIST-STATUS",
        "MULTIAPPEND",
    ] {
        assert!(r[0].contains(&format!(" {cap}")), "{cap} in {r:?}");
    }
    // Five messages in Archive, UIDs 1..=5; 2 and 4 flagged.
    for i in 1..=5 {
        let flags = if i % 2 == 0 { "(\\Flagged) " } else { "" };
        let body = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let r = raw.command(
            &format!("p{i}"),
            &format!("APPEND Archive {flags}{{{}+}}\r\n{body}", body.len()),
        );
        assert!(r.last().expect("reply").contains("APPENDUID"), "{r:?}");
    }
    raw.command("s0", "SELECT Archive");
    let r = raw.command("s1", "UID SEARCH RETURN (MIN) ALL");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s1\") UID MIN 1");
    let r = raw.command("s2", "UID SEARCH RETURN (MAX) ALL");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s2\") UID MAX 5");
    let r = raw.command("s3", "SEARCH RETURN (COUNT) FLAGGED");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s3\") COUNT 2");
    let r = raw.command("s4", "UID SEARCH RETURN (ALL) 1:3");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s4\") UID ALL 1:3");
    let r = raw.command("s5", "UID SEARCH RETURN () FLAGGED");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s5\") UID ALL 2,4");
    let r = raw.command("s6", "UID SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED");
    assert_eq!(
        one(&r, "* ESEARCH"),
        "* ESEARCH (TAG \"s6\") UID MIN 2 MAX 4 COUNT 2 ALL 2,4"
    );
    let r = raw.command("s7", "SEARCH RETURN (MIN COUNT) SUBJECT nothing-like-it");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"s7\") COUNT 0");
    // SAVE alone answers nothing; `$` is the saved result afterwards.
    let r = raw.command("s8", "UID SEARCH RETURN (SAVE) FLAGGED");
    assert_eq!(r, vec!["s8 OK UID SEARCH completed\r\n".to_string()]);
    let r = raw.command("s9", "UID FETCH $ (UID FLAGS)");
    let fetched: Vec<&String> = r.iter().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(fetched.len(), 2, "{r:?}");
    assert!(fetched.iter().all(|l| l.contains("\\Flagged")), "{r:?}");
    let r = raw.command("sa", "SEARCH RETURN (ALL) $");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"sa\") ALL 2,4");
    // SAVE with MIN only saves the minimum.
    raw.command("sb", "UID SEARCH RETURN (SAVE MIN) FLAGGED");
    let r = raw.command("sc", "UID SEARCH RETURN (ALL) UID $");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"sc\") UID ALL 2");
    // Malformed: BAD with a reason, the session goes on.
    let r = raw.command("sd", "SEARCH RETURN (LAST) ALL");
    assert!(r[0].starts_with("sd BAD") && r[0].contains("LAST"), "{r:?}");
    // IMAP4rev2: ESEARCH for a plain SEARCH, no RECENT, CLOSED.
    let r = raw.command("e1", "ENABLE IMAP4rev2");
    assert_eq!(one(&r, "* ENABLED"), "* ENABLED IMAP4rev2");
    let r = raw.command("e2", "UID SEARCH FLAGGED");
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"e2\") UID ALL 2,4");
    assert!(!r.iter().any(|l| l.starts_with("* SEARCH")), "{r:?}");
    let r = raw.command("e3", "APPEND INBOX {6+}\r\nx: y\r\n");
    assert!(r.last().expect("reply").starts_with("e3 OK"), "{r:?}");
    let r = raw.command("e4", "SELECT INBOX");
    assert!(r.iter().any(|l| l.starts_with("* OK [CLOSED]")), "{r:?}");
    assert!(!r.iter().any(|l| l.contains("RECENT")), "{r:?}");
    let r = raw.command("e5", "FETCH 1 FLAGS");
    assert!(!r.iter().any(|l| l.contains("\\Recent")), "{r:?}");
    raw.command("e6", "LOGOUT");
}

/// LIST-EXTENDED selection and return options, LIST-STATUS,
/// CREATE-SPECIAL-USE and MULTIAPPEND (all or nothing).
#[test]
fn list_extended_create_special_use_and_multiappend() {
    let server = start(plaintext());
    let mut raw = Raw::login(server.ready.port, &server.ready.a);
    // CREATE-SPECIAL-USE, and LIST showing it.
    let r = raw.command("c1", "CREATE \"Old Sent\" (USE (\\Sent))");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("c1 OK [MAILBOXID (F") && r[0].ends_with(")] CREATE completed\r\n"),
        "{r:?}"
    );
    let r = raw.command("c2", "CREATE Mine (USE (\\Flagged))");
    assert!(r[0].starts_with("c2 NO [USEATTR]"), "{r:?}");
    let r = raw.command("c3", "CREATE Mine (USE (\\Sent \\Trash))");
    assert!(r[0].starts_with("c3 NO [USEATTR]"), "{r:?}");
    let r = raw.command("c4", "CREATE Mine (FOO (\\Sent))");
    assert!(r[0].starts_with("c4 BAD"), "{r:?}");
    let r = raw.command("c5", "LIST (SPECIAL-USE) \"\" \"Old*\"");
    assert_eq!(
        one(&r, "* LIST"),
        "* LIST (\\HasNoChildren \\Sent) \"/\" \"Old Sent\""
    );
    let r = raw.command("c6", "LIST (SPECIAL-USE) \"\" *");
    assert!(r.iter().all(|l| !l.contains("INBOX")), "{r:?}");
    assert!(r.iter().any(|l| l.contains("\\Trash")), "{r:?}");
    // Several patterns; SUBSCRIBED selection and RECURSIVEMATCH.
    raw.command("d1", "CREATE Work/Reports");
    // A new mailbox is subscribed (and so its parent).
    raw.command("d2", "UNSUBSCRIBE Work");
    let r = raw.command("d3", "LIST \"\" (INBOX \"Work/%\") RETURN (CHILDREN)");
    let lists: Vec<&String> = r.iter().filter(|l| l.starts_with("* LIST")).collect();
    assert_eq!(lists.len(), 2, "{r:?}");
    assert!(!r.iter().any(|l| l.contains("\\Subscribed")), "{r:?}");
    let r = raw.command("d4", "LIST (SUBSCRIBED) \"\" Work*");
    assert_eq!(
        one(&r, "* LIST"),
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Work/Reports\""
    );
    let r = raw.command("d5", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" W%");
    assert_eq!(
        one(&r, "* LIST"),
        "* LIST (\\HasChildren) \"/\" \"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))"
    );
    let r = raw.command("d6", "LIST (RECURSIVEMATCH) \"\" %");
    assert!(r[0].starts_with("d6 BAD"), "{r:?}");
    let r = raw.command("d7", "LIST \"\" \"Work\" RETURN (SUBSCRIBED)");
    assert_eq!(one(&r, "* LIST"), "* LIST (\\HasChildren) \"/\" \"Work\"");
    // LIST-STATUS: a STATUS after each LIST line.
    let r = raw.command(
        "s1",
        "LIST \"\" (INBOX Drafts) RETURN (STATUS (MESSAGES UIDNEXT))",
    );
    let lines: Vec<&str> = r.iter().map(|l| l.trim_end()).collect();
    assert_eq!(
        lines.get(..4),
        Some(
            &[
                "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
                "* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1)",
                "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
                "* STATUS \"Drafts\" (MESSAGES 0 UIDNEXT 1)",
            ][..]
        ),
        "{r:?}"
    );
    // MULTIAPPEND: both, with one APPENDUID set.
    raw.send(b"m1 APPEND Drafts (\\Seen) {8}\r\n");
    assert!(raw.line().starts_with("+ "));
    raw.send(b"Subject: {9}\r\n");
    assert!(raw.line().starts_with("+ "));
    raw.send(b"Subject:x\r\n");
    let r = raw.until("m1");
    assert!(r[0].starts_with("m1 OK [APPENDUID "), "{r:?}");
    assert!(r[0].contains(" 1:2]"), "{r:?}");
    // One that fails part way (the second has too many keywords for the
    // store): none is appended, no UID is taken.
    let keywords: Vec<String> = (0..70).map(|i| format!("k{i}")).collect();
    let r = raw.command(
        "m2",
        &format!(
            "APPEND Drafts {{3+}}\r\nA:b ({}) {{3+}}\r\nC:d",
            keywords.join(" ")
        ),
    );
    assert!(r.last().expect("reply").starts_with("m2 NO"), "{r:?}");
    let r = raw.command("m3", "STATUS Drafts (MESSAGES UIDNEXT)");
    assert_eq!(
        one(&r, "* STATUS"),
        "* STATUS \"Drafts\" (MESSAGES 2 UIDNEXT 3)"
    );
    // A malformed one leaves nothing either.
    let r = raw.command("m4", "APPEND Drafts {3+}\r\nA:b {0+}\r\n");
    assert!(
        r.last().expect("reply").starts_with("m4 NO [CANNOT]"),
        "{r:?}"
    );
    let r = raw.command("m5", "STATUS Drafts (MESSAGES)");
    assert_eq!(one(&r, "* STATUS"), "* STATUS \"Drafts\" (MESSAGES 2)");
    raw.command("m6", "LOGOUT");
}

/// The id in `KEY (id)` somewhere in `line`.
fn id_after(line: &str, key: &str) -> String {
    let rest = line
        .split_once(&format!("{key} ("))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    rest.split(')').next().unwrap_or_default().to_string()
}

/// OBJECTID (RFC 8474): MAILBOXID on CREATE, SELECT, STATUS and LIST
/// STATUS, kept by RENAME and never reused; EMAILID the same for a copy;
/// THREADID shared by a reply; SEARCH EMAILID and THREADID.
#[test]
fn object_ids() {
    let server = start(plaintext());
    let mut raw = Raw::login(server.ready.port, &server.ready.a);
    let r = raw.command("c0", "CAPABILITY");
    assert!(
        r[0].contains(" OBJECTID") && r[0].contains(" UTF8=ACCEPT"),
        "{r:?}"
    );
    let r = raw.command("c1", "CREATE Projects");
    let projects = id_after(&r[0], "MAILBOXID");
    let r = raw.command("c2", "CREATE Other");
    let other = id_after(&r[0], "MAILBOXID");
    assert_ne!(projects, other);
    assert!(projects.starts_with('F') && projects.len() <= 255);
    let r = raw.command("c3", "RENAME Projects Work");
    assert!(r[0].starts_with("c3 OK"), "{r:?}");
    let r = raw.command("c4", "STATUS Work (MESSAGES MAILBOXID)");
    assert_eq!(
        one(&r, "* STATUS"),
        format!("* STATUS \"Work\" (MESSAGES 0 MAILBOXID ({projects}))")
    );
    let r = raw.command("c5", "STATUS Work (mailboxid)");
    assert_eq!(
        one(&r, "* STATUS"),
        format!("* STATUS \"Work\" (MAILBOXID ({projects}))")
    );
    let r = raw.command("c6", "LIST \"\" Work RETURN (STATUS (UIDNEXT MAILBOXID))");
    assert_eq!(
        one(&r, "* STATUS"),
        format!("* STATUS \"Work\" (UIDNEXT 1 MAILBOXID ({projects}))")
    );
    // A mailbox deleted and created again gets a new id.
    raw.command("c7", "DELETE Other");
    let r = raw.command("c8", "CREATE Other");
    let again = id_after(&r[0], "MAILBOXID");
    assert!(again != other && again != projects, "{again}");
    // A thread of two, and a message naming no id.
    let first = "Message-ID: <t1@example.org>\r\nSubject: one\r\n\r\n1\r\n";
    let reply = "Message-ID: <t2@example.org>\r\nIn-Reply-To: <t1@example.org>\r\nReferences: <t1@example.org>\r\nSubject: Re: one\r\n\r\n2\r\n";
    let lone = "Subject: lone\r\n\r\n3\r\n";
    for (i, m) in [first, reply, lone].iter().enumerate() {
        let r = raw.command(
            &format!("p{i}"),
            &format!("APPEND Work {{{}+}}\r\n{m}", m.len()),
        );
        assert!(r.last().expect("reply").contains("APPENDUID"), "{r:?}");
    }
    let r = raw.command("s1", "EXAMINE Work");
    assert!(
        r.iter()
            .any(|l| l.starts_with(&format!("* OK [MAILBOXID ({projects})]"))),
        "{r:?}"
    );
    let r = raw.command("f1", "FETCH 1:* (UID EMAILID THREADID)");
    let fetched: Vec<&String> = r.iter().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(fetched.len(), 3, "{r:?}");
    let emails: Vec<String> = fetched.iter().map(|l| id_after(l, "EMAILID")).collect();
    let threads: Vec<String> = fetched.iter().map(|l| id_after(l, "THREADID")).collect();
    assert!(
        fetched[0].starts_with("* 1 FETCH (UID 1 EMAILID (M"),
        "{r:?}"
    );
    assert_eq!(threads[0], threads[1], "a reply is in its parent's thread");
    assert_ne!(threads[0], threads[2]);
    assert!(emails[0] != emails[1] && emails[1] != emails[2]);
    // Only the object ids asked for: no UID stands in.
    let r = raw.command("f2", "FETCH 2 EMAILID");
    assert_eq!(
        one(&r, "* 2 FETCH"),
        format!("* 2 FETCH (EMAILID ({}))", emails[1])
    );
    let r = raw.command("f3", &format!("UID SEARCH THREADID {}", threads[0]));
    assert_eq!(one(&r, "* SEARCH"), "* SEARCH 1 2");
    let r = raw.command(
        "f4",
        &format!(
            "SEARCH RETURN (COUNT) OR EMAILID {} EMAILID {}",
            emails[2], emails[0]
        ),
    );
    assert_eq!(one(&r, "* ESEARCH"), "* ESEARCH (TAG \"f4\") COUNT 2");
    let r = raw.command("f5", "SEARCH EMAILID M0000000000000000");
    assert_eq!(one(&r, "* SEARCH"), "* SEARCH");
    // A copy keeps its EMAILID (and THREADID), and SEARCH finds it there.
    let r = raw.command("k1", "UID COPY 2 Other");
    assert!(r[0].contains("COPYUID"), "{r:?}");
    raw.command("k2", "SELECT Other");
    let r = raw.command("k3", "FETCH 1 (EMAILID THREADID)");
    let copy = one(&r, "* 1 FETCH");
    assert_eq!(id_after(copy, "EMAILID"), emails[1]);
    assert_eq!(id_after(copy, "THREADID"), threads[1]);
    let r = raw.command("k4", &format!("UID SEARCH EMAILID {}", emails[1]));
    assert_eq!(one(&r, "* SEARCH"), "* SEARCH 1");
    // Too many keys, or a key that is no objectid: BAD, the session goes on.
    let many = vec![format!("EMAILID {}", emails[1]); 65].join(" ");
    let r = raw.command("k5", &format!("SEARCH {many}"));
    assert!(r[0].starts_with("k5 BAD"), "{r:?}");
    let r = raw.command("k6", "SEARCH EMAILID M+1");
    assert!(r[0].starts_with("k6 BAD"), "{r:?}");
    let r = raw.command("k7", "NOOP");
    assert!(r[0].starts_with("k7 OK"), "{r:?}");
    raw.command("k8", "LOGOUT");
}

/// UTF8=ACCEPT (RFC 6855): after ENABLE, names are UTF-8 both ways while
/// another session still sees modified UTF-7; SEARCH CHARSET is BAD;
/// APPEND takes `UTF8 (literal8)` only once enabled.
#[test]
fn utf8_accept() {
    let server = start(plaintext());
    let mut utf8 = Raw::login(server.ready.port, &server.ready.b);
    let mut legacy = Raw::login(server.ready.port, &server.ready.b);
    // Before ENABLE: nothing changes.
    let r = legacy.command("a1", "CREATE \"Entwürfe\"");
    assert!(r[0].starts_with("a1 BAD"), "{r:?}");
    let r = utf8.command("e1", "ENABLE UTF8=ACCEPT");
    assert_eq!(one(&r, "* ENABLED"), "* ENABLED UTF8=ACCEPT");
    let r = utf8.command("e2", "CREATE \"Entwürfe/日本語\"");
    assert!(r[0].starts_with("e2 OK [MAILBOXID"), "{r:?}");
    let r = utf8.command("e3", "CREATE \"A&B\"");
    assert!(r[0].starts_with("e3 OK"), "{r:?}");
    let r = utf8.command("e4", "LIST \"\" \"Entw*\"");
    let lists: Vec<&str> = r
        .iter()
        .filter(|l| l.starts_with("* LIST"))
        .map(|l| l.trim_end())
        .collect();
    assert_eq!(
        lists,
        [
            "* LIST (\\HasChildren \\Subscribed) \"/\" \"Entwürfe\"",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Entwürfe/日本語\"",
        ],
        "{r:?}"
    );
    let r = legacy.command("a2", "LIST \"\" \"Entw*\"");
    assert!(
        r.iter()
            .any(|l| l.trim_end().ends_with("\"Entw&APw-rfe/&ZeVnLIqe-\"")),
        "{r:?}"
    );
    let r = legacy.command("a3", "LIST \"\" A*");
    assert!(
        r.iter().any(|l| l.trim_end().ends_with("\"A&-B\"")),
        "{r:?}"
    );
    // APPEND's UTF8 data, once enabled only.
    let body = "Subject: Grüße\r\nFrom: jösé@example.org\r\n\r\nhallo\r\n";
    let r = utf8.command(
        "e5",
        &format!("APPEND \"Entwürfe\" UTF8 (~{{{}+}}\r\n{body})", body.len()),
    );
    assert!(r[0].starts_with("e5 OK [APPENDUID"), "{r:?}");
    let r = legacy.command(
        "a4",
        &format!("APPEND INBOX UTF8 (~{{{}+}}\r\n{body})", body.len()),
    );
    assert!(r[0].starts_with("a4 BAD"), "{r:?}");
    let r = utf8.command("e6", "STATUS \"Entwürfe\" (MESSAGES)");
    assert_eq!(one(&r, "* STATUS"), "* STATUS \"Entwürfe\" (MESSAGES 1)");
    let r = legacy.command("a5", "STATUS Entw&APw-rfe (MESSAGES)");
    assert_eq!(
        one(&r, "* STATUS"),
        "* STATUS \"Entw&APw-rfe\" (MESSAGES 1)"
    );
    // SEARCH takes no CHARSET any more; SORT and THREAD only UTF-8.
    utf8.command("e7", "SELECT \"Entwürfe\"");
    let r = utf8.command("e8", "SEARCH CHARSET UTF-8 SUBJECT \"Grüße\"");
    assert!(r[0].starts_with("e8 BAD"), "{r:?}");
    let r = utf8.command("e9", "SEARCH SUBJECT \"Grüße\"");
    assert_eq!(one(&r, "* SEARCH"), "* SEARCH 1");
    let r = utf8.command("f1", "SORT (DATE) ISO-8859-1 ALL");
    assert!(r[0].starts_with("f1 BAD"), "{r:?}");
    let r = utf8.command("f2", "SORT (DATE) UTF-8 ALL");
    assert_eq!(one(&r, "* SORT"), "* SORT 1");
    let r = utf8.command("f3", "SEARCH RETURN (COUNT) CHARSET US-ASCII ALL");
    assert!(r[0].starts_with("f3 BAD"), "{r:?}");
    // The other session may still name a charset.
    legacy.command("a6", "SELECT INBOX");
    let r = legacy.command("a7", "SEARCH CHARSET UTF-8 ALL");
    assert!(r.last().expect("reply").starts_with("a7 OK"), "{r:?}");
    for raw in [&mut utf8, &mut legacy] {
        raw.command("z", "LOGOUT");
    }
}

const SOURCE: &str = "From: a@example.org\r\nSubject: source\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--XX--\r\n";

/// What `FETCH 1 BODY.PEEK[]` of the selected mailbox answers, as one
/// string.
fn fetch_first(raw: &mut Raw, tag: &str) -> String {
    raw.command(tag, "FETCH 1 BODY.PEEK[]").concat()
}

/// CATENATE (RFC 4469): text and sections of stored messages put
/// together, alone and within MULTIAPPEND; BADURL for URLs naming
/// nothing of this user's, TOOBIG over the APPEND limit, BAD past the
/// limit on parts.
#[test]
fn catenate() {
    let server = start(ImapOptions {
        max_literal: 1000,
        ..plaintext()
    });
    let user = &server.ready.b;
    let mut raw = Raw::login(server.ready.port, user);
    let r = raw.command("c0", "CAPABILITY");
    assert!(r[0].contains(" CATENATE"), "{r:?}");
    let r = raw.command(
        "c1",
        &format!("APPEND INBOX {{{}+}}\r\n{SOURCE}", SOURCE.len()),
    );
    assert!(r[0].contains("APPENDUID"), "{r:?}");
    let r = raw.command("c2", "STATUS INBOX (UIDVALIDITY)");
    let status = one(&r, "* STATUS");
    let v: u32 = status
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("uidvalidity");
    let header = SOURCE.split("\r\n\r\n").next().expect("header");
    // The header, new text (a synchronizing literal), the second part.
    raw.send(
        format!(
            "c3 APPEND Drafts (\\Seen) CATENATE (URL \"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=HEADER\" TEXT {{6}}\r\n"
        )
        .as_bytes(),
    );
    assert!(raw.line().starts_with("+ "));
    raw.send(b"body:  URL \"/INBOX/;UID=1/;SECTION=2\")\r\n");
    let r = raw.until("c3");
    assert!(r[0].starts_with("c3 OK [APPENDUID "), "{r:?}");
    raw.command("c4", "SELECT Drafts");
    let made = format!("{header}\r\n\r\nbody: second part");
    let fetched = fetch_first(&mut raw, "c5");
    assert!(
        fetched.contains(&format!("{{{}}}\r\n{made})", made.len())),
        "{fetched}"
    );
    // An absolute URL naming this user, a PARTIAL; in a MULTIAPPEND with
    // a plain message.
    let r = raw.command(
        "c6",
        &format!(
            "APPEND Drafts {{3+}}\r\nA:b CATENATE (URL \"imap://{}@localhost/INBOX/;UID=1/;PARTIAL=6.7\" TEXT {{3+}}\r\n: x)",
            user.replace('@', "%40")
        ),
    );
    let done = r.last().expect("reply");
    assert!(
        done.starts_with("c6 OK [APPENDUID ") && done.contains(':'),
        "{r:?}"
    );
    raw.command("c7", "SELECT Drafts");
    let r = raw.command("c8", "FETCH 3 BODY.PEEK[]").concat();
    assert!(r.contains("{10}\r\na@examp: x)"), "{r}");
    // URLs that do not resolve: nothing is appended.
    let before = raw.command("c9", "STATUS Drafts (MESSAGES)");
    let other = &server.ready.a;
    for (tag, url) in [
        (
            "d1",
            format!("/INBOX;UIDVALIDITY={}/;UID=1", v.wrapping_add(1)),
        ),
        ("d2", "/INBOX/;UID=9".to_string()),
        ("d3", "/Nope/;UID=1".to_string()),
        ("d4", "/INBOX/;UID=1/;SECTION=3".to_string()),
        ("d5", format!("imap://{other}@localhost/INBOX/;UID=1")),
        (
            "d6",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:0".to_string(),
        ),
        ("d7", "/IN]BOX/;UID=1".to_string()),
    ] {
        // The code's text cannot hold a `]`.
        let code = url.replace(']', "%5D");
        let r = raw.command(
            tag,
            &format!("APPEND Drafts {{3+}}\r\nA:b CATENATE (TEXT {{2+}}\r\nhi URL \"{url}\")"),
        );
        assert!(
            r.last()
                .expect("reply")
                .starts_with(&format!("{tag} NO [BADURL {code}] ")),
            "{url}: {r:?}"
        );
    }
    // Over the APPEND limit (1000 bytes; the source has 204) put
    // together, or in all.
    assert_eq!(SOURCE.len(), 204);
    let url = "URL \"/INBOX/;UID=1\"";
    let r = raw.command(
        "e1",
        &format!("APPEND Drafts CATENATE ({url} {url} {url} {url} {url})"),
    );
    assert!(
        r.last().expect("reply").starts_with("e1 NO [TOOBIG]"),
        "{r:?}"
    );
    let r = raw.command(
        "e2",
        &format!("APPEND Drafts CATENATE ({url} {url} {url}) CATENATE ({url} {url} {url})"),
    );
    assert!(
        r.last().expect("reply").starts_with("e2 NO [TOOBIG]"),
        "{r:?}"
    );
    assert_eq!(raw.command("e3", "STATUS Drafts (MESSAGES)"), {
        let mut same = before.clone();
        if let Some(last) = same.last_mut() {
            *last = last.replacen("c9", "e3", 1);
        }
        same
    });
    // Malformed: BAD, and the session goes on.
    let many = vec![url; 101].join(" ");
    let r = raw.command("e4", &format!("APPEND Drafts CATENATE ({many})"));
    let done = r.last().expect("reply");
    assert!(
        done.starts_with("e4 BAD") && done.contains("More than 100"),
        "{r:?}"
    );
    let r = raw.command("e5", "APPEND Drafts CATENATE ()");
    assert!(r.last().expect("reply").starts_with("e5 BAD"), "{r:?}");
    raw.send(b"e6 APPEND Drafts CATENATE (TEXT {5000}\r\n");
    assert!(raw.line().starts_with("e6 NO [TOOBIG]"));
    let r = raw.command("e7", "NOOP");
    assert!(r.last().expect("reply").starts_with("e7 OK"), "{r:?}");
    raw.command("z", "LOGOUT");
}

//! The SMTP server end to end, with the `lettre` client and raw sockets:
//! a two-shard runtime with real storage, a provisioned domain (accounts
//! on both shards, an alias, lists, a locked and a tiny-quota account),
//! MX and submission listeners on shard 0. Mailboxes are read back from
//! the runtime through a query channel.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::metrics::Metrics;
use cairn_shards::net::TcpListener;
use cairn_shards::Shutdown;
use cairn_smtp::rate::SenderRate;
use cairn_smtp::{Mode, SmtpOptions, SmtpServer};
use cairn_storage::directory::service::AccountChanges;
use cairn_storage::directory::{ClassOfService, Features, List, NewAccount, Status};
use cairn_storage::services::Services;
use cairn_storage::testing::{
    accept_loop, address_per_shard, certificate, tls_config, ServiceNode,
};
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_lite::StreamExt;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

/// Asks shard 0 for the bodies in an account's INBOX.
type Query = (String, mpsc::Sender<Vec<Vec<u8>>>);

struct Ready {
    mx: u16,
    submission: u16,
    /// Accounts on shard 0 and shard 1.
    a: String,
    b: String,
}

/// The MX and submission servers on shard 0 of a two-shard node.
struct TestServer {
    ready: Ready,
    queries: UnboundedSender<Query>,
    _node: ServiceNode,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Lets shard 0's query task end, so that the node can stop.
        self.queries.close_channel();
    }
}

impl TestServer {
    fn inbox(&self, account: &str) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        self.queries
            .unbounded_send((account.to_string(), tx))
            .expect("query");
        rx.recv_timeout(Duration::from_secs(30))
            .expect("inbox")
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }
}

/// Provisions the domain and returns an account on each shard.
async fn provision(services: &Services) -> (String, String) {
    let dir = &services.directory;
    dir.add_domain("example.org".into(), None, None)
        .await
        .expect("domain");
    let hash = services.hash_password("secret".into()).await.expect("hash");
    let [a, b] = <[String; 2]>::try_from(address_per_shard(services, 2)).expect("two shards");
    // A class of service whose accounts take messages of 1 KiB at most.
    dir.add_class(ClassOfService {
        name: "small".into(),
        quota_bytes: 0,
        max_message_size: 1024,
        features: Features::default(),
        min_password_length: 8,
    })
    .await
    .expect("class");
    services
        .add_account(NewAccount {
            address: "small@example.org".into(),
            password_hash: hash.clone(),
            class_of_service: Some("small".into()),
            ..Default::default()
        })
        .await
        .expect("account of the small class");
    for (address, quota) in [
        (a.clone(), 0),
        (b.clone(), 0),
        ("locked@example.org".to_string(), 0),
        ("tiny@example.org".to_string(), 200),
    ] {
        services
            .add_account(NewAccount {
                address,
                password_hash: hash.clone(),
                quota_bytes: quota,
                ..Default::default()
            })
            .await
            .expect("account");
    }
    dir.update_account(
        "locked@example.org".into(),
        AccountChanges {
            status: Some(Status::Locked),
            ..Default::default()
        },
    )
    .await
    .expect("lock");
    dir.add_alias("alias-a@example.org".into(), a.clone())
        .await
        .expect("alias");
    dir.add_alias("postmaster@example.org".into(), b.clone())
        .await
        .expect("postmaster");
    dir.add_list(List {
        address: "team@example.org".into(),
        members: vec![a.clone(), b.clone(), "friend@elsewhere.net".into()],
        senders: vec![],
        hidden: false,
    })
    .await
    .expect("list");
    dir.add_list(List {
        address: "board@example.org".into(),
        members: vec![a.clone()],
        senders: vec!["boss@partner.test".into(), b.clone()],
        hidden: false,
    })
    .await
    .expect("restricted list");
    (a, b)
}

/// Serves `listener` with `server` until `shutdown`.
async fn serve(listener: TcpListener, server: SmtpServer, shutdown: Shutdown) {
    let serve = move |stream, peer| {
        let server = server.clone();
        async move { server.serve(stream, peer).await }
    };
    accept_loop(listener, serve, shutdown).await
}

/// The query that lists the outbound queue (`sender -> recipients`).
const QUEUE: &str = "@queue";

async fn answer_queries(
    services: Services,
    mut queries: futures_channel::mpsc::UnboundedReceiver<Query>,
) {
    while let Some((account, reply)) = queries.next().await {
        if account == QUEUE {
            let queued = services.queue.list().await.expect("queue");
            let lines = queued
                .into_iter()
                .map(|(_, m)| {
                    let rcpts: Vec<String> = m.recipients.into_iter().map(|r| r.address).collect();
                    format!("{} -> {}", m.sender, rcpts.join(",")).into_bytes()
                })
                .collect();
            let _ = reply.send(lines);
            continue;
        }
        let mut bodies = Vec::new();
        for m in services
            .mail
            .messages(&account, "INBOX")
            .await
            .expect("messages")
        {
            bodies.push(services.mail.body(&account, m.blob).await.expect("body"));
        }
        let _ = reply.send(bodies);
    }
}

/// Messages per user per minute on the test server's submission listener.
const SUBMISSION_RATE: u32 = 8;

fn start(options: SmtpOptions) -> TestServer {
    let metrics = Metrics::new(2, "test");
    let tls = tls_config();
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let (queries, queries_rx) = unbounded::<Query>();
    let queries_rx = Arc::new(std::sync::Mutex::new(Some(queries_rx)));
    let node = ServiceNode::start(2, move |services, ctx| {
        let (metrics, tls, options, ready_tx, queries_rx) = (
            metrics.clone(),
            tls.clone(),
            options.clone(),
            ready_tx.clone(),
            queries_rx.clone(),
        );
        async move {
            if ctx.id() != 0 {
                return;
            }
            let (a, b) = provision(&services).await;
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let mx = cairn_shards::net::bind_tcp(any).expect("bind");
            let sub = cairn_shards::net::bind_tcp(any).expect("bind");
            let ready = Ready {
                mx: mx.local_addr().expect("addr").port(),
                submission: sub.local_addr().expect("addr").port(),
                a,
                b,
            };
            let m = metrics.service("smtp", 0);
            let mx_server = SmtpServer::new(
                services.clone(),
                Mode::Mx,
                Some(tls.clone()),
                options.clone(),
                m.clone(),
            );
            let sub_server =
                SmtpServer::new(services.clone(), Mode::Submission, Some(tls), options, m)
                    .with_sender_rate(Rc::new(SenderRate::new(SUBMISSION_RATE)));
            let rx = queries_rx.lock().expect("lock").take().expect("receiver");
            cairn_shards::spawn_detached(answer_queries(services.clone(), rx));
            let shutdown = ctx.shutdown().clone();
            let subs = cairn_shards::spawn(serve(sub, sub_server, shutdown.clone()));
            ready_tx.send(ready).expect("ready");
            serve(mx, mx_server, shutdown).await;
            subs.await;
        }
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    TestServer {
        ready,
        queries,
        _node: node,
    }
}

fn message(from: &str, to: &[&str], subject: &str, body: String) -> Message {
    let mut m = Message::builder()
        .from(from.parse::<Mailbox>().expect("from"))
        .subject(subject);
    for t in to {
        m = m.to(t.parse::<Mailbox>().expect("to"));
    }
    m.body(body).expect("message")
}

fn mx(port: u16) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(20)))
        .build()
}

fn submission(port: u16, user: &str, password: &str, mechanism: Mechanism) -> SmtpTransport {
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls");
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.into(), password.into()))
        .authentication(vec![mechanism])
        .timeout(Some(Duration::from_secs(20)))
        .build()
}

fn refused_with(
    result: Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
    code: &str,
) {
    match result {
        Ok(r) => panic!("expected {code}, got {r:?}"),
        Err(e) => {
            let status = e.status().map(|c| c.to_string());
            assert_eq!(status.as_deref(), Some(code), "{e}");
        }
    }
}

/// A raw client that reads whole (multi-line) replies.
struct Raw {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut raw = Raw {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        assert!(raw.reply().starts_with("220 "));
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read");
            assert!(n > 0, "connection closed after {all:?}");
            all += &line;
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

#[test]
fn mx_delivers_to_local_accounts_and_lists() {
    let server = start(SmtpOptions::default());
    let Ready { mx: port, a, b, .. } = &server.ready;
    let mailer = mx(*port);
    let m = message(
        "sender@remote.test",
        &[a, b, "team@example.org"],
        "hello both",
        "first\r\n".into(),
    );
    let r = mailer.send(&m).expect("delivered");
    assert!(r.is_positive());
    for account in [a, b] {
        let inbox = server.inbox(account);
        assert_eq!(inbox.len(), 1, "{account}: once, though also on the list");
        let body = &inbox[0];
        assert!(body.starts_with("Received: from "), "{body}");
        assert!(
            body.contains("by localhost (Cairn) with ESMTP id "),
            "{body}"
        );
        // Mail from another server is checked (no name server answers
        // here: temperror) and scored (under the tag threshold).
        assert!(
            body.contains("Authentication-Results: localhost;\r\n\tspf=temperror"),
            "{body}"
        );
        assert!(body.contains("X-Spam-Status: No, score="), "{body}");
        assert!(body.contains("Subject: hello both"), "{body}");
    }
    // An alias and the list alone.
    mailer
        .send(&message(
            "sender@remote.test",
            &["alias-a@example.org"],
            "via alias",
            "x\r\n".into(),
        ))
        .expect("alias");
    mailer
        .send(&message(
            "sender@remote.test",
            &["team@example.org"],
            "via list",
            "x\r\n".into(),
        ))
        .expect("list");
    let inbox_a = server.inbox(a);
    assert_eq!(inbox_a.len(), 3);
    assert!(inbox_a[1].contains("for <alias-a@example.org>;"));
    assert_eq!(server.inbox(b).len(), 2);

    // Refusals; nothing stored.
    let refuse = |to: &str, from: &str, code: &str| {
        refused_with(
            mailer.send(&message(from, &[to], "no", "x\r\n".into())),
            code,
        )
    };
    refuse("nobody@example.org", "sender@remote.test", "550");
    refuse("victim@elsewhere.net", "sender@remote.test", "550");
    refuse("locked@example.org", "sender@remote.test", "550");
    refuse("board@example.org", "sender@remote.test", "550");
    mailer
        .send(&message(
            "boss@partner.test",
            &["board@example.org"],
            "board",
            "x\r\n".into(),
        ))
        .expect("an allowed sender posts to the list");
    refuse("tiny@example.org", "sender@remote.test", "552");
    assert_eq!(server.inbox(a).len(), 4);
    assert_eq!(server.inbox(b).len(), 2);
    assert!(server.inbox("tiny@example.org").is_empty());

    let mut raw = Raw::connect(*port);
    raw.cmd("EHLO client.test");
    let r = raw.cmd("RCPT TO:<victim@elsewhere.net>");
    assert!(r.starts_with("503 5.5.1"), "{r}");
    raw.cmd("MAIL FROM:<sender@remote.test>");
    let r = raw.cmd("RCPT TO:<victim@elsewhere.net>");
    assert!(r.starts_with("550 5.7.1 Relaying denied"), "{r}");
    let r = raw.cmd("RCPT TO:<nobody@example.org>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    let r = raw.cmd("RCPT TO:<locked@example.org>");
    assert!(r.starts_with("550 5.2.1"), "{r}");
    let r = raw.cmd("AUTH PLAIN AGFAYgBj");
    assert!(r.starts_with("502 5.5.1"), "{r}");
    // Quota at RCPT (tiny@ has 200 bytes): a declared size that cannot
    // fit is refused before the body is sent; one that fits is taken.
    raw.cmd("RSET");
    raw.cmd("MAIL FROM:<sender@remote.test> SIZE=500");
    let r = raw.cmd("RCPT TO:<tiny@example.org>");
    assert!(r.starts_with("552 5.2.2"), "{r}");
    raw.cmd("RSET");
    raw.cmd("MAIL FROM:<sender@remote.test> SIZE=100");
    let r = raw.cmd("RCPT TO:<tiny@example.org>");
    assert!(r.starts_with("250 "), "{r}");
}

#[test]
fn size_limits() {
    let server = start(SmtpOptions {
        max_message_size: 4096,
        max_recipients: 2,
        ..SmtpOptions::default()
    });
    let Ready { mx: port, a, b, .. } = &server.ready;
    let mut raw = Raw::connect(*port);
    let ehlo = raw.cmd("EHLO client.test");
    assert!(ehlo.contains("250-SIZE 4096\r\n"), "{ehlo}");
    let r = raw.cmd("MAIL FROM:<s@remote.test> SIZE=5000");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(raw
        .cmd("MAIL FROM:<s@remote.test> SIZE=100")
        .starts_with("250 "));
    assert!(raw.cmd(&format!("RCPT TO:<{a}>")).starts_with("250 "));
    assert!(raw.cmd(&format!("RCPT TO:<{b}>")).starts_with("250 "));
    let r = raw.cmd("RCPT TO:<team@example.org>");
    assert!(r.starts_with("452 4.5.3"), "{r}");
    assert!(raw.cmd("DATA").starts_with("354 "));
    raw.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(5000)).as_bytes());
    let r = raw.reply();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // The session goes on; the message grew past the limit through BDAT.
    assert!(raw.cmd("MAIL FROM:<s@remote.test>").starts_with("250 "));
    assert!(raw.cmd(&format!("RCPT TO:<{a}>")).starts_with("250 "));
    raw.send(format!("BDAT 3000\r\n{}", "z".repeat(3000)).as_bytes());
    assert!(raw.reply().starts_with("250 2.0.0 3000 octets"));
    raw.send(format!("BDAT 3000 LAST\r\n{}", "z".repeat(3000)).as_bytes());
    let r = raw.reply();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    raw.send(b"BDAT 2 LAST\r\nzz");
    let r = raw.reply();
    assert!(r.starts_with("503 5.5.1"), "a BDAT after a failed one: {r}");
    assert!(raw.cmd("RSET").starts_with("250 "));
    // A recipient whose class of service takes 1 KiB at most: refused at
    // RCPT when the declared size is over it (RFC 1870 §6.1), at the end
    // of DATA when the message is.
    assert!(raw
        .cmd("MAIL FROM:<s@remote.test> SIZE=2000")
        .starts_with("250 "));
    let r = raw.cmd("RCPT TO:<small@example.org>");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(raw.cmd(&format!("RCPT TO:<{a}>")).starts_with("250 "));
    assert!(raw.cmd("RSET").starts_with("250 "));
    assert!(raw.cmd("MAIL FROM:<s@remote.test>").starts_with("250 "));
    assert!(raw.cmd("RCPT TO:<small@example.org>").starts_with("250 "));
    assert!(raw.cmd("DATA").starts_with("354 "));
    raw.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(2000)).as_bytes());
    let r = raw.reply();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(server.inbox("small@example.org").is_empty());
    assert!(raw.cmd("MAIL FROM:<s@remote.test>").starts_with("250 "));
    assert!(raw.cmd("RCPT TO:<small@example.org>").starts_with("250 "));
    assert!(raw.cmd("DATA").starts_with("354 "));
    raw.send(b"Subject: small\r\n\r\nfits\r\n.\r\n");
    let r = raw.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(server.inbox("small@example.org").len(), 1);
    assert!(raw.cmd("QUIT").starts_with("221 "));
    // lettre, over the limit.
    let big = message("s@remote.test", &[a], "big", "q".repeat(8000));
    refused_with(mx(*port).send(&big), "552");
    assert!(server.inbox(a).is_empty());
    assert!(server.inbox(b).is_empty());
}

#[test]
fn submission_needs_tls_auth_and_an_owned_sender() {
    let server = start(SmtpOptions::default());
    let Ready {
        submission: port,
        a,
        b,
        ..
    } = &server.ready;

    let mut raw = Raw::connect(*port);
    let ehlo = raw.cmd("EHLO client.test");
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    let r = raw.cmd("AUTH PLAIN AHVzZXIwQGV4YW1wbGUub3JnAHNlY3JldA==");
    assert!(
        r.starts_with("530 5.7.0 Must issue a STARTTLS command first"),
        "{r}"
    );
    let r = raw.cmd(&format!("MAIL FROM:<{a}>"));
    assert!(r.starts_with("530 5.7.0 Authentication required"), "{r}");
    drop(raw);

    let plain = submission(*port, a, "secret", Mechanism::Plain);
    plain
        .send(&message(a, &[b], "submitted", "hi b\r\n".into()))
        .expect("PLAIN submission");
    plain
        .send(&message(
            "alias-a@example.org",
            &[b],
            "from my alias",
            "hi\r\n".into(),
        ))
        .expect("an alias is the user's");
    let inbox = server.inbox(b);
    assert_eq!(inbox.len(), 2);
    assert!(inbox[0].contains("with ESMTPSA id"), "{}", inbox[0]);
    assert!(
        inbox[0].contains(&format!(
            "Authentication-Results: localhost; auth=pass smtp.mailfrom={a}"
        )),
        "{}",
        inbox[0]
    );
    let login = submission(*port, b, "secret", Mechanism::Login);
    login
        .send(&message(
            b,
            &[a, "board@example.org"],
            "login",
            "hi a\r\n".into(),
        ))
        .expect("LOGIN submission, and b may post to the board");
    assert_eq!(server.inbox(a).len(), 1, "once, though also via the list");

    refused_with(
        submission(*port, a, "wrong", Mechanism::Plain).send(&message(
            a,
            &[b],
            "x",
            "x\r\n".into(),
        )),
        "535",
    );
    refused_with(
        plain.send(&message(b, &[a], "not mine", "x\r\n".into())),
        "553",
    );
    // Another domain: accepted into the outbound queue (durably, before
    // the 250), not into any local mailbox.
    plain
        .send(&message(
            a,
            &["someone@elsewhere.net"],
            "out",
            "x\r\n".into(),
        ))
        .expect("submission to another domain is queued");
    assert_eq!(
        server.inbox(QUEUE),
        vec![format!("{a} -> someone@elsewhere.net")]
    );
    refused_with(
        plain.send(&message(a, &["board@example.org"], "board", "x\r\n".into())),
        "550",
    );
    assert_eq!(server.inbox(a).len(), 1);
    assert_eq!(server.inbox(b).len(), 2);

    // b has sent one message: SUBMISSION_RATE in all this minute, then 450.
    for i in 1..SUBMISSION_RATE {
        login
            .send(&message(b, &[a], &format!("burst {i}"), "x\r\n".into()))
            .expect("within the rate");
    }
    refused_with(
        login.send(&message(b, &[a], "one too many", "x\r\n".into())),
        "450",
    );
    plain
        .send(&message(
            a,
            &[b],
            "a has a count of its own",
            "x\r\n".into(),
        ))
        .expect("another user is not held back");
}

#[test]
fn raw_protocol_pipelining_bdat_and_bad_input() {
    let server = start(SmtpOptions {
        max_line_length: 1000,
        ..SmtpOptions::default()
    });
    let Ready { mx: port, a, b, .. } = &server.ready;
    let mut raw = Raw::connect(*port);

    // One batch, answered in order.
    raw.send(
        format!(
            "EHLO client.test\r\nMAIL FROM:<s@remote.test> BODY=8BITMIME\r\nRCPT TO:<{a}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{a}\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n"
        )
        .as_bytes(),
    );
    let ehlo = raw.reply();
    for ext in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
        "STARTTLS",
    ] {
        assert!(ehlo.contains(ext), "{ext}: {ehlo}");
    }
    assert!(raw.reply().starts_with("250 2.1.0"));
    assert!(raw.reply().starts_with("250 2.1.5"));
    assert!(raw.reply().starts_with("550 5.1.1"));
    assert!(raw.reply().starts_with("354 "));
    raw.send(b"Subject: piped\r\n\r\n..leading dot\r\n.\r\nNOOP\r\n");
    let r = raw.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    assert!(raw.reply().starts_with("250 2.0.0"));

    // BDAT in two chunks, pipelined with the envelope.
    raw.send(format!("MAIL FROM:<s@remote.test>\r\nRCPT TO:<{b}>\r\nBDAT 24\r\nSubject: chunks\r\n\r\nhelloBDAT 8 LAST\r\n world\r\n").as_bytes());
    assert!(raw.reply().starts_with("250 "));
    assert!(raw.reply().starts_with("250 "));
    assert!(raw.reply().starts_with("250 2.0.0 24 octets"));
    let r = raw.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    // BDAT out of sequence: refused, its bytes skipped.
    raw.send(b"BDAT 4\r\nabcdNOOP\r\n");
    assert!(raw.reply().starts_with("503 5.5.1"));
    assert!(raw.reply().starts_with("250 "));

    // Too long, unknown, malformed, out of order, NUL.
    let r = raw.cmd(&"A".repeat(3000));
    assert!(r.starts_with("500 5.5.2 Line too long"), "{r}");
    assert!(raw.cmd("NOOP").starts_with("250 "));
    assert!(raw.cmd("FOO bar").starts_with("500 5.5.1"));
    assert!(raw
        .cmd("MAIL FROM:nobrackets@x.test")
        .starts_with("501 5.5.2"));
    assert!(raw
        .cmd("MAIL FROM:<a@b.test> FOO=BAR")
        .starts_with("555 5.5.4"));
    assert!(raw.cmd("DATA").starts_with("503 5.5.1"));
    raw.send(b"NO\0OP\r\n");
    assert!(raw.reply().starts_with("500 5.5.2"));
    // RFC 5321 §4.5.1: <Postmaster> without a domain is accepted.
    assert!(raw.cmd("MAIL FROM:<s@remote.test>").starts_with("250 "));
    let r = raw.cmd("RCPT TO:<Postmaster>");
    assert!(r.starts_with("250 2.1.5"), "{r}");
    assert!(raw.cmd("RSET").starts_with("250 "));
    assert!(raw.cmd("VRFY someone").starts_with("252 2.5.0"));
    assert!(raw.cmd("HELP").starts_with("214 "));

    // Bare LF in DATA: read to the end, refused, nothing stored.
    assert!(raw.cmd("MAIL FROM:<s@remote.test>").starts_with("250 "));
    assert!(raw.cmd(&format!("RCPT TO:<{a}>")).starts_with("250 "));
    assert!(raw.cmd("DATA").starts_with("354 "));
    raw.send(b"Subject: bare\r\n\r\nline one\nline two\r\n.\nnot the end\r\n.\r\n");
    let r = raw.reply();
    assert!(r.starts_with("550 5.6.0"), "{r}");
    assert!(raw.cmd("RSET").starts_with("250 "));
    assert!(raw.cmd("QUIT").starts_with("221 "));

    let inbox_a = server.inbox(a);
    assert_eq!(inbox_a.len(), 1);
    assert!(
        inbox_a[0].ends_with("Subject: piped\r\n\r\n.leading dot\r\n"),
        "{}",
        inbox_a[0]
    );
    let inbox_b = server.inbox(b);
    assert_eq!(inbox_b.len(), 1);
    assert!(
        inbox_b[0].ends_with("Subject: chunks\r\n\r\nhello world\r\n"),
        "{}",
        inbox_b[0]
    );
}

/// A raw client over TLS after STARTTLS, trusting the test certificate.
struct RawTls {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl RawTls {
    fn upgrade(raw: Raw) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate().cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        RawTls {
            tls: rustls::StreamOwned::new(conn, raw.writer),
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        use std::io::Read;
        self.tls
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut all = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.tls.read(&mut byte) {
                Ok(1) => all.push(byte[0]),
                _ => return String::from_utf8_lossy(&all).into_owned(),
            }
            if all.ends_with(b"\r\n") {
                let text = String::from_utf8_lossy(&all).into_owned();
                let last = text
                    .trim_end()
                    .rsplit("\r\n")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if last.as_bytes().get(3) != Some(&b'-') {
                    return text;
                }
            }
        }
    }
}

#[test]
fn starttls_discards_injected_commands_and_auth_failures_close() {
    let server = start(SmtpOptions {
        max_auth_failures: 2,
        ..SmtpOptions::default()
    });
    let Ready {
        submission: port,
        a,
        ..
    } = &server.ready;
    let mut raw = Raw::connect(*port);
    raw.cmd("EHLO client.test");
    // The NOOP sent with STARTTLS, before the handshake, must be ignored.
    raw.send(b"STARTTLS\r\nNOOP\r\n");
    assert!(raw.reply().starts_with("220 2.0.0"));
    let mut tls = RawTls::upgrade(raw);
    let r = tls.cmd("MAIL FROM:<x@example.org>");
    assert!(
        r.starts_with("503 5.5.1"),
        "EHLO again first, no stray NOOP reply: {r}"
    );
    let ehlo = tls.cmd("EHLO client.test");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(tls.cmd("AUTH PLAIN").starts_with("334 "));
    assert!(tls.cmd("*").starts_with("501 5.7.0"));
    assert!(tls.cmd("AUTH CRAM-MD5").starts_with("504 5.5.4"));
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let wrong = b64(&format!("\0{a}\0wrong"));
    let r = tls.cmd(&format!("AUTH PLAIN {wrong}"));
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert!(tls.cmd("AUTH LOGIN").starts_with("334 VXNlcm5hbWU6"));
    assert!(tls.cmd(&b64(a)).starts_with("334 UGFzc3dvcmQ6"));
    let r = tls.cmd(&b64("wrong again"));
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert_eq!(tls.cmd("NOOP"), "", "closed after too many failures");
}

#[test]
fn idle_clients_time_out() {
    let server = start(SmtpOptions {
        timeouts: cairn_smtp::SmtpTimeouts {
            command: Duration::from_millis(300),
            ..Default::default()
        },
        ..SmtpOptions::default()
    });
    let mut raw = Raw::connect(server.ready.mx);
    assert!(raw.cmd("EHLO client.test").starts_with("250"));
    std::thread::sleep(Duration::from_millis(600));
    let r = raw.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
}

/// A base64 line-wrapped encoding, for hand-made MIME.
fn b64_lines(bytes: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A message with `payload` as a base64 attachment (through lettre).
fn with_attachment(to: &str, subject: &str, name: &str, payload: &[u8]) -> Message {
    use lettre::message::header::{ContentTransferEncoding, ContentType};
    use lettre::message::{Attachment, Body, MultiPart, SinglePart};
    let body = Body::new_with_encoding(payload.to_vec(), ContentTransferEncoding::Base64)
        .expect("base64 body");
    let kind = ContentType::parse("application/octet-stream").expect("content type");
    Message::builder()
        .from("sender@remote.test".parse::<Mailbox>().expect("from"))
        .to(to.parse::<Mailbox>().expect("to"))
        .subject(subject)
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("See the attachment.\r\n".to_string()))
                .singlepart(Attachment::new(name.to_string()).body(body, kind)),
        )
        .expect("message")
}

#[test]
fn infected_mail_is_refused_at_data_and_bdat() {
    use cairn_smtp::antivirus::{self, EICAR};
    // A custom signature from a database file, the way the appliance
    // loads it from its data directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = antivirus::db_file(dir.path());
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let custom = b"cairn-custom-malware-marker";
    let hex: String = custom.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&db, format!("# test database\nCairn.Test.Custom:{hex}\n")).expect("write");
    let av = antivirus::load_antivirus(dir.path()).expect("load");
    assert_eq!(av.signatures().len(), 2);
    let mut reloader = antivirus::Reloader::new(dir.path());
    let server = start(SmtpOptions {
        antivirus: Some(av.clone()),
        ..SmtpOptions::default()
    });
    let Ready { mx: port, a, .. } = &server.ready;
    let mailer = mx(*port);

    // EICAR as a base64 attachment (never in the raw bytes): 554 5.7.1.
    let infected = with_attachment(a, "infected", "eicar.com", EICAR);
    assert!(!String::from_utf8_lossy(&infected.formatted()).contains("EICAR"));
    let err = mailer.send(&infected).expect_err("refused");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("554"));
    assert!(err.to_string().contains("virus found"), "{err}");
    assert!(server.inbox(a).is_empty(), "nothing stored");

    // A clean message with an attachment is delivered.
    let clean = with_attachment(a, "clean", "report.bin", b"\x00\x01harmless\xff");
    mailer.send(&clean).expect("clean delivered");
    assert_eq!(server.inbox(a).len(), 1);

    // The custom signature, in a big (> 8 KiB: scanned on the blocking
    // pool) attachment.
    let mut big = vec![b'.'; 200 * 1024];
    big.extend_from_slice(custom);
    let err = mailer
        .send(&with_attachment(a, "custom", "big.bin", &big))
        .expect_err("refused");
    assert!(err.to_string().contains("Cairn.Test.Custom"), "{err}");
    // A big clean one goes through the pool too.
    mailer
        .send(&with_attachment(
            a,
            "big clean",
            "big.bin",
            &big[..200 * 1024],
        ))
        .expect("big clean delivered");
    assert_eq!(server.inbox(a).len(), 2);

    // Raw DATA with a plain EICAR, then BDAT LAST with a base64 one; the
    // session goes on after each refusal.
    let mut raw = Raw::connect(*port);
    raw.cmd("EHLO client.test");
    raw.cmd("MAIL FROM:<sender@remote.test>");
    raw.cmd(&format!("RCPT TO:<{a}>"));
    assert!(raw.cmd("DATA").starts_with("354"));
    raw.send(b"Subject: plain\r\n\r\n");
    raw.send(EICAR);
    let r = raw.cmd("\r\n.");
    assert_eq!(
        r,
        "554 5.7.1 Message rejected: virus found (Eicar-Test-Signature)\r\n"
    );
    raw.cmd("MAIL FROM:<sender@remote.test>");
    raw.cmd(&format!("RCPT TO:<{a}>"));
    let body = format!(
        "Subject: bdat\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64_lines(EICAR)
    );
    let (first, rest) = body.split_at(40);
    raw.send(format!("BDAT {}\r\n{first}", first.len()).as_bytes());
    assert!(raw.reply().starts_with("250"));
    raw.send(format!("BDAT {} LAST\r\n{rest}", rest.len()).as_bytes());
    let r = raw.reply();
    assert!(
        r.starts_with("554 5.7.1 Message rejected: virus found (Eicar-Test-Signature)"),
        "{r}"
    );
    // And a clean one on the same session.
    raw.cmd("MAIL FROM:<sender@remote.test>");
    raw.cmd(&format!("RCPT TO:<{a}>"));
    let ok = "Subject: ok\r\n\r\nfine\r\n";
    raw.send(format!("BDAT {} LAST\r\n{ok}", ok.len()).as_bytes());
    assert!(raw.reply().starts_with("250"));
    assert_eq!(server.inbox(a).len(), 3, "only the clean ones were stored");
    let (clean, infected, failed) = av.counts();
    assert_eq!((clean, infected, failed), (3, 4, 0));

    // A reload (what the appliance does every minute from the blocking
    // pool) reaches the running listener: a new signature, no restart.
    std::fs::write(&db, "Cairn.Test.Later:6c617465722d6d61726b6572\n").expect("write");
    assert_eq!(reloader.check(&av), Ok(Some(2)));
    assert_eq!(reloader.check(&av), Ok(None));
    let err = mailer
        .send(&message(
            "sender@remote.test",
            &[a],
            "later",
            "later-marker\r\n".into(),
        ))
        .expect_err("refused after the reload");
    assert!(err.to_string().contains("Cairn.Test.Later"), "{err}");
}

//! The POP3 server end to end over real sockets: a two-shard node with
//! real storage, accounts on both shards (so that sessions move both
//! ways), a class of service without POP3, and two listeners on shard 0:
//! one that allows plaintext logins, one that needs STLS first (its TLS
//! sessions move through the relay). Mail is delivered, and INBOXes read
//! back, through a query channel to shard 0. The client is a small line
//! client over `std::net::TcpStream` (and rustls for STLS); Python's
//! poplib and curl run against the appliance in the conformance suite.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use base64::Engine;
use cairn_pop3::{codec, Pop3Mesh, Pop3Options, Pop3Server};
use cairn_shards::metrics::Metrics;
use cairn_shards::net::TcpListener;
use cairn_shards::Shutdown;
use cairn_storage::directory::{ClassOfService, Features, NewAccount};
use cairn_storage::mailbox::BODY_CHUNK;
use cairn_storage::services::Services;
use cairn_storage::testing::{
    accept_loop, address_per_shard, certificate, tls_config, ServiceNode,
};
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_lite::StreamExt;

const PASSWORD: &str = "secret-pw";

/// Work for shard 0: deliver a message, or count an INBOX.
enum Query {
    Deliver(String, Vec<u8>, mpsc::Sender<()>),
    Count(String, mpsc::Sender<usize>),
}

struct Ready {
    /// Plaintext logins allowed.
    open: u16,
    /// STLS before any login.
    strict: u16,
    /// Accounts on shard 0 and shard 1.
    a: String,
    b: String,
}

struct TestServer {
    ready: Ready,
    queries: UnboundedSender<Query>,
    _node: ServiceNode,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.queries.close_channel();
    }
}

impl TestServer {
    fn deliver(&self, account: &str, body: &[u8]) {
        let (tx, rx) = mpsc::channel();
        self.queries
            .unbounded_send(Query::Deliver(account.into(), body.to_vec(), tx))
            .expect("query");
        rx.recv_timeout(Duration::from_secs(30)).expect("delivered");
    }

    fn count(&self, account: &str) -> usize {
        let (tx, rx) = mpsc::channel();
        self.queries
            .unbounded_send(Query::Count(account.into(), tx))
            .expect("query");
        rx.recv_timeout(Duration::from_secs(30)).expect("count")
    }
}

async fn provision(services: &Services) -> (String, String) {
    let dir = &services.directory;
    dir.add_domain("example.org".into(), None, None)
        .await
        .expect("domain");
    let hash = services.hash_password(PASSWORD.into()).await.expect("hash");
    let [a, b] = <[String; 2]>::try_from(address_per_shard(services, 2)).expect("two shards");
    dir.add_class(ClassOfService {
        name: "nopop".into(),
        quota_bytes: 0,
        max_message_size: 0,
        features: Features {
            pop3: false,
            ..Features::default()
        },
        min_password_length: 8,
    })
    .await
    .expect("class");
    for (address, class) in [
        (a.clone(), None),
        (b.clone(), None),
        ("nopop@example.org".to_string(), Some("nopop".to_string())),
    ] {
        services
            .add_account(NewAccount {
                address,
                password_hash: hash.clone(),
                class_of_service: class,
                ..Default::default()
            })
            .await
            .expect("account");
    }
    (a, b)
}

/// Serves `listener` with `server` until `shutdown`.
async fn serve(listener: TcpListener, server: Pop3Server, shutdown: Shutdown) {
    let serve = move |stream, peer| {
        let server = server.clone();
        async move { server.serve(stream, peer).await }
    };
    accept_loop(listener, serve, shutdown).await
}

async fn answer(services: Services, mut queries: UnboundedReceiver<Query>) {
    while let Some(q) = queries.next().await {
        match q {
            Query::Deliver(account, body, reply) => {
                let done = services
                    .mail
                    .deliver(&[(account, "INBOX".into())], Arc::from(body), 0)
                    .await;
                assert!(done.iter().all(Result::is_ok), "{done:?}");
                let _ = reply.send(());
            }
            Query::Count(account, reply) => {
                let n = services
                    .mail
                    .messages(&account, "INBOX")
                    .await
                    .expect("messages")
                    .len();
                let _ = reply.send(n);
            }
        }
    }
}

fn start() -> TestServer {
    let metrics = Metrics::new(2, "test");
    let tls = tls_config();
    let (open_mesh, strict_mesh) = (Pop3Mesh::new(2, 64), Pop3Mesh::new(2, 64));
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let (queries, queries_rx) = unbounded::<Query>();
    let queries_rx = Arc::new(std::sync::Mutex::new(Some(queries_rx)));
    let node = ServiceNode::start(2, move |services, ctx| {
        let (metrics, tls, ready_tx, queries_rx) = (
            metrics.clone(),
            tls.clone(),
            ready_tx.clone(),
            queries_rx.clone(),
        );
        let (open_mesh, strict_mesh) = (open_mesh.clone(), strict_mesh.clone());
        async move {
            let m = metrics.service("pop3", ctx.id());
            let small = Pop3Options {
                max_line: 512,
                max_bad_commands: 5,
                max_auth_failures: 3,
                ..Pop3Options::default()
            };
            let open = Pop3Server::start(
                services.clone(),
                Some(tls.clone()),
                Pop3Options {
                    allow_plaintext_auth: true,
                    ..small.clone()
                },
                m.clone(),
                &open_mesh,
            )
            .await
            .expect("open server");
            let strict = Pop3Server::start(services.clone(), Some(tls), small, m, &strict_mesh)
                .await
                .expect("strict server");
            let shutdown = ctx.shutdown().clone();
            if ctx.id() != 0 {
                // Keeps the servers (and their mesh endpoints) alive.
                shutdown.wait().await;
                drop((open, strict));
                return;
            }
            let (a, b) = provision(&services).await;
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let open_l = cairn_shards::net::bind_tcp(any).expect("bind");
            let strict_l = cairn_shards::net::bind_tcp(any).expect("bind");
            let ready = Ready {
                open: open_l.local_addr().expect("addr").port(),
                strict: strict_l.local_addr().expect("addr").port(),
                a,
                b,
            };
            let rx = queries_rx.lock().expect("lock").take().expect("receiver");
            cairn_shards::spawn_detached(answer(services.clone(), rx));
            let strict_loop = cairn_shards::spawn(serve(strict_l, strict, shutdown.clone()));
            ready_tx.send(ready).expect("ready");
            serve(open_l, open, shutdown).await;
            strict_loop.await;
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

enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A line client that reads whole replies, multi-line ones unstuffed.
struct Client {
    io: Option<Io>,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut c = Client {
            io: Some(Io::Plain(s)),
            buf: Vec::new(),
        };
        let greeting = c.line();
        assert!(greeting.starts_with("+OK "), "{greeting}");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        match self.io.as_mut().expect("io") {
            Io::Plain(s) => s.write_all(bytes).expect("write"),
            Io::Tls(s) => s.write_all(bytes).expect("write"),
        }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = match self.io.as_mut().expect("io") {
            Io::Plain(s) => s.read(&mut chunk),
            Io::Tls(s) => s.read(&mut chunk),
        }
        .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next line, CRLF included (empty at end of stream).
    fn raw_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return self.buf.drain(..=i).collect();
            }
            if self.fill() == 0 {
                return std::mem::take(&mut self.buf);
            }
        }
    }

    fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.raw_line()).into_owned()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// The rest of a multi-line reply, unstuffed.
    fn body(&mut self) -> Vec<u8> {
        let mut raw = Vec::new();
        loop {
            let line = self.raw_line();
            assert!(!line.is_empty(), "closed inside a multi-line reply");
            let end = line == b".\r\n";
            raw.extend_from_slice(&line);
            if end {
                return codec::unstuff(&raw).expect("terminated");
            }
        }
    }

    /// A multi-line command: its first line and its body.
    fn multi(&mut self, line: &str) -> (String, Vec<u8>) {
        let first = self.cmd(line);
        assert!(first.starts_with("+OK"), "{line}: {first}");
        (first, self.body())
    }

    fn login(&mut self, user: &str) -> String {
        let r = self.cmd(&format!("USER {user}"));
        assert!(r.starts_with("+OK"), "{r}");
        self.cmd(&format!("PASS {PASSWORD}"))
    }

    fn closed(&mut self) -> bool {
        self.fill() == 0 && self.buf.is_empty()
    }

    fn starttls(&mut self) {
        let r = self.cmd("STLS");
        assert!(r.starts_with("+OK"), "{r}");
        let Some(Io::Plain(tcp)) = self.io.take() else {
            panic!("already TLS")
        };
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
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
        }
        self.io = Some(Io::Tls(Box::new(tls)));
    }
}

/// Logs in, retrying while the maildrop is still locked by a session the
/// server has not seen go yet (a client that just hung up).
fn login_when_free(port: u16, user: &str) -> Client {
    for _ in 0..100 {
        let mut c = Client::connect(port);
        let r = c.login(user);
        if r.starts_with("+OK") {
            return c;
        }
        assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{user}: the maildrop stayed locked")
}

const FIRST: &[u8] =
    b"From: x@remote.test\r\nSubject: one\r\n\r\nline 1\r\n.dotted line\r\nline 3\r\n";
const SECOND: &[u8] = b"From: y@remote.test\r\nSubject: two\r\n\r\nsecond body\r\n";

#[test]
fn user_pass_and_every_read_command_on_both_shards() {
    let server = start();
    let Ready { open, a, b, .. } = &server.ready;
    for account in [a, b] {
        server.deliver(account, FIRST);
        server.deliver(account, SECOND);
        let mut c = Client::connect(*open);
        let capa = {
            let (_, body) = c.multi("CAPA");
            String::from_utf8(body).expect("utf8")
        };
        for cap in [
            "TOP",
            "UIDL",
            "USER",
            "SASL PLAIN",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "STLS",
            "EXPIRE NEVER",
            "LOGIN-DELAY 0",
            "IMPLEMENTATION Cairn",
        ] {
            assert!(capa.contains(&format!("{cap}\r\n")), "{cap} in {capa}");
        }
        let total = FIRST.len() + SECOND.len();
        assert_eq!(
            c.login(account),
            format!("+OK Logged in; maildrop has 2 messages ({total} octets)\r\n")
        );
        assert_eq!(c.cmd("STAT"), format!("+OK 2 {total}\r\n"));
        let (first, list) = c.multi("LIST");
        assert_eq!(first, format!("+OK 2 messages ({total} octets)\r\n"));
        assert_eq!(
            list,
            format!("1 {}\r\n2 {}\r\n", FIRST.len(), SECOND.len()).into_bytes()
        );
        assert_eq!(c.cmd("LIST 2"), format!("+OK 2 {}\r\n", SECOND.len()));
        let (_, uidl) = c.multi("UIDL");
        let uidl = String::from_utf8(uidl).expect("utf8");
        let ids: Vec<&str> = uidl
            .lines()
            .map(|l| l.split(' ').nth(1).expect("id"))
            .collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(c.cmd("UIDL 1"), format!("+OK 1 {}\r\n", ids[0]));
        // RETR: the exact bytes on the wire, the dotted line stuffed.
        c.send(b"RETR 1\r\n");
        assert_eq!(c.line(), format!("+OK {} octets\r\n", FIRST.len()));
        let mut wire = Vec::new();
        loop {
            let line = c.raw_line();
            wire.extend_from_slice(&line);
            if line == b".\r\n" {
                break;
            }
        }
        assert_eq!(
            wire,
            b"From: x@remote.test\r\nSubject: one\r\n\r\nline 1\r\n..dotted line\r\nline 3\r\n.\r\n"
        );
        let (_, retr2) = c.multi("RETR 2");
        assert_eq!(retr2, SECOND);
        let (_, top) = c.multi("TOP 1 2");
        assert_eq!(
            top,
            b"From: x@remote.test\r\nSubject: one\r\n\r\nline 1\r\n.dotted line\r\n"
        );
        let (_, top0) = c.multi("TOP 2 0");
        assert_eq!(top0, b"From: y@remote.test\r\nSubject: two\r\n\r\n");
        assert_eq!(c.cmd("RETR 3"), "-ERR no such message\r\n");
        assert_eq!(c.cmd("TOP 0 1"), "-ERR no such message\r\n");
        assert_eq!(c.cmd("NOOP"), "+OK\r\n");
        // In TRANSACTION, no login capabilities.
        let (_, capa) = c.multi("CAPA");
        let capa = String::from_utf8(capa).expect("utf8");
        assert!(!capa.contains("USER") && !capa.contains("STLS") && capa.contains("UIDL"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
        assert!(c.closed());
        // UIDs are the same in the next session.
        let mut c = login_when_free(*open, account);
        let (_, again) = c.multi("UIDL");
        assert_eq!(String::from_utf8(again).expect("utf8"), uidl);
        assert!(c.cmd("QUIT").starts_with("+OK"));
        assert_eq!(server.count(account), 2);
    }
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let server = start();
    let Ready { open, a, b, .. } = &server.ready;
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    server.deliver(b, SECOND);
    let mut c = Client::connect(*open);
    let (_, mechs) = c.multi("AUTH");
    assert_eq!(mechs, b"PLAIN\r\n");
    let r = c.cmd(&format!("AUTH PLAIN {}", b64(format!("\0{b}\0{PASSWORD}"))));
    assert_eq!(
        r,
        "+OK Logged in; maildrop has 1 messages (".to_string()
            + &SECOND.len().to_string()
            + " octets)\r\n"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let mut c = Client::connect(*open);
    assert_eq!(c.cmd("AUTH PLAIN"), "+ \r\n");
    let r = c.cmd(&b64(format!("{a}\0{a}\0{PASSWORD}")));
    assert!(
        r.starts_with("+OK Logged in; maildrop has 0 messages"),
        "{r}"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // Cancelled, refused, and too many failures.
    let mut c = Client::connect(*open);
    c.cmd("AUTH PLAIN");
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled\r\n");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64(format!("\0{a}\0wrong")))),
        "-ERR [AUTH] Invalid credentials\r\n"
    );
    assert_eq!(
        c.cmd("USER nobody@example.org"),
        "+OK Send your password\r\n"
    );
    assert_eq!(c.cmd("PASS x"), "-ERR [AUTH] Invalid credentials\r\n");
    assert!(c.cmd("AUTH X-UNKNOWN").starts_with("-ERR Unrecognized"));
    c.cmd(&format!("USER {a}"));
    assert_eq!(
        c.cmd("PASS wrong again"),
        "-ERR [AUTH] Too many authentication failures; closing connection\r\n"
    );
    assert!(c.closed());

    // An account whose class of service has no POP3.
    let mut c = Client::connect(*open);
    assert_eq!(
        c.login("nopop@example.org"),
        "-ERR [AUTH] POP3 access is not enabled for this account\r\n"
    );
}

#[test]
fn dele_and_quit_expunge_durably_and_nothing_else_does() {
    let server = start();
    let Ready { open, a, b, .. } = &server.ready;
    for account in [a, b] {
        for _ in 0..3 {
            server.deliver(account, SECOND);
        }
        // DELE without QUIT: nothing goes.
        let mut c = login_when_free(*open, account);
        let (_, uidl) = c.multi("UIDL");
        assert_eq!(c.cmd("DELE 1"), "+OK message 1 deleted\r\n");
        assert_eq!(c.cmd("DELE 1"), "-ERR no such message\r\n");
        drop(c);
        let mut c = login_when_free(*open, account);
        assert!(c.cmd("STAT").starts_with("+OK 3 "));
        // RSET unmarks.
        c.cmd("DELE 2");
        c.cmd("DELE 3");
        assert!(c.cmd("STAT").starts_with("+OK 1 "));
        assert!(c.cmd("RSET").starts_with("+OK maildrop has 3 messages"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
        assert_eq!(server.count(account), 3);
        // DELE then QUIT removes exactly the marked one, before the +OK.
        let mut c = login_when_free(*open, account);
        c.cmd("DELE 2");
        assert_eq!(c.cmd("RETR 2"), "-ERR no such message\r\n");
        assert_eq!(c.cmd("LIST 2"), "-ERR no such message\r\n");
        let (_, list) = c.multi("LIST");
        assert!(String::from_utf8(list).expect("utf8").starts_with("1 "));
        let r = c.cmd("QUIT");
        assert!(r.contains("(1 messages deleted)"), "{r}");
        assert_eq!(server.count(account), 2);
        let mut c = login_when_free(*open, account);
        assert!(c.cmd("STAT").starts_with("+OK 2 "));
        let (_, after) = c.multi("UIDL");
        let before: Vec<String> = String::from_utf8(uidl)
            .expect("utf8")
            .lines()
            .map(|l| l.split(' ').nth(1).expect("id").to_string())
            .collect();
        let after: Vec<String> = String::from_utf8(after)
            .expect("utf8")
            .lines()
            .map(|l| l.split(' ').nth(1).expect("id").to_string())
            .collect();
        assert_eq!(after, vec![before[0].clone(), before[2].clone()]);
        assert!(c.cmd("QUIT").starts_with("+OK"));
    }
}

#[test]
fn a_second_session_finds_the_maildrop_locked() {
    let server = start();
    let Ready { open, a, b, .. } = &server.ready;
    for account in [a, b] {
        let mut first = login_when_free(*open, account);
        let mut second = Client::connect(*open);
        assert_eq!(
            second.login(account),
            "-ERR [IN-USE] Maildrop already locked\r\n"
        );
        // The refused session stays in AUTHORIZATION.
        assert!(second.cmd("STAT").starts_with("-ERR Not logged in"));
        assert!(second.cmd("QUIT").starts_with("+OK"));
        assert!(first.cmd("QUIT").starts_with("+OK"));
        let mut third = login_when_free(*open, account);
        assert!(third.cmd("QUIT").starts_with("+OK"));
    }
}

#[test]
fn stls_before_login_when_plaintext_is_refused() {
    let server = start();
    let Ready { strict, a, b, .. } = &server.ready;
    server.deliver(b, FIRST);
    let mut c = Client::connect(*strict);
    let (_, capa) = c.multi("CAPA");
    let capa = String::from_utf8(capa).expect("utf8");
    assert!(capa.contains("STLS\r\n") && !capa.contains("USER") && !capa.contains("SASL"));
    assert!(c
        .cmd(&format!("USER {a}"))
        .starts_with("-ERR [AUTH] Plaintext authentication disallowed"));
    assert!(c
        .cmd("AUTH PLAIN AGEAYg==")
        .starts_with("-ERR [AUTH] Plaintext"));
    c.starttls();
    let (_, capa) = c.multi("CAPA");
    let capa = String::from_utf8(capa).expect("utf8");
    assert!(!capa.contains("STLS") && capa.contains("USER\r\n") && capa.contains("SASL PLAIN\r\n"));
    assert_eq!(c.cmd("STLS"), "-ERR Already using TLS\r\n");
    // b lives on shard 1: the TLS session is relayed there.
    assert!(c
        .login(b)
        .starts_with("+OK Logged in; maildrop has 1 messages"));
    let (_, body) = c.multi("RETR 1");
    assert_eq!(body, FIRST);
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let mut c = Client::connect(*strict);
    c.starttls();
    assert!(c.login(a).starts_with("+OK Logged in"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn bad_commands_get_errors_until_the_limit() {
    let server = start();
    let Ready { open, .. } = &server.ready;
    let mut c = Client::connect(*open);
    assert_eq!(c.cmd("FOO"), "-ERR Unknown command\r\n");
    assert_eq!(
        c.cmd("STAT"),
        "-ERR Not logged in; use USER/PASS or AUTH\r\n"
    );
    assert_eq!(c.cmd(&"X".repeat(600)), "-ERR Line too long\r\n");
    assert_eq!(c.cmd("PASS nouser"), "-ERR USER first\r\n");
    // Still going.
    assert!(c.multi("CAPA").0.starts_with("+OK"));
    let r = c.cmd("RETR one");
    assert!(r.starts_with("-ERR Invalid number in RETR"), "{r}");
    assert_eq!(
        c.line(),
        "-ERR Too many bad commands; closing connection\r\n"
    );
    assert!(c.closed());
}

#[test]
fn pipelined_commands_follow_the_session_to_its_shard() {
    let server = start();
    let Ready { open, a, b, .. } = &server.ready;
    for account in [a, b] {
        server.deliver(account, SECOND);
        let mut c = Client::connect(*open);
        c.send(
            format!("USER {account}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nQUIT\r\n").as_bytes(),
        );
        assert_eq!(c.line(), "+OK Send your password\r\n");
        assert!(c
            .line()
            .starts_with("+OK Logged in; maildrop has 1 messages"));
        assert_eq!(c.line(), format!("+OK 1 {}\r\n", SECOND.len()));
        assert!(c.line().starts_with("+OK"));
        assert_eq!(c.body(), SECOND);
        assert!(c.line().starts_with("+OK"));
        assert!(c.closed());
    }
}

/// A message of a few storage chunks (RETR streams it chunk by chunk)
/// with lines starting with `.` where chunks meet: a lone `.` line and
/// `..` starting a chunk, a line break split across two chunks before a
/// dotted line, a dotted line starting on a chunk's last byte.
fn dotted_across_chunks() -> Vec<u8> {
    let mut out = b"From: x@remote.test\r\nSubject: dots\r\n\r\n".to_vec();
    let lines: [(usize, &[u8]); 4] = [
        (BODY_CHUNK, b".\r\n"),
        (2 * BODY_CHUNK + 1, b".after a split CRLF\r\n"),
        (3 * BODY_CHUNK - 1, b"..on the last byte\r\n"),
        (4 * BODY_CHUNK, b"..\r\n"),
    ];
    for (start, line) in lines {
        let mut i = 0;
        while out.len() + 64 < start {
            out.extend_from_slice(format!("filler {i:08} .not at a line start\r\n").as_bytes());
            i += 1;
        }
        let pad = start - out.len();
        out.extend(std::iter::repeat_n(b'p', pad - 2));
        out.extend_from_slice(b"\r\n");
        assert_eq!(out.len(), start);
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"the end\r\n");
    out
}

#[test]
fn retr_and_top_stuff_dotted_lines_where_storage_chunks_meet() {
    let server = start();
    let Ready { open, a, .. } = &server.ready;
    let message = dotted_across_chunks();
    server.deliver(a, &message);
    let mut c = Client::connect(*open);
    assert!(c.login(a).starts_with("+OK"));
    c.send(b"RETR 1\r\n");
    assert_eq!(c.line(), format!("+OK {} octets\r\n", message.len()));
    let mut wire = Vec::new();
    loop {
        let line = c.raw_line();
        assert!(!line.is_empty(), "closed inside the reply");
        wire.extend_from_slice(&line);
        if line == b".\r\n" {
            break;
        }
    }
    for stuffed in [
        &b"\r\n..\r\n"[..],
        b"\r\n..after a split CRLF\r\n",
        b"\r\n...on the last byte\r\n",
        b"\r\n...\r\n",
    ] {
        assert!(
            wire.windows(stuffed.len()).any(|w| w == stuffed),
            "{:?} stuffed",
            String::from_utf8_lossy(stuffed)
        );
    }
    let unstuffed = codec::unstuff(&wire).expect("terminated");
    assert!(unstuffed == message, "RETR differs after unstuffing");
    // TOP whose last line lies in the third chunk, and TOP of the header
    // alone: the message read up to there, cut where TOP cuts it whole.
    let body_lines = message[..2 * BODY_CHUNK + 100]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u32
        - 3;
    for n in [body_lines, 0] {
        let (_, top) = c.multi(&format!("TOP 1 {n}"));
        assert!(top == codec::top(&message, n), "TOP 1 {n}");
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

//! The outbound SMTP client against real servers: Postfix's `smtp-sink`
//! (pipelined and step-by-step transactions, DSN and BODY parameters, the
//! bytes as they arrived, refusals, no STARTTLS) and Cairn's own
//! submission server on a two-shard node (required STARTTLS, implicit
//! TLS, AUTH, SIZE, dot-stuffing, a refused recipient, several
//! transactions on one connection). The client runs on its own executor
//! on the test's thread.

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_shards::metrics::Metrics;
use cairn_shards::net::TcpListener;
use cairn_shards::stream::{client_config, ClientVerify};
use cairn_shards::Shutdown;
use cairn_smtp::client::{ClientError, ClientOptions, Connection, Envelope, TlsMode};
use cairn_smtp::{Mode, SmtpOptions, SmtpServer};
use cairn_storage::directory::NewAccount;
use cairn_storage::services::Services;
use cairn_storage::testing::{
    accept_loop, address_per_shard, certificate, tls_config, ServiceNode,
};
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_lite::StreamExt;

fn on_a_shard<T>(fut: impl std::future::Future<Output = T>) -> T {
    cairn_shards::local::block_on(fut).expect("executor")
}

fn any_cert() -> ClientOptions {
    let mut options = ClientOptions::new(
        "client.test",
        client_config(ClientVerify::Any).expect("TLS settings"),
    );
    options.timeouts.greeting = Duration::from_secs(20);
    options.timeouts.command = Duration::from_secs(20);
    options.timeouts.data_end = Duration::from_secs(30);
    options
}

// ---------------------------------------------------------------- smtp-sink

/// A running `smtp-sink` that appends every transaction to one dump file.
struct Sink {
    child: Child,
    addr: SocketAddr,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sink {
    /// Starts `smtp-sink` with `flags`; `None` (and a notice) when it is
    /// not installed, unless `CI` is set, where that fails the test.
    fn start(flags: &[&str]) -> Option<Sink> {
        let program = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(program) = program else {
            assert!(
                std::env::var_os("CI").is_none(),
                "smtp-sink (Debian package postfix) is required in CI"
            );
            eprintln!("skipped: smtp-sink is not installed (Debian package postfix)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // As root, smtp-sink runs as nobody, who must write the dump.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let dump = dir.path().join("dump");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut cmd = Command::new(program);
        if root {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(flags)
            .arg("-D")
            .arg(&dump)
            .arg(format!("127.0.0.1:{port}"))
            .arg("16")
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("start smtp-sink");
        let sink = Sink {
            child,
            addr,
            dump,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sink)
    }

    /// The dump once it contains every one of `wanted`.
    fn dump_with(&self, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let bytes = std::fs::read(&self.dump).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let missing = wanted.iter().find(|w| !text.contains(**w));
            match missing {
                None => return text,
                Some(w) => assert!(Instant::now() < deadline, "the dump lacks {w:?}:\n{text}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body as smtp-sink writes it: lines end with LF.
fn as_dumped(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    }
}

#[test]
fn delivers_to_smtp_sink_pipelined_and_step_by_step() {
    for pipelining in [true, false] {
        let flags: &[&str] = if pipelining { &[] } else { &["-p"] };
        let Some(sink) = Sink::start(flags) else {
            return;
        };
        let envelope = Envelope {
            from: "sender@example.org".into(),
            recipients: vec!["a@remote.test".into(), "b@remote.test".into()],
            envid: Some("Q1+x".into()),
            ret_full: Some(false),
            notify: Some("failure,delay".into()),
        };
        // Dots to stuff, a bare LF, 8-bit text, no final line end.
        let first: &[u8] =
            "Subject: one\r\n\r\n.leading dot\r\n..two\nhéllo\r\n.\r\nlast".as_bytes();
        // Big enough to go out in several pieces.
        let mut second = b"Subject: two\r\n\r\n".to_vec();
        for i in 0..6000 {
            second.extend_from_slice(format!(".{i:05} abcdefghijklmnopqrstuvwxyz\r\n").as_bytes());
        }
        let (caps, outcomes) = on_a_shard(async {
            let conn = Connection::open(sink.addr, "localhost", &any_cert()).await;
            let mut conn = conn.expect("open");
            assert!(!conn.is_tls(), "smtp-sink offers no STARTTLS");
            let caps = conn.capabilities().clone();
            let one = conn.send(&envelope, first).await.expect("first");
            let plain = Envelope {
                from: String::new(),
                recipients: vec!["c@remote.test".into()],
                ..Default::default()
            };
            let two = conn.send(&plain, &second).await.expect("second");
            conn.quit().await;
            (caps, [one, two])
        });
        assert_eq!(caps.pipelining, pipelining);
        assert!(caps.dsn && caps.eight_bit_mime && !caps.starttls);
        assert_eq!(caps.size, None, "smtp-sink offers no SIZE");
        for outcome in &outcomes {
            assert!(outcome.recipients.iter().all(|r| r.is_ok()), "{outcome:?}");
            let data = outcome
                .data
                .as_ref()
                .expect("data")
                .as_ref()
                .expect("taken");
            assert_eq!(data.code, 250);
        }
        assert_eq!(outcomes[0].recipients.len(), 2);

        // DSN parameters; no SIZE= (not offered); BODY=8BITMIME only for
        // the 8-bit body; the bytes as sent, dots and all.
        let first_dumped = as_dumped(first);
        let second_dumped = as_dumped(&second);
        sink.dump_with(&[
            "X-Mail-Args: <sender@example.org> BODY=8BITMIME RET=HDRS ENVID=Q1+2Bx\n",
            "X-Rcpt-Args: <a@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@remote.test\n",
            "X-Rcpt-Args: <b@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@remote.test\n",
            "X-Mail-Args: <>\n",
            "X-Rcpt-Args: <c@remote.test> ORCPT=rfc822;c@remote.test\n",
            &first_dumped,
            &second_dumped,
        ]);
    }
}

#[test]
fn smtp_sink_refusals_are_reported_and_the_connection_stays_usable() {
    let envelope = Envelope {
        from: "sender@example.org".into(),
        recipients: vec!["a@remote.test".into(), "b@remote.test".into()],
        ..Default::default()
    };
    // Every RCPT refused for now (4xx): in the outcome, no DATA.
    let Some(sink) = Sink::start(&["-r", "RCPT"]) else {
        return;
    };
    let outcomes = on_a_shard(async {
        let mut conn = Connection::open(sink.addr, "localhost", &any_cert())
            .await
            .expect("open");
        let one = conn.send(&envelope, b"x\r\n").await.expect("first");
        let two = conn.send(&envelope, b"x\r\n").await.expect("second");
        conn.quit().await;
        [one, two]
    });
    for outcome in outcomes {
        assert_eq!(outcome.data, None);
        assert_eq!(outcome.recipients.len(), 2);
        for r in &outcome.recipients {
            let refused = r.as_ref().expect_err("refused");
            assert!(refused.is_transient(), "{refused}");
            assert_eq!(refused.to_string(), "450 4.3.0 Error: command failed");
        }
    }

    // MAIL refused for good: an error, after which RSET keeps the
    // connection in step.
    let Some(sink) = Sink::start(&["-f", "MAIL"]) else {
        return;
    };
    let (one, two) = on_a_shard(async {
        let mut conn = Connection::open(sink.addr, "localhost", &any_cert())
            .await
            .expect("open");
        let one = conn.send(&envelope, b"x\r\n").await;
        let two = conn.send(&envelope, b"x\r\n").await;
        conn.quit().await;
        (one, two)
    });
    for result in [one, two] {
        match result {
            Err(e @ ClientError::Refused(_)) => {
                assert!(e.is_permanent());
                assert_eq!(e.reply().map(|r| r.code), Some(500));
            }
            other => panic!("{other:?}"),
        }
    }

    // DATA refused: the recipients were accepted, the message was not.
    let Some(sink) = Sink::start(&["-f", "DATA"]) else {
        return;
    };
    let outcomes = on_a_shard(async {
        let mut conn = Connection::open(sink.addr, "localhost", &any_cert())
            .await
            .expect("open");
        let one = conn.send(&envelope, b"x\r\n").await.expect("first");
        let two = conn.send(&envelope, b"x\r\n").await.expect("second");
        conn.quit().await;
        [one, two]
    });
    for outcome in outcomes {
        assert!(outcome.recipients.iter().all(|r| r.is_ok()));
        let data = outcome.data.expect("a reply to DATA");
        assert!(data.expect_err("refused").is_permanent());
    }
}

#[test]
fn required_tls_fails_without_starttls() {
    let Some(sink) = Sink::start(&[]) else {
        return;
    };
    let mut options = any_cert();
    options.tls = TlsMode::Required;
    let result = on_a_shard(Connection::open(sink.addr, "localhost", &options));
    match result {
        Err(e @ ClientError::Tls(_)) => assert!(!e.is_permanent(), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened without TLS"),
    }
    // Credentials never go over plain text unless allowed.
    let mut options = any_cert();
    options.auth = Some(("user".into(), "secret".into()));
    let result = on_a_shard(Connection::open(sink.addr, "localhost", &options));
    assert!(matches!(result, Err(ClientError::Tls(_))));
}

// ------------------------------------------------------- Cairn's own server

/// Asks shard 0 for the bodies in an account's INBOX.
type Query = (String, mpsc::Sender<Vec<Vec<u8>>>);

struct Ready {
    /// Submission with STARTTLS, and with implicit TLS.
    starttls: SocketAddr,
    implicit: SocketAddr,
    /// Accounts on shard 0 and shard 1 (password "secret").
    a: String,
    b: String,
}

struct Cairn {
    ready: Ready,
    queries: UnboundedSender<Query>,
    _node: ServiceNode,
}

impl Drop for Cairn {
    fn drop(&mut self) {
        self.queries.close_channel();
    }
}

impl Cairn {
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

/// The largest message the test server takes.
const MAX_SIZE: u64 = 64 * 1024;

async fn provision(services: &Services) -> (String, String) {
    services
        .directory
        .add_domain("example.org".into(), None, None)
        .await
        .expect("domain");
    let hash = services.hash_password("secret".into()).await.expect("hash");
    let [a, b] = <[String; 2]>::try_from(address_per_shard(services, 2)).expect("two shards");
    for address in [&a, &b] {
        services
            .add_account(NewAccount {
                address: address.clone(),
                password_hash: hash.clone(),
                ..Default::default()
            })
            .await
            .expect("account");
    }
    (a, b)
}

async fn answer_queries(services: Services, mut queries: UnboundedReceiver<Query>) {
    while let Some((account, reply)) = queries.next().await {
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

/// Serves `listener`, the TLS handshake first when `implicit` is set.
async fn serve(
    listener: TcpListener,
    server: SmtpServer,
    implicit: Option<Arc<rustls::ServerConfig>>,
    shutdown: Shutdown,
) {
    let serve = move |stream: cairn_shards::stream::Stream, peer| {
        let (server, implicit) = (server.clone(), implicit.clone());
        async move {
            let stream = match implicit {
                Some(config) => match stream.accept_tls(config).await {
                    Ok(tls) => tls,
                    Err(_) => return,
                },
                None => stream,
            };
            server.serve(stream, peer).await
        }
    };
    accept_loop(listener, serve, shutdown).await
}

fn start_cairn() -> Cairn {
    let metrics = Metrics::new(2, "test");
    let tls = tls_config();
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
        async move {
            if ctx.id() != 0 {
                return;
            }
            let (a, b) = provision(&services).await;
            let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let starttls = cairn_shards::net::bind_tcp(any).expect("bind");
            let implicit = cairn_shards::net::bind_tcp(any).expect("bind");
            let ready = Ready {
                starttls: starttls.local_addr().expect("addr"),
                implicit: implicit.local_addr().expect("addr"),
                a,
                b,
            };
            let options = SmtpOptions {
                max_message_size: MAX_SIZE,
                ..SmtpOptions::default()
            };
            let server = SmtpServer::new(
                services.clone(),
                Mode::Submission,
                Some(tls.clone()),
                options,
                metrics.service("smtp", 0),
            );
            let rx = queries_rx.lock().expect("lock").take().expect("receiver");
            cairn_shards::spawn_detached(answer_queries(services.clone(), rx));
            let shutdown = ctx.shutdown().clone();
            let other =
                cairn_shards::spawn(serve(implicit, server.clone(), Some(tls), shutdown.clone()));
            ready_tx.send(ready).expect("ready");
            serve(starttls, server, None, shutdown).await;
            other.await;
        }
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    Cairn {
        ready,
        queries,
        _node: node,
    }
}

fn submission(user: &str, tls: TlsMode) -> ClientOptions {
    let mut options = any_cert();
    options.tls = tls;
    options.auth = Some((user.to_string(), "secret".into()));
    options
}

#[test]
fn submits_to_cairn_over_starttls_with_auth() {
    let server = start_cairn();
    let Ready { starttls, a, b, .. } = &server.ready;
    let body = "From: <sender@example.org>\r\nSubject: hi\r\n\r\n.a line that starts with a dot\r\n..and two\r\n.\r\nend\r\n";
    let unknown = "nobody@example.org".to_string();
    let (caps, tls, first, refused_only, after, too_big, last) = on_a_shard(async {
        let options = submission(a, TlsMode::Required);
        let mut conn = Connection::open(*starttls, "localhost", &options)
            .await
            .expect("open");
        let caps = conn.capabilities().clone();
        let tls = conn.is_tls();
        let first = conn
            .send(
                &Envelope {
                    from: a.clone(),
                    recipients: vec![a.clone(), unknown.clone(), b.clone()],
                    ..Default::default()
                },
                body.as_bytes(),
            )
            .await
            .expect("first");
        // Only a refused recipient: the pipelined DATA's refusal is read
        // and RSET keeps the connection in step.
        let refused_only = conn
            .send(
                &Envelope {
                    from: a.clone(),
                    recipients: vec![unknown.clone()],
                    ..Default::default()
                },
                b"Subject: nobody\r\n\r\nx\r\n",
            )
            .await
            .expect("refused only");
        let after = conn
            .send(
                &Envelope {
                    from: a.clone(),
                    recipients: vec![b.clone()],
                    ..Default::default()
                },
                b"Subject: second\r\n\r\nsecond\r\n",
            )
            .await
            .expect("after");
        // Over the server's SIZE: refused here, nothing sent.
        let big = vec![b'x'; MAX_SIZE as usize + 1];
        let too_big = conn
            .send(
                &Envelope {
                    from: a.clone(),
                    recipients: vec![b.clone()],
                    ..Default::default()
                },
                &big,
            )
            .await;
        let last = conn
            .send(
                &Envelope {
                    from: a.clone(),
                    recipients: vec![a.clone()],
                    ..Default::default()
                },
                b"Subject: third\r\n\r\nthird\r\n",
            )
            .await
            .expect("last");
        conn.quit().await;
        (caps, tls, first, refused_only, after, too_big, last)
    });
    assert!(tls);
    assert!(caps.pipelining && caps.dsn && caps.smtputf8 && !caps.starttls);
    assert_eq!(caps.size, Some(MAX_SIZE));
    assert_eq!(caps.auth, vec!["PLAIN".to_string(), "LOGIN".to_string()]);

    let [ra, rn, rb] = <[_; 3]>::try_from(first.recipients).expect("three");
    assert_eq!(ra.expect("a").code, 250);
    assert_eq!(rb.expect("b").code, 250);
    let rn = rn.expect_err("unknown");
    assert_eq!((rn.code, rn.enhanced), (550, Some((5, 1, 1))));
    assert_eq!(rn.to_string(), "550 5.1.1 No such user here");
    assert_eq!(first.data.expect("data").expect("taken").code, 250);

    assert_eq!(refused_only.data, None);
    assert!(refused_only.recipients[0].as_ref().is_err());
    assert!(after.data.expect("data").is_ok());
    match too_big {
        Err(e @ ClientError::Local(_)) => {
            assert!(e.is_permanent());
            assert_eq!(e.reply().and_then(|r| r.enhanced), Some((5, 3, 4)), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(last.data.expect("data").is_ok());

    let inbox_a = server.inbox(a);
    let inbox_b = server.inbox(b);
    assert_eq!(inbox_a.len(), 2, "{inbox_a:?}");
    assert_eq!(inbox_b.len(), 2, "{inbox_b:?}");
    for delivered in [&inbox_a[0], &inbox_b[0]] {
        // Dot-stuffing undone: the body arrived as it was.
        assert!(delivered.ends_with(body), "{delivered}");
        assert!(delivered.contains("with ESMTPSA"), "{delivered}");
    }
    assert!(inbox_b[1].ends_with("second\r\n"));
    assert!(inbox_a[1].ends_with("third\r\n"));
}

#[test]
fn cairn_implicit_tls_certificate_checks_and_bad_passwords() {
    let server = start_cairn();
    let Ready {
        starttls,
        implicit,
        a,
        b,
    } = &server.ready;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate().cert.der().clone()).expect("root");
    let checked = client_config(ClientVerify::Roots(roots)).expect("TLS settings");
    let (implicit_ok, wrong_name, bad_password) = on_a_shard(async {
        // Implicit TLS, the certificate checked against its root.
        let mut options = submission(b, TlsMode::Implicit);
        options.tls_config = checked.clone();
        let mut conn = Connection::open(*implicit, "localhost", &options)
            .await
            .expect("open");
        assert!(conn.is_tls());
        let outcome = conn
            .send(
                &Envelope {
                    from: b.clone(),
                    recipients: vec![a.clone()],
                    ..Default::default()
                },
                b"Subject: implicit\r\n\r\nover 465\r\n",
            )
            .await
            .expect("send");
        conn.quit().await;

        // The certificate names localhost, not mx.example.net.
        let mut options = submission(a, TlsMode::Required);
        options.tls_config = checked.clone();
        let wrong_name = Connection::open(*starttls, "mx.example.net", &options).await;

        let mut options = submission(a, TlsMode::Opportunistic);
        options.auth = Some((a.clone(), "wrong".into()));
        let bad_password = Connection::open(*starttls, "localhost", &options).await;
        (outcome, wrong_name.err(), bad_password.err())
    });
    assert_eq!(implicit_ok.data.expect("data").expect("taken").code, 250);
    assert!(
        matches!(wrong_name, Some(ClientError::Tls(_))),
        "{wrong_name:?}"
    );
    match bad_password {
        Some(e @ ClientError::Refused(_)) => {
            assert!(e.is_permanent());
            assert_eq!(e.reply().map(|r| r.code), Some(535), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let inbox = server.inbox(a);
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].ends_with("over 465\r\n"));
}

//! MULTIAPPEND (RFC 3502) end to end over raw sockets, on a one-shard node
//! with real storage and an account with a quota: a batch over quota is
//! refused whole (`NO [OVERQUOTA]`, nothing appended), a good one answers
//! one APPENDUID range, and a second session in IDLE sees the messages
//! arrive together (one EXISTS).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use cairn_imap::{ImapMesh, ImapOptions, ImapServer};
use cairn_shards::metrics::Metrics;
use cairn_storage::directory::NewAccount;
use cairn_storage::testing::{accept_loop, tls_config, ServiceNode};

const USER: &str = "batch@example.org";
const QUOTA: u64 = 2000;

fn start() -> (u16, ServiceNode) {
    let (tls, metrics, mesh) = (tls_config(), Metrics::new(1, "test"), ImapMesh::new(1, 64));
    let (ready_tx, ready_rx) = mpsc::channel::<u16>();
    let node = ServiceNode::start(1, move |services, ctx| {
        let (tls, metrics, mesh, ready_tx) =
            (tls.clone(), metrics.clone(), mesh.clone(), ready_tx.clone());
        async move {
            let options = ImapOptions {
                allow_plaintext_auth: true,
                ..ImapOptions::default()
            };
            let m = metrics.service("imap", ctx.id());
            let server = ImapServer::start(services.clone(), Some(tls), options, m, &mesh)
                .await
                .expect("imap server");
            services
                .directory
                .add_domain("example.org".into(), None, None)
                .await
                .expect("domain");
            let hash = services.hash_password("secret".into()).await.expect("hash");
            services
                .add_account(NewAccount {
                    address: USER.into(),
                    password_hash: hash,
                    quota_bytes: QUOTA,
                    ..Default::default()
                })
                .await
                .expect("account");
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let listener = cairn_shards::net::bind_tcp(any).expect("bind");
            ready_tx
                .send(listener.local_addr().expect("addr").port())
                .expect("ready");
            let serve = move |stream, peer| {
                let server = server.clone();
                async move { server.serve(stream, peer).await }
            };
            accept_loop(listener, serve, ctx.shutdown().clone()).await
        }
    });
    let port = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server started");
    (port, node)
}

/// A raw client: lines and whole tagged replies.
struct Raw {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn login(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut raw = Raw {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        assert!(raw.line().starts_with("* OK"));
        let r = raw.command("l1", &format!("LOGIN {USER} secret"));
        assert!(r.last().expect("reply").starts_with("l1 OK"), "{r:?}");
        raw
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        assert!(!line.is_empty(), "connection closed");
        line
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    fn command(&mut self, tag: &str, line: &str) -> Vec<String> {
        self.send(format!("{tag} {line}\r\n").as_bytes());
        self.until(tag)
    }

    fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

/// `tag APPEND INBOX` with each body as a non-synchronizing literal.
fn multiappend(tag: &str, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("{tag} APPEND INBOX").into_bytes();
    for b in bodies {
        out.extend_from_slice(format!(" {{{}+}}\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("Subject: {i}\r\n\r\n").into_bytes();
    b.resize(len, b'x');
    b
}

#[test]
fn multiappend_is_all_or_nothing_and_seen_at_once() {
    let (port, _node) = start();
    let mut writer = Raw::login(port);

    // The third exceeds the quota: none of them is appended.
    let over = [message(1, 100), message(2, 100), message(3, QUOTA as usize)];
    writer.send(&multiappend("m1", &over));
    let r = writer.until("m1");
    assert!(
        r.last().expect("reply").starts_with("m1 NO [OVERQUOTA]"),
        "{r:?}"
    );
    let r = writer.command("m2", "STATUS INBOX (MESSAGES UIDNEXT)");
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1)"),
        "{r:?}"
    );

    // A watcher in IDLE, then three that fit.
    let mut watcher = Raw::login(port);
    watcher.command("s1", "SELECT INBOX");
    watcher.send(b"i1 IDLE\r\n");
    assert!(watcher.line().starts_with("+ "));
    let fit = [message(1, 100), message(2, 100), message(3, 100)];
    writer.send(&multiappend("m3", &fit));
    let r = writer.until("m3");
    let done = r.last().expect("reply");
    assert!(
        done.starts_with("m3 OK [APPENDUID ") && done.contains(" 1:3] "),
        "{r:?}"
    );
    // The first EXISTS the watcher sees counts all three.
    let exists = loop {
        let line = watcher.line();
        if line.ends_with(" EXISTS\r\n") {
            break line;
        }
    };
    assert_eq!(exists, "* 3 EXISTS\r\n");
    watcher.send(b"DONE\r\n");
    let r = watcher.until("i1");
    assert!(r.last().expect("reply").starts_with("i1 OK"), "{r:?}");
    assert!(!r.iter().any(|l| l.ends_with(" EXISTS\r\n")), "{r:?}");
    let r = watcher.command("n1", "NOOP");
    assert!(!r.iter().any(|l| l.ends_with(" EXISTS\r\n")), "{r:?}");
    let r = writer.command("m4", "STATUS INBOX (MESSAGES UIDNEXT)");
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 4)"),
        "{r:?}"
    );
}

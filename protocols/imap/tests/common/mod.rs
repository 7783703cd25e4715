//! Helpers shared by the IMAP integration tests: accounts with the test
//! password on example.org, an IMAP server listening on 127.0.0.1, a
//! logged-in async-imap session and its FETCH of message 1, and a raw
//! client (lines, or bytes for replies that are not UTF-8).

// Each test binary includes this module and uses only its own part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcp;
use std::time::Duration;

use async_imap::types::Fetch;
use cairn_imap::ImapServer;
use cairn_shards::Shutdown;
use cairn_storage::directory::NewAccount;
use cairn_storage::services::Services;
use cairn_storage::testing::accept_loop;
use futures_lite::StreamExt;
use tokio::net::TcpStream;

/// The password of every test account.
pub const PASSWORD: &str = "secret";

/// A logged-in async-imap session over plain TCP.
pub type Session = async_imap::Session<TcpStream>;

/// Adds the domain example.org and one account per address, each with
/// [`PASSWORD`] and `quota_bytes` (0: its class of service's).
pub async fn add_accounts(services: &Services, addresses: &[&str], quota_bytes: u64) {
    services
        .directory
        .add_domain("example.org".into(), None, None)
        .await
        .expect("domain");
    let hash = services.hash_password(PASSWORD.into()).await.expect("hash");
    for address in addresses {
        services
            .add_account(NewAccount {
                address: (*address).to_string(),
                password_hash: hash.clone(),
                quota_bytes,
                ..Default::default()
            })
            .await
            .expect("account");
    }
}

/// Binds a listener on 127.0.0.1 (any port), tells `ready` its port, then
/// serves it with `server` until `shutdown`.
pub async fn listen(server: ImapServer, shutdown: Shutdown, ready: impl FnOnce(u16)) {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = cairn_shards::net::bind_tcp(any).expect("bind");
    ready(listener.local_addr().expect("addr").port());
    let serve = move |stream, peer| {
        let server = server.clone();
        async move { server.serve(stream, peer).await }
    };
    accept_loop(listener, serve, shutdown).await
}

/// Connects the async-imap client to 127.0.0.1:`port`, reads the greeting
/// and logs in as `user` with [`PASSWORD`].
pub async fn login(port: u16, user: &str) -> Session {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .expect("greeting")
        .expect("greeting");
    client
        .login(user, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

/// The first FETCH response to `FETCH 1 items`.
pub async fn fetch_one(s: &mut Session, items: &str) -> Fetch {
    let fetched: Vec<_> = s
        .fetch("1", items)
        .await
        .expect("fetch")
        .collect::<Vec<_>>()
        .await;
    fetched.into_iter().next().expect("one").expect("fetch")
}

/// A raw client: lines and whole tagged replies.
pub struct Raw {
    writer: StdTcp,
    reader: BufReader<StdTcp>,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`; returns the client and the greeting.
    pub fn connect(port: u16) -> (Self, String) {
        let s = StdTcp::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut raw = Raw {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        let greeting = raw.line();
        (raw, greeting)
    }

    /// Connects and logs in as `user` with [`PASSWORD`] (tag `l1`).
    pub fn login(port: u16, user: &str) -> Self {
        let (mut raw, greeting) = Self::connect(port);
        assert!(greeting.starts_with("* OK"), "{greeting}");
        let r = raw.command("l1", &format!("LOGIN {user} {PASSWORD}"));
        assert!(r.last().expect("reply").starts_with("l1 OK"), "{r:?}");
        raw
    }

    /// The next line; fails the test when the connection is closed.
    pub fn line(&mut self) -> String {
        let line = self.read_line();
        assert!(!line.is_empty(), "connection closed");
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends a command, returns every line up to its tagged reply.
    pub fn command(&mut self, tag: &str, line: &str) -> Vec<String> {
        self.send(format!("{tag} {line}\r\n").as_bytes());
        self.until(tag)
    }

    /// Every line up to the one tagged `tag`, that one included.
    pub fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            assert!(!line.is_empty(), "closed; got {lines:?}");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends a command, returns every byte up to and including its tagged
    /// reply, which must be OK (for replies that are not UTF-8).
    pub fn command_bytes(&mut self, tag: &str, line: &str) -> Vec<u8> {
        self.send(format!("{tag} {line}\r\n").as_bytes());
        let reply = self.until_bytes(format!("{tag} ").as_bytes());
        let body = reply.strip_suffix(b"\n").unwrap_or(&reply);
        let last = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        assert!(
            reply[last..].starts_with(format!("{tag} OK").as_bytes()),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        reply
    }

    /// Every byte up to and including the first line starting with `end`.
    pub fn until_bytes(&mut self, end: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self.reader.read_until(b'\n', &mut out).expect("read");
            assert!(n > 0, "closed; got {}", String::from_utf8_lossy(&out));
            if out[start..].starts_with(end) {
                return out;
            }
        }
    }

    /// Every byte until the server closes the connection.
    pub fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read to the end");
        rest
    }

    /// The next line, empty once the connection is closed.
    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line
    }
}

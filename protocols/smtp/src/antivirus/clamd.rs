//! ClamAV's clamd as a second virus scanner, after the built-in one: its
//! address ([`Address`]), one blocking INSTREAM exchange within a deadline
//! ([`instream`]), and the listener's handle on it ([`Clamd`]) with its
//! metric. The wire format is [`wire`], sans-IO.
//!
//! The exchange uses std sockets and blocks: the session runs it on the
//! blocking pool, never on a shard. Every step (connecting, each write,
//! each read) is bounded by what is left of the timeout, so a clamd that
//! hangs costs at most the timeout; any failure is a [`ClamdError`], which
//! the session answers with `451 4.3.0` (the client keeps the message and
//! tries again).
//!
//! Metric ([`Clamd::register_metrics`]):
//! `cairn_smtp_clamd_scans_total{result="clean|infected|failed"}`.

pub mod wire;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, Opts};

use super::Verdict;
use wire::{Answer, ReplyError};

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Its `LocalSocket`.
    Unix(PathBuf),
    /// Its `TCPSocket`, as `host:port`.
    Tcp(String),
}

impl Address {
    /// Reads `unix:/path/to/clamd.ctl` or `tcp:host:port`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(path) = value.strip_prefix("unix:") {
            if path.starts_with('/') {
                return Ok(Address::Unix(PathBuf::from(path)));
            }
        } else if let Some(address) = value.strip_prefix("tcp:") {
            let port = address
                .rsplit_once(':')
                .map(|(_, port)| port.parse::<u16>());
            if matches!(port, Some(Ok(p)) if p != 0) {
                return Ok(Address::Tcp(address.to_string()));
            }
        }
        Err(format!(
            "{value:?} is not \"unix:/path/to/clamd.ctl\" or \"tcp:host:port\""
        ))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp(address) => write!(f, "tcp:{address}"),
        }
    }
}

/// Why a scan by clamd gave no answer.
#[derive(Debug)]
pub enum ClamdError {
    /// clamd could not be reached.
    Connect(io::Error),
    /// The connection failed midway (or clamd closed it without a reply).
    Io(io::Error),
    /// The timeout passed.
    Timeout,
    /// clamd answered with an error, or with something else than a reply.
    Reply(ReplyError),
}

impl fmt::Display for ClamdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdError::Connect(e) => write!(f, "cannot connect to clamd: {e}"),
            ClamdError::Io(e) => write!(f, "clamd connection failed: {e}"),
            ClamdError::Timeout => f.write_str("clamd did not answer in time"),
            ClamdError::Reply(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClamdError {}

/// A connected socket of either kind.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn open(address: &Address, deadline: Instant) -> Result<Conn, ClamdError> {
        match address {
            Address::Unix(path) => UnixStream::connect(path)
                .map(Conn::Unix)
                .map_err(ClamdError::Connect),
            Address::Tcp(address) => {
                let targets = address.to_socket_addrs().map_err(ClamdError::Connect)?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                for target in targets {
                    let left = left(deadline)?;
                    match TcpStream::connect_timeout(&target, left) {
                        Ok(stream) => return Ok(Conn::Tcp(stream)),
                        Err(e) if timed_out(&e) => return Err(ClamdError::Timeout),
                        Err(e) => last = e,
                    }
                }
                Err(ClamdError::Connect(last))
            }
        }
    }

    /// Bounds the next read and write by what is left until `deadline`.
    fn bound(&self, deadline: Instant) -> Result<(), ClamdError> {
        let left = Some(left(deadline)?);
        match self {
            Conn::Unix(s) => s.set_read_timeout(left).and(s.set_write_timeout(left)),
            Conn::Tcp(s) => s.set_read_timeout(left).and(s.set_write_timeout(left)),
        }
        .map_err(ClamdError::Io)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.write_all(bytes),
            Conn::Tcp(s) => s.write_all(bytes),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

/// What is left until `deadline`, or [`ClamdError::Timeout`].
fn left(deadline: Instant) -> Result<Duration, ClamdError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(ClamdError::Timeout),
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Scans `data` with clamd at `address`: one connection, one INSTREAM,
/// all within `timeout`. Blocking.
pub fn instream(address: &Address, data: &[u8], timeout: Duration) -> Result<Answer, ClamdError> {
    let deadline = Instant::now() + timeout;
    let mut conn = Conn::open(address, deadline)?;
    let request = wire::request(data, wire::CHUNK);
    // clamd answers a stream over its limit at once and closes: a failed
    // write may still leave that reply to read.
    let mut write_error = None;
    for piece in request.chunks(wire::CHUNK) {
        conn.bound(deadline)?;
        if let Err(e) = conn.write_all(piece) {
            if timed_out(&e) {
                return Err(ClamdError::Timeout);
            }
            write_error = Some(e);
            break;
        }
    }
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        conn.bound(deadline)?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(buf.get(..n).unwrap_or_default());
                if let Some(len) = wire::reply_len(&reply) {
                    reply.truncate(len);
                    break;
                }
                if reply.len() > wire::MAX_REPLY {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(ClamdError::Timeout),
            Err(e) => return Err(ClamdError::Io(write_error.unwrap_or(e))),
        }
    }
    if reply.is_empty() {
        let e = write_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "clamd closed without a reply")
        });
        return Err(ClamdError::Io(e));
    }
    wire::parse_reply(&reply).map_err(ClamdError::Reply)
}

/// A listener's clamd: where, how long a scan may take, and its counts.
#[derive(Debug)]
pub struct Clamd {
    address: Address,
    timeout: Duration,
    scans: IntCounterVec,
    clean: IntCounter,
    infected: IntCounter,
    failed: IntCounter,
}

impl Clamd {
    pub fn new(address: Address, timeout: Duration) -> Self {
        // A constant, valid definition: this cannot fail.
        let scans = IntCounterVec::new(
            Opts::new(
                "cairn_smtp_clamd_scans_total",
                "Messages scanned by clamd, by result.",
            ),
            &["result"],
        )
        .unwrap_or_else(|e| unreachable!("metric definition: {e}"));
        Self {
            address,
            timeout,
            clean: scans.with_label_values(&["clean"]),
            infected: scans.with_label_values(&["infected"]),
            failed: scans.with_label_values(&["failed"]),
            scans,
        }
    }

    /// Exposes the counts at `/metrics` (call once).
    pub fn register_metrics(&self, metrics: &cairn_shards::metrics::Metrics) {
        metrics.register(&self.scans);
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Scans one message, counting the result. Blocking for up to the
    /// timeout: call it on the blocking pool.
    pub fn scan(&self, message: &[u8]) -> Result<Verdict, ClamdError> {
        match instream(&self.address, message, self.timeout) {
            Ok(Answer::Clean) => {
                self.clean.inc();
                Ok(Verdict::Clean)
            }
            Ok(Answer::Found(name)) => {
                self.infected.inc();
                Ok(Verdict::Infected {
                    name,
                    part: "message (clamd)".to_string(),
                })
            }
            Err(e) => {
                self.failed.inc();
                Err(e)
            }
        }
    }

    /// Counts a scan that could not run (the blocking pool lost it).
    pub fn count_failed(&self) {
        self.failed.inc();
    }

    /// Scans so far: (clean, infected, failed).
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.clean.get(), self.infected.get(), self.failed.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::antivirus::testing::ClamdServer;

    const MARKER: &str = "cairn-clamd-unit-marker";

    fn hex(text: &str) -> String {
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("unix:/run/clamav/clamd.ctl"),
            Ok(Address::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            Address::parse("tcp:127.0.0.1:3310"),
            Ok(Address::Tcp("127.0.0.1:3310".into()))
        );
        for bad in ["unix:clamd.ctl", "tcp:localhost", "tcp:host:0", "3310", ""] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        let shown = Address::parse("tcp:[::1]:3310").expect("v6").to_string();
        assert_eq!(shown, "tcp:[::1]:3310");
    }

    /// The client against a real clamd, over both sockets: clean, found
    /// (in a base64 attachment, which clamd decodes), over the size
    /// limit, and clamd gone.
    #[test]
    fn real_clamd_finds_its_signature_and_failures_are_errors() {
        let ndb = format!("Cairn.Unit.Ndb:0:*:{}\n", hex(MARKER));
        let Some(mut server) = ClamdServer::start(&[("cairn.ndb", &ndb)]) else {
            return;
        };
        let attachment = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(format!("xx{MARKER}xx"))
        };
        let infected = format!(
            "From: a@remote.test\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {attachment}\r\n--b--\r\n"
        );
        let clean = b"From: a@remote.test\r\nSubject: hello\r\n\r\nhello\r\n";
        for address in [server.unix(), server.tcp()] {
            let clamd = Clamd::new(address.clone(), Duration::from_secs(20));
            assert_eq!(clamd.scan(clean).expect("scanned"), Verdict::Clean);
            match clamd.scan(infected.as_bytes()).expect("scanned") {
                Verdict::Infected { name, .. } => {
                    assert_eq!(name, "Cairn.Unit.Ndb.UNOFFICIAL", "{address}")
                }
                other => panic!("{address}: {other:?}"),
            }
            let big = vec![b'a'; ClamdServer::STREAM_MAX_LENGTH + 1];
            match clamd.scan(&big) {
                Err(ClamdError::Reply(ReplyError::SizeLimit)) => {}
                other => panic!("{address}: {other:?}"),
            }
            assert_eq!(clamd.counts(), (1, 1, 1), "{address}");
        }
        let (unix, tcp) = (server.unix(), server.tcp());
        server.stop();
        for address in [unix, tcp] {
            match instream(&address, clean, Duration::from_secs(5)) {
                Err(ClamdError::Connect(_)) => {}
                other => panic!("{address}: {other:?}"),
            }
        }
    }

    /// A clamd that accepts and never answers is a timeout.
    #[test]
    fn a_silent_clamd_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = Address::Tcp(listener.local_addr().expect("addr").to_string());
        match instream(&address, b"hello", Duration::from_millis(300)) {
            Err(ClamdError::Timeout) => {}
            other => panic!("{other:?}"),
        }
        drop(listener);
    }
}

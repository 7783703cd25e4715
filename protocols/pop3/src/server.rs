//! The POP3 server on one shard: the I/O around a [`Session`] (reading and
//! framing lines, writing replies, STLS, streaming RETR and TOP, the
//! UPDATE state's expunge), the login that moves a session to the shard
//! owning its account, and that shard's side, which takes the session
//! over ([`Moved`]).
//!
//! Input is read into one buffer and framed there; replies collect in an
//! output buffer written when the input runs dry, so a pipelined batch
//! (RFC 2449 PIPELINING) is answered in order with one write. When the
//! appliance stops, a session waiting for a command gets `-ERR
//! [SYS/TEMP]` and is closed, its deletions not applied.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_shards::mesh::{MeshEndpoint, MeshError};
use cairn_shards::metrics::{Outcome, ServiceMetrics};
use cairn_shards::stream::{MovedStream, Stream};
use cairn_shards::time::timeout;
use cairn_shards::{ConnectionTracker, Shutdown};
use cairn_storage::directory::sasl::Credentials;
use cairn_storage::mailbox::flags::DELETED;
use cairn_storage::mailbox::{BlobRef, FlagAction, Flags, MailError};
use cairn_storage::services::Services;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

use crate::codec::{self, err, ok, DotStuffer, Frame, LineFramer, RespCode};
use crate::maildrop::{Locks, Maildrop};
use crate::session::{Next, Session};
use crate::{Pop3Mesh, Pop3Options};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes of a message stuffed and written at a time (RETR, TOP).
const WRITE_CHUNK: usize = 64 * 1024;

/// A session on its way to the shard that owns its account, after its
/// credentials were checked: the connection, the bytes read from it but
/// not used yet (pipelined commands), and the session's counters.
pub struct Moved {
    stream: MovedStream,
    account: String,
    pending: Vec<u8>,
    counters: (u32, u32),
}

impl fmt::Debug for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Moved")
            .field("peer", &self.stream.peer())
            .field("account", &self.account)
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// What every session on this shard shares.
struct Inner {
    services: Services,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: Pop3Options,
    metrics: ServiceMetrics,
    locks: Locks,
    endpoint: Rc<MeshEndpoint<Moved, ()>>,
    /// The appliance's stop, which ends sessions waiting for a command.
    shutdown: std::cell::RefCell<Option<Shutdown>>,
    /// The shard's live connections, which sessions moved here join.
    tracker: std::cell::RefCell<Option<ConnectionTracker>>,
}

impl Inner {
    fn conn(&self, stream: Stream, pending: Vec<u8>) -> Conn {
        Conn::new(
            stream,
            pending,
            self.options.max_line,
            self.shutdown.borrow().clone(),
        )
    }
}

/// The POP3 server of one shard. Cheap to clone. Keep one alive on every
/// shard for as long as the node runs: dropping the last one leaves the
/// mesh, and sessions can no longer move to this shard.
#[derive(Clone)]
pub struct Pop3Server {
    inner: Rc<Inner>,
}

impl Pop3Server {
    /// Joins `mesh` as this shard (every shard must, in the same order
    /// relative to other meshes) and takes the sessions other shards move
    /// here. `tls` enables STLS (and is what an implicit-TLS listener
    /// used for its streams).
    pub async fn start(
        services: Services,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: Pop3Options,
        metrics: ServiceMetrics,
        mesh: &Pop3Mesh,
    ) -> Result<Self, MeshError> {
        let endpoint = Rc::new(mesh.join(services.shard).await?);
        let inner = Rc::new(Inner {
            services,
            tls,
            options,
            metrics,
            locks: Locks::new(),
            endpoint: endpoint.clone(),
            shutdown: Default::default(),
            tracker: Default::default(),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        endpoint.serve(move |from, moved: Moved| {
            let weak = weak.clone();
            async move {
                match weak.upgrade() {
                    Some(inner) => {
                        let guard = inner
                            .tracker
                            .borrow()
                            .as_ref()
                            .map(ConnectionTracker::enter);
                        cairn_shards::spawn_detached(async move {
                            resume(inner, moved).await;
                            drop(guard);
                        })
                    }
                    None => {
                        tracing::warn!(from, ?moved, "pop3: a session moved to a stopped server")
                    }
                }
            }
        })?;
        Ok(Self { inner })
    }

    /// Serves one connection, from the greeting to QUIT (or a timeout, or
    /// the client going away, or the session moving to another shard).
    pub async fn serve(&self, stream: Stream, peer: SocketAddr) {
        let inner = &self.inner;
        let session = Session::new(&inner.options, inner.tls.is_some(), stream.is_tls());
        let mut out = Vec::with_capacity(1024);
        session.greeting(&mut out);
        let conn = inner.conn(stream, Vec::new());
        run(inner, conn, session, out, peer).await;
    }

    /// Sessions waiting for a command when `shutdown` is raised get
    /// `-ERR [SYS/TEMP] server shutting down` and are closed. Sessions
    /// moved here from another shard count in `tracker`, the connections
    /// this shard's stop waits for.
    pub fn with_shutdown(self, shutdown: Shutdown, tracker: ConnectionTracker) -> Self {
        *self.inner.shutdown.borrow_mut() = Some(shutdown);
        *self.inner.tracker.borrow_mut() = Some(tracker);
        self
    }

    /// Whether `account`'s maildrop is locked by a session on this shard.
    pub fn is_locked(&self, account: &str) -> bool {
        self.inner.locks.is_locked(account)
    }
}

/// A session moved here: takes the connection over, locks the maildrop
/// and answers the login.
async fn resume(inner: Rc<Inner>, moved: Moved) {
    let Moved {
        stream,
        account,
        pending,
        counters,
    } = moved;
    let peer = stream.peer();
    let stream = stream.attach();
    let mut session = Session::new(&inner.options, inner.tls.is_some(), stream.is_tls());
    session.restore_counters(counters);
    let mut out = Vec::with_capacity(1024);
    open(&inner, &mut session, &account, &mut out);
    let conn = inner.conn(stream, pending);
    run(&inner, conn, session, out, peer).await;
}

/// Why a session ends.
#[derive(Debug)]
enum End {
    /// The client closed, or we did (QUIT, too many errors).
    Closed,
    /// The autologout timer ran out.
    Timeout,
    /// The session went on another shard.
    Moved,
    /// The appliance is stopping.
    Shutdown,
    Io(io::Error),
}

/// The socket and its read buffer.
struct Conn {
    stream: Option<Stream>,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    framer: LineFramer,
    max_line: usize,
    /// Ends the wait for the next command when raised.
    shutdown: Option<Shutdown>,
}

impl Conn {
    fn new(stream: Stream, pending: Vec<u8>, max_line: usize, shutdown: Option<Shutdown>) -> Self {
        let mut buf = pending;
        buf.reserve(READ_CHUNK);
        Self {
            stream: Some(stream),
            buf,
            pos: 0,
            framer: LineFramer::new(max_line),
            max_line,
            shutdown,
        }
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    async fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), End> {
        if out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Closed)?;
        stream.write_all(out).await.map_err(End::Io)?;
        stream.flush().await.map_err(End::Io)?;
        out.clear();
        Ok(())
    }

    /// Writes what is pending, then reads more input within `wait` or
    /// until the appliance stops (every read waits for a command line).
    async fn fill(&mut self, out: &mut Vec<u8>, wait: Duration) -> Result<(), End> {
        self.flush(out).await?;
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let stream = self.stream.as_mut().ok_or(End::Closed)?;
        let spare = self.buf.get_mut(len..).unwrap_or_default();
        let read = async { Some(timeout(wait, stream.read(spare)).await) };
        let stopping = async {
            match &self.shutdown {
                Some(shutdown) => shutdown.wait().await,
                None => future::pending().await,
            }
            None
        };
        let n = match future::or(read, stopping).await {
            None => Err(End::Shutdown),
            Some(Ok(Ok(0))) => Err(End::Closed),
            Some(Ok(Ok(n))) => Ok(n),
            Some(Ok(Err(e))) => Err(End::Io(e)),
            Some(Err(_)) => Err(End::Timeout),
        };
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        n.map(|_| ())
    }

    /// The next line as a range of `buf` (valid until the next read), or
    /// `None` for a line over the limit (already skipped).
    async fn next_line(
        &mut self,
        out: &mut Vec<u8>,
        wait: Duration,
    ) -> Result<Option<(usize, usize)>, End> {
        loop {
            let unread = self.buf.get(self.pos..).unwrap_or_default();
            match self.framer.next(unread) {
                Frame::Line { len } => {
                    let start = self.pos;
                    self.consume(len);
                    return Ok(Some((start, start + len)));
                }
                Frame::TooLong { consumed } => {
                    self.consume(consumed);
                    return Ok(None);
                }
                Frame::Pending { consumed } => {
                    self.consume(consumed);
                    self.fill(out, wait).await?;
                }
            }
        }
    }

    fn line(&self, (start, end): (usize, usize)) -> &[u8] {
        self.buf.get(start..end).unwrap_or_default()
    }
}

/// Runs a session to its end, and closes the connection unless it moved.
async fn run(
    inner: &Rc<Inner>,
    mut conn: Conn,
    mut session: Session,
    mut out: Vec<u8>,
    peer: SocketAddr,
) {
    let ended = drive(inner, &mut conn, &mut session, &mut out, peer).await;
    let last = match ended {
        End::Moved => return,
        End::Timeout => Some((None, "Autologout; idle for too long")),
        // RFC 3206 §4: a temporary failure on the server's side.
        End::Shutdown => Some((Some(RespCode::SysTemp), "server shutting down")),
        End::Closed => None,
        End::Io(e) => {
            tracing::debug!(%peer, error = %e, "pop3: connection error");
            out.clear();
            None
        }
    };
    if let Some((code, text)) = last {
        err(&mut out, code, text);
    }
    let _ = conn.flush(&mut out).await;
    // The lock goes before the connection closes: a client that
    // reconnects at once finds the maildrop free.
    drop(session);
    if let Some(mut stream) = conn.stream.take() {
        let _ = stream.close().await;
    }
}

async fn drive(
    inner: &Rc<Inner>,
    conn: &mut Conn,
    session: &mut Session,
    out: &mut Vec<u8>,
    peer: SocketAddr,
) -> End {
    let wait = inner.options.timeout;
    loop {
        let range = match conn.next_line(out, wait).await {
            Ok(r) => r,
            Err(end) => return end,
        };
        let next = session.input(range.map(|r| conn.line(r)), out);
        let step = match next {
            Next::Continue => Ok(()),
            Next::Close => return End::Closed,
            Next::StartTls => starttls(inner, conn, session, out, peer).await,
            Next::Login(credentials) => login(inner, conn, session, out, peer, credentials).await,
            Next::Retrieve { blob, size, lines } => {
                retrieve(inner, conn, out, blob, size, lines).await
            }
            Next::Update(uids) => {
                let started = Instant::now();
                let account = session.account().unwrap_or_default().to_string();
                let result = update(inner, &account, &uids).await;
                let outcome = if result.is_ok() {
                    Outcome::Ok
                } else {
                    Outcome::ServerError
                };
                inner.metrics.request(outcome, started.elapsed());
                session.updated(result, out);
                return End::Closed;
            }
        };
        if let Err(end) = step {
            return end;
        }
    }
}

async fn starttls(
    inner: &Inner,
    conn: &mut Conn,
    session: &mut Session,
    out: &mut Vec<u8>,
    peer: SocketAddr,
) -> Result<(), End> {
    conn.flush(out).await?;
    let Some(config) = inner.tls.clone() else {
        return Err(End::Closed);
    };
    // Nothing sent before the handshake counts (RFC 2595 §4; the
    // command-injection attack of CVE-2011-0411).
    conn.buf.clear();
    conn.pos = 0;
    conn.framer = LineFramer::new(conn.max_line);
    let stream = conn.stream.take().ok_or(End::Closed)?;
    match stream.accept_tls(config).await {
        Ok(tls) => {
            conn.stream = Some(tls);
            session.tls_started();
            Ok(())
        }
        Err(e) => {
            inner.metrics.tls_failures.inc();
            tracing::debug!(%peer, error = %e, "pop3: STLS handshake failed");
            Err(End::Closed)
        }
    }
}

/// Checks credentials and, when they are good, opens the maildrop here or
/// moves the session to the shard that owns it.
async fn login(
    inner: &Inner,
    conn: &mut Conn,
    session: &mut Session,
    out: &mut Vec<u8>,
    peer: SocketAddr,
    c: Credentials,
) -> Result<(), End> {
    let started = Instant::now();
    let directory = &inner.services.directory;
    let principal = match directory
        .authenticate_via(c.user, c.password, peer.ip(), Some("pop3".into()))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            inner
                .metrics
                .request(Outcome::ClientError, started.elapsed());
            return match session.login_refused(&e, out) {
                Next::Close => Err(End::Closed),
                _ => Ok(()),
            };
        }
    };
    let account = principal.address;
    match directory.class_of(account.clone()).await {
        Ok(class) if !class.features.pop3 => {
            inner
                .metrics
                .request(Outcome::ClientError, started.elapsed());
            session.refuse_login(
                RespCode::Auth,
                "POP3 access is not enabled for this account",
                out,
            );
            return Ok(());
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(%account, error = %e, "pop3: cannot read the account's class of service");
            inner
                .metrics
                .request(Outcome::ServerError, started.elapsed());
            session.refuse_login(
                RespCode::SysTemp,
                "Cannot check the account; try again later",
                out,
            );
            return Ok(());
        }
    }
    inner.metrics.request(Outcome::Ok, started.elapsed());
    let owner = inner.services.mail.owner(&account);
    if owner == inner.services.shard {
        open(inner, session, &account, out);
        return Ok(());
    }
    if matches!(conn.stream, Some(Stream::Relayed { .. })) {
        // A session relayed from another shard cannot move twice.
        session.refuse_login(
            RespCode::SysTemp,
            "Cannot switch accounts on this connection; reconnect",
            out,
        );
        return Ok(());
    }
    // The answer to the login comes from the owning shard.
    conn.flush(out).await?;
    let pending = conn.unread().to_vec();
    let stream = conn.stream.take().ok_or(End::Closed)?;
    let stream = match stream.detach() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "pop3: cannot move a session");
            return Err(End::Closed);
        }
    };
    let moved = Moved {
        stream,
        account,
        pending,
        counters: session.counters(),
    };
    if let Err(e) = inner.endpoint.send(owner, moved).await {
        tracing::warn!(%peer, owner, error = %e, "pop3: cannot move a session");
    }
    Err(End::Moved)
}

/// Locks and reads the maildrop of an account this shard owns.
fn open(inner: &Inner, session: &mut Session, account: &str, out: &mut Vec<u8>) {
    let Some(lock) = inner.locks.try_lock(account) else {
        session.refuse_login(RespCode::InUse, "Maildrop already locked", out);
        return;
    };
    match inner
        .services
        .mailstore
        .read_mailbox(account, "INBOX", Maildrop::snapshot)
    {
        Ok(maildrop) => session.logged_in(maildrop, lock, out),
        Err(e) => {
            tracing::warn!(%account, error = %e, "pop3: cannot read the maildrop");
            session.refuse_login(RespCode::SysTemp, "Cannot open the maildrop", out);
        }
    }
}

/// RETR (`lines` None) or TOP: the message, byte-stuffed, written in
/// chunks as it is stuffed. RETR streams the message from storage chunk
/// by chunk (the stuffer keeps whether a chunk starts a line); TOP reads
/// it whole and sends its head.
async fn retrieve(
    inner: &Inner,
    conn: &mut Conn,
    out: &mut Vec<u8>,
    blob: BlobRef,
    size: u64,
    lines: Option<u32>,
) -> Result<(), End> {
    let started = Instant::now();
    let store = &inner.services.mailstore;
    let refuse = |out: &mut Vec<u8>, e: MailError| {
        tracing::warn!(error = %e, "pop3: cannot read a message");
        inner
            .metrics
            .request(Outcome::ServerError, started.elapsed());
        err(out, Some(RespCode::SysTemp), "Cannot read the message");
    };
    let mut stuffer = DotStuffer::new();
    // TOP reads the message as a range (no hash check: it stops at the
    // top's end, most often within the first chunk); RETR reads it whole.
    let mut top = lines.map(codec::Top::new);
    let range = top.as_ref().map(|_| 0..size);
    let mut reader = match store.body_reader(&blob, range).await {
        Ok(reader) => reader,
        Err(e) => {
            refuse(out, e);
            return Ok(());
        }
    };
    match top {
        Some(_) => ok(out, "Top of message follows"),
        None => ok(out, &format!("{size} octets")),
    }
    while let Some(chunk) = reader.next_chunk().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Part of the message went out and cannot be taken back:
                // the reply is left unfinished (no final `.`) and the
                // connection ends, without UPDATE.
                tracing::error!(error = %e, "pop3: a message failed part-way");
                inner
                    .metrics
                    .request(Outcome::ServerError, started.elapsed());
                let e = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                return Err(End::Io(e));
            }
        };
        let (part, done) = match &mut top {
            Some(top) => top.take(&chunk),
            None => (&chunk[..], false),
        };
        stuffer.feed(part, out);
        if out.len() >= WRITE_CHUNK {
            conn.flush(out).await?;
        }
        if done {
            break;
        }
    }
    stuffer.finish(out);
    inner.metrics.request(Outcome::Ok, started.elapsed());
    Ok(())
}

/// The UPDATE state: flags the marked messages `\Deleted` and expunges
/// exactly those, durably. Returns how many went.
async fn update(inner: &Inner, account: &str, uids: &[u32]) -> Result<usize, String> {
    if uids.is_empty() {
        return Ok(0);
    }
    let store = &inner.services.mailstore;
    let deleted = Flags::new(DELETED, &[]);
    store
        .store_flags(account, "INBOX", uids, FlagAction::Add, &deleted, None)
        .await
        .map_err(|e| e.to_string())?;
    let gone = store
        .expunge(account, "INBOX", Some(uids))
        .await
        .map_err(|e| e.to_string())?;
    Ok(gone.len())
}

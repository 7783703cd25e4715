//! One SMTP connection: the state machine from the greeting to QUIT, over
//! a plain or TLS [`Stream`].
//!
//! Input is read into one buffer and framed there ([`crate::codec`]);
//! commands borrow from it. Replies collect in an output buffer that is
//! written when the input runs dry, so that a pipelined batch (RFC 2920)
//! is answered in order with one write. After STARTTLS every byte the
//! client sent before the handshake is thrown away (RFC 3207 §4.2, the
//! CVE-2011-0411 injection) and the session starts over.

use std::cell::Cell;
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_shards::metrics::Outcome;
use cairn_shards::stream::Stream;
use cairn_shards::time::timeout;
use cairn_shards::Shutdown;
use cairn_storage::directory::auth::AuthError;
use cairn_storage::directory::sasl::Credentials;
use cairn_storage::queue::{NewMessage, Notify};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::antivirus::{self, Verdict};
use crate::auth::{self, Exchange, Step};
use crate::authenticity::{self, DmarcAction};
use crate::codec::command::{
    self, Command, Mechanism, BODY_BINARYMIME, NOTIFY_DELAY, NOTIFY_FAILURE, NOTIFY_NEVER,
    NOTIFY_SUCCESS, RET_FULL,
};
use crate::codec::data::{BodyError, DataReader};
use crate::codec::reply::{write_multiline, Reply};
use crate::{delivery, headers, spam, Inner, Mode};
use cairn_lines::{trim_eol, Frame, LineFramer};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Bodies up to this size are scanned for viruses on the shard (tens of
/// microseconds); bigger ones on the blocking pool.
const INLINE_SCAN_MAX: usize = 8 * 1024;

/// Why a session ends.
#[derive(Debug)]
enum End {
    /// The client closed, or we did (QUIT, too many errors).
    Closed,
    /// A read deadline passed.
    Timeout,
    /// The appliance is stopping (seen between commands).
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
    /// Ends the wait for the next command when raised.
    shutdown: Option<Shutdown>,
}

impl Conn {
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

    /// Writes what is pending, then reads more input within `wait`; a
    /// wait for a command also ends when the appliance stops.
    async fn fill(&mut self, out: &mut Vec<u8>, wait: Duration, command: bool) -> Result<(), End> {
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
            match (&self.shutdown, command) {
                (Some(shutdown), true) => shutdown.wait().await,
                _ => std::future::pending().await,
            }
            None
        };
        let n = match futures_lite::future::or(read, stopping).await {
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
                    self.fill(out, wait, true).await?;
                }
            }
        }
    }

    fn line(&self, (start, end): (usize, usize)) -> &[u8] {
        self.buf.get(start..end).unwrap_or_default()
    }
}

/// A mail transaction, from MAIL to the final reply.
struct Tx {
    from: String,
    binary: bool,
    /// RCPT commands accepted.
    rcpts: usize,
    /// The recipients as given (for `Received: … for <…>` when there is
    /// one, and a quarantined message's envelope).
    rcpt_to: Vec<String>,
    /// Accounts to deliver to, without duplicates.
    accounts: Vec<String>,
    /// Recipients in other domains, for the outbound queue.
    remote: Vec<(String, Option<String>, Notify)>,
    /// The DSN parameters of MAIL (RFC 3461): ENVID and RET=FULL.
    envid: Option<String>,
    ret_full: bool,
    seen: HashSet<String>,
    /// A BDAT body being collected.
    chunks: Option<Vec<u8>>,
    /// The collected BDAT bytes went over the size limit.
    overflow: bool,
    /// A BDAT failed: only RSET helps (RFC 3030 §2).
    bdat_failed: bool,
    /// The size declared with MAIL (SIZE=), 0 when none.
    declared_size: usize,
    /// The smallest class-of-service limit among the recipients (0 = none).
    class_limit: u64,
}

/// What the session does after a command.
enum Next {
    Continue,
    Data,
    Bdat { size: usize, last: bool },
    Auth(Mechanism, Option<String>),
    StartTls,
    Close,
}

/// Everything but the socket, so that a command borrowed from the read
/// buffer can be handled with the state mutable.
struct State<'a> {
    inner: &'a Inner,
    out: Vec<u8>,
    peer: SocketAddr,
    tls: bool,
    helo: Option<String>,
    esmtp: bool,
    user: Option<String>,
    auth_failures: u32,
    bad_commands: u32,
    tx: Option<Tx>,
}

/// A body after the virus scanners.
enum Scanned {
    Clean(Vec<u8>),
    Infected {
        body: Vec<u8>,
        /// The signature's name.
        name: String,
        /// Where it was found.
        part: String,
    },
}

/// What screening adds to a message from another server.
#[derive(Default)]
struct Screened {
    /// Header fields to add (authentication results, the spam score).
    headers: String,
    /// Tagged as spam: it goes to the recipients' Junk.
    junk: bool,
    /// Accepted by the score: each recipient's Bayes classifier may still
    /// send its copy to Junk (`delivery::deliver_classified`).
    bayes: Option<spam::BayesPolicy>,
}

/// Who is told what about a recipient (RFC 3461 `NOTIFY=`; without it,
/// failures and delays).
fn notify_of(flags: u64) -> Notify {
    if flags & NOTIFY_NEVER != 0 {
        return Notify::never();
    }
    if flags & (NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY) == 0 {
        return Notify::default();
    }
    Notify {
        success: flags & NOTIFY_SUCCESS != 0,
        failure: flags & NOTIFY_FAILURE != 0,
        delay: flags & NOTIFY_DELAY != 0,
    }
}

/// Serves one connection.
pub(crate) async fn run(inner: &Inner, stream: Stream, peer: SocketAddr) {
    let tls = stream.is_tls();
    let mut conn = Conn {
        stream: Some(stream),
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
        framer: LineFramer::new(inner.options.max_line_length),
        shutdown: inner.shutdown.borrow().clone(),
    };
    let mut st = State {
        inner,
        out: Vec::with_capacity(1024),
        peer,
        tls,
        helo: None,
        esmtp: false,
        user: None,
        auth_failures: 0,
        bad_commands: 0,
        tx: None,
    };
    let ended = session(&mut conn, &mut st).await;
    match ended {
        End::Timeout => {
            st.reply(Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", inner.options.hostname),
            ));
            let _ = conn.flush(&mut st.out).await;
        }
        End::Shutdown => {
            st.reply(Reply::new(
                421,
                "4.3.2",
                format!("{} Service shutting down", inner.options.hostname),
            ));
            let _ = conn.flush(&mut st.out).await;
        }
        End::Closed => {
            let _ = conn.flush(&mut st.out).await;
        }
        End::Io(e) => tracing::debug!(%peer, error = %e, "smtp: connection error"),
    }
    if let Some(mut stream) = conn.stream.take() {
        let _ = stream.close().await;
    }
}

async fn session(conn: &mut Conn, st: &mut State<'_>) -> End {
    let greeting = format!("{} ESMTP Cairn", st.inner.options.hostname);
    st.reply(Reply::bare(220, greeting));
    let wait = st.inner.options.timeouts.command;
    loop {
        let range = match conn.next_line(&mut st.out, wait).await {
            Ok(r) => r,
            Err(end) => return end,
        };
        let next = match range {
            None => {
                st.reply(Reply::new(500, "5.5.2", "Line too long"));
                st.bad_command()
            }
            Some(range) => match command::parse(conn.line(range)) {
                Err(e) => {
                    st.reply(e.reply());
                    st.bad_command()
                }
                Ok(cmd) => st.command(cmd).await,
            },
        };
        let step = match next {
            Next::Continue => Ok(()),
            Next::Close => return End::Closed,
            Next::Data => data(conn, st).await,
            Next::Bdat { size, last } => bdat(conn, st, size, last).await,
            Next::Auth(mechanism, initial) => authenticate(conn, st, mechanism, initial).await,
            Next::StartTls => starttls(conn, st).await,
        };
        if let Err(end) = step {
            return end;
        }
    }
}

async fn data(conn: &mut Conn, st: &mut State<'_>) -> Result<(), End> {
    let max = usize::try_from(st.inner.options.max_message_size).unwrap_or(usize::MAX);
    let mut reader = DataReader::new(max);
    loop {
        let used = reader.feed(conn.unread());
        conn.consume(used);
        if reader.is_done() {
            break;
        }
        conn.fill(&mut st.out, st.inner.options.timeouts.data_block, false)
            .await?;
    }
    st.finish(reader.finish()).await;
    Ok(())
}

async fn bdat(conn: &mut Conn, st: &mut State<'_>, size: usize, last: bool) -> Result<(), End> {
    let refusal = st.bdat_refusal();
    let mut left = size;
    loop {
        let unread = conn.unread();
        let n = left.min(unread.len());
        if refusal.is_none() {
            st.bdat_chunk(unread.get(..n).unwrap_or_default());
        }
        conn.consume(n);
        left -= n;
        if left == 0 {
            break;
        }
        conn.fill(&mut st.out, st.inner.options.timeouts.data_block, false)
            .await?;
    }
    st.bdat_end(refusal, size, last).await;
    Ok(())
}

async fn authenticate(
    conn: &mut Conn,
    st: &mut State<'_>,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<(), End> {
    let (mut exchange, mut step) = match Exchange::start(mechanism, initial.as_deref()) {
        Ok(started) => started,
        Err(reply) => {
            st.reply(reply);
            return Ok(());
        }
    };
    let credentials = loop {
        match step {
            Step::Done(credentials) => break credentials,
            Step::Challenge(challenge) => {
                st.reply(Reply::bare(334, challenge));
                let wait = st.inner.options.timeouts.command;
                let Some(range) = conn.next_line(&mut st.out, wait).await? else {
                    st.reply(Reply::new(
                        500,
                        "5.5.6",
                        "Authentication exchange line is too long",
                    ));
                    return Ok(());
                };
                let line = String::from_utf8_lossy(trim_eol(conn.line(range))).into_owned();
                step = match exchange.next(&line) {
                    Ok(step) => step,
                    Err(reply) => {
                        st.reply(reply);
                        return Ok(());
                    }
                };
            }
        }
    };
    if st.login(credentials).await {
        Ok(())
    } else {
        Err(End::Closed)
    }
}

async fn starttls(conn: &mut Conn, st: &mut State<'_>) -> Result<(), End> {
    conn.flush(&mut st.out).await?;
    let Some(config) = st.inner.tls.clone() else {
        return Err(End::Closed);
    };
    // RFC 3207 §4.2: nothing sent before the handshake counts.
    conn.buf.clear();
    conn.pos = 0;
    conn.framer = LineFramer::new(st.inner.options.max_line_length);
    let stream = conn.stream.take().ok_or(End::Closed)?;
    match stream.accept_tls(config).await {
        Ok(tls) => {
            conn.stream = Some(tls);
            st.tls = true;
            st.helo = None;
            st.esmtp = false;
            st.user = None;
            st.tx = None;
            Ok(())
        }
        Err(e) => {
            st.inner.metrics.tls_failures.inc();
            tracing::debug!(peer = %st.peer, error = %e, "smtp: STARTTLS handshake failed");
            Err(End::Closed)
        }
    }
}

thread_local! {
    static QUEUE_IDS: Cell<u64> = const { Cell::new(0) };
}

/// A queue id, unique on this node: time, shard and a per-shard counter.
fn queue_id(shard: usize) -> String {
    let n = QUEUE_IDS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    format!("{:X}{shard:02X}{n:06X}", headers::now())
}

impl State<'_> {
    fn reply(&mut self, reply: Reply) {
        reply.write(&mut self.out);
    }

    fn bad_command(&mut self) -> Next {
        self.bad_commands += 1;
        if self.bad_commands >= self.inner.options.max_bad_commands {
            self.reply(Reply::new(
                421,
                "4.7.0",
                "Too many errors; closing connection",
            ));
            Next::Close
        } else {
            Next::Continue
        }
    }

    fn sequence(&mut self, text: &'static str) -> Next {
        self.reply(Reply::new(503, "5.5.1", text));
        self.bad_command()
    }

    async fn command(&mut self, cmd: Command<'_>) -> Next {
        match cmd {
            Command::Ehlo(host) => self.hello(&host, true),
            Command::Helo(host) => self.hello(&host, false),
            Command::Mail(from) => {
                let (address, size, binary) = (
                    from.address.as_ref(),
                    from.size,
                    from.flags & BODY_BINARYMIME != 0,
                );
                let dsn = (
                    from.env_id.as_deref().map(str::to_string),
                    from.flags & RET_FULL != 0,
                );
                self.mail(address, size, binary, dsn).await
            }
            Command::Rcpt(to) => {
                let notify = notify_of(to.flags);
                self.rcpt(&to.address, to.orcpt.as_deref(), notify).await
            }
            Command::Data => {
                match &self.tx {
                    None => return self.sequence("Need MAIL command"),
                    Some(tx) if tx.accounts.is_empty() && tx.remote.is_empty() => {
                        return self.sequence("Need RCPT command (no valid recipients)")
                    }
                    Some(tx) if tx.binary => {
                        return self.sequence("BODY=BINARYMIME needs BDAT, not DATA")
                    }
                    Some(tx) if tx.chunks.is_some() || tx.bdat_failed => {
                        return self.sequence("DATA after BDAT; send RSET")
                    }
                    Some(_) => {}
                }
                self.reply(Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));
                Next::Data
            }
            Command::Bdat { size, last } => Next::Bdat { size, last },
            Command::Auth { mechanism, initial } => {
                if self.inner.mode != Mode::Submission {
                    self.reply(Reply::new(502, "5.5.1", "AUTH not available on this port"));
                    return self.bad_command();
                }
                if !self.tls {
                    self.reply(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                    return Next::Continue;
                }
                if self.helo.is_none() {
                    return self.sequence("Send EHLO first");
                }
                if self.user.is_some() {
                    return self.sequence("Already authenticated");
                }
                if self.tx.is_some() {
                    return self.sequence("AUTH not allowed during a mail transaction");
                }
                Next::Auth(mechanism, initial.map(|i| i.into_owned()))
            }
            Command::StartTls => {
                if self.tls {
                    return self.sequence("Already running TLS");
                }
                if self.inner.tls.is_none() {
                    self.reply(Reply::new(502, "5.5.1", "STARTTLS not available"));
                    return self.bad_command();
                }
                self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
                Next::StartTls
            }
            Command::Rset => {
                self.tx = None;
                self.reply(Reply::new(250, "2.0.0", "Ok"));
                Next::Continue
            }
            Command::Noop => {
                self.reply(Reply::new(250, "2.0.0", "Ok"));
                Next::Continue
            }
            Command::Vrfy => {
                self.reply(Reply::new(
                    252,
                    "2.5.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ));
                Next::Continue
            }
            Command::Expn => {
                self.reply(Reply::new(502, "5.5.1", "EXPN not available"));
                Next::Continue
            }
            Command::Help => {
                self.reply(Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH HELP",
                ));
                Next::Continue
            }
            Command::Quit => {
                self.reply(Reply::new(221, "2.0.0", "Bye"));
                Next::Close
            }
            Command::NotImplemented(name) => {
                self.reply(Reply::new(502, "5.5.1", format!("{name} not implemented")));
                Next::Continue
            }
        }
    }

    fn hello(&mut self, host: &str, esmtp: bool) -> Next {
        self.tx = None;
        self.helo = Some(host.to_string());
        self.esmtp = esmtp;
        let o = &self.inner.options;
        if !esmtp {
            let text = format!("{} Hello {host} [{}]", o.hostname, self.peer.ip());
            self.reply(Reply::bare(250, text));
            return Next::Continue;
        }
        let mut lines = vec![
            format!("{} Hello {host} [{}]", o.hostname, self.peer.ip()),
            "PIPELINING".to_string(),
            format!("SIZE {}", o.max_message_size),
            "8BITMIME".to_string(),
            "BINARYMIME".to_string(),
            "CHUNKING".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "DSN".to_string(),
        ];
        if self.inner.tls.is_some() && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.inner.mode == Mode::Submission && self.tls && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("HELP".to_string());
        write_multiline(&mut self.out, 250, "", &lines);
        Next::Continue
    }

    async fn mail(
        &mut self,
        from: &str,
        size: usize,
        binary: bool,
        (envid, ret_full): (Option<String>, bool),
    ) -> Next {
        if self.helo.is_none() {
            return self.sequence("Send EHLO or HELO first");
        }
        if self.inner.mode == Mode::Submission && self.user.is_none() {
            self.reply(Reply::new(530, "5.7.0", "Authentication required"));
            return Next::Continue;
        }
        if self.tx.is_some() {
            return self.sequence("Sender already specified");
        }
        if size as u64 > self.inner.options.max_message_size {
            self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            return Next::Continue;
        }
        if let Some(user) = &self.user {
            let user = user.clone();
            if let Err(reply) = delivery::check_sender(&self.inner.services, &user, from).await {
                self.reply(reply);
                return Next::Continue;
            }
        }
        let rate = self.inner.sender_rate.borrow().clone();
        if let Some(rate) = rate {
            let sender = match &self.user {
                Some(user) => user.clone(),
                None => self.peer.ip().to_string(),
            };
            if !rate.admit(&sender, std::time::Instant::now()) {
                self.reply(Reply::new(
                    450,
                    "4.7.1",
                    "Too many messages from you in the last minute; try again later",
                ));
                return Next::Continue;
            }
        }
        self.tx = Some(Tx {
            from: from.to_string(),
            binary,
            rcpts: 0,
            rcpt_to: Vec::new(),
            accounts: Vec::new(),
            remote: Vec::new(),
            envid,
            ret_full,
            seen: HashSet::new(),
            chunks: None,
            overflow: false,
            bdat_failed: false,
            declared_size: size,
            class_limit: 0,
        });
        self.reply(Reply::new(250, "2.1.0", "Ok"));
        Next::Continue
    }

    async fn rcpt(&mut self, address: &str, orcpt: Option<&str>, notify: Notify) -> Next {
        let max = self.inner.options.max_recipients;
        let services = &self.inner.services;
        let may_relay = self.inner.mode == Mode::Submission
            || self
                .inner
                .options
                .relay_networks
                .iter()
                .any(|net| net.contains(&self.peer.ip()));
        let Some(tx) = &mut self.tx else {
            return self.sequence("Need MAIL command");
        };
        if tx.chunks.is_some() {
            return self.sequence("RCPT after BDAT");
        }
        if address.is_empty() {
            self.reply(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
            return Next::Continue;
        }
        if tx.rcpts >= max {
            self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
            return Next::Continue;
        }
        match delivery::recipient(
            services,
            may_relay,
            &tx.from,
            address,
            tx.declared_size as u64,
        )
        .await
        {
            Ok(resolved)
                if resolved.max_message_size > 0
                    && tx.declared_size as u64 > resolved.max_message_size =>
            {
                // RFC 1870 §6.1: too big for this recipient only.
                self.reply(Reply::new(
                    552,
                    "5.3.4",
                    "Message too big for this recipient",
                ));
            }
            Ok(resolved) => {
                tx.class_limit = delivery::tighter(tx.class_limit, resolved.max_message_size);
                tx.rcpts += 1;
                tx.rcpt_to.push(address.to_string());
                for account in resolved.accounts {
                    if tx.seen.insert(account.clone()) {
                        tx.accounts.push(account);
                    }
                }
                // The ORCPT of the address the client gave; a list's
                // members get none of their own.
                let direct = resolved.remote.len() == 1;
                for remote in resolved.remote {
                    if tx.seen.insert(remote.to_ascii_lowercase()) {
                        let orcpt = orcpt.filter(|_| direct).map(str::to_string);
                        tx.remote.push((remote, orcpt, notify));
                    }
                }
                self.reply(Reply::new(250, "2.1.5", "Ok"));
            }
            Err(reply) => self.reply(reply),
        }
        Next::Continue
    }

    /// Why the BDAT about to come is refused, if it is (its bytes are
    /// read and dropped either way).
    fn bdat_refusal(&mut self) -> Option<Reply> {
        match &mut self.tx {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL command")),
            Some(tx) if tx.accounts.is_empty() && tx.remote.is_empty() => Some(Reply::new(
                503,
                "5.5.1",
                "Need RCPT command (no valid recipients)",
            )),
            Some(tx) if tx.bdat_failed => Some(Reply::new(
                503,
                "5.5.1",
                "A previous BDAT failed; send RSET",
            )),
            Some(tx) => {
                tx.chunks.get_or_insert_with(Vec::new);
                None
            }
        }
    }

    fn bdat_chunk(&mut self, bytes: &[u8]) {
        let max = self.inner.options.max_message_size;
        let Some(tx) = &mut self.tx else { return };
        let Some(chunks) = &mut tx.chunks else { return };
        if tx.overflow || (chunks.len() + bytes.len()) as u64 > max {
            tx.overflow = true;
            return;
        }
        chunks.extend_from_slice(bytes);
    }

    async fn bdat_end(&mut self, refusal: Option<Reply>, size: usize, last: bool) {
        if let Some(reply) = refusal {
            if let Some(tx) = &mut self.tx {
                tx.bdat_failed = true;
            }
            self.reply(reply);
            return;
        }
        let Some(tx) = &mut self.tx else { return };
        if tx.overflow {
            tx.bdat_failed = true;
            tx.chunks = None;
            self.inner
                .metrics
                .request(Outcome::ClientError, Duration::ZERO);
            self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            return;
        }
        if !last {
            self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
            return;
        }
        let body = tx.chunks.take().unwrap_or_default();
        self.finish(Ok(body)).await;
    }

    /// Ends the transaction with its body: checks it, delivers it, and
    /// answers.
    async fn finish(&mut self, body: Result<Vec<u8>, BodyError>) {
        let started = Instant::now();
        let Some(tx) = self.tx.take() else { return };
        let reply = match body {
            Err(BodyError::TooBig) => Err(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            )),
            Err(BodyError::Nul) => Err(Reply::new(550, "5.6.0", "Message contains NUL bytes")),
            Err(BodyError::BareLineEnding) => Err(Reply::new(
                550,
                "5.6.0",
                "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)",
            )),
            Ok(body) => match self.virus_check(&tx, body).await {
                Ok(Scanned::Clean(body)) => self.store(&tx, body).await,
                Ok(Scanned::Infected { body, name, part }) => {
                    self.infected(&tx, body, &name, &part).await
                }
                Err(reply) => Err(reply),
            },
        };
        let (outcome, reply) = match reply {
            Ok(reply) => (Outcome::Ok, reply),
            Err(reply) if reply.is_permanent() => (Outcome::ClientError, reply),
            Err(reply) => (Outcome::ServerError, reply),
        };
        self.inner.metrics.request(outcome, started.elapsed());
        self.reply(reply);
    }

    /// Scans a complete body with the listener's scanners, the built-in
    /// one first, then clamd when configured: the body back with the
    /// verdict, or `451 4.3.0` when a scan could not run (nothing stored;
    /// the client tries again).
    async fn virus_check(&self, tx: &Tx, body: Vec<u8>) -> Result<Scanned, Reply> {
        let o = &self.inner.options;
        let failed = || Reply::new(451, "4.3.0", "Virus scan failed; try again later");
        let mut body = body;
        if let Some(av) = o.antivirus.clone() {
            let (scanned, verdict) = if body.len() <= INLINE_SCAN_MAX {
                let verdict = av.scan(&body);
                (body, verdict)
            } else {
                let pool_av = av.clone();
                let job = self.inner.services.blocking.run(move || {
                    let av = pool_av;
                    let verdict = av.scan(&body);
                    (body, verdict)
                });
                match job.await {
                    Ok(done) => done,
                    Err(_) => {
                        av.count_failed();
                        tracing::error!(from = %tx.from, peer = %self.peer.ip(), "smtp: the virus scan failed");
                        return Err(failed());
                    }
                }
            };
            if let Verdict::Infected { name, part } = verdict {
                return Ok(Scanned::Infected {
                    body: scanned,
                    name,
                    part,
                });
            }
            body = scanned;
        }
        let Some(clamd) = o.clamd.clone() else {
            return Ok(Scanned::Clean(body));
        };
        let pool_clamd = clamd.clone();
        let job = self.inner.services.blocking.run(move || {
            let verdict = pool_clamd.scan(&body);
            (body, verdict)
        });
        match job.await {
            Ok((body, Ok(Verdict::Clean))) => Ok(Scanned::Clean(body)),
            Ok((body, Ok(Verdict::Infected { name, part }))) => {
                Ok(Scanned::Infected { body, name, part })
            }
            Ok((_, Err(e))) => {
                tracing::error!(from = %tx.from, peer = %self.peer.ip(), clamd = %clamd.address(), error = %e, "smtp: the clamd scan failed");
                Err(failed())
            }
            Err(_) => {
                clamd.count_failed();
                tracing::error!(from = %tx.from, peer = %self.peer.ip(), "smtp: the clamd scan was lost");
                Err(failed())
            }
        }
    }

    /// Answers an infected message as the listener says: refused with
    /// `554 5.7.1` (nothing stored), or quarantined. Audit-logged.
    async fn infected(
        &self,
        tx: &Tx,
        body: Vec<u8>,
        name: &str,
        part: &str,
    ) -> Result<Reply, Reply> {
        let o = &self.inner.options;
        let audit = |outcome: &str| {
            tracing::warn!(
                target: "audit",
                from = %tx.from,
                peer = %self.peer.ip(),
                user = self.user.as_deref().unwrap_or(""),
                recipients = tx.rcpt_to.len(),
                signature = %name,
                part = %part,
                size = body.len(),
                "smtp: virus found, message {outcome}"
            );
        };
        let antivirus::VirusAction::Quarantine(account) = &o.virus_action else {
            audit("rejected");
            return Err(Reply::new(
                554,
                "5.7.1",
                format!("Message rejected: virus found ({name})"),
            ));
        };
        audit("quarantined");
        let reply = self.quarantine(tx, body, name, account).await?;
        if let Some(av) = &o.antivirus {
            av.count_quarantined();
        }
        Ok(reply)
    }

    /// Delivers an infected message only to `account`'s INBOX, with the
    /// verdict and the envelope in `X-Cairn-Quarantine*` fields before our
    /// `Received:` (the sender's own such fields dropped); durable when it
    /// returns `Ok`. A quarantine account
    /// that cannot take it is the operator's to fix: `451 4.3.0`.
    async fn quarantine(
        &self,
        tx: &Tx,
        body: Vec<u8>,
        name: &str,
        account: &str,
    ) -> Result<Reply, Reply> {
        let services = &self.inner.services;
        let unavailable = || {
            Reply::new(
                451,
                "4.3.0",
                "Temporary failure storing the message; try again later",
            )
        };
        let accounts = match delivery::recipient(services, false, &tx.from, account, 0).await {
            Ok(resolved) if !resolved.accounts.is_empty() => resolved.accounts,
            Ok(_) => {
                tracing::error!(%account, "smtp: the quarantine account is not a local account");
                return Err(unavailable());
            }
            Err(reply) => {
                tracing::error!(%account, reply = ?reply, "smtp: the quarantine account cannot take mail");
                return Err(unavailable());
            }
        };
        let now = headers::now();
        let id = queue_id(services.shard);
        let mut fields = format!(
            "X-Cairn-Quarantine: virus {name}\r\nX-Cairn-Quarantine-From: <{}>\r\n",
            tx.from
        );
        for rcpt in &tx.rcpt_to {
            fields.push_str(&format!("X-Cairn-Quarantine-To: <{rcpt}>\r\n"));
        }
        let mut message = fields.into_bytes();
        message.extend_from_slice(&self.received(tx, &id, now));
        // Only ours count: a sender's own X-Cairn-Quarantine* fields go.
        let ours = |name: &str| {
            name.get(..18)
                .is_some_and(|p| p.eq_ignore_ascii_case("X-Cairn-Quarantine"))
        };
        message.extend_from_slice(&headers::without_fields(&body, ours));
        drop(body);
        let message: Arc<[u8]> = Arc::from(message);
        let timeouts = self.inner.options.timeouts;
        match timeout(
            timeouts.data_end,
            delivery::deliver(services, &accounts, "INBOX", message, now),
        )
        .await
        {
            Ok(Ok(())) => {
                tracing::info!(%id, from = %tx.from, %account, "smtp: quarantined");
                Ok(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")))
            }
            Ok(Err(reply)) => {
                tracing::error!(%account, reply = ?reply, "smtp: cannot store in quarantine");
                Err(unavailable())
            }
            Err(_) => Err(Reply::new(
                451,
                "4.3.0",
                "Timed out storing the message; try again later",
            )),
        }
    }

    /// Our `Received:` field for the message of `tx`.
    fn received(&self, tx: &Tx, id: &str, now: i64) -> Vec<u8> {
        headers::received(&headers::Trace {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            esmtp: self.esmtp,
            tls: self.tls,
            authenticated: self.user.is_some(),
            peer: self.peer.ip(),
            by: &self.inner.options.hostname,
            id,
            for_rcpt: if tx.rcpts == 1 {
                tx.rcpt_to.first().map(String::as_str)
            } else {
                None
            },
            now,
        })
        .into_bytes()
    }

    async fn store(&self, tx: &Tx, body: Vec<u8>) -> Result<Reply, Reply> {
        if tx.class_limit > 0 && body.len() as u64 > tx.class_limit {
            return Err(Reply::new(
                552,
                "5.3.4",
                "Message too big for a recipient's class of service",
            ));
        }
        let o = &self.inner.options;
        let now = headers::now();
        let id = queue_id(self.inner.services.shard);
        let mut message = self.received(tx, &id, now);
        if let Some(user) = &self.user {
            let results = headers::authentication_results(&o.hostname, user, &tx.from);
            message.extend_from_slice(results.as_bytes());
        }
        let screened = self.screen(tx, &body).await?;
        message.extend_from_slice(screened.headers.as_bytes());
        if screened.headers.is_empty() {
            message.extend_from_slice(&body);
        } else {
            // Only our verdict counts: a sender's own X-Spam-* go.
            message.extend_from_slice(&headers::without_fields(&body, spam::is_spam_header));
        }
        drop(body);
        let message: Arc<[u8]> = Arc::from(self.dkim_sign(tx, message).await?);
        let mailbox = if screened.junk { "Junk" } else { "INBOX" };
        let delivered = timeout(o.timeouts.data_end, async {
            if !tx.accounts.is_empty() {
                let services = &self.inner.services;
                match &screened.bayes {
                    Some(policy) => {
                        let (accounts, message) = (&tx.accounts, message.clone());
                        delivery::deliver_classified(services, accounts, message, now, policy)
                            .await?
                    }
                    None => {
                        delivery::deliver(services, &tx.accounts, mailbox, message.clone(), now)
                            .await?
                    }
                }
            }
            if !tx.remote.is_empty() {
                self.enqueue(tx, message, now).await?;
            }
            Ok(())
        })
        .await;
        match delivered {
            Ok(Ok(())) => {
                tracing::debug!(%id, from = %tx.from, local = tx.accounts.len(), remote = tx.remote.len(), "smtp: accepted");
                Ok(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")))
            }
            Ok(Err(reply)) => Err(reply),
            Err(_) => Err(Reply::new(
                451,
                "4.3.0",
                "Timed out storing the message; try again later",
            )),
        }
    }

    /// Screens mail from another server (not a logged-in user's): SPF,
    /// DKIM and DMARC give its `Authentication-Results:` and DMARC's
    /// policy may refuse it or send it to Junk; then its spam score
    /// decides between delivering it, tagging it into Junk, and refusing
    /// it (`550 5.7.1`, nothing stored).
    async fn screen(&self, tx: &Tx, body: &[u8]) -> Result<Screened, Reply> {
        let mut screened = Screened::default();
        let o = &self.inner.options;
        if self.user.is_some() {
            return Ok(screened);
        }
        let resolver = self.inner.resolver.borrow().clone();
        let helo = self.helo.as_deref().unwrap_or("");
        if o.verify_senders {
            let checked = authenticity::check(
                &resolver,
                &self.inner.services.blocking,
                &o.hostname,
                self.peer.ip(),
                helo,
                &tx.from,
                Arc::from(body),
            )
            .await;
            screened.headers.push_str(&checked.header);
            match checked.dmarc {
                DmarcAction::Reject if o.enforce_dmarc => {
                    tracing::info!(target: "audit", from = %tx.from, peer = %self.peer.ip(), "smtp: rejected by the sender domain's DMARC policy");
                    return Err(Reply::new(
                        550,
                        "5.7.1",
                        "Message rejected: the sender's domain asks to refuse mail failing DMARC",
                    ));
                }
                DmarcAction::Quarantine | DmarcAction::Reject => screened.junk = true,
                DmarcAction::None => {}
            }
        }
        if !o.spam.enabled {
            return Ok(screened);
        }
        let facts = spam::Facts {
            client_ip: self.peer.ip(),
            helo,
            mail_from: &tx.from,
            authenticated: false,
        };
        let verdict = spam::score(&o.spam, &resolver, &facts, body).await;
        for note in &verdict.notes {
            tracing::info!(peer = %self.peer.ip(), %note, "smtp: spam check");
        }
        match verdict.action {
            spam::Action::Reject => {
                let tests: Vec<&str> = verdict.tests().collect();
                tracing::info!(
                    target: "audit",
                    from = %tx.from,
                    peer = %self.peer.ip(),
                    score = verdict.score,
                    tests = %tests.join(","),
                    "smtp: message rejected as spam"
                );
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    format!("Message rejected as spam (score {:.1})", verdict.score),
                ));
            }
            spam::Action::Tag => screened.junk = true,
            spam::Action::Accept => {}
        }
        screened.headers.push_str(&verdict.headers(&o.hostname));
        if !screened.junk {
            screened.bayes = o.spam.bayes;
        }
        Ok(screened)
    }

    /// Prepends a DKIM signature to a submitted message for other domains
    /// when the sender's domain has a key (signed on the blocking pool);
    /// when signing fails the message goes unsigned and the error is
    /// logged.
    async fn dkim_sign(&self, tx: &Tx, message: Vec<u8>) -> Result<Vec<u8>, Reply> {
        if self.user.is_none() || tx.remote.is_empty() {
            return Ok(message);
        }
        let Some((_, domain)) = tx.from.rsplit_once('@') else {
            return Ok(message);
        };
        let domain = domain.to_ascii_lowercase();
        let key = match self.inner.services.directory.dkim_key(domain.clone()).await {
            Ok(Some(key)) => key,
            Ok(None) => return Ok(message),
            Err(e) => {
                tracing::warn!(%domain, error = %e, "smtp: cannot read the DKIM key; sending unsigned");
                return Ok(message);
            }
        };
        let job = self.inner.services.blocking.run(move || {
            let signature = crate::dkim::sign(&domain, &key, &message);
            (message, signature, domain)
        });
        match job.await {
            Ok((message, Ok(header), _)) => {
                let mut signed = header.into_bytes();
                signed.extend_from_slice(&message);
                Ok(signed)
            }
            Ok((message, Err(e), domain)) => {
                tracing::warn!(%domain, error = %e, "smtp: DKIM signing failed; sending unsigned");
                Ok(message)
            }
            Err(_) => Err(Reply::new(
                451,
                "4.3.0",
                "Temporary failure signing the message; try again later",
            )),
        }
    }

    /// Puts the message in this shard's outbound queue for the remote
    /// recipients; durable when it returns `Ok`.
    async fn enqueue(&self, tx: &Tx, message: Arc<[u8]>, now: i64) -> Result<(), Reply> {
        let new = NewMessage {
            sender: tx.from.clone(),
            recipients: tx.remote.clone(),
            envid: tx.envid.clone(),
            ret_full: tx.ret_full,
            now,
        };
        match self
            .inner
            .services
            .queue
            .local()
            .enqueue(new, message)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(from = %tx.from, error = %e, "smtp: cannot queue for remote delivery");
                Err(Reply::new(
                    451,
                    "4.3.0",
                    "Temporary failure queueing the message; try again later",
                ))
            }
        }
    }

    /// Checks credentials; false when the session must close.
    async fn login(&mut self, c: Credentials) -> bool {
        if !c.authorize_as.is_empty() && !c.authorize_as.eq_ignore_ascii_case(&c.user) {
            return self.auth_failed(Reply::new(535, "5.7.8", "Cannot authorize as another user"));
        }
        let result = self
            .inner
            .services
            .directory
            .authenticate_via(c.user, c.password, self.peer.ip(), Some("smtp".into()))
            .await;
        match result {
            Ok(principal) => {
                self.user = Some(principal.address);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
                true
            }
            Err(e @ (AuthError::Invalid | AuthError::Disabled)) => {
                self.auth_failed(auth::refused_reply(&e))
            }
            Err(e) => {
                self.reply(auth::refused_reply(&e));
                true
            }
        }
    }

    /// Counts a failed login and answers `reply`, or `421` (and false)
    /// once the session has failed too often.
    fn auth_failed(&mut self, reply: Reply) -> bool {
        self.auth_failures += 1;
        if self.auth_failures >= self.inner.options.max_auth_failures {
            self.reply(Reply::new(
                421,
                "4.7.0",
                "Too many authentication failures; closing connection",
            ));
            false
        } else {
            self.reply(reply);
            true
        }
    }
}

//! One connection to a server: connect, greeting, EHLO (HELO when EHLO is
//! refused), STARTTLS as the [`TlsMode`] says, AUTH when configured, then
//! any number of transactions and QUIT.
//!
//! Replies are read into one bounded buffer and parsed there
//! ([`ReplyParser`]); commands are formatted by the sans-IO
//! [`plan`](super::command::plan) and the body by the [`DotStuffer`].
//! Every wait has the deadline of RFC 5321 §4.5.3.2 ([`ClientTimeouts`]).
//! A timeout, an I/O error or a malformed reply leaves the connection out
//! of step: it refuses further transactions and the caller drops it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cairn_shards::stream::Stream;
use cairn_shards::time::timeout;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use rustls::pki_types::ServerName;

use super::body::DotStuffer;
use super::capabilities::Capabilities;
use super::command::plan;
use super::reply::{Parsed, ReplyParser, ServerReply};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// The size of the pieces the body is written in.
const BODY_CHUNK: usize = 64 * 1024;
/// The longest wait for the reply to QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// When the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never: plain text throughout.
    None,
    /// STARTTLS when the server offers it, accepting whatever certificate
    /// the `tls_config` accepts (RFC 7435; Postfix's `may`). A server
    /// that does not offer STARTTLS, or refuses it, gets plain text; a
    /// handshake that fails is an error for this connection (the caller
    /// may retry with [`TlsMode::None`]).
    Opportunistic,
    /// STARTTLS must be offered and succeed.
    Required,
    /// TLS from the first byte (port 465, RFC 8314).
    Implicit,
}

/// Deadlines of RFC 5321 §4.5.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// The TCP connection: 30 s (not in the RFC).
    pub connect: Duration,
    /// The `220` greeting: 5 minutes.
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT and RSET replies: 5 minutes.
    pub command: Duration,
    /// The reply to DATA (`354`): 2 minutes.
    pub data_init: Duration,
    /// Each piece of the body written: 3 minutes.
    pub data_block: Duration,
    /// The reply after the body's final dot: 10 minutes.
    pub data_end: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(5 * 60),
            command: Duration::from_secs(5 * 60),
            data_init: Duration::from_secs(2 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_end: Duration::from_secs(10 * 60),
        }
    }
}

/// How to talk to one server (or smarthost).
#[derive(Clone)]
pub struct ClientOptions {
    /// Our host name, for EHLO/HELO.
    pub helo: String,
    pub tls: TlsMode,
    /// TLS settings ([`cairn_shards::stream::client_config`]).
    pub tls_config: Arc<rustls::ClientConfig>,
    /// User and password for AUTH PLAIN (LOGIN when PLAIN is not
    /// offered), after TLS.
    pub auth: Option<(String, String)>,
    /// Sends the credentials over a plain-text connection too.
    pub allow_plain_auth: bool,
    pub timeouts: ClientTimeouts,
}

impl ClientOptions {
    /// Opportunistic TLS, no AUTH, the RFC's deadlines.
    pub fn new(helo: impl Into<String>, tls_config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            helo: helo.into(),
            tls: TlsMode::Opportunistic,
            tls_config,
            auth: None,
            allow_plain_auth: false,
            timeouts: ClientTimeouts::default(),
        }
    }
}

/// Without the password.
impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("helo", &self.helo)
            .field("tls", &self.tls)
            .field("auth_user", &self.auth.as_ref().map(|(user, _)| user))
            .field("allow_plain_auth", &self.allow_plain_auth)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// One message's envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; empty for the null sender `<>` (bounces).
    pub from: String,
    pub recipients: Vec<String>,
    /// DSN `ENVID` (RFC 3461), sent when the server offers DSN.
    pub envid: Option<String>,
    /// DSN `RET`: `FULL` (true) or `HDRS` (false).
    pub ret_full: Option<bool>,
    /// DSN `NOTIFY` for every recipient, e.g. `FAILURE,DELAY` or `NEVER`.
    pub notify: Option<String>,
}

/// What the server said to one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Per recipient, in the envelope's order: the reply to its RCPT,
    /// `Ok` when positive. A recipient refused here (an address that
    /// cannot be sent) has a reply made here.
    pub recipients: Vec<Result<ServerReply, ServerReply>>,
    /// The reply to DATA or to the end of the body: `Ok` when the
    /// message was taken for the accepted recipients. `None` when no
    /// recipient was accepted.
    pub data: Option<Result<ServerReply, ServerReply>>,
}

/// Why a connection or a transaction failed.
#[derive(Debug)]
pub enum ClientError {
    /// The TCP connection failed.
    Connect(io::Error),
    /// A deadline passed, at this stage.
    Timeout(&'static str),
    /// Reading or writing failed, or the server closed the connection.
    Io(io::Error),
    /// The server broke the protocol (a malformed reply, an unexpected
    /// one), or the connection is no longer usable.
    Protocol(String),
    /// The greeting was not `220`.
    Greeting(ServerReply),
    /// EHLO/HELO, MAIL, STARTTLS (when required) or AUTH was refused.
    Refused(ServerReply),
    /// Cairn refused to send the message to this server (over its SIZE,
    /// a non-ASCII address it cannot take, a bad address): the reply is
    /// made here, as a delivery status notification would show it.
    Local(ServerReply),
    /// STARTTLS was required but not offered, the handshake failed, or
    /// credentials would have gone over plain text.
    Tls(String),
}

impl ClientError {
    /// Whether trying again later cannot help: a 5xx reply. Everything
    /// else (4xx, network trouble, TLS) is worth another try.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Greeting(r) | ClientError::Refused(r) | ClientError::Local(r) => {
                r.is_permanent()
            }
            _ => false,
        }
    }

    /// The server's (or the local) reply, where there is one.
    pub fn reply(&self) -> Option<&ServerReply> {
        match self {
            ClientError::Greeting(r) | ClientError::Refused(r) | ClientError::Local(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Timeout(stage) => write!(f, "timed out waiting for {stage}"),
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
            ClientError::Greeting(r) => write!(f, "greeting refused: {r}"),
            ClientError::Refused(r) => write!(f, "refused: {r}"),
            ClientError::Local(r) => write!(f, "not sent: {r}"),
            ClientError::Tls(why) => write!(f, "TLS: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) | ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// An open SMTP connection, ready for transactions.
pub struct Connection {
    /// `None` only while STARTTLS swaps it, or after a failed handshake.
    stream: Option<Stream>,
    /// Bytes read and not yet parsed: at most a partial line of
    /// [`MAX_LINE`](super::reply::MAX_LINE) and one read.
    input: Vec<u8>,
    parser: ReplyParser,
    /// Commands (and pieces of the body) being written.
    out: Vec<u8>,
    capabilities: Capabilities,
    timeouts: ClientTimeouts,
    /// Why the connection can carry no more commands.
    broken: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("tls", &self.is_tls())
            .field("capabilities", &self.capabilities)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr`, reads the greeting, says EHLO, starts TLS as
    /// `options.tls` says (checking the certificate for `server_name`,
    /// and sending it as SNI) and authenticates when `options.auth` is
    /// set.
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        options: &ClientOptions,
    ) -> Result<Connection, ClientError> {
        let t = options.timeouts;
        if !helo_ok(&options.helo) {
            return Err(ClientError::Protocol(format!(
                "bad HELO name {:?}",
                options.helo
            )));
        }
        let tcp = match timeout(t.connect, cairn_shards::net::connect_tcp(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ClientError::Connect(e)),
            Err(_) => return Err(ClientError::Timeout("connect")),
        };
        let mut stream = Stream::Plain(tcp);
        if options.tls == TlsMode::Implicit {
            stream = stream
                .connect_tls(options.tls_config.clone(), tls_name(server_name)?)
                .await
                .map_err(|e| ClientError::Tls(format!("handshake failed: {e}")))?;
        }
        let mut conn = Connection {
            stream: Some(stream),
            input: Vec::with_capacity(READ_CHUNK),
            parser: ReplyParser::new(),
            out: Vec::with_capacity(1024),
            capabilities: Capabilities::default(),
            timeouts: t,
            broken: None,
        };
        match conn.start(server_name, options).await {
            Ok(()) => Ok(conn),
            Err(e) => {
                // The server is in step after a refusal: say goodbye.
                if e.reply().is_some() || matches!(e, ClientError::Tls(_)) {
                    conn.quit().await;
                }
                Err(e)
            }
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    /// What the server offered in its (last) EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Sends one message. The connection stays usable for the next one
    /// after a refusal (RSET follows a failed transaction); after an
    /// error other than [`ClientError::Refused`] or [`ClientError::Local`]
    /// it is not.
    ///
    /// MAIL, every RCPT and DATA go in one write when the server offers
    /// PIPELINING (RFC 2920). MAIL carries `SIZE=` when SIZE is offered
    /// (a message over the server's limit is refused here, permanently),
    /// `BODY=8BITMIME` for a body with 8-bit bytes when offered (such a
    /// body goes as it is otherwise), `SMTPUTF8` when an address needs it
    /// (refused here when not offered), and the DSN parameters when DSN
    /// is offered. `body` is the message, its line ends CRLF (bare ones
    /// are made CRLF); it is dot-stuffed on the way out.
    pub async fn send(&mut self, envelope: &Envelope, body: &[u8]) -> Result<Outcome, ClientError> {
        if let Some(why) = &self.broken {
            return Err(ClientError::Protocol(format!(
                "the connection is no longer usable: {why}"
            )));
        }
        let result = self.transaction(envelope, body).await;
        if let Err(e) = &result {
            if e.reply().is_none() && self.broken.is_none() {
                self.broken = Some(e.to_string());
            }
        }
        result
    }

    /// Says QUIT, waits a little for the `221`, and closes.
    pub async fn quit(mut self) {
        let wait = QUIT_WAIT.min(self.timeouts.command);
        if self.broken.is_none() && self.stream.is_some() {
            let _ = self.command("QUIT", wait, "QUIT").await;
        }
        if let Some(mut stream) = self.stream.take() {
            let _ = timeout(wait, stream.close()).await;
        }
    }

    /// Greeting, EHLO, TLS and AUTH.
    async fn start(
        &mut self,
        server_name: &str,
        options: &ClientOptions,
    ) -> Result<(), ClientError> {
        let greeting = self.reply(self.timeouts.greeting, "the greeting").await?;
        if greeting.code / 100 != 2 {
            return Err(ClientError::Greeting(greeting));
        }
        self.hello(&options.helo).await?;
        let required = match options.tls {
            TlsMode::None | TlsMode::Implicit => None,
            TlsMode::Opportunistic => Some(false),
            TlsMode::Required => Some(true),
        };
        if let Some(required) = required {
            self.starttls(server_name, options, required).await?;
        }
        if let Some((user, password)) = &options.auth {
            if !self.is_tls() && !options.allow_plain_auth {
                return Err(ClientError::Tls(
                    "refusing to send credentials over a plain-text connection".into(),
                ));
            }
            self.authenticate(user, password).await?;
        }
        Ok(())
    }

    /// EHLO, or HELO when EHLO gets a 5xx.
    async fn hello(&mut self, helo: &str) -> Result<(), ClientError> {
        let wait = self.timeouts.command;
        let reply = self.command(&format!("EHLO {helo}"), wait, "EHLO").await?;
        if reply.is_positive() {
            self.capabilities = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(ClientError::Refused(reply));
        }
        let reply = self.command(&format!("HELO {helo}"), wait, "HELO").await?;
        if !reply.is_positive() {
            return Err(ClientError::Refused(reply));
        }
        self.capabilities = Capabilities::default();
        Ok(())
    }

    async fn starttls(
        &mut self,
        server_name: &str,
        options: &ClientOptions,
        required: bool,
    ) -> Result<(), ClientError> {
        if !self.capabilities.starttls {
            if required {
                return Err(ClientError::Tls(
                    "the server does not offer STARTTLS".into(),
                ));
            }
            return Ok(());
        }
        let reply = self
            .command("STARTTLS", self.timeouts.command, "STARTTLS")
            .await?;
        if reply.is_positive() && reply.code != 220 {
            return Err(ClientError::Protocol(format!(
                "unexpected reply to STARTTLS: {reply}"
            )));
        }
        if !reply.is_positive() {
            if required {
                return Err(ClientError::Refused(reply));
            }
            // Refused: opportunistic TLS goes on in plain text.
            return Ok(());
        }
        // RFC 3207 §4.2: nothing the server sent before the handshake
        // counts (the reverse of CVE-2011-0411).
        self.input.clear();
        self.parser.reset();
        let name = tls_name(server_name)?;
        let stream = self
            .stream
            .take()
            .ok_or_else(|| ClientError::Protocol("the connection is closed".into()))?;
        let tls = stream
            .connect_tls(options.tls_config.clone(), name)
            .await
            .map_err(|e| ClientError::Tls(format!("handshake failed: {e}")))?;
        self.stream = Some(tls);
        // RFC 3207 §4.2: forget what the server said before; ask again.
        self.hello(&options.helo).await
    }

    /// AUTH PLAIN with an initial response, or AUTH LOGIN.
    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let wait = self.timeouts.command;
        let reply = if self.capabilities.offers_auth("PLAIN") {
            let token = b64(&format!("\0{user}\0{password}"));
            let reply = self
                .command(&format!("AUTH PLAIN {token}"), wait, "AUTH")
                .await?;
            if reply.code == 334 {
                // The initial response was ignored: cancel (RFC 4954 §4).
                let _ = self.command("*", wait, "AUTH").await?;
                return Err(ClientError::Protocol(
                    "the server ignored AUTH PLAIN's initial response".into(),
                ));
            }
            reply
        } else if self.capabilities.offers_auth("LOGIN") {
            let mut reply = self.command("AUTH LOGIN", wait, "AUTH").await?;
            for answer in [user, password] {
                if reply.code != 334 {
                    break;
                }
                reply = self.command(&b64(answer), wait, "AUTH").await?;
            }
            if reply.code == 334 {
                let _ = self.command("*", wait, "AUTH").await?;
                return Err(ClientError::Protocol(
                    "AUTH LOGIN asked for more than a user and a password".into(),
                ));
            }
            reply
        } else {
            return Err(ClientError::Protocol(format!(
                "the server offers no AUTH PLAIN or LOGIN (offers: {})",
                self.capabilities.auth.join(" ")
            )));
        };
        if reply.code / 100 == 2 {
            Ok(())
        } else if reply.code / 100 == 3 {
            Err(ClientError::Protocol(format!(
                "unexpected reply to AUTH: {reply}"
            )))
        } else {
            Err(ClientError::Refused(reply))
        }
    }

    /// MAIL, RCPTs, DATA and the body.
    async fn transaction(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<Outcome, ClientError> {
        let plan = plan(envelope, body, &self.capabilities).map_err(ClientError::Local)?;
        let t = self.timeouts;
        // Per recipient, its answer: refused here, or the server's.
        let mut answers: Vec<Option<Result<ServerReply, ServerReply>>> = plan
            .rcpts
            .iter()
            .map(|r| r.as_ref().err().map(|refused| Err(refused.clone())))
            .collect();
        let to_send: Vec<(usize, &str)> = plan
            .rcpts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|line| (i, line.as_str())))
            .collect();
        if to_send.is_empty() {
            return Ok(outcome(answers, None, None));
        }

        // With PIPELINING, MAIL, every RCPT and DATA in one write.
        let pipelining = self.capabilities.pipelining;
        self.out.clear();
        self.out.extend_from_slice(plan.mail.as_bytes());
        if pipelining {
            for (_, line) in &to_send {
                self.out.extend_from_slice(line.as_bytes());
            }
            self.out.extend_from_slice(b"DATA\r\n");
        }
        self.write_out(t.command, "MAIL").await?;

        let mail = self.reply(t.command, "the reply to MAIL").await?;
        if !mail.is_positive() {
            if pipelining {
                // The RCPTs' and DATA's replies (503s) follow.
                for _ in 0..=to_send.len() {
                    if self.broken.is_some() {
                        break;
                    }
                    self.reply(t.command, "the replies after MAIL").await?;
                }
            }
            self.reset().await;
            return Err(ClientError::Refused(mail));
        }

        let mut accepted = 0;
        for &(i, line) in &to_send {
            if !pipelining {
                self.out.clear();
                self.out.extend_from_slice(line.as_bytes());
                self.write_out(t.command, "RCPT").await?;
            }
            let reply = self.reply(t.command, "the reply to RCPT").await?;
            let closing = reply.code == 421;
            if reply.is_positive() {
                accepted += 1;
            }
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(if reply.is_positive() {
                    Ok(reply.clone())
                } else {
                    Err(reply.clone())
                });
            }
            if closing {
                // The server is going away: no more replies will come.
                return Ok(outcome(answers, Some(reply), None));
            }
        }

        if !pipelining && accepted > 0 {
            self.out.clear();
            self.out.extend_from_slice(b"DATA\r\n");
            self.write_out(t.command, "DATA").await?;
        }
        let go_ahead = if pipelining || accepted > 0 {
            Some(self.reply(t.data_init, "the reply to DATA").await?)
        } else {
            None
        };
        let data = match go_ahead {
            Some(reply) if reply.code == 354 && accepted > 0 => {
                self.write_body(body).await?;
                let end = self.reply(t.data_end, "the reply after the body").await?;
                Some(if end.is_positive() { Ok(end) } else { Err(end) })
            }
            Some(reply) if reply.code == 354 => {
                // No recipient, yet the server wants the body: an empty
                // one, its reply thrown away.
                self.out.clear();
                self.out.extend_from_slice(b".\r\n");
                self.write_out(t.data_block, "the empty body").await?;
                self.reply(t.data_end, "the reply after the body").await?;
                self.reset().await;
                None
            }
            Some(reply) if accepted > 0 => {
                self.reset().await;
                Some(Err(reply))
            }
            // Every recipient refused (and, pipelined, DATA's refusal read).
            _ => {
                self.reset().await;
                None
            }
        };
        Ok(outcome(answers, None, data))
    }

    /// Writes the body dot-stuffed, in pieces, and the final dot.
    async fn write_body(&mut self, body: &[u8]) -> Result<(), ClientError> {
        let mut stuffer = DotStuffer::new();
        let mut rest = body;
        loop {
            self.out.clear();
            let used = stuffer.encode(rest, &mut self.out, BODY_CHUNK);
            rest = rest.get(used..).unwrap_or_default();
            if rest.is_empty() {
                stuffer.finish(&mut self.out);
            }
            self.write_out(self.timeouts.data_block, "a block of the body")
                .await?;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// RSET after a failed transaction; a connection whose RSET fails is
    /// no longer used.
    async fn reset(&mut self) {
        if self.broken.is_some() {
            return;
        }
        match self.command("RSET", self.timeouts.command, "RSET").await {
            Ok(reply) if reply.is_positive() => {}
            Ok(reply) => self.broken = Some(format!("RSET refused: {reply}")),
            Err(e) => self.broken = Some(e.to_string()),
        }
    }

    /// Writes one command line and reads its reply.
    async fn command(
        &mut self,
        line: &str,
        wait: Duration,
        stage: &'static str,
    ) -> Result<ServerReply, ClientError> {
        self.out.clear();
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.write_out(wait, stage).await?;
        self.reply(wait, stage).await
    }

    /// Writes and flushes `out` within `wait`.
    async fn write_out(&mut self, wait: Duration, stage: &'static str) -> Result<(), ClientError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| ClientError::Protocol("the connection is closed".into()))?;
        let out = &self.out;
        let written = timeout(wait, async {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Io(e)),
            Err(_) => Err(ClientError::Timeout(stage)),
        }
    }

    /// The next reply, within `wait`. A `421` marks the connection as
    /// closing.
    async fn reply(
        &mut self,
        wait: Duration,
        stage: &'static str,
    ) -> Result<ServerReply, ClientError> {
        let reply = match timeout(wait, self.read_reply()).await {
            Ok(reply) => reply?,
            Err(_) => return Err(ClientError::Timeout(stage)),
        };
        if reply.code == 421 {
            self.broken = Some(format!("the server is closing the connection: {reply}"));
        }
        Ok(reply)
    }

    async fn read_reply(&mut self) -> Result<ServerReply, ClientError> {
        loop {
            match self.parser.parse(&self.input) {
                Ok(Parsed::Reply { reply, consumed }) => {
                    self.input.drain(..consumed.min(self.input.len()));
                    return Ok(reply);
                }
                Ok(Parsed::Pending { consumed }) => {
                    self.input.drain(..consumed.min(self.input.len()));
                }
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| ClientError::Protocol("the connection is closed".into()))?;
            let len = self.input.len();
            self.input.resize(len + READ_CHUNK, 0);
            let read = stream
                .read(self.input.get_mut(len..).unwrap_or_default())
                .await;
            self.input.truncate(len + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(ClientError::Io(e)),
            }
        }
    }
}

/// The outcome of a transaction; recipients without an answer (the
/// server closed with `closing` first) get that reply.
fn outcome(
    answers: Vec<Option<Result<ServerReply, ServerReply>>>,
    closing: Option<ServerReply>,
    data: Option<Result<ServerReply, ServerReply>>,
) -> Outcome {
    let unanswered =
        closing.unwrap_or_else(|| ServerReply::local(451, (4, 4, 0), "No reply from the server"));
    Outcome {
        recipients: answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(unanswered.clone())))
            .collect(),
        data,
    }
}

/// A host name or address literal fit for EHLO: printable ASCII, no
/// space.
fn helo_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The server's name for TLS (an MX name may end with a dot).
fn tls_name(server_name: &str) -> Result<ServerName<'static>, ClientError> {
    let name = server_name.strip_suffix('.').unwrap_or(server_name);
    ServerName::try_from(name.to_string())
        .map_err(|e| ClientError::Tls(format!("bad server name {server_name:?}: {e}")))
}

//! `cairn-smtp`: the SMTP server of Cairn — inbound MX (port 25), and
//! message submission (587 with STARTTLS, 465 with implicit TLS), with
//! local delivery into the mailstore.
//!
//! - [`codec`]: the wire, sans-IO (command lines, DATA bodies, replies);
//! - [`session`]: one connection's state machine, over a [`Stream`];
//! - [`auth`]: the AUTH PLAIN/LOGIN exchanges;
//! - [`delivery`]: recipients, relay and sender rules, and delivery;
//! - [`headers`]: `Received:` and `Authentication-Results:`;
//! - [`authenticity`]: SPF, DKIM, DMARC and ARC verification of inbound
//!   mail (mail-auth, DNS through `cairn-dns`) and its
//!   `Authentication-Results:` header;
//! - [`antivirus`]: the built-in signature scanner, and ClamAV's clamd
//!   when configured; infected mail is refused at the end of DATA/BDAT
//!   with `554 5.7.1`, nothing stored, or quarantined (delivered only to
//!   one local account);
//! - [`avdb_watch`]: reloads its database when the file changes;
//! - [`rate`]: messages per sender per minute (`450 4.7.1` past it);
//! - [`spam`]: the spam score (rules, DNS blocklists) and its thresholds;
//! - [`dkim`]: DKIM keys of served domains, their DNS records, signing;
//! - [`client`]: the SMTP client of the outbound queue (to remote MX
//!   hosts and a smarthost);
//! - [`outbound`]: the delivery runner of each shard's outbound queue,
//!   with retries and delivery status notifications.
//!
//! A `250` after DATA (or `BDAT … LAST`) is sent only once every local
//! recipient's copy is durable on its shard and the message is durably in
//! the outbound queue for the others. Only authenticated submission (and
//! the external members of lists) may reach other domains: the MX
//! listener is never an open relay (only clients in its relay networks
//! may use it to reach other domains).

pub mod antivirus;
pub mod auth;
pub mod authenticity;
pub mod avdb_watch;
pub mod client;
pub mod codec;
pub mod delivery;
pub mod dkim;
pub mod headers;
pub mod outbound;
pub mod rate;
pub mod session;
pub mod spam;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::metrics::ServiceMetrics;
use cairn_shards::stream::Stream;
use cairn_shards::Shutdown;
use cairn_storage::services::Services;

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inbound mail from other servers (port 25): no AUTH, local
    /// recipients only.
    Mx,
    /// Message submission by our users (587, and 465 with implicit TLS):
    /// AUTH over TLS before MAIL, the sender must be the user's.
    Submission,
}

/// Read deadlines (RFC 5321 §4.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpTimeouts {
    /// Waiting for a command (and the greeting's first one): 5 minutes.
    pub command: Duration,
    /// Waiting for each block of DATA or BDAT bytes: 3 minutes.
    pub data_block: Duration,
    /// The longest the final reply after the body may take (delivery):
    /// 10 minutes; past it the client gets `451`.
    pub data_end: Duration,
}

impl Default for SmtpTimeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(5 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_end: Duration::from_secs(10 * 60),
        }
    }
}

/// Limits and names of an SMTP listener.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// Our host name, in the greeting and the trace headers.
    pub hostname: String,
    /// The largest message accepted, in bytes (advertised with SIZE).
    pub max_message_size: u64,
    /// Recipients (RCPT commands) per message.
    pub max_recipients: usize,
    /// The longest command line, CRLF included (RFC 5321 allows 512 at
    /// the least; AUTH lines with initial responses need more).
    pub max_line_length: usize,
    /// Failed AUTH attempts per session before `421` and close.
    pub max_auth_failures: u32,
    /// Unknown or malformed commands per session before `421` and close.
    pub max_bad_commands: u32,
    pub timeouts: SmtpTimeouts,
    /// Clients of the MX listener that may relay to other domains (the
    /// outbound queue takes their mail, like Postfix's `mynetworks`).
    pub relay_networks: Vec<ipnet::IpNet>,
    /// How mail from other servers (the MX listener) is scored for spam.
    pub spam: spam::SpamOptions,
    /// Check SPF, DKIM and DMARC on mail from other servers.
    pub verify_senders: bool,
    /// Refuse mail that fails DMARC when its domain's policy says reject
    /// (else such mail goes to Junk).
    pub enforce_dmarc: bool,
    /// The virus scanner every complete body goes through before delivery
    /// (None: no scanning). Shared by the shards: a reload reaches all.
    pub antivirus: Option<Arc<antivirus::Antivirus>>,
    /// ClamAV's clamd, scanning after the built-in scanner (None: not
    /// used); when it fails the message gets `451 4.3.0`.
    pub clamd: Option<Arc<antivirus::clamd::Clamd>>,
    /// What an infected message gets: `554 5.7.1`, or quarantine.
    pub virus_action: antivirus::VirusAction,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 4096,
            max_auth_failures: 3,
            max_bad_commands: 20,
            timeouts: SmtpTimeouts::default(),
            relay_networks: Vec::new(),
            spam: spam::SpamOptions::default(),
            verify_senders: true,
            enforce_dmarc: true,
            antivirus: None,
            clamd: None,
            virus_action: antivirus::VirusAction::Reject,
        }
    }
}

/// What every session of a listener shares.
pub(crate) struct Inner {
    pub(crate) services: Services,
    pub(crate) mode: Mode,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) options: SmtpOptions,
    pub(crate) metrics: ServiceMetrics,
    pub(crate) sender_rate: std::cell::RefCell<Option<Rc<rate::SenderRate>>>,
    pub(crate) shutdown: std::cell::RefCell<Option<Shutdown>>,
    /// The shard's resolver, for blocklists and sender authentication.
    pub(crate) resolver: std::cell::RefCell<cairn_dns::Resolver>,
}

/// An SMTP listener's server, on one shard. Cheap to clone.
#[derive(Clone)]
pub struct SmtpServer {
    inner: Rc<Inner>,
}

impl SmtpServer {
    /// A server in `mode`; `tls` enables STARTTLS (and is what the
    /// appliance used for an implicit-TLS stream).
    pub fn new(
        services: Services,
        mode: Mode,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: SmtpOptions,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            inner: Rc::new(Inner {
                services,
                mode,
                tls,
                options,
                metrics,
                sender_rate: Default::default(),
                shutdown: Default::default(),
                resolver: std::cell::RefCell::new(cairn_dns::Resolver::new(
                    cairn_dns::ResolverConfig::default(),
                )),
            }),
        }
    }

    /// Limits messages per sender per minute, counted at MAIL (by the
    /// logged-in user on submission, by the client's address on MX) in
    /// `rate`, which the shard's listeners of one kind share.
    pub fn with_sender_rate(self, rate: Rc<rate::SenderRate>) -> Self {
        *self.inner.sender_rate.borrow_mut() = Some(rate);
        self
    }

    /// Sessions waiting for a command when `shutdown` is raised get
    /// `421 4.3.2` and are closed (one in a transfer finishes it first).
    pub fn with_shutdown(self, shutdown: Shutdown) -> Self {
        *self.inner.shutdown.borrow_mut() = Some(shutdown);
        self
    }

    /// Looks up blocklists (and sender authentication records) through
    /// `resolver`, this shard's.
    pub fn with_resolver(self, resolver: cairn_dns::Resolver) -> Self {
        *self.inner.resolver.borrow_mut() = resolver;
        self
    }

    /// Serves one connection, from the greeting to QUIT (or a timeout,
    /// or the client going away).
    pub async fn serve(&self, stream: Stream, peer: SocketAddr) {
        session::run(&self.inner, stream, peer).await
    }
}

//! `cairn-imap`: the IMAP4rev1 server of Cairn (RFC 3501, with the
//! extensions listed in [`session::capabilities`]).
//!
//! - [`codec`]: the wire, sans-IO: framing of lines and literals under
//!   limits, command decoding (imap-codec), response writing;
//! - [`session`]: one connection's state machine over a [`Stream`];
//! - [`message`]: messages as IMAP sees them (ENVELOPE, BODYSTRUCTURE,
//!   sections, SEARCH, SORT, THREAD).
//!
//! A session runs on the shard that owns its account: after LOGIN or
//! AUTHENTICATE on another shard, the connection moves there over the
//! crate's own mesh ([`ImapMesh`]), with the bytes already read, and the
//! owner sends the tagged `OK` of the login.

pub mod codec;
pub mod message;
pub mod session;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::metrics::ServiceMetrics;
use cairn_shards::stream::{MovedStream, Stream};
use cairn_shards::{ConnectionTracker, Shutdown};
use cairn_storage::services::Services;
pub use session::summaries::DIGESTER;

/// A session on its way to the shard that owns its account.
pub struct Moved {
    pub stream: MovedStream,
    pub peer: SocketAddr,
    /// The account (the principal's address).
    pub account: String,
    /// The tag of the LOGIN/AUTHENTICATE command, answered by the owner.
    pub tag: String,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// Capabilities ENABLEd so far (none can be before login, kept for
    /// completeness of the hand-over).
    pub enabled: session::Enabled,
    /// Bytes the client sent after the login command (pipelining).
    pub pending: Vec<u8>,
}

/// The mesh that moves sessions between shards: made once, before the
/// shards start, with `ImapMesh::new(shards, 64)`.
pub type ImapMesh = Mesh<Moved, ()>;

/// Limits and names of the IMAP service.
#[derive(Debug, Clone)]
pub struct ImapOptions {
    /// Our host name, in the greeting.
    pub hostname: String,
    /// The largest literal (and so APPEND) accepted, in bytes
    /// (advertised as APPENDLIMIT).
    pub max_literal: u64,
    /// The longest command line, CRLF included.
    pub max_line: usize,
    /// Whether LOGIN and AUTHENTICATE work without TLS (otherwise
    /// LOGINDISABLED and no AUTH= before STARTTLS).
    pub allow_plaintext_auth: bool,
    /// How long an IDLE may last without the client's DONE.
    pub idle_timeout: Duration,
    /// Waiting for a command once logged in (RFC 9051: at least 30 min).
    pub command_timeout: Duration,
    /// Waiting for a command before login.
    pub login_timeout: Duration,
    /// Malformed commands per session before `* BYE` and close.
    pub max_bad_commands: u32,
    /// Failed logins per session before `* BYE` and close.
    pub max_auth_failures: u32,
}

impl Default for ImapOptions {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            max_literal: 25 * 1024 * 1024,
            max_line: 64 * 1024,
            allow_plaintext_auth: false,
            idle_timeout: Duration::from_secs(30 * 60),
            command_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            max_bad_commands: 20,
            max_auth_failures: 3,
        }
    }
}

/// What every session on a shard shares.
pub(crate) struct Inner {
    pub(crate) services: Services,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) options: ImapOptions,
    pub(crate) metrics: ServiceMetrics,
    pub(crate) mesh: MeshEndpoint<Moved, ()>,
    /// Per-mailbox `\Recent` marks of this shard (see [`session::recent`]).
    pub(crate) recent: session::recent::Recent,
    /// ENVELOPE and BODYSTRUCTURE by body (see [`session::summaries`]).
    pub(crate) summaries: session::summaries::Summaries,
    /// Message headers SEARCH read, by body (see [`session::search`]).
    pub(crate) headers: session::search::Headers,
    /// MIME trees SEARCH decoded from digests, by body.
    pub(crate) trees: session::search::Trees,
    /// The appliance's stop, which ends sessions waiting for a command.
    shutdown: std::cell::RefCell<Option<Shutdown>>,
    /// The shard's live connections, which sessions moved here join (so
    /// that the shard's stop waits for them too).
    tracker: std::cell::RefCell<Option<ConnectionTracker>>,
}

impl Inner {
    pub(crate) fn shutdown(&self) -> Option<Shutdown> {
        self.shutdown.borrow().clone()
    }
}

/// The IMAP server of one shard, shared by its IMAP and IMAPS listeners.
/// Cheap to clone.
#[derive(Clone)]
pub struct ImapServer {
    inner: Rc<Inner>,
}

impl ImapServer {
    /// Joins `mesh` as this shard and serves sessions moved here. Every
    /// shard must call it (the join waits for all of them).
    pub async fn start(
        services: Services,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: ImapOptions,
        metrics: ServiceMetrics,
        mesh: &ImapMesh,
    ) -> Result<Self, MeshError> {
        let endpoint = mesh.join(services.shard).await?;
        let inner = Rc::new(Inner {
            services,
            tls,
            options,
            metrics,
            mesh: endpoint,
            recent: session::recent::Recent::default(),
            summaries: session::summaries::summaries(),
            headers: session::search::headers(),
            trees: session::search::trees(),
            shutdown: Default::default(),
            tracker: Default::default(),
        });
        let weak = Rc::downgrade(&inner);
        inner.mesh.serve(move |_from, moved: Moved| {
            let inner = weak.upgrade();
            async move {
                match inner {
                    Some(inner) => {
                        let guard = inner
                            .tracker
                            .borrow()
                            .as_ref()
                            .map(ConnectionTracker::enter);
                        cairn_shards::spawn_detached(async move {
                            session::resume(&inner, moved).await;
                            drop(guard);
                        });
                    }
                    None => drop(moved),
                }
            }
        })?;
        Ok(Self { inner })
    }

    /// Sessions waiting for a command (or in IDLE) when `shutdown` is
    /// raised get `* BYE Server shutting down` and are closed; one sending
    /// a command finishes it first. Sessions moved here from another shard
    /// count in `tracker`, the connections this shard's stop waits for.
    pub fn with_shutdown(self, shutdown: Shutdown, tracker: ConnectionTracker) -> Self {
        *self.inner.shutdown.borrow_mut() = Some(shutdown);
        *self.inner.tracker.borrow_mut() = Some(tracker);
        self
    }

    /// Serves one accepted connection (plain, or TLS done by the
    /// listener), from the greeting to LOGOUT, a timeout, or the client
    /// going away.
    pub async fn serve(&self, stream: Stream, peer: SocketAddr) {
        session::run(&self.inner, stream, peer).await
    }
}

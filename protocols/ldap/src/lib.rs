//! `cairn-ldap`: the directory as a read-only LDAPv3 server (RFC 4511,
//! 4513, 4515, 2696), for address books (Thunderbird, Outlook, phones) and
//! for applications that authenticate users by a simple bind.
//!
//! - [`codec`]: BER framing and `ldap3_proto` messages, sans-IO.
//! - [`dn`]: DN parsing and escaping.
//! - [`dit`]: the tree built from the directory's address book.
//! - [`filter`]: filter limits and evaluation.
//! - [`index`]: the search index built with the tree, and the planner
//!   that narrows a filter to candidate entries.
//! - [`search`]: scopes, attribute selection, result entries, the root
//!   DSE and paged-results cookies.
//! - `session`: one connection's state machine over a [`Stream`].
//!
//! One [`LdapServer`] per shard: it keeps that shard's copy of the tree,
//! rebuilt when the directory's generation changes, and every search runs
//! on the shard that accepted the connection.

pub mod codec;
pub mod dit;
pub mod dn;
pub mod filter;
pub mod index;
pub mod search;
mod session;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::metrics::ServiceMetrics;
use cairn_shards::stream::Stream;
use cairn_storage::directory::service::CallError;
use cairn_storage::services::Services;

use crate::dit::Dit;

/// What the LDAP service allows.
#[derive(Debug, Clone)]
pub struct LdapOptions {
    /// Whether an anonymous bind (empty name and password) may search.
    /// When off, anonymous binds get inappropriateAuthentication (48) and
    /// searches before a bind insufficientAccessRights (50); the root DSE
    /// is readable either way.
    pub allow_anonymous: bool,
    /// The largest LDAP message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// The deepest nesting of and/or/not in a search filter; deeper
    /// filters get unwillingToPerform (53), and so do filters of more than
    /// [`filter::MAX_FILTER_ELEMENTS`] elements. A message nested deeper
    /// than this plus 16 BER levels does not decode at all: protocolError
    /// in a Notice of Disconnection.
    pub max_filter_depth: usize,
    /// The most entries one search (or one page of a paged search)
    /// returns, whatever the client asks for; 0 means no limit.
    pub default_size_limit: usize,
    /// How long a connection may stay silent before it is closed.
    pub idle_timeout: Duration,
}

impl Default for LdapOptions {
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            max_message_bytes: 1 << 20,
            max_filter_depth: 32,
            default_size_limit: 1000,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// The LDAP service on one shard. Cheap to clone.
#[derive(Clone)]
pub struct LdapServer {
    inner: Rc<Inner>,
}

struct Inner {
    services: Services,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: LdapOptions,
    metrics: ServiceMetrics,
    /// This shard's copy of the tree, by directory generation.
    dit: RefCell<Option<Rc<Dit>>>,
    /// Held while the tree is being rebuilt.
    building: cairn_shards::sync::LocalMutex,
    /// Numbers paged searches, so that a cookie names one.
    searches: Cell<u64>,
}

impl LdapServer {
    /// `tls` enables StartTLS; `None` makes it unavailable.
    pub fn new(
        services: Services,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: LdapOptions,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            inner: Rc::new(Inner {
                services,
                tls,
                options,
                metrics,
                dit: RefCell::new(None),
                building: cairn_shards::sync::LocalMutex::new(),
                searches: Cell::new(0),
            }),
        }
    }

    /// Serves one connection (plain, or already TLS for LDAPS) until the
    /// client unbinds or closes it, it stays idle past the timeout, or it
    /// breaks the protocol. Stopping it at shutdown is the caller's
    /// business (drop the future).
    pub async fn serve(&self, stream: Stream, peer: SocketAddr) {
        session::run(&self.inner, stream, peer).await
    }
}

impl Inner {
    /// The tree at the directory's current generation: this shard's copy
    /// unless the directory changed since it was built.
    async fn dit(&self) -> Result<Rc<Dit>, CallError> {
        let book = self.services.directory.address_book().await?;
        if let Some(dit) = self.dit.borrow().as_ref() {
            if dit.generation == book.generation {
                return Ok(dit.clone());
            }
        }
        // One build at a time: the build yields, and the tasks that ask
        // meanwhile wait for it rather than build the same tree again.
        let _building = self.building.lock().await;
        if let Some(dit) = self.dit.borrow().as_ref() {
            if dit.generation == book.generation {
                return Ok(dit.clone());
            }
        }
        let dit = Rc::new(Dit::build_async(&book).await);
        *self.dit.borrow_mut() = Some(dit.clone());
        Ok(dit)
    }

    fn next_search(&self) -> u64 {
        let n = self.searches.get().wrapping_add(1);
        self.searches.set(n);
        n
    }
}

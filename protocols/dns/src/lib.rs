//! `cairn-dns`: a DNS stub resolver that runs on a shard's own io_uring.
//!
//! The outbound SMTP queue asks for MX and A/AAAA records, SPF, DKIM and
//! DMARC for TXT, and the SMTP server for PTR; all of them through a
//! [`Resolver`], which sends its questions to the configured recursive
//! servers over the shard's UDP sockets (and TCP after a truncated reply)
//! and caches the answers. No tokio and no resolver thread: the only
//! runtime is `cairn-shards`.
//!
//! - [`codec`]: sans-IO messages (build a query, check and read a reply),
//!   with hickory-proto doing the wire format;
//! - [`transport`]: one exchange with one server, over UDP or TCP;
//! - [`cache`]: answers kept for their TTL, negative ones for a minute;
//! - [`config`]: servers, timeout, attempts, cache size, `resolv.conf`;
//! - [`resolver`]: the lookups callers use.
//!
//! Errors say what to do next: [`DnsError::NxDomain`] (the name does not
//! exist), [`DnsError::Temporary`] (try again later) or
//! [`DnsError::Permanent`] (asking again will not help).

pub mod cache;
pub mod codec;
pub mod config;
mod error;
pub mod resolver;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use codec::{Answer, Mx, Record, RecordType};
pub use config::ResolverConfig;
pub use error::DnsError;
pub use resolver::Resolver;

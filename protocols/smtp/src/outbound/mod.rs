//! The outbound side of the MTA: mail for other domains waits in the
//! shard's persistent queue (`cairn_storage::queue`) and one runner per
//! shard delivers it.
//!
//! - [`route`]: smarthost, or MX hosts then addresses through Cairn's own
//!   resolver (`cairn-dns`, UDP on the shard's ring);
//! - [`pool`]: connections per host, limited and reused;
//! - [`runner`]: takes due messages, delivers each recipient group, and
//!   records the outcome: delivered, failed (`5xx` at once, or at expiry),
//!   or deferred with an exponential back-off ([`schedule`]);
//! - [`dsn`]: the RFC 3464 reports that go back to the sender, queued
//!   like any message with the null reverse path.
//!
//! A queued message is in storage, durably, before the SMTP `250` that
//! accepted it; each attempt's outcome is durable before the next one, so
//! a crash repeats at most one delivery (a duplicate, never a loss).

pub mod dsn;
pub mod metrics;
pub mod pool;
pub mod route;
pub mod runner;
pub mod schedule;

use std::sync::Arc;

use cairn_dns::ResolverConfig;

use crate::client::TlsMode;
pub use metrics::OutboundMetrics;
pub use runner::Runner;
pub use schedule::Schedule;

/// How the outbound queue delivers.
#[derive(Clone)]
pub struct OutboundOptions {
    /// Our host name, in EHLO and the reports.
    pub hostname: String,
    pub resolver: ResolverConfig,
    /// The port of MX hosts (25).
    pub mx_port: u16,
    pub mx_tls: TlsMode,
    /// The relay everything goes through, `host` and `port`.
    pub smarthost: Option<(String, u16)>,
    pub smarthost_tls: TlsMode,
    /// Check the smarthost's certificate (the system's roots).
    pub smarthost_verify: bool,
    pub smarthost_auth: Option<(String, String)>,
    pub schedule: Schedule,
    /// Connections open at once from one shard, and to one host.
    pub max_connections: u32,
    pub max_connections_per_destination: u32,
    pub metrics: Option<Arc<OutboundMetrics>>,
}

impl OutboundOptions {
    /// Direct MX delivery with the RFC's defaults, named `hostname`.
    pub fn new(hostname: impl Into<String>, resolver: ResolverConfig) -> Self {
        OutboundOptions {
            hostname: hostname.into(),
            resolver,
            mx_port: 25,
            mx_tls: TlsMode::Opportunistic,
            smarthost: None,
            smarthost_tls: TlsMode::Required,
            smarthost_verify: true,
            smarthost_auth: None,
            schedule: Schedule::default(),
            max_connections: 50,
            max_connections_per_destination: 5,
            metrics: None,
        }
    }
}

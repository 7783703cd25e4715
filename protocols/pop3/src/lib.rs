//! `cairn-pop3`: the POP3 server of Cairn (RFC 1939, with CAPA and
//! response codes from RFC 2449, STLS from RFC 2595, AUTH PLAIN from
//! RFC 5034 and RFC 3206's AUTH and SYS codes).
//!
//! - [`codec`]: the wire, sans-IO (command lines, replies, byte-stuffing,
//!   TOP);
//! - [`session`]: one session's state machine, sans-IO;
//! - [`maildrop`]: the per-account lock and the INBOX snapshot;
//! - [`server`]: the I/O around a session, and moving it to the shard
//!   that owns its account.
//!
//! A session runs on the shard that owns its account: once the
//! credentials are good, a connection accepted elsewhere moves there over
//! the crate's own mesh ([`Pop3Mesh`]), and the owning shard takes the
//! maildrop lock and answers the `+OK`. Deletions are marks in the session
//! until QUIT, which expunges them durably before its `+OK`; a session
//! that ends any other way deletes nothing.

pub mod codec;
pub mod maildrop;
pub mod server;
pub mod session;

use std::time::Duration;

pub use server::{Moved, Pop3Server};

/// The queues that carry sessions to the shard owning their account: made
/// once, before the shards start, with `Pop3Mesh::new(shards, 64)`, and
/// joined by [`Pop3Server::start`] on every shard.
pub type Pop3Mesh = cairn_shards::mesh::Mesh<Moved, ()>;

/// Limits and names of a POP3 listener.
#[derive(Debug, Clone)]
pub struct Pop3Options {
    /// Our host name, in the greeting.
    pub hostname: String,
    /// Whether USER/PASS and AUTH may be used on a connection that is not
    /// encrypted. When false, CAPA offers STLS and neither USER nor SASL
    /// until TLS is on, and logins get `-ERR [AUTH]` before it.
    pub allow_plaintext_auth: bool,
    /// The longest command line, CRLF included (RFC 2449 asks for 255 at
    /// least; AUTH PLAIN initial responses need more).
    pub max_line: usize,
    /// Idle time before the server closes the session (RFC 1939 §3: the
    /// autologout timer is at least 10 minutes).
    pub timeout: Duration,
    /// Failed logins per session before `-ERR [AUTH]` and close.
    pub max_auth_failures: u32,
    /// Unknown or malformed commands per session before close.
    pub max_bad_commands: u32,
}

impl Default for Pop3Options {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            allow_plaintext_auth: false,
            max_line: 8 * 1024,
            timeout: Duration::from_secs(10 * 60),
            max_auth_failures: 3,
            max_bad_commands: 20,
        }
    }
}

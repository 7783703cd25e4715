//! The SMTP client that delivers Cairn's outbound mail: to remote MX hosts
//! (opportunistic STARTTLS, RFC 7435) and to a smarthost (required TLS,
//! AUTH). The wire is sans-IO, as on the server side (DESIGN.md §7):
//!
//! - [`reply`]: the incremental parser of the server's replies;
//! - [`capabilities`]: what an EHLO reply offers;
//! - `command` and `body`: MAIL/RCPT lines with their parameters, and
//!   the dot-stuffed body;
//! - [`connection`]: the session over a [`cairn_shards::stream::Stream`]
//!   on the calling shard, with RFC 5321's deadlines.

pub mod capabilities;
pub mod connection;
pub mod reply;

mod body;
mod command;

pub use capabilities::Capabilities;
pub use connection::{
    ClientError, ClientOptions, ClientTimeouts, Connection, Envelope, Outcome, TlsMode,
};
pub use reply::{ReplyError, ReplyParser, ServerReply};

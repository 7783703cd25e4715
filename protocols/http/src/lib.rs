//! `cairn-http`: HTTP/1.1 and HTTPS on the shards.
//!
//! hyper 1 drives each connection on the shard that accepted it, through a
//! futures-io adapter ([`io::HyperIo`]) over the shard's io_uring socket, with
//! rustls for HTTPS. A [`Router`] maps method and path to handlers; errors are
//! JSON bodies with a code, as every Cairn API answers them; [`websocket`]
//! upgrades a request to a WebSocket.

pub mod io;
pub mod json;
pub mod router;
pub mod server;
pub mod websocket;

pub use router::{json_error, Body, Handler, Reply, Request, Router};
pub use server::{serve_connection, ConnectionOptions};

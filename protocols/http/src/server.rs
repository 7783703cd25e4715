//! One HTTP/1.1 connection served by hyper on the current shard, with a
//! per-request observer (for metrics) and graceful close on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cairn_shards::Shutdown;
use futures_lite::{AsyncRead, AsyncWrite};
use hyper::StatusCode;

use crate::io::{HyperIo, ShardLocal};
use crate::router::Router;

/// Called after each request with the route label, the status and the time
/// it took to produce the reply.
pub type Observer = Rc<dyn Fn(&str, StatusCode, Duration)>;

/// How a connection is served.
#[derive(Clone)]
pub struct ConnectionOptions {
    /// Raised when the appliance stops: the connection finishes its current
    /// request and closes.
    pub shutdown: Shutdown,
    /// Largest request head (line + headers) accepted, in bytes.
    pub max_head_bytes: usize,
    /// Sees every request once it has been answered.
    pub observer: Observer,
}

/// Serves HTTP/1.1 on `io` until the peer closes, an error occurs, or the
/// shutdown signal closes it gracefully. Every request carries the peer's
/// address as an extension (`req.extensions().get::<SocketAddr>()`).
pub async fn serve_connection<T>(
    io: T,
    peer: SocketAddr,
    router: Rc<Router>,
    options: ConnectionOptions,
) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let observer = options.observer.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(peer);
        let router = router.clone();
        let observer = observer.clone();
        async move {
            let start = Instant::now();
            let (route, reply) = router.dispatch(req).await;
            observer(&route, reply.status(), start.elapsed());
            Ok::<_, Infallible>(reply)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(options.max_head_bytes.max(8192))
        .serve_connection(HyperIo(ShardLocal::new(io)), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let shutdown = options.shutdown.clone();
    let finished = futures_lite::future::or(async { Some(conn.as_mut().await) }, async {
        shutdown.wait().await;
        None
    })
    .await;
    match finished {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

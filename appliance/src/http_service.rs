//! The appliance's HTTP(S) service on one shard: the routes it serves today
//! (`/healthz`, the metrics path) and the accept loop that hands each
//! connection, after TLS where configured, to `cairn-http`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_http::{serve_connection, ConnectionOptions, Router};
use cairn_shards::ip_limit::IpLimiter;
use cairn_shards::metrics::{Metrics, Outcome, ServiceMetrics};
use cairn_shards::net::TcpListener;
use cairn_shards::{time, ConnectionTracker, ShardContext};
use futures_rustls::TlsAcceptor;
use http_body_util::Full;
use hyper::{header, Method, Response, StatusCode};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay silent (while we wait for a request).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits an HTTP listener enforces on its clients.
#[derive(Clone, Copy)]
pub struct HttpLimits {
    /// Largest request head, in bytes.
    pub max_head_bytes: usize,
    /// Connections per client address, appliance-wide (0 = no limit).
    pub max_connections_per_ip: u32,
}

/// Everything one HTTP listener of one shard needs.
pub struct HttpListener {
    pub service: &'static str,
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The routes of the appliance's HTTP service.
pub fn router(
    metrics: Arc<Metrics>,
    metrics_path: Option<&str>,
    shard: &ShardContext,
    api: Rc<crate::api::Api>,
) -> Router {
    let (id, count) = (shard.id(), shard.count());
    let mut router = Router::new().route(Method::GET, "/healthz", move |_req| async move {
        let body = serde_json::json!({ "status": "ok", "shard": id, "shards": count });
        reply(StatusCode::OK, "application/json", body.to_string())
    });
    if let Some(path) = metrics_path {
        router = router.route(Method::GET, path, move |_req| {
            let text = metrics.encode();
            async move { reply(StatusCode::OK, "text/plain; version=0.0.4", text) }
        });
    }
    crate::api::routes(router, api)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> cairn_http::Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

/// Accepts connections until shutdown, serving each in its own task.
pub async fn accept_loop(
    http: HttpListener,
    router: Rc<Router>,
    shard: ShardContext,
    metrics: Arc<Metrics>,
    tracker: ConnectionTracker,
    limits: HttpLimits,
) {
    let service_metrics = metrics.service(http.service, shard.id());
    let per_ip = IpLimiter::new(limits.max_connections_per_ip, shard.count());
    let acceptor = http.tls.map(TlsAcceptor::from);
    let observer_metrics = metrics.clone();
    let observed = service_metrics.clone();
    let options = ConnectionOptions {
        shutdown: shard.shutdown().clone(),
        max_head_bytes: limits.max_head_bytes,
        observer: Rc::new(move |route, status, took| {
            let outcome = if status.is_server_error() {
                Outcome::ServerError
            } else if status.is_client_error() {
                Outcome::ClientError
            } else {
                Outcome::Ok
            };
            observed.request(outcome, took);
            observer_metrics.http_response(route, status.as_u16());
        }),
    };
    loop {
        let accepted =
            futures_lite::future::or(async { Some(http.listener.accept().await) }, async {
                shard.shutdown().wait().await;
                None
            })
            .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                // Out of descriptors or a connection reset before accept:
                // wait a little rather than spin.
                tracing::warn!(service = http.service, error = %e, "accept failed");
                time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let peer: Option<SocketAddr> = stream.peer_addr().ok();
        let admitted = match peer {
            Some(addr) => per_ip.try_enter(addr.ip()),
            None => None,
        };
        let Some(admitted) = admitted else {
            service_metrics.refused.inc();
            if acceptor.is_none() {
                cairn_shards::spawn_detached(refuse(stream));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
        service_metrics.accepted.inc();
        let guard = tracker.enter();
        let (router, options, m, acceptor) = (
            router.clone(),
            options.clone(),
            service_metrics.clone(),
            acceptor.clone(),
        );
        cairn_shards::spawn_detached(async move {
            let _guards = (guard, admitted);
            m.active.inc();
            serve_one(stream, acceptor, router, options, &m, peer).await;
            m.active.dec();
        });
    }
}

/// Answers a connection over the per-address limit with a 429 and closes it.
async fn refuse(mut stream: cairn_shards::net::TcpStream) {
    use futures_lite::AsyncWriteExt;
    const BODY: &str = r#"{"error":{"code":"too_many_connections","message":"too many connections from your address"}}"#;
    let reply = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = time::timeout(Duration::from_secs(2), stream.write_all(reply.as_bytes())).await;
}

async fn serve_one(
    stream: cairn_shards::net::TcpStream,
    acceptor: Option<TlsAcceptor>,
    router: Rc<Router>,
    options: ConnectionOptions,
    metrics: &ServiceMetrics,
    peer: Option<SocketAddr>,
) {
    let result = match acceptor {
        None => serve_connection(stream, router, options).await,
        Some(acceptor) => match time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
        {
            Ok(Ok(tls)) => serve_connection(tls, router, options).await,
            Ok(Err(e)) => {
                metrics.tls_failures.inc();
                tracing::debug!(?peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics.tls_failures.inc();
                tracing::debug!(?peer, "TLS handshake timed out");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(?peer, error = %e, "HTTP connection ended with an error");
    }
}

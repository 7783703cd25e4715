//! The appliance's HTTP(S) service on one shard: the routes it serves
//! (`/healthz`, the metrics path, the admin API) and the connection options
//! that feed each request's outcome to the metrics.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use cairn_http::{ConnectionOptions, Router};
use cairn_shards::metrics::{Metrics, Outcome, ServiceMetrics};
use cairn_shards::ShardContext;
use http_body_util::Full;
use hyper::{header, Method, Response, StatusCode};

use crate::listeners::Server;

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

/// The HTTP server of one shard, for [`crate::listeners`].
pub fn server(
    router: Rc<Router>,
    shard: &ShardContext,
    metrics: Arc<Metrics>,
    service_metrics: ServiceMetrics,
    max_head_bytes: usize,
) -> Server {
    let options = ConnectionOptions {
        shutdown: shard.shutdown().clone(),
        max_head_bytes,
        observer: Rc::new(move |route, status, took| {
            let outcome = if status.is_server_error() {
                Outcome::ServerError
            } else if status.is_client_error() {
                Outcome::ClientError
            } else {
                Outcome::Ok
            };
            service_metrics.request(outcome, took);
            metrics.http_response(route, status.as_u16());
        }),
    };
    Server::Http { router, options }
}

//! The admin API (`/api/v1/…`, JSON): domains (with their DKIM keys),
//! accounts (with their app passwords), lists, classes of service, service
//! accounts and the audit trail, authenticated with the API token or the
//! admin password. Every handler runs on the shard that accepted the
//! connection; directory changes go to the directory's shard (audited
//! there with the request's actor) and mail accounts to the shard that
//! owns them.

mod accounts;
mod app_passwords;
mod audit;
pub mod auth;
mod classes;
mod dkim;
mod domains;
mod errors;
mod lists;
mod queue;
mod rooms;
mod service_accounts;
pub mod sessions;

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use cairn_http::json::json_reply;
use cairn_http::{Reply, Request, Router};
use cairn_media::service::MediaService;
use cairn_storage::services::Services;
use hyper::{Method, StatusCode};

pub use auth::Auth;

/// The OpenAPI description of this API.
const OPENAPI: &str = include_str!("openapi.json");
/// Largest page a list returns.
pub const MAX_PAGE: usize = 1000;

/// What the API's handlers share on one shard.
pub struct Api {
    pub services: Services,
    pub media: MediaService,
    pub auth: Auth,
    pub max_body: usize,
}

/// The query string's pairs, percent-decoded.
pub fn query(req: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The percent-decoded rest of the path after `prefix`.
pub fn path_tail(req: &Request, prefix: &str) -> String {
    let tail = req.uri().path().strip_prefix(prefix).unwrap_or("");
    form_urlencoded::parse(format!("x={tail}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Page size from `?limit=` (default 100, at most [`MAX_PAGE`]).
pub fn page_limit(q: &HashMap<String, String>) -> usize {
    q.get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, MAX_PAGE)
}

/// Wraps a handler that authenticates for itself (the rooms' routes take
/// an invite token as well as the admin's credentials).
fn open<F, Fut>(
    api: &Rc<Api>,
    handler: F,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Reply>>>
where
    F: Fn(Rc<Api>, Request) -> Fut + Clone + 'static,
    Fut: Future<Output = Reply> + 'static,
{
    let api = api.clone();
    move |req| Box::pin(handler.clone()(api.clone(), req))
}

/// Wraps a handler: authentication first; the handler gets an [`Api`]
/// whose directory audits its changes as the request's actor.
fn guarded<F, Fut>(
    api: &Rc<Api>,
    handler: F,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Reply>>>
where
    F: Fn(Rc<Api>, Request) -> Fut + Clone + 'static,
    Fut: Future<Output = Reply> + 'static,
{
    open(api, move |api: Rc<Api>, req: Request| {
        let handler = handler.clone();
        async move {
            let actor = match api.auth.check(&req, &api.services.blocking).await {
                Ok(actor) => actor,
                Err(denied) => return denied,
            };
            let mut services = api.services.clone();
            services.directory = services.directory.acting(&actor);
            let scoped = Rc::new(Api {
                services,
                media: api.media.clone(),
                auth: api.auth.clone(),
                max_body: api.max_body,
            });
            handler(scoped, req).await
        }
    })
}

/// Adds the API's routes to `router`.
pub fn routes(router: Router, api: Rc<Api>) -> Router {
    router
        .route(Method::GET, "/api/v1/openapi.json", |_req| async {
            let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
            json_reply(StatusCode::OK, &doc)
        })
        .route(Method::GET, "/api/v1/domains", guarded(&api, domains::list))
        .route(Method::POST, "/api/v1/domains", guarded(&api, domains::add))
        .route_prefix(Method::GET, domains::ONE, guarded(&api, domains::show))
        .route_prefix(Method::DELETE, domains::ONE, guarded(&api, domains::delete))
        .route_prefix(
            Method::POST,
            domains::ONE,
            guarded(&api, domains::post_below),
        )
        .route(
            Method::GET,
            "/api/v1/accounts",
            guarded(&api, accounts::list),
        )
        .route(
            Method::POST,
            "/api/v1/accounts",
            guarded(&api, accounts::add),
        )
        .route_prefix(Method::GET, accounts::ONE, guarded(&api, accounts::show))
        .route_prefix(
            Method::POST,
            accounts::ONE,
            guarded(&api, accounts::add_alias),
        )
        .route(Method::GET, "/api/v1/lists", guarded(&api, lists::list))
        .route(Method::POST, "/api/v1/lists", guarded(&api, lists::add))
        .route_prefix(Method::DELETE, lists::ONE, guarded(&api, lists::delete))
        .route_prefix(Method::PATCH, accounts::ONE, guarded(&api, accounts::patch))
        .route(Method::GET, "/api/v1/classes", guarded(&api, classes::list))
        .route(Method::POST, "/api/v1/classes", guarded(&api, classes::add))
        .route_prefix(Method::GET, classes::ONE, guarded(&api, classes::show))
        .route_prefix(Method::PATCH, classes::ONE, guarded(&api, classes::patch))
        .route_prefix(Method::DELETE, classes::ONE, guarded(&api, classes::delete))
        .route_prefix(
            Method::DELETE,
            accounts::ONE,
            guarded(&api, accounts::delete),
        )
        .route(Method::GET, "/api/v1/audit", guarded(&api, audit::list))
        .route(
            Method::GET,
            "/api/v1/service-accounts",
            guarded(&api, service_accounts::list),
        )
        .route(
            Method::POST,
            "/api/v1/service-accounts",
            guarded(&api, service_accounts::add),
        )
        .route_prefix(
            Method::DELETE,
            service_accounts::ONE,
            guarded(&api, service_accounts::delete),
        )
        .route(Method::GET, "/api/v1/rooms", guarded(&api, rooms::list))
        .route(Method::POST, "/api/v1/rooms", open(&api, rooms::create))
        .route(Method::POST, "/api/v1/session", open(&api, sessions::login))
        .route(Method::GET, "/api/v1/session", open(&api, sessions::show))
        .route(
            Method::DELETE,
            "/api/v1/session",
            open(&api, sessions::logout),
        )
        .route(
            Method::GET,
            "/api/v1/recordings",
            guarded(&api, rooms::recordings),
        )
        .route_prefix(Method::GET, rooms::ONE, open(&api, rooms::one))
        .route_prefix(Method::POST, rooms::ONE, open(&api, rooms::one))
        .route_prefix(Method::DELETE, rooms::ONE, open(&api, rooms::one))
        .route_prefix(Method::PATCH, rooms::ONE, open(&api, rooms::one))
        .route(Method::GET, "/api/v1/queue", guarded(&api, queue::list))
        .route_prefix(Method::POST, queue::ONE, guarded(&api, queue::retry))
        .route_prefix(Method::DELETE, queue::ONE, guarded(&api, queue::delete))
}

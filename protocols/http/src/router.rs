//! Routing: method and exact path to a handler, with JSON errors for what
//! matches nothing (404) or matches with the wrong method (405).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};

/// The body type of every Cairn reply.
pub type Body = Full<Bytes>;
/// A reply.
pub type Reply = hyper::Response<Body>;
/// A request as hyper hands it over.
pub type Request = hyper::Request<hyper::body::Incoming>;
/// A route's handler: runs on the shard that serves the connection.
pub type Handler = Rc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply>>>>;

/// Builds a JSON error reply: `{"error":{"code":…,"message":…}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = format!(
        "{{\"error\":{{\"code\":{},\"message\":{}}}}}",
        json_string(code),
        json_string(message)
    );
    let mut reply = hyper::Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Method + exact path → handler.
#[derive(Default, Clone)]
pub struct Router {
    routes: BTreeMap<String, Vec<(Method, Handler)>>,
    /// Routes that match every path starting with their prefix (e.g.
    /// `/api/v1/accounts/` for `/api/v1/accounts/{address}`).
    prefixes: Vec<(String, Vec<(Method, Handler)>)>,
}

/// What the router found for a request.
pub enum Route<'a> {
    /// A handler, and the route's path (a bounded label for metrics).
    Found(&'a str, &'a Handler),
    /// The path exists with other methods.
    WrongMethod(&'a str),
    /// Nothing at this path.
    NotFound,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route.
    pub fn route<F, Fut>(mut self, method: Method, path: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Reply> + 'static,
    {
        let handler: Handler = Rc::new(move |req| Box::pin(handler(req)));
        self.routes
            .entry(path.to_string())
            .or_default()
            .push((method, handler));
        self
    }

    /// Adds a route for every path under `prefix` (which ends with `/`);
    /// the handler reads the rest of the path itself.
    pub fn route_prefix<F, Fut>(mut self, method: Method, prefix: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = Reply> + 'static,
    {
        let handler: Handler = Rc::new(move |req| Box::pin(handler(req)));
        match self.prefixes.iter_mut().find(|(p, _)| p == prefix) {
            Some((_, handlers)) => handlers.push((method, handler)),
            None => self
                .prefixes
                .push((prefix.to_string(), vec![(method, handler)])),
        }
        self
    }

    /// Looks a request up: an exact path first, then the longest prefix
    /// route. HEAD is served by the GET handler.
    pub fn find(&self, method: &Method, path: &str) -> Route<'_> {
        let exact = self
            .routes
            .get_key_value(path)
            .map(|(p, h)| (p.as_str(), h));
        let prefixed = || {
            self.prefixes
                .iter()
                .filter(|(p, _)| path.starts_with(p.as_str()) && path.len() > p.len())
                .max_by_key(|(p, _)| p.len())
                .map(|(p, h)| (p.as_str(), h))
        };
        let Some((path, handlers)) = exact.or_else(prefixed) else {
            return Route::NotFound;
        };
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match handlers.iter().find(|(m, _)| m == wanted) {
            Some((_, h)) => Route::Found(path, h),
            None => Route::WrongMethod(path),
        }
    }

    /// Serves one request: the handler's reply, or a JSON 404/405.
    pub async fn dispatch(&self, req: Request) -> (String, Reply) {
        let method = req.method().clone();
        match self.find(&method, req.uri().path()) {
            Route::Found(path, handler) => {
                let path = path.to_string();
                let mut reply = handler(req).await;
                if method == Method::HEAD {
                    *reply.body_mut() = Full::new(Bytes::new());
                }
                (path, reply)
            }
            Route::WrongMethod(path) => (
                path.to_string(),
                json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("{method} is not allowed on {path}"),
                ),
            ),
            Route::NotFound => (
                "unmatched".to_string(),
                json_error(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_escape_their_text() {
        let reply = json_error(StatusCode::BAD_REQUEST, "bad", "a \"quoted\"\nline\\");
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
        let body = reply.into_body();
        let bytes = futures_lite::future::block_on(http_body_util::BodyExt::collect(body))
            .expect("full body")
            .to_bytes();
        assert_eq!(
            &bytes[..],
            br#"{"error":{"code":"bad","message":"a \"quoted\"\u000aline\\"}}"#
        );
    }

    #[test]
    fn find_distinguishes_missing_paths_from_wrong_methods() {
        let r = Router::new().route(Method::GET, "/healthz", |_req| async {
            json_error(StatusCode::OK, "ok", "ok")
        });
        assert!(matches!(
            r.find(&Method::GET, "/healthz"),
            Route::Found("/healthz", _)
        ));
        assert!(matches!(
            r.find(&Method::HEAD, "/healthz"),
            Route::Found(..)
        ));
        assert!(matches!(
            r.find(&Method::POST, "/healthz"),
            Route::WrongMethod(_)
        ));
        assert!(matches!(r.find(&Method::GET, "/nope"), Route::NotFound));
    }

    #[test]
    fn prefix_routes_match_below_their_prefix_only() {
        let ok = |_req| async { json_error(StatusCode::OK, "ok", "ok") };
        let r = Router::new()
            .route(Method::GET, "/api/v1/accounts", ok)
            .route_prefix(Method::GET, "/api/v1/accounts/", ok)
            .route_prefix(Method::DELETE, "/api/v1/accounts/", ok);
        assert!(matches!(
            r.find(&Method::GET, "/api/v1/accounts"),
            Route::Found("/api/v1/accounts", _)
        ));
        assert!(matches!(
            r.find(&Method::DELETE, "/api/v1/accounts/a@b.org"),
            Route::Found("/api/v1/accounts/", _)
        ));
        assert!(matches!(
            r.find(&Method::GET, "/api/v1/accounts/"),
            Route::NotFound
        ));
        assert!(matches!(
            r.find(&Method::POST, "/api/v1/accounts/x"),
            Route::WrongMethod(_)
        ));
    }
}

//! JSON request bodies and replies: a body is read up to a limit (413
//! beyond it) and parsed into a type (400 naming what is wrong); replies
//! carry `application/json`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::router::{json_error, Reply, Request};

/// Reads the request body (at most `limit` bytes) as JSON of type `T`.
pub async fn read_json<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, Reply> {
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the request body is larger than {limit} bytes"),
            ))
        }
        Err(e) => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                &format!("cannot read the request body: {e}"),
            ))
        }
    };
    serde_json::from_slice(&body)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()))
}

/// A JSON reply with `status`.
pub fn json_reply<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    reply
}

/// An empty 204 reply.
pub fn no_content() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
}

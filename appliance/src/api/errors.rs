//! Directory and routing errors as API replies: 400 with the field at
//! fault, 404, 409 (duplicate, not empty, in use), 503 when storage or a shard cannot answer.

use cairn_http::Reply;
use cairn_storage::directory::service::CallError;
use cairn_storage::directory::DirectoryError;
use cairn_storage::service::ServiceError;
use hyper::StatusCode;

use cairn_http::json::json_reply;

/// An error body with a code, a message and, for 400, the field.
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Reply {
    let mut inner = serde_json::json!({ "code": code, "message": message });
    if let Some(field) = field {
        inner["field"] = serde_json::Value::from(field);
    }
    json_reply(status, &serde_json::json!({ "error": inner }))
}

/// A directory call's failure.
pub fn directory(e: CallError) -> Reply {
    match e {
        CallError::Directory(DirectoryError::Invalid { field, reason }) => {
            error(StatusCode::BAD_REQUEST, "invalid", &reason, Some(field))
        }
        CallError::Directory(e @ DirectoryError::Exists { .. }) => {
            error(StatusCode::CONFLICT, "exists", &e.to_string(), None)
        }
        CallError::Directory(e @ DirectoryError::NotEmpty { .. }) => {
            error(StatusCode::CONFLICT, "not_empty", &e.to_string(), None)
        }
        CallError::Directory(e @ DirectoryError::InUse { .. }) => {
            error(StatusCode::CONFLICT, "in_use", &e.to_string(), None)
        }
        CallError::Directory(e @ DirectoryError::NotFound { .. }) => {
            error(StatusCode::NOT_FOUND, "not_found", &e.to_string(), None)
        }
        e => {
            tracing::error!(error = %e, "directory call failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
                None,
            )
        }
    }
}

/// 404 for an account.
pub fn not_found_account(address: &str) -> Reply {
    let why = format!("no such account: {address}");
    error(StatusCode::NOT_FOUND, "not_found", &why, None)
}

/// A mail call's failure.
pub fn mail(e: ServiceError) -> Reply {
    tracing::error!(error = %e, "mail call failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &e.to_string(),
        None,
    )
}

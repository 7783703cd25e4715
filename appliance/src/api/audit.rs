//! `GET /api/v1/audit?limit=&before=&actor=&action=&target=`: the audit
//! trail, newest first, one page at a time; `next` is the `before` of the
//! following page (absent on the last).

use std::rc::Rc;

use cairn_http::json::json_reply;
use cairn_http::{Reply, Request};
use cairn_storage::directory::audit::AuditQuery;
use hyper::StatusCode;

use super::{errors, page_limit, query, Api};

pub async fn list(api: Rc<Api>, req: Request) -> Reply {
    let q = query(&req);
    let before = match q.get("before").map(|b| b.parse::<u64>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => {
            return errors::error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "before: an entry id (the `next` of a previous page)",
                Some("before"),
            )
        }
    };
    if let Some(Err(_)) = q.get("limit").map(|l| l.parse::<usize>()) {
        return errors::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "limit: a number of entries",
            Some("limit"),
        );
    }
    let non_empty = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let audit = AuditQuery {
        before,
        limit: page_limit(&q),
        actor: non_empty("actor"),
        action: non_empty("action"),
        target: non_empty("target"),
    };
    match api.services.directory.audit(audit).await {
        Ok(page) => json_reply(
            StatusCode::OK,
            &serde_json::json!({ "items": page.entries, "next": page.next }),
        ),
        Err(e) => errors::directory(e),
    }
}

//! `/api/v1/lists`: distribution lists — list, add, delete.

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_storage::directory::List;
use hyper::StatusCode;
use serde::Deserialize;

use super::{errors, page_limit, path_tail, query, Api};

/// The prefix of one list's path.
pub const ONE: &str = "/api/v1/lists/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    address: String,
    members: Vec<String>,
    #[serde(default)]
    senders: Vec<String>,
    #[serde(default)]
    hidden: bool,
}

pub async fn list(api: Rc<Api>, req: Request) -> Reply {
    let q = query(&req);
    match api
        .services
        .directory
        .lists(
            q.get("after").cloned(),
            page_limit(&q),
            q.get("search").cloned(),
        )
        .await
    {
        Ok(items) => json_reply(StatusCode::OK, &serde_json::json!({ "items": items })),
        Err(e) => errors::directory(e),
    }
}

pub async fn add(api: Rc<Api>, req: Request) -> Reply {
    let new: Create = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let list = List {
        address: new.address,
        members: new.members,
        senders: new.senders,
        hidden: new.hidden,
    };
    match api.services.directory.add_list(list).await {
        Ok(list) => json_reply(StatusCode::CREATED, &list),
        Err(e) => errors::directory(e),
    }
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    match api
        .services
        .directory
        .delete_list(path_tail(&req, ONE))
        .await
    {
        Ok(()) => no_content(),
        Err(e) => errors::directory(e),
    }
}

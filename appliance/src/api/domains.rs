//! `/api/v1/domains`: list, add, show, delete (`?force=true` also deletes
//! the domain's addresses).

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use hyper::StatusCode;
use serde::Deserialize;

use super::{errors, page_limit, path_tail, query, Api};

/// The prefix of one domain's path.
pub const ONE: &str = "/api/v1/domains/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    name: String,
    alias_of: Option<String>,
    catch_all: Option<String>,
}

pub async fn list(api: Rc<Api>, req: Request) -> Reply {
    let q = query(&req);
    match api
        .services
        .directory
        .domains(
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
    let new: NewDomain = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    match api
        .services
        .directory
        .add_domain(new.name, new.alias_of, new.catch_all)
        .await
    {
        Ok(domain) => json_reply(StatusCode::CREATED, &domain),
        Err(e) => errors::directory(e),
    }
}

pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    let name = path_tail(&req, ONE);
    match api.services.directory.domain(name.clone()).await {
        Ok(Some(d)) => json_reply(StatusCode::OK, &d),
        Ok(None) => errors::error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such domain: {name}"),
            None,
        ),
        Err(e) => errors::directory(e),
    }
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    let force = query(&req).get("force").is_some_and(|v| v == "true");
    match api
        .services
        .directory
        .delete_domain(path_tail(&req, ONE), force)
        .await
    {
        Ok(()) => no_content(),
        Err(e) => errors::directory(e),
    }
}

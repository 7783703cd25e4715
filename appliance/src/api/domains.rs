//! `/api/v1/domains`: list, add, show, delete (`?force=true` also deletes
//! the domain's addresses); and below one domain its DKIM key
//! ([`super::dkim`]).

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use hyper::StatusCode;
use serde::Deserialize;

use super::{dkim, errors, page_limit, path_tail, query, Api};

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

/// `{name}/{segment}`: the domain and what is below it (a domain name
/// has no `/`).
fn below(tail: &str) -> (&str, Option<&str>) {
    match tail.split_once('/') {
        Some((domain, rest)) => (domain, Some(rest)),
        None => (tail, None),
    }
}

fn no_such_resource() -> Reply {
    errors::error(StatusCode::NOT_FOUND, "not_found", "no such resource", None)
}

/// `POST` below one domain: `{name}/dkim` makes its DKIM key.
pub async fn post_below(api: Rc<Api>, req: Request) -> Reply {
    let tail = path_tail(&req, ONE);
    match below(&tail) {
        (domain, Some(dkim::SEGMENT)) => dkim::create(&api, domain.to_string(), req).await,
        _ => no_such_resource(),
    }
}

pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    let name = path_tail(&req, ONE);
    match below(&name) {
        (_, None) => {}
        (domain, Some(dkim::SEGMENT)) => return dkim::show(&api, domain.to_string()).await,
        (_, Some(_)) => return no_such_resource(),
    }
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
    let name = path_tail(&req, ONE);
    match below(&name) {
        (_, None) => {}
        (domain, Some(dkim::SEGMENT)) => return dkim::delete(&api, domain.to_string()).await,
        (_, Some(_)) => return no_such_resource(),
    }
    let force = query(&req).get("force").is_some_and(|v| v == "true");
    match api.services.directory.delete_domain(name, force).await {
        Ok(()) => no_content(),
        Err(e) => errors::directory(e),
    }
}

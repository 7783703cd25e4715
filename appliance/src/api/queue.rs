//! The outbound queue over the admin API: `GET /api/v1/queue` lists every
//! shard's queued messages; `POST /api/v1/queue/retry` makes them all due
//! now, `POST /api/v1/queue/{id}/retry` one of them; `DELETE
//! /api/v1/queue/{id}` drops one without a bounce. An id is `SHARD.N`.

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content};
use cairn_http::{Reply, Request};
use cairn_storage::queue::{QueuedMessage, RecipientState};
use hyper::StatusCode;
use serde::Serialize;

use super::{errors, path_tail, Api};

/// The prefix of one message's routes.
pub const ONE: &str = "/api/v1/queue/";

#[derive(Serialize)]
struct RecipientView<'a> {
    address: &'a str,
    state: &'static str,
    reply: Option<&'a str>,
    host: Option<&'a str>,
}

#[derive(Serialize)]
struct MessageView<'a> {
    id: String,
    sender: &'a str,
    size: u64,
    created: i64,
    next_attempt: i64,
    attempts: u32,
    last_error: Option<&'a str>,
    recipients: Vec<RecipientView<'a>>,
}

fn view(shard: usize, m: &QueuedMessage) -> MessageView<'_> {
    MessageView {
        id: format!("{shard}.{}", m.id),
        sender: &m.sender,
        size: m.size,
        created: m.created,
        next_attempt: m.next_attempt,
        attempts: m.attempts,
        last_error: m.last_error.as_deref(),
        recipients: m
            .recipients
            .iter()
            .map(|r| {
                let (state, reply, host) = match &r.state {
                    RecipientState::Pending => ("pending", None, None),
                    RecipientState::Delivered { reply, mx, .. } => {
                        ("delivered", Some(reply.as_str()), Some(mx.as_str()))
                    }
                    RecipientState::Failed { reply, mx, .. } => {
                        ("failed", Some(reply.as_str()), Some(mx.as_str()))
                    }
                };
                RecipientView {
                    address: &r.address,
                    state,
                    reply,
                    host: host.filter(|h| !h.is_empty()),
                }
            })
            .collect(),
    }
}

/// `SHARD.N` as its two numbers, when `shard` is one of ours.
fn parse_id(api: &Api, id: &str) -> Option<(usize, u64)> {
    let (shard, n) = id.split_once('.')?;
    let shard: usize = shard.parse().ok()?;
    (shard < api.services.queue.shards()).then_some(())?;
    Some((shard, n.parse().ok()?))
}

fn bad_id(id: &str) -> Reply {
    let why = format!("{id:?} is not a queue id (SHARD.N, as `GET /api/v1/queue` lists them)");
    errors::error(StatusCode::BAD_REQUEST, "invalid", &why, Some("id"))
}

fn not_queued(id: &str) -> Reply {
    let why = format!("no queued message {id}");
    errors::error(StatusCode::NOT_FOUND, "not_found", &why, None)
}

pub async fn list(api: Rc<Api>, _req: Request) -> Reply {
    match api.services.queue.list().await {
        Ok(all) => {
            let items: Vec<MessageView<'_>> = all.iter().map(|(s, m)| view(*s, m)).collect();
            json_reply(StatusCode::OK, &serde_json::json!({ "items": items }))
        }
        Err(e) => errors::mail(e),
    }
}

/// `POST /api/v1/queue/retry` and `POST /api/v1/queue/{id}/retry`.
pub async fn retry(api: Rc<Api>, req: Request) -> Reply {
    let tail = path_tail(&req, ONE);
    let queue = &api.services.queue;
    let mut retried = 0;
    if tail == "retry" {
        for shard in 0..queue.shards() {
            match queue.retry(shard, None).await {
                Ok(n) => retried += n,
                Err(e) => return errors::mail(e),
            }
        }
    } else {
        let Some(id) = tail.strip_suffix("/retry") else {
            let why = "POST /api/v1/queue/retry or /api/v1/queue/{id}/retry";
            return errors::error(StatusCode::NOT_FOUND, "not_found", why, None);
        };
        let Some((shard, n)) = parse_id(&api, id) else {
            return bad_id(id);
        };
        match queue.retry(shard, Some(n)).await {
            Ok(0) => return not_queued(id),
            Ok(n) => retried = n,
            Err(e) => return errors::mail(e),
        }
    }
    tracing::info!(target: "audit", retried, "outbound queue retried");
    json_reply(StatusCode::OK, &serde_json::json!({ "retried": retried }))
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    let id = path_tail(&req, ONE);
    let Some((shard, n)) = parse_id(&api, &id) else {
        return bad_id(&id);
    };
    match api.services.queue.delete(shard, n).await {
        Ok(true) => {
            tracing::info!(target: "audit", %id, "queued message deleted");
            no_content()
        }
        Ok(false) => not_queued(&id),
        Err(e) => errors::mail(e),
    }
}

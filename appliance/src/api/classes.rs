//! `/api/v1/classes`: classes of service — list, add, show, change,
//! delete (refused with 409 while accounts use the class). The class
//! `default` always exists; it can be changed but not deleted.

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_storage::directory::service::ClassChanges;
use cairn_storage::directory::{ClassOfService, Features};
use hyper::StatusCode;
use serde::Deserialize;

use super::{errors, path_tail, Api};

/// The prefix of one class's path.
pub const ONE: &str = "/api/v1/classes/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    #[serde(default)]
    quota_bytes: u64,
    #[serde(default)]
    max_message_size: u64,
    #[serde(default)]
    features: FeaturePatch,
    min_password_length: Option<u32>,
}

/// Feature flags; those left out stay as they are (on, for a new class).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FeaturePatch {
    imap: Option<bool>,
    pop3: Option<bool>,
    activesync: Option<bool>,
    files: Option<bool>,
    chats: Option<bool>,
    video: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    quota_bytes: Option<u64>,
    max_message_size: Option<u64>,
    #[serde(default)]
    features: FeaturePatch,
    min_password_length: Option<u32>,
}

fn changes(
    quota_bytes: Option<u64>,
    max_message_size: Option<u64>,
    min_password_length: Option<u32>,
    f: FeaturePatch,
) -> ClassChanges {
    ClassChanges {
        quota_bytes,
        max_message_size,
        min_password_length,
        imap: f.imap,
        pop3: f.pop3,
        activesync: f.activesync,
        files: f.files,
        chats: f.chats,
        video: f.video,
    }
}

fn not_found(name: &str) -> Reply {
    errors::error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no such class of service: {name}"),
        None,
    )
}

pub async fn list(api: Rc<Api>, _req: Request) -> Reply {
    match api.services.directory.classes().await {
        Ok(items) => json_reply(StatusCode::OK, &serde_json::json!({ "items": items })),
        Err(e) => errors::directory(e),
    }
}

pub async fn add(api: Rc<Api>, req: Request) -> Reply {
    let new: Create = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let mut class = ClassOfService {
        name: new.name,
        quota_bytes: 0,
        max_message_size: 0,
        features: Features::default(),
        min_password_length: ClassOfService::DEFAULT_MIN_PASSWORD,
    };
    changes(
        Some(new.quota_bytes),
        Some(new.max_message_size),
        new.min_password_length,
        new.features,
    )
    .apply(&mut class);
    match api.services.directory.add_class(class).await {
        Ok(class) => json_reply(StatusCode::CREATED, &class),
        Err(e) => errors::directory(e),
    }
}

pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    let name = path_tail(&req, ONE);
    match api.services.directory.class(name.clone()).await {
        Ok(Some(class)) => json_reply(StatusCode::OK, &class),
        Ok(None) => not_found(&name),
        Err(e) => errors::directory(e),
    }
}

pub async fn patch(api: Rc<Api>, req: Request) -> Reply {
    let name = path_tail(&req, ONE);
    let patch: Patch = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let quota_changed = patch.quota_bytes.is_some();
    let changes = changes(
        patch.quota_bytes,
        patch.max_message_size,
        patch.min_password_length,
        patch.features,
    );
    let class = match api.services.directory.update_class(name, changes).await {
        Ok(class) => class,
        Err(e) => return errors::directory(e),
    };
    if quota_changed {
        // The directory changed the quotas that follow the class; the
        // mailstores get every account's current one.
        let members = match api.services.directory.accounts_in(class.name.clone()).await {
            Ok(members) => members,
            Err(e) => return errors::directory(e),
        };
        if let Err(reply) = super::accounts::apply_quotas(&api, &members).await {
            return reply;
        }
    }
    json_reply(StatusCode::OK, &class)
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    match api
        .services
        .directory
        .delete_class(path_tail(&req, ONE))
        .await
    {
        Ok(()) => no_content(),
        Err(e) => errors::directory(e),
    }
}

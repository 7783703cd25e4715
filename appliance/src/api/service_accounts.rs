//! `/api/v1/service-accounts`: credentials for programs such as an LDAP
//! address book client — add (`{"name", "password", "description"}`; the
//! password is hashed with argon2id on the blocking pool), list (never
//! the hashes), delete `/api/v1/service-accounts/{name}`.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_storage::directory::service::CallError;
use cairn_storage::directory::service_accounts::{self, ServiceAccount};
use cairn_storage::directory::ClassOfService;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::{errors, path_tail, Api};

/// The prefix of one service account's path.
pub const ONE: &str = "/api/v1/service-accounts/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    password: String,
    #[serde(default)]
    description: String,
}

/// A service account as shown: never its hash.
#[derive(Serialize)]
struct View {
    name: String,
    description: String,
    created_unix: u64,
}

impl From<ServiceAccount> for View {
    fn from(s: ServiceAccount) -> Self {
        Self {
            name: s.name,
            description: s.description,
            created_unix: s.created_unix,
        }
    }
}

pub async fn add(api: Rc<Api>, req: Request) -> Reply {
    let new: Create = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let name = match service_accounts::name(&new.name) {
        Ok(n) => n,
        Err(e) => return errors::directory(CallError::Directory(e)),
    };
    let shortest = ClassOfService::DEFAULT_MIN_PASSWORD as usize;
    if new.password.chars().count() < shortest {
        let why = format!("at least {shortest} characters");
        return errors::error(StatusCode::BAD_REQUEST, "invalid", &why, Some("password"));
    }
    let password_hash = match api.services.hash_password(new.password).await {
        Ok(h) => h,
        Err(e) => {
            return errors::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "hashing",
                &e.to_string(),
                None,
            )
        }
    };
    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let account = ServiceAccount {
        name,
        password_hash,
        description: new.description,
        created_unix,
    };
    match api.services.directory.add_service_account(account).await {
        Ok(s) => {
            tracing::info!(target: "audit", service_account = %s.name, "service account added");
            json_reply(StatusCode::CREATED, &View::from(s))
        }
        Err(e) => errors::directory(e),
    }
}

pub async fn list(api: Rc<Api>, _req: Request) -> Reply {
    match api.services.directory.service_accounts().await {
        Ok(all) => {
            let items: Vec<View> = all.into_iter().map(View::from).collect();
            json_reply(StatusCode::OK, &serde_json::json!({ "items": items }))
        }
        Err(e) => errors::directory(e),
    }
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    let name = path_tail(&req, ONE);
    match api
        .services
        .directory
        .delete_service_account(name.clone())
        .await
    {
        Ok(()) => {
            tracing::info!(target: "audit", service_account = %name, "service account deleted");
            no_content()
        }
        Err(e) => errors::directory(e),
    }
}

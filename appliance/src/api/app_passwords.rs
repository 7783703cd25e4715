//! `/api/v1/accounts/{address}/app-passwords`: an account's app passwords
//! for mail clients — add (the generated password is in the reply, once;
//! only its argon2id hash, made on the blocking pool, is kept), list
//! (names and creation times, never hashes), delete.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_storage::directory::app_passwords::{self, MAX_PER_ACCOUNT};
use cairn_storage::directory::service::CallError;
use cairn_storage::directory::AppPassword;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::{errors, Api};

/// The path segment after the account's address.
pub const SEGMENT: &str = "app-passwords";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
}

/// An app password as listed: never its hash.
#[derive(Serialize)]
struct View {
    name: String,
    created_unix: u64,
}

/// A new app password: the only time the password is shown.
#[derive(Serialize)]
struct Created {
    address: String,
    name: String,
    password: String,
    created_unix: u64,
}

/// `POST …/app-passwords {"name": …}` → 201 with the password.
pub async fn add(api: &Api, address: String, req: Request) -> Reply {
    let new: Create = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let name = match app_passwords::name(&new.name) {
        Ok(n) => n,
        Err(e) => return errors::directory(CallError::Directory(e)),
    };
    let primary = match api.services.directory.account(address.clone()).await {
        Ok(Some(a)) => a.address,
        Ok(None) => return errors::not_found_account(&address),
        Err(e) => return errors::directory(e),
    };
    match api.services.directory.app_passwords(primary.clone()).await {
        Ok(existing) if existing.iter().any(|a| a.name == name) => {
            let why = format!("app password {name} exists already");
            return errors::error(StatusCode::CONFLICT, "exists", &why, None);
        }
        Ok(existing) if existing.len() >= MAX_PER_ACCOUNT => {
            let why =
                format!("{primary} has {MAX_PER_ACCOUNT} app passwords already; delete one first");
            return errors::error(StatusCode::BAD_REQUEST, "invalid", &why, Some("name"));
        }
        Ok(_) => {}
        Err(e) => return errors::directory(e),
    }
    let password = app_passwords::generate();
    let hash = match api.services.hash_password(password.clone()).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot hash an app password");
            return errors::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "hashing",
                "cannot hash the password",
                None,
            );
        }
    };
    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let app = AppPassword {
        name,
        hash,
        created_unix,
    };
    match api
        .services
        .directory
        .add_app_password(primary.clone(), app)
        .await
    {
        Ok(app) => {
            tracing::info!(target: "audit", account = %primary, app_password = %app.name, "app password added");
            json_reply(
                StatusCode::CREATED,
                &Created {
                    address: primary,
                    name: app.name,
                    password,
                    created_unix: app.created_unix,
                },
            )
        }
        Err(e) => errors::directory(e),
    }
}

/// `GET …/app-passwords`: names and creation times.
pub async fn list(api: &Api, address: String) -> Reply {
    match api.services.directory.app_passwords(address).await {
        Ok(items) => {
            let items: Vec<View> = items
                .into_iter()
                .map(|a| View {
                    name: a.name,
                    created_unix: a.created_unix,
                })
                .collect();
            json_reply(StatusCode::OK, &serde_json::json!({ "items": items }))
        }
        Err(e) => errors::directory(e),
    }
}

/// `DELETE …/app-passwords/{name}`.
pub async fn delete(api: &Api, address: String, name: String) -> Reply {
    match api
        .services
        .directory
        .delete_app_password(address.clone(), name.clone())
        .await
    {
        Ok(()) => {
            tracing::info!(target: "audit", account = %address, app_password = %name, "app password deleted");
            no_content()
        }
        Err(e) => errors::directory(e),
    }
}

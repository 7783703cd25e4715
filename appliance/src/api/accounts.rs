//! `/api/v1/accounts`: list (paged, `?search=`), add (the password is
//! hashed with argon2id on the blocking pool; the mail account is made on
//! the shard that owns it), show, change (password, status, name), delete.

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_storage::directory::service::AccountChanges;
use cairn_storage::directory::{names, Account, NewAccount, Status};
use cairn_storage::mailbox::MailError;
use cairn_storage::service::ServiceError;
use cairn_storage::services::ProvisionError;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::{errors, page_limit, path_tail, query, Api};

/// The prefix of one account's path.
pub const ONE: &str = "/api/v1/accounts/";
/// The shortest password accepted.
const MIN_PASSWORD: usize = 8;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    address: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    surname: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    quota_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    password: Option<String>,
    status: Option<Status>,
    display_name: Option<String>,
}

/// An account as the API shows it: never its password hash.
#[derive(Serialize)]
struct View {
    address: String,
    display_name: String,
    given_name: String,
    surname: String,
    phone: String,
    status: Status,
    quota_bytes: u64,
    shard: u32,
    aliases: Vec<String>,
}

impl From<Account> for View {
    fn from(a: Account) -> Self {
        View {
            address: a.address,
            display_name: a.display_name,
            given_name: a.given_name,
            surname: a.surname,
            phone: a.phone,
            status: a.status,
            quota_bytes: a.quota_bytes,
            shard: a.shard,
            aliases: a.aliases,
        }
    }
}

/// Checks the password policy and hashes on the blocking pool.
async fn hash_password(api: &Api, password: String) -> Result<String, Reply> {
    if password.chars().count() < MIN_PASSWORD {
        let why = format!("at least {MIN_PASSWORD} characters");
        return Err(errors::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &why,
            Some("password"),
        ));
    }
    api.services.hash_password(password).await.map_err(|e| {
        tracing::error!(error = %e, "cannot hash a password");
        errors::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "hashing",
            "cannot hash the password",
            None,
        )
    })
}

/// Changes the password, status or display name.
pub async fn patch(api: Rc<Api>, req: Request) -> Reply {
    let address = path_tail(&req, ONE);
    let patch: Patch = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let password_hash = match patch.password {
        Some(p) => match hash_password(&api, p).await {
            Ok(h) => Some(h),
            Err(reply) => return reply,
        },
        None => None,
    };
    let changes = AccountChanges {
        password_hash,
        status: patch.status,
        display_name: patch.display_name,
    };
    match api
        .services
        .directory
        .update_account(address, changes)
        .await
    {
        Ok(a) => json_reply(StatusCode::OK, &View::from(a)),
        Err(e) => errors::directory(e),
    }
}

pub async fn list(api: Rc<Api>, req: Request) -> Reply {
    let q = query(&req);
    let found = api
        .services
        .directory
        .accounts(
            q.get("after").cloned(),
            page_limit(&q),
            q.get("search").cloned(),
        )
        .await;
    match found {
        Ok(items) => {
            let items: Vec<View> = items.into_iter().map(View::from).collect();
            json_reply(StatusCode::OK, &serde_json::json!({ "items": items }))
        }
        Err(e) => errors::directory(e),
    }
}

pub async fn add(api: Rc<Api>, req: Request) -> Reply {
    let new: Create = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let address = match names::address(&new.address) {
        Ok((address, _)) => address,
        Err(e) => return errors::directory(e.into()),
    };
    let password_hash = match hash_password(&api, new.password).await {
        Ok(h) => h,
        Err(reply) => return reply,
    };
    let account = NewAccount {
        address,
        password_hash,
        display_name: new.display_name,
        given_name: new.given_name,
        surname: new.surname,
        phone: new.phone,
        quota_bytes: new.quota_bytes,
        class_of_service: None,
        shard: 0,
    };
    let created = match api.services.add_account(account).await {
        Ok(a) => a,
        Err(ProvisionError::Directory(e)) => return errors::directory(e),
        Err(ProvisionError::Mail(e)) => return errors::mail(e),
        Err(e @ ProvisionError::Hash(_)) => {
            return errors::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "hashing",
                &e.to_string(),
                None,
            )
        }
    };
    json_reply(StatusCode::CREATED, &View::from(created))
}

pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    let address = path_tail(&req, ONE);
    if let Some((account, mailbox)) = address.split_once("/mailboxes/") {
        return mailbox_status(&api, account, mailbox).await;
    }
    match api.services.directory.account(address.clone()).await {
        Ok(Some(a)) => json_reply(StatusCode::OK, &View::from(a)),
        Ok(None) => errors::error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such account: {address}"),
            None,
        ),
        Err(e) => errors::directory(e),
    }
}

/// A mailbox's counters as the API shows them.
#[derive(Serialize)]
struct MailboxView {
    name: String,
    messages: u32,
    unseen: u32,
    size: u64,
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
}

/// `GET /api/v1/accounts/{address}/mailboxes/{name}`: the mailbox's
/// counters, from the shard that owns the account.
async fn mailbox_status(api: &Api, account: &str, mailbox: &str) -> Reply {
    let primary = match api.services.directory.account(account.to_string()).await {
        Ok(Some(a)) => a.address,
        Ok(None) => {
            let why = format!("no such account: {account}");
            return errors::error(StatusCode::NOT_FOUND, "not_found", &why, None);
        }
        Err(e) => return errors::directory(e),
    };
    match api.services.mail.status(&primary, mailbox).await {
        Ok(s) => json_reply(
            StatusCode::OK,
            &MailboxView {
                name: mailbox.to_string(),
                messages: s.messages,
                unseen: s.unseen,
                size: s.size,
                uidvalidity: s.uidvalidity,
                uidnext: s.uidnext,
                highest_modseq: s.highest_modseq,
            },
        ),
        Err(ServiceError::Mail(MailError::NoSuchMailbox(name))) => {
            let why = format!("no such mailbox: {name}");
            errors::error(StatusCode::NOT_FOUND, "not_found", &why, None)
        }
        Err(e) => errors::mail(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAlias {
    alias: String,
}

/// `POST /api/v1/accounts/{address}/aliases {"alias": …}`.
pub async fn add_alias(api: Rc<Api>, req: Request) -> Reply {
    let tail = path_tail(&req, ONE);
    let Some(address) = tail.strip_suffix("/aliases") else {
        return errors::error(StatusCode::NOT_FOUND, "not_found", "no such resource", None);
    };
    let address = address.to_string();
    let new: NewAlias = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    if let Err(e) = api
        .services
        .directory
        .add_alias(new.alias, address.clone())
        .await
    {
        return errors::directory(e);
    }
    match api.services.directory.account(address).await {
        Ok(Some(a)) => json_reply(StatusCode::CREATED, &View::from(a)),
        Ok(None) => errors::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the account went away",
            None,
        ),
        Err(e) => errors::directory(e),
    }
}

pub async fn delete(api: Rc<Api>, req: Request) -> Reply {
    let address = path_tail(&req, ONE);
    let primary = match api.services.directory.account(address.clone()).await {
        Ok(Some(a)) => a.address,
        Ok(None) => {
            let why = format!("no such account: {address}");
            return errors::error(StatusCode::NOT_FOUND, "not_found", &why, None);
        }
        Err(e) => return errors::directory(e),
    };
    if let Err(e) = api.services.directory.delete_account(primary.clone()).await {
        return errors::directory(e);
    }
    match api.services.mail.delete_account(&primary).await {
        Ok(()) | Err(ServiceError::Mail(MailError::NoSuchAccount(_))) => no_content(),
        Err(e) => errors::mail(e),
    }
}

//! `/api/v1/accounts`: list (paged, `?search=`), add (the password is
//! hashed with argon2id on the blocking pool; the mail account is made on
//! the shard that owns it), show, change (password, status, name, class of
//! service), delete; and below one account its app passwords
//! ([`super::app_passwords`]). The password policy (its shortest length)
//! and a new account's default quota come from its class of service; an
//! account given no quota of its own follows its class's quota when the
//! account changes class or the class's quota changes (applied to its
//! mailstore on its shard by [`apply_quotas`]). `POST …/{address}/move
//! {"shard": N}` moves an account and its mail to shard N.

use std::rc::Rc;

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_shards::placement::PlacementError;
use cairn_storage::directory::service::AccountChanges;
use cairn_storage::directory::{names, Account, ClassOfService, NewAccount, Status};
use cairn_storage::mailbox::MailError;
use cairn_storage::placement::{MoveError, PlacementFailure};
use cairn_storage::service::ServiceError;
use cairn_storage::services::ProvisionError;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::{app_passwords, errors, page_limit, path_tail, query, Api};

/// The prefix of one account's path.
pub const ONE: &str = "/api/v1/accounts/";

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
    /// Absent or 0: the quota of its class of service.
    #[serde(default)]
    quota_bytes: Option<u64>,
    /// Absent: `default`.
    class_of_service: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    password: Option<String>,
    status: Option<Status>,
    display_name: Option<String>,
    class_of_service: Option<String>,
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
    class_of_service: String,
    shard: u32,
    aliases: Vec<String>,
}

impl View {
    /// `a` as shown, with the shard that owns it now (the placement table:
    /// moves change it).
    fn of(api: &Api, a: Account) -> Self {
        View {
            shard: api.services.placement.owner(&a.address) as u32,
            address: a.address,
            display_name: a.display_name,
            given_name: a.given_name,
            surname: a.surname,
            phone: a.phone,
            status: a.status,
            quota_bytes: a.quota_bytes,
            class_of_service: a
                .class_of_service
                .unwrap_or_else(|| ClassOfService::DEFAULT.to_string()),
            aliases: a.aliases,
        }
    }
}

/// The class of service `name` (`None`: `default`), or 400 naming the
/// field `class_of_service`.
async fn class_named(api: &Api, name: Option<String>) -> Result<ClassOfService, Reply> {
    let name = name.unwrap_or_else(|| ClassOfService::DEFAULT.to_string());
    match api.services.directory.class(name.clone()).await {
        Ok(Some(class)) => Ok(class),
        Ok(None) => Err(errors::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("no such class of service: {name}"),
            Some("class_of_service"),
        )),
        Err(e) => Err(errors::directory(e)),
    }
}

/// Checks the password policy of `class` and hashes on the blocking pool.
async fn hash_password(
    api: &Api,
    password: String,
    class: &ClassOfService,
) -> Result<String, Reply> {
    let min = class.min_password_length as usize;
    if password.chars().count() < min {
        let why = format!(
            "at least {min} characters (class of service {})",
            class.name
        );
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
    // A new class is checked before anything else, and its policy applies
    // to a password given with it.
    let new_class = match &patch.class_of_service {
        Some(name) => match class_named(&api, Some(name.clone())).await {
            Ok(class) => Some(class),
            Err(reply) => return reply,
        },
        None => None,
    };
    let password_hash = match patch.password {
        Some(p) => {
            let class = match new_class {
                Some(class) => class,
                None => match api.services.directory.class_of(address.clone()).await {
                    Ok(class) => class,
                    Err(e) => return errors::directory(e),
                },
            };
            match hash_password(&api, p, &class).await {
                Ok(h) => Some(h),
                Err(reply) => return reply,
            }
        }
        None => None,
    };
    let class_changed = patch.class_of_service.is_some();
    let changes = AccountChanges {
        password_hash,
        status: patch.status,
        display_name: patch.display_name,
        class_of_service: patch.class_of_service,
    };
    match api
        .services
        .directory
        .update_account(address, changes)
        .await
    {
        Ok(a) if class_changed => match apply_quotas(&api, std::slice::from_ref(&a)).await {
            Ok(()) => json_reply(StatusCode::OK, &View::of(&api, a)),
            Err(reply) => reply,
        },
        Ok(a) => json_reply(StatusCode::OK, &View::of(&api, a)),
        Err(e) => errors::directory(e),
    }
}

/// Sets each account's directory quota on its mailstore (on the shard
/// that owns it): after a class change, so that delivery and APPEND over
/// the new quota are refused. The first failure is the answer (the
/// directory keeps the new quota; a retry of the same change applies it).
pub(super) async fn apply_quotas(api: &Api, accounts: &[Account]) -> Result<(), Reply> {
    for a in accounts {
        if let Err(e) = api
            .services
            .mail
            .set_quota(&a.address, a.quota_bytes, 0)
            .await
        {
            tracing::error!(account = %a.address, error = %e, "cannot apply a quota");
            return Err(errors::mail(e));
        }
    }
    Ok(())
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
            let items: Vec<View> = items.into_iter().map(|a| View::of(&api, a)).collect();
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
    let class = match class_named(&api, new.class_of_service.clone()).await {
        Ok(class) => class,
        Err(reply) => return reply,
    };
    let password_hash = match hash_password(&api, new.password, &class).await {
        Ok(h) => h,
        Err(reply) => return reply,
    };
    // 0: the directory fills in the class's and the account follows it.
    let quota_bytes = new.quota_bytes.unwrap_or(0);
    let account = NewAccount {
        address,
        password_hash,
        display_name: new.display_name,
        given_name: new.given_name,
        surname: new.surname,
        phone: new.phone,
        quota_bytes,
        class_of_service: new.class_of_service.map(|_| class.name),
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
        Err(e @ ProvisionError::Placement(_)) => {
            return errors::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "placement",
                &e.to_string(),
                None,
            )
        }
    };
    json_reply(StatusCode::CREATED, &View::of(&api, created))
}

pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    let address = path_tail(&req, ONE);
    if let Some((account, mailbox)) = address.split_once("/mailboxes/") {
        return mailbox_status(&api, account, mailbox).await;
    }
    if let (account, Some(rest)) = below(&address) {
        return match rest {
            app_passwords::SEGMENT => app_passwords::list(&api, account.to_string()).await,
            _ => no_such_resource(),
        };
    }
    match api.services.directory.account(address.clone()).await {
        Ok(Some(a)) => json_reply(StatusCode::OK, &View::of(&api, a)),
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

/// Splits `address/rest` after the address's domain (which holds no `/`).
fn below(tail: &str) -> (&str, Option<&str>) {
    let domain_at = tail.rfind('@').unwrap_or(0);
    match tail[domain_at..].find('/') {
        Some(slash) => {
            let (address, rest) = tail.split_at(domain_at + slash);
            (address, Some(&rest[1..]))
        }
        None => (tail, None),
    }
}

fn no_such_resource() -> Reply {
    errors::error(StatusCode::NOT_FOUND, "not_found", "no such resource", None)
}

/// The segment below an account that moves it.
const MOVE: &str = "move";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveTo {
    shard: usize,
}

/// Where a moved account was and is.
#[derive(Serialize)]
struct Moved {
    address: String,
    from: usize,
    shard: usize,
}

/// `POST /api/v1/accounts/{address}/move {"shard": N}`: moves the account
/// and its mail to shard N (see `PlacementService::move_account`);
/// meanwhile deliveries to it are refused with a temporary error and other
/// writes wait, then fail the same way, so that the client's retry reaches
/// the new shard. 200 with where it
/// was, 400 for a shard that does not run, 404 for no such account, 503
/// when the move failed (the account stays where it was; code
/// `move_failed` when the copy or the shards' exchange failed, so that it
/// may be tried again).
async fn move_account(api: &Api, address: String, req: Request) -> Reply {
    let to: MoveTo = match read_json(req, api.max_body).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let primary = match api.services.directory.account(address.clone()).await {
        Ok(Some(a)) => a.address,
        Ok(None) => return errors::not_found_account(&address),
        Err(e) => return errors::directory(e),
    };
    let services = &api.services;
    match services
        .placement
        .move_account(&services.mail, &primary, to.shard)
        .await
    {
        Ok(from) => json_reply(
            StatusCode::OK,
            &Moved {
                address: primary,
                from,
                shard: to.shard,
            },
        ),
        Err(MoveError::Placement(PlacementFailure::Placement(
            e @ PlacementError::NoSuchShard { .. },
        ))) => errors::error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &e.to_string(),
            Some("shard"),
        ),
        Err(MoveError::Mail(ServiceError::Mail(e @ MailError::MoveFailed(_)))) => {
            tracing::warn!(account = %primary, error = %e, "api: an account move failed");
            errors::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "move_failed",
                &e.to_string(),
                None,
            )
        }
        Err(MoveError::Mail(e)) => errors::mail(e),
        Err(e @ MoveError::Placement(_)) => errors::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "placement",
            &e.to_string(),
            None,
        ),
    }
}

/// `POST /api/v1/accounts/{address}/aliases {"alias": …}`, and
/// `POST …/app-passwords {"name": …}`.
pub async fn add_alias(api: Rc<Api>, req: Request) -> Reply {
    let tail = path_tail(&req, ONE);
    let address = match below(&tail) {
        (address, Some("aliases")) => address.to_string(),
        (address, Some(app_passwords::SEGMENT)) => {
            return app_passwords::add(&api, address.to_string(), req).await
        }
        (address, Some(MOVE)) => return move_account(&api, address.to_string(), req).await,
        _ => return no_such_resource(),
    };
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
        Ok(Some(a)) => json_reply(StatusCode::CREATED, &View::of(&api, a)),
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
    if let (account, Some(rest)) = below(&address) {
        let app = rest
            .strip_prefix(app_passwords::SEGMENT)
            .and_then(|r| r.strip_prefix('/'));
        return match app {
            Some(name) => app_passwords::delete(&api, account.to_string(), name.to_string()).await,
            None => no_such_resource(),
        };
    }
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

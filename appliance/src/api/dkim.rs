//! `/api/v1/domains/{name}/dkim`: a served domain's DKIM key — make one
//! (`POST`, optional body `{"algorithm": "rsa"|"ed25519", "selector": …}`;
//! RSA-2048 and a `cairn<yyyymm>` selector by default; the key pair is
//! made on the blocking pool, never on the shard, and replaces any key the
//! domain had), show it (`GET`) and remove it (`DELETE`). Replies carry the
//! DNS TXT record to publish, never the private key.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{Reply, Request};
use cairn_smtp::dkim::{self as smtp_dkim, DkimAlgorithm, DkimKey};
use cairn_storage::directory::dkim as keys;
use cairn_storage::directory::names;
use cairn_storage::directory::service::CallError;
use hyper::{header, StatusCode};
use serde::{Deserialize, Serialize};

use super::{errors, Api};

/// The path segment after the domain's name.
pub const SEGMENT: &str = "dkim";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Create {
    /// `rsa` (2048 bits, the default) or `ed25519`.
    algorithm: Option<String>,
    /// Default: `cairn<yyyymm>`.
    selector: Option<String>,
}

/// A key as the API shows it: where and what to publish.
#[derive(Serialize)]
struct View {
    domain: String,
    selector: String,
    algorithm: &'static str,
    record_name: String,
    record: String,
    created: i64,
}

impl View {
    fn of(domain: &str, key: &DkimKey) -> Self {
        View {
            domain: domain.to_string(),
            selector: key.selector.clone(),
            algorithm: key.algorithm.name(),
            record_name: smtp_dkim::record_name(domain, &key.selector),
            record: smtp_dkim::dns_record(key),
            created: key.created,
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The domain name of the path, checked and lower-cased.
fn domain_name(name: &str) -> Result<String, CallError> {
    names::domain(name).map_err(CallError::Directory)
}

/// 404 for a domain that is not served.
fn no_domain(domain: &str) -> Reply {
    let why = format!("no such domain: {domain}");
    errors::error(StatusCode::NOT_FOUND, "not_found", &why, None)
}

/// Whether the request has a body at all (an empty one means defaults).
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    match headers.get(header::CONTENT_LENGTH) {
        Some(len) => len.to_str().ok().and_then(|l| l.trim().parse::<u64>().ok()) != Some(0),
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// `POST …/dkim` → 201 with the record to publish.
pub async fn create(api: &Api, domain: String, req: Request) -> Reply {
    let domain = match domain_name(&domain) {
        Ok(d) => d,
        Err(e) => return errors::directory(e),
    };
    let new: Create = if has_body(&req) {
        match read_json(req, api.max_body).await {
            Ok(v) => v,
            Err(reply) => return reply,
        }
    } else {
        Create::default()
    };
    let algorithm = match new.algorithm.as_deref() {
        None => DkimAlgorithm::Rsa2048,
        Some(name) => match DkimAlgorithm::from_name(name) {
            Some(a) => a,
            None => {
                let why = format!("unknown algorithm {name:?}: rsa or ed25519");
                return errors::error(StatusCode::BAD_REQUEST, "invalid", &why, Some("algorithm"));
            }
        },
    };
    let now = now();
    let selector = match keys::selector(
        &new.selector
            .unwrap_or_else(|| smtp_dkim::default_selector(now)),
    ) {
        Ok(s) => s,
        Err(e) => return errors::directory(CallError::Directory(e)),
    };
    // Spend no CPU on a domain we do not serve.
    match api.services.directory.domain(domain.clone()).await {
        Ok(Some(_)) => {}
        Ok(None) => return no_domain(&domain),
        Err(e) => return errors::directory(e),
    }
    let made = api
        .services
        .blocking
        .run(move || smtp_dkim::generate(algorithm, &selector, now))
        .await;
    let key = match made {
        Ok(Ok(key)) => key,
        Ok(Err(e)) => {
            tracing::error!(error = %e, %domain, "cannot make a DKIM key");
            return errors::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "dkim",
                &e.to_string(),
                None,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, %domain, "the blocking pool lost a DKIM key job");
            return errors::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "cannot make the key now",
                None,
            );
        }
    };
    match api
        .services
        .directory
        .set_dkim_key(domain.clone(), key.clone())
        .await
    {
        Ok(()) => {
            tracing::info!(target: "audit", %domain, selector = %key.selector, algorithm = key.algorithm.name(), "DKIM key made");
            json_reply(StatusCode::CREATED, &View::of(&domain, &key))
        }
        Err(e) => errors::directory(e),
    }
}

/// `GET …/dkim`: the selector and the record (404 when there is none).
pub async fn show(api: &Api, domain: String) -> Reply {
    let domain = match domain_name(&domain) {
        Ok(d) => d,
        Err(e) => return errors::directory(e),
    };
    match api.services.directory.dkim_key(domain.clone()).await {
        Ok(Some(key)) => json_reply(StatusCode::OK, &View::of(&domain, &key)),
        Ok(None) => match api.services.directory.domain(domain.clone()).await {
            Ok(None) => no_domain(&domain),
            Ok(Some(_)) => {
                let why = format!("the domain {domain} has no DKIM key");
                errors::error(StatusCode::NOT_FOUND, "not_found", &why, None)
            }
            Err(e) => errors::directory(e),
        },
        Err(e) => errors::directory(e),
    }
}

/// `DELETE …/dkim`: its mail is no longer signed.
pub async fn delete(api: &Api, domain: String) -> Reply {
    let domain = match domain_name(&domain) {
        Ok(d) => d,
        Err(e) => return errors::directory(e),
    };
    match api.services.directory.remove_dkim_key(domain.clone()).await {
        Ok(()) => {
            tracing::info!(target: "audit", %domain, "DKIM key removed");
            no_content()
        }
        Err(e) => errors::directory(e),
    }
}

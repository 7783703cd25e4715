//! Account sessions of the HTTP API:
//!
//! - `POST /api/v1/session` with `{user, password}` (an account's address
//!   and its password or an app password, checked by the directory with
//!   the lockout and audit of every login, as protocol `http`): `201`
//!   `{token, account, expires_at}`; `401` for wrong credentials, `429`
//!   (with `Retry-After`) while locked out.
//! - `GET /api/v1/session` (`Authorization: Bearer TOKEN`): `{account,
//!   expires_at}`; `DELETE` ends the session (`204`).
//!
//! A token is stateless: `cs1.PAYLOAD.MAC`, both base64url without
//! padding, the payload the JSON `{account, expires, id}` and the MAC the
//! HMAC-SHA256 of `cs1.PAYLOAD` under a key of 32 random bytes kept in the
//! data directory ([`KEY_FILE`], 0600, made at first start), so a token is
//! good on every shard and after a restart. It is accepted until it
//! expires ([`LIFETIME_SECS`]) while its account exists and is active and
//! its id was not revoked; revocations are kept by the directory.
//!
//! Session tokens open the rooms' routes ([`super::rooms`]) and this one,
//! never the admin API.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cairn_http::json::{json_reply, no_content, read_json};
use cairn_http::{json_error, Reply, Request};
use cairn_storage::directory::auth::AuthError;
use cairn_storage::directory::sessions::Revoked;
use cairn_storage::directory::Status;
use cairn_storage::DataDir;
use hmac::{Hmac, Mac};
use hyper::{header, StatusCode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{errors, Api};

/// What every session token starts with (the format's version).
pub const PREFIX: &str = "cs1.";
/// How long a session lasts, in seconds (12 hours).
pub const LIFETIME_SECS: u64 = 12 * 60 * 60;
/// The file, inside the data directory, that holds the signing key (hex).
pub const KEY_FILE: &str = "session-key";
/// The protocol named in the audit trail for these logins.
const PROTOCOL: &str = "http";

/// The signing key, read once at start ([`init_key`]) before the shards
/// run; never changed after.
static KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Makes the signing key if the data directory has none yet, and reads it.
pub fn init_key(dir: &DataDir) -> Result<(), String> {
    let path = dir.path().join(KEY_FILE);
    if !path.exists() {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        dir.write_file(std::path::Path::new(KEY_FILE), hex(&key).as_bytes(), 0o600)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key = unhex(text.trim())
        .ok_or_else(|| format!("{} is not 64 hexadecimal digits", path.display()))?;
    // A second call (there is none) would find the same file.
    let _ = KEY.set(key);
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

/// HMAC-SHA256 (RFC 2104) of `message` under a 32-byte key.
fn mac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut hmac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    hmac.update(message);
    hmac.finalize().into_bytes().into()
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The account's primary address.
    pub account: String,
    /// When it expires, in seconds since the Unix epoch.
    pub expires: u64,
    /// Its id (16 random bytes, hex), by which it is revoked.
    pub id: String,
}

/// Why a token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl TokenError {
    fn message(self) -> &'static str {
        match self {
            Self::Malformed => "malformed session token",
            Self::BadSignature => "invalid session token",
            Self::Expired => "the session has expired",
        }
    }
}

/// The token for `claims`, signed with `key`.
fn seal(key: &[u8; 32], claims: &Claims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{PREFIX}{payload}");
    let tag = B64.encode(mac(key, signed.as_bytes()));
    format!("{signed}.{tag}")
}

/// The claims of `token` if `key` signed it and it has not expired at
/// `now` (seconds since the Unix epoch).
fn unseal(key: &[u8; 32], token: &str, now: u64) -> Result<Claims, TokenError> {
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let payload = signed.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
    let expected = mac(key, signed.as_bytes());
    if !bool::from(tag.ct_eq(&expected)) {
        return Err(TokenError::BadSignature);
    }
    let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 401 with a JSON error and `WWW-Authenticate: Bearer`.
pub fn unauthorized(message: &str) -> Reply {
    let mut reply = json_error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    reply
}

fn no_key() -> Reply {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "sessions are not set up",
    )
}

/// The request's `Authorization: Bearer` token.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The session of `token`: signed by this appliance, not expired, its
/// account present and active, not revoked. A 401 otherwise (503 when
/// the directory cannot answer).
pub async fn verify(api: &Api, token: &str) -> Result<Claims, Reply> {
    let key = KEY.get().ok_or_else(no_key)?;
    let claims = unseal(key, token, now_unix()).map_err(|e| unauthorized(e.message()))?;
    let directory = &api.services.directory;
    match directory.account(claims.account.clone()).await {
        Ok(Some(account)) if account.status == Status::Active => {}
        Ok(_) => return Err(unauthorized("the account is gone or disabled")),
        Err(e) => return Err(errors::directory(e)),
    }
    match directory.session_revoked(claims.id.clone()).await {
        Ok(false) => Ok(claims),
        Ok(true) => Err(unauthorized("the session has ended")),
        Err(e) => Err(errors::directory(e)),
    }
}

/// The session of the request's bearer token.
async fn session_of(api: &Api, req: &Request) -> Result<Claims, Reply> {
    match bearer(req) {
        Some(token) if token.starts_with(PREFIX) => verify(api, token).await,
        _ => Err(unauthorized("a session token is required")),
    }
}

/// The address the request came from (cairn-http puts the peer's
/// `SocketAddr` in every request's extensions).
fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<SocketAddr>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), SocketAddr::ip)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

/// `POST /api/v1/session`.
pub async fn login(api: Rc<Api>, req: Request) -> Reply {
    let ip = peer_ip(&req);
    let body: Login = match read_json(req, api.max_body).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(key) = KEY.get() else {
        return no_key();
    };
    let outcome = api
        .services
        .directory
        .authenticate_via(body.user, body.password, ip, Some(PROTOCOL.into()))
        .await;
    let principal = match outcome {
        Ok(principal) => principal,
        Err(AuthError::Invalid | AuthError::Disabled) => {
            return unauthorized("invalid credentials")
        }
        Err(e @ AuthError::Throttled { retry_after }) => {
            let mut reply = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                &e.to_string(),
            );
            reply.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(retry_after.as_secs().max(1)),
            );
            return reply;
        }
        Err(e @ AuthError::Unavailable(_)) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
            )
        }
    };
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let claims = Claims {
        account: principal.address,
        expires: now_unix().saturating_add(LIFETIME_SECS),
        id: hex(&id),
    };
    json_reply(
        StatusCode::CREATED,
        &serde_json::json!({
            "token": seal(key, &claims),
            "account": claims.account,
            "expires_at": claims.expires,
        }),
    )
}

/// `GET /api/v1/session`.
pub async fn show(api: Rc<Api>, req: Request) -> Reply {
    match session_of(&api, &req).await {
        Ok(claims) => json_reply(
            StatusCode::OK,
            &serde_json::json!({ "account": claims.account, "expires_at": claims.expires }),
        ),
        Err(denied) => denied,
    }
}

/// `DELETE /api/v1/session`.
pub async fn logout(api: Rc<Api>, req: Request) -> Reply {
    let claims = match session_of(&api, &req).await {
        Ok(claims) => claims,
        Err(denied) => return denied,
    };
    let revoked = Revoked {
        id: claims.id,
        account: claims.account.clone(),
        expires_unix: claims.expires,
    };
    let directory = api.services.directory.acting(&claims.account);
    match directory.revoke_session(revoked).await {
        Ok(()) => no_content(),
        Err(e) => errors::directory(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: [u8; 32] = [7; 32];

    fn claims(expires: u64) -> Claims {
        Claims {
            account: "ann@example.com".into(),
            expires,
            id: "00112233445566778899aabbccddeeff".into(),
        }
    }

    #[test]
    fn the_mac_is_hmac_sha256() {
        // Python: hmac.new(bytes(range(32)), b"cs1.eyJ0ZXN0Ijp0cnVlfQ", "sha256")
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            hex(&mac(&key, b"cs1.eyJ0ZXN0Ijp0cnVlfQ")),
            "d71f111f3cefbd272003cc738f8938359f4081ee22fb3e5071b8ebfa421ea93e"
        );
    }

    #[test]
    fn a_token_round_trips() {
        let token = seal(&TEST_KEY, &claims(2_000));
        assert!(token.starts_with(PREFIX));
        assert_eq!(unseal(&TEST_KEY, &token, 1_000), Ok(claims(2_000)));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = seal(&TEST_KEY, &claims(2_000));
        let forged = seal(
            &TEST_KEY,
            &Claims {
                account: "bob@example.com".into(),
                ..claims(2_000)
            },
        );
        let (_, tag) = token.rsplit_once('.').expect("tag");
        let (forged_signed, _) = forged.rsplit_once('.').expect("payload");
        assert_eq!(
            unseal(&TEST_KEY, &format!("{forged_signed}.{tag}"), 1_000),
            Err(TokenError::BadSignature),
            "another payload under the first one's MAC"
        );
        assert_eq!(
            unseal(&[8; 32], &token, 1_000),
            Err(TokenError::BadSignature),
            "another key"
        );
        for bad in ["", "cs1.", "cs1.x", "cs2.a.b", "cs1.a.!!", &token[1..]] {
            assert!(unseal(&TEST_KEY, bad, 1_000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = seal(&TEST_KEY, &claims(2_000));
        assert_eq!(unseal(&TEST_KEY, &token, 2_000), Err(TokenError::Expired));
        assert_eq!(unseal(&TEST_KEY, &token, 9_999), Err(TokenError::Expired));
    }

    #[test]
    fn keys_are_stored_as_hex() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 8) as u8);
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}

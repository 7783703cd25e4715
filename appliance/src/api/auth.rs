//! Who may use the admin API: a bearer API token (kept in the data
//! directory for the local CLI), or HTTP Basic with the admin user and
//! password, verified against its argon2id hash on the blocking pool (a
//! verified password is remembered by its SHA-256 so that it is hashed once).
//!
//! A request let through has an actor for the audit trail: the admin's user
//! name for Basic, `token` for the API token, or `cli` for the API token
//! sent by `cairn admin` (header `X-Cairn-Client: cli`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use cairn_http::{json_error, Reply, Request};
use cairn_shards::BlockingPool;
use hyper::{header, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header by which `cairn admin` names itself.
pub const CLIENT_HEADER: &str = "x-cairn-client";
/// The actor of requests with the API token.
pub const TOKEN_ACTOR: &str = "token";
/// The actor of requests from `cairn admin` with the API token.
pub const CLI_ACTOR: &str = "cli";

/// The admin credentials the API accepts. Cheap to clone; clones share
/// what was verified.
#[derive(Clone)]
pub struct Auth {
    token: String,
    user: String,
    password_hash: String,
    verified: Rc<RefCell<HashSet<[u8; 32]>>>,
}

fn unauthorized(message: &str) -> Reply {
    let mut reply = json_error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer, Basic realm=\"cairn\""),
    );
    reply
}

impl Auth {
    /// Accepts `token`, or `user` with a password matching `password_hash`.
    pub fn new(token: String, user: String, password_hash: String) -> Self {
        Self {
            token,
            user,
            password_hash,
            verified: Rc::default(),
        }
    }

    /// Lets the request through with its actor, or answers 401.
    pub async fn check(&self, req: &Request, blocking: &BlockingPool) -> Result<String, Reply> {
        let Some(value) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(unauthorized("credentials required"));
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return if bool::from(token.trim().as_bytes().ct_eq(self.token.as_bytes())) {
                let cli = req
                    .headers()
                    .get(CLIENT_HEADER)
                    .is_some_and(|v| v.as_bytes() == CLI_ACTOR.as_bytes());
                Ok(if cli { CLI_ACTOR } else { TOKEN_ACTOR }.to_string())
            } else {
                Err(unauthorized("invalid token"))
            };
        }
        let Some(basic) = value.strip_prefix("Basic ") else {
            return Err(unauthorized("use Bearer or Basic"));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .map_err(|_| unauthorized("malformed Basic credentials"))?;
        let Some((user, password)) = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|s| s.split_once(':'))
        else {
            return Err(unauthorized("malformed Basic credentials"));
        };
        if user != self.user {
            return Err(unauthorized("invalid credentials"));
        }
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if self.verified.borrow().contains(&digest) {
            return Ok(self.user.clone());
        }
        let (hash, password) = (self.password_hash.clone(), password.to_string());
        let ok = blocking
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        if ok {
            self.verified.borrow_mut().insert(digest);
            Ok(self.user.clone())
        } else {
            Err(unauthorized("invalid credentials"))
        }
    }
}

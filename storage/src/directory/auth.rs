//! The authentication service every protocol uses: an address (or alias)
//! and password checked against the directory's argon2id hash on the
//! blocking pool, with lockout per account and per client address, and an
//! audit line for every login and failure (never the password).
//!
//! The password may be the account's own or one of its app passwords; an
//! app password is only tried when the password has the shape the
//! appliance generates, so a wrong password costs one hash, or at most
//! one per app password (16) plus one.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use cairn_shards::BlockingPool;

use super::app_passwords::looks_generated;
use super::lockout::{Lockout, Policy, Refusal};
use super::{Directory, Status};
use crate::metrics::AuthMetrics;

/// A hash verified when the account does not exist, so that an unknown
/// address takes as long to refuse as a wrong password.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Y2Fpcm5kZWNveXNhbHQ$9/tr9bbk0vU5Ru+E8KsFUJ+T1fTUeO5wnTjhtr3oe/k";

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The primary address.
    pub address: String,
    /// The shard that holds its mail.
    pub shard: u32,
    /// The name of the app password used, `None` for the account password.
    pub app_password: Option<String>,
}

/// Why a login failed. Wrong address and wrong password are one answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    #[error("the account is locked or closed")]
    Disabled,
    #[error("too many failed logins; retry in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// The service, on the directory's shard. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    directory: Directory,
    blocking: BlockingPool,
    lockout: Rc<RefCell<Lockout>>,
    metrics: Option<AuthMetrics>,
}

impl Authenticator {
    /// Checks logins against `directory` under `policy`.
    pub fn new(directory: Directory, blocking: BlockingPool, policy: Policy) -> Self {
        Self {
            directory,
            blocking,
            lockout: Rc::new(RefCell::new(Lockout::new(policy))),
            metrics: None,
        }
    }

    /// Counts every login's outcome in `metrics`.
    pub fn observed(mut self, metrics: Option<AuthMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Checks `user`'s `password`, for a client at `ip`, and counts the
    /// outcome.
    pub async fn authenticate(
        &self,
        user: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<Principal, AuthError> {
        let outcome = self.check(user, password, ip).await;
        if let Some(m) = &self.metrics {
            m.record(&outcome);
        }
        outcome
    }

    async fn check(&self, user: &str, password: &str, ip: IpAddr) -> Result<Principal, AuthError> {
        let key = user.to_ascii_lowercase();
        if let Err(refusal) = self.lockout.borrow_mut().check(&key, ip, Instant::now()) {
            let retry_after = match refusal {
                Refusal::Account { retry_after } | Refusal::Address { retry_after } => retry_after,
            };
            tracing::warn!(target: "audit", user = %key, %ip, ?refusal, "login refused: too many failures");
            return Err(AuthError::Throttled { retry_after });
        }
        let account = self
            .directory
            .account(user)
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        // (name, hash): `None` for the account password, then the app
        // passwords when the password may be one.
        let mut candidates: Vec<(Option<String>, String)> = vec![(
            None,
            account
                .as_ref()
                .map_or(DECOY_HASH.to_string(), |a| a.password_hash.clone()),
        )];
        if let Some(a) = account.as_ref().filter(|_| looks_generated(password)) {
            let apps = self
                .directory
                .app_passwords(&a.address)
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            candidates.extend(apps.into_iter().map(|app| (Some(app.name), app.hash)));
        }
        let password = password.to_string();
        let matched = self
            .blocking
            .run(move || {
                candidates.into_iter().find_map(|(name, hash)| {
                    let ok = PasswordHash::new(&hash)
                        .map(|h| {
                            Argon2::default()
                                .verify_password(password.as_bytes(), &h)
                                .is_ok()
                        })
                        .unwrap_or(false);
                    ok.then_some(name)
                })
            })
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let matches = matched.is_some();
        match account {
            Some(a) if matches && a.status == Status::Active => {
                self.lockout.borrow_mut().succeeded(&key);
                let app_password = matched.flatten();
                let credential = if app_password.is_some() {
                    "app password"
                } else {
                    "password"
                };
                tracing::info!(target: "audit", user = %a.address, %ip, credential, app_password = app_password.as_deref().unwrap_or(""), "login");
                Ok(Principal {
                    address: a.address,
                    shard: a.shard,
                    app_password,
                })
            }
            Some(a) if matches => {
                tracing::warn!(target: "audit", user = %a.address, %ip, status = ?a.status, "login refused: account disabled");
                Err(AuthError::Disabled)
            }
            _ => {
                self.lockout.borrow_mut().failed(&key, ip, Instant::now());
                tracing::warn!(target: "audit", user = %key, %ip, "login failed");
                Err(AuthError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_hash_is_verified_like_a_real_one() {
        let parsed = PasswordHash::new(DECOY_HASH).expect("a valid PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(Argon2::default()
            .verify_password(b"anything", &parsed)
            .is_err());
    }
}

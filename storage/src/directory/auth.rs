//! The authentication service every protocol uses: an address (or alias)
//! and password checked against the directory's argon2id hash on the
//! blocking pool, with lockout per account and per client address, and an
//! audit line for every login and failure (never the password); every
//! refusal is also stored in the directory's audit trail.
//!
//! Service accounts ([`super::service_accounts`]) are checked by
//! [`Authenticator::authenticate_service`] through the same lockout,
//! metrics and audit, under the lockout key `service:<name>`.
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
        self.authenticate_via(user, password, ip, None).await
    }

    /// [`Authenticator::authenticate`] for a client of `protocol` (kept in
    /// the audit trail).
    pub async fn authenticate_via(
        &self,
        user: &str,
        password: &str,
        ip: IpAddr,
        protocol: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let outcome = self.check(user, password, ip, protocol).await;
        if let Some(m) = &self.metrics {
            m.record(&outcome);
        }
        outcome
    }

    /// Checks the service account `name`'s `password`, for a client at
    /// `ip`: the same lockout, metrics and audit as an account's login.
    /// Answers the service account's name.
    pub async fn authenticate_service(
        &self,
        name: &str,
        password: &str,
        ip: IpAddr,
        protocol: Option<&str>,
    ) -> Result<String, AuthError> {
        let outcome = self.check_service(name, password, ip, protocol).await;
        if let Some(m) = &self.metrics {
            m.record(&outcome.clone().map(|name| Principal {
                address: name,
                shard: 0,
                app_password: None,
            }));
        }
        outcome
    }

    async fn check_service(
        &self,
        name: &str,
        password: &str,
        ip: IpAddr,
        protocol: Option<&str>,
    ) -> Result<String, AuthError> {
        let key = format!("service:{}", name.to_ascii_lowercase());
        self.admit(&key, ip, protocol).await?;
        let found = self
            .directory
            .service_account(name)
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let hash = found
            .as_ref()
            .map_or(DECOY_HASH.to_string(), |s| s.password_hash.clone());
        let matched = self.verify(vec![(None, hash)], password).await?;
        match found {
            Some(s) if matched.is_some() => {
                self.lockout.borrow_mut().succeeded(&key);
                tracing::info!(target: "audit", service_account = %s.name, %ip, "login");
                Ok(s.name)
            }
            _ => Err(self.failed(&key, ip, protocol).await),
        }
    }

    /// Refuses `key` (from `ip`) while it is locked out.
    async fn admit(&self, key: &str, ip: IpAddr, protocol: Option<&str>) -> Result<(), AuthError> {
        let checked = self.lockout.borrow_mut().check(key, ip, Instant::now());
        if let Err(refusal) = checked {
            let retry_after = match refusal {
                Refusal::Account { retry_after } | Refusal::Address { retry_after } => retry_after,
            };
            tracing::warn!(target: "audit", user = %key, %ip, ?refusal, "login refused: too many failures");
            let reason = match refusal {
                Refusal::Account { .. } => "too many failures for the user",
                Refusal::Address { .. } => "too many failures from the address",
            };
            self.directory
                .record_login_refusal(key, ip, protocol, "auth.throttled", reason)
                .await;
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(())
    }

    /// Counts and records a wrong user or password.
    async fn failed(&self, key: &str, ip: IpAddr, protocol: Option<&str>) -> AuthError {
        self.lockout.borrow_mut().failed(key, ip, Instant::now());
        tracing::warn!(target: "audit", user = %key, %ip, "login failed");
        self.directory
            .record_login_refusal(key, ip, protocol, "auth.failed", "invalid credentials")
            .await;
        AuthError::Invalid
    }

    /// The name of the first of `candidates` (name, hash) that `password`
    /// matches, verified on the blocking pool: `Some(None)` for an unnamed
    /// one.
    async fn verify(
        &self,
        candidates: Vec<(Option<String>, String)>,
        password: &str,
    ) -> Result<Option<Option<String>>, AuthError> {
        let password = password.to_string();
        self.blocking
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
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }

    async fn check(
        &self,
        user: &str,
        password: &str,
        ip: IpAddr,
        protocol: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let key = user.to_ascii_lowercase();
        self.admit(&key, ip, protocol).await?;
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
        let matched = self.verify(candidates, password).await?;
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
                let reason = format!("account {:?}", a.status).to_lowercase();
                self.directory
                    .record_login_refusal(&a.address, ip, protocol, "auth.disabled", &reason)
                    .await;
                Err(AuthError::Disabled)
            }
            _ => Err(self.failed(&key, ip, protocol).await),
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

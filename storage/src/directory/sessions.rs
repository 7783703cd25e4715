//! Revoked account sessions of the HTTP API. A session is a stateless
//! signed token (made and checked by the appliance), so logging out
//! records the token's id here, durably and in one place, until the token
//! would have expired anyway; every shard asks through the directory
//! service. Each revocation prunes those that have expired.

use serde::{Deserialize, Serialize};

use super::service::{CallError, DirectoryReply, DirectoryRequest, DirectoryService};
use super::{Directory, DirectoryError};
use crate::table::Table;

/// Longest session id (the appliance makes 32 hex digits).
pub const MAX_ID: usize = 64;

/// A revoked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The token's id: 1 to [`MAX_ID`] ASCII letters or digits.
    pub id: String,
    /// The account it was made for (kept for the audit trail).
    pub account: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// Revoked sessions by id.
pub struct RevokedSessions;
impl Table for RevokedSessions {
    const NAME: &'static str = "directory.revoked_sessions";
    type Key = String;
    type Value = Revoked;
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Directory {
    /// Revokes a session until its token expires (nothing to keep for a
    /// token expired already), and forgets the revocations that have
    /// expired.
    pub async fn revoke_session(&self, revoked: Revoked) -> Result<(), DirectoryError> {
        let valid = (1..=MAX_ID).contains(&revoked.id.len())
            && revoked.id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(DirectoryError::Invalid {
                field: "id",
                reason: format!("1 to {MAX_ID} ASCII letters or digits"),
            });
        }
        let now = now_unix();
        if revoked.expires_unix <= now {
            return Ok(());
        }
        let mut batch = self.tables.batch();
        for old in self.scan_all::<RevokedSessions>()? {
            if old.expires_unix <= now {
                batch.delete::<RevokedSessions>(&old.id);
            }
        }
        batch.put::<RevokedSessions>(&revoked.id, &revoked);
        self.record(&mut batch, "session.revoke", &revoked.account, "")?;
        let conflict = DirectoryError::Exists {
            what: "revoked session",
            name: revoked.id.clone(),
        };
        self.commit(batch, conflict).await
    }

    /// Whether session `id` was revoked (and has not expired since).
    pub fn session_revoked(&self, id: &str) -> bool {
        self.tables.contains::<RevokedSessions>(&id.to_string())
    }
}

impl DirectoryService {
    /// Revokes a session (see [`Directory::revoke_session`]).
    pub async fn revoke_session(&self, revoked: Revoked) -> Result<(), CallError> {
        expect_reply!(
            self.call(DirectoryRequest::RevokeSession(revoked)).await?,
            DirectoryReply::Done,
            CallError::Mismatch
        )
    }

    /// Whether session `id` was revoked.
    pub async fn session_revoked(&self, id: String) -> Result<bool, CallError> {
        match self.call(DirectoryRequest::SessionRevoked(id)).await? {
            DirectoryReply::Revoked(revoked) => Ok(revoked),
            _ => Err(CallError::Mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::audit::AuditQuery;
    use crate::shard_store::ShardStore;
    use cairn_shards::local::block_on;

    fn revoked(id: &str, expires_unix: u64) -> Revoked {
        Revoked {
            id: id.into(),
            account: "ann@example.com".into(),
            expires_unix,
        }
    }

    #[test]
    fn revocations_are_kept_until_they_expire_and_audited() {
        let tmp = tempfile::tempdir().expect("tempdir");
        block_on(async {
            let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
            let dir = Directory::new(store.tables.clone()).acting("ann@example.com");
            let later = now_unix() + 3600;
            for bad in ["", "a-b", &"a".repeat(MAX_ID + 1)] {
                assert!(matches!(
                    dir.revoke_session(revoked(bad, later)).await,
                    Err(DirectoryError::Invalid { field: "id", .. })
                ));
            }
            // One that expired already (as if revoked long ago) is pruned
            // by the next revocation.
            let mut batch = dir.tables.batch();
            batch.put::<RevokedSessions>(&"old".to_string(), &revoked("old", 1));
            dir.tables.commit(batch).await.expect("seed");
            assert!(dir.session_revoked("old"));
            dir.revoke_session(revoked("gone", 1))
                .await
                .expect("expired");
            assert!(
                !dir.session_revoked("gone"),
                "nothing kept for an expired token"
            );
            dir.revoke_session(revoked("abc123", later))
                .await
                .expect("revoke");
            assert!(dir.session_revoked("abc123"));
            assert!(!dir.session_revoked("old"), "pruned");
            assert!(!dir.session_revoked("other"));
            let q = AuditQuery {
                limit: 1,
                ..AuditQuery::default()
            };
            let newest = &dir.audit(&q).expect("audit").entries[0];
            assert_eq!(
                (
                    newest.action.as_str(),
                    newest.actor.as_str(),
                    newest.target.as_str()
                ),
                ("session.revoke", "ann@example.com", "ann@example.com")
            );
        })
        .expect("executor");
    }
}

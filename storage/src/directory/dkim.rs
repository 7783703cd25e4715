//! DKIM keys of the served domains, in `directory.dkim`: at most one key
//! per domain (a new key replaces the old one), kept beside the domain so
//! that the domain's record and the address book never carry a private
//! key. Deleting a domain deletes its key in the same batch.
//!
//! Keys are made (and mail is signed) by `cairn-smtp`'s `dkim` module;
//! this table only keeps them. Making a key is CPU-heavy (RSA-2048):
//! callers do it on the blocking pool, never on a shard.

use serde::{Deserialize, Serialize};

use super::records::Domains;
use super::{names, storage, Directory, DirectoryError};
use crate::table::Table;

/// Longest selector (one DNS label's worth, as most providers allow).
pub const MAX_SELECTOR: usize = 63;

/// The kind of a DKIM key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DkimAlgorithm {
    /// RSA, 2048 bits, signing `rsa-sha256`.
    Rsa2048,
    /// Ed25519, signing `ed25519-sha256` (RFC 8463).
    Ed25519,
}

impl DkimAlgorithm {
    /// Its name in the admin API and the CLI: `rsa` or `ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa2048 => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The algorithm called `name` (`rsa`, `rsa2048`, `ed25519`; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" | "rsa-2048" => Some(DkimAlgorithm::Rsa2048),
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// A domain's DKIM key pair, DER-encoded as `mail-auth` makes it: for RSA
/// the private key is PKCS#1 `RSAPrivateKey` and the public key PKCS#1
/// `RSAPublicKey`; for Ed25519 the private key is PKCS#8 and the public
/// key the raw 32 bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKey {
    /// The selector: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Secret: never logged, never shown by the API.
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    /// When it was made, in seconds since the Unix epoch.
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    /// Everything but the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .field("public_key_len", &self.public_key.len())
            .field("created", &self.created)
            .finish()
    }
}

/// DKIM keys by domain name.
pub struct DkimKeys;
impl Table for DkimKeys {
    const NAME: &'static str = "directory.dkim";
    type Key = String;
    type Value = DkimKey;
}

/// Checks a selector and returns it lower-cased: 1 to [`MAX_SELECTOR`]
/// characters, dot-separated labels of letters, digits and `-` (a label
/// neither starts nor ends with `-`).
pub fn selector(selector: &str) -> Result<String, DirectoryError> {
    let s = selector.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if s.is_empty() || s.len() > MAX_SELECTOR || !s.split('.').all(label_ok) {
        return Err(DirectoryError::Invalid {
            field: "selector",
            reason: format!(
                "a selector has 1 to {MAX_SELECTOR} letters, digits, '-' (not first or last) and dots between labels"
            ),
        });
    }
    Ok(s)
}

impl Directory {
    /// Gives the served domain `domain` the key `key`, replacing any it
    /// had; audited as `domain.dkim` (the selector and algorithm, never
    /// the key).
    pub async fn set_dkim_key(&self, domain: &str, key: DkimKey) -> Result<(), DirectoryError> {
        let domain = names::domain(domain)?;
        let key = DkimKey {
            selector: selector(&key.selector)?,
            ..key
        };
        if key.private_key.is_empty() || key.public_key.is_empty() {
            return Err(DirectoryError::Invalid {
                field: "key",
                reason: "an empty key".into(),
            });
        }
        let not_found = || DirectoryError::NotFound {
            what: "domain",
            name: domain.clone(),
        };
        if self.domain(&domain)?.is_none() {
            return Err(not_found());
        }
        let mut batch = self.tables.batch();
        batch.require_present::<Domains>(&domain);
        batch.put::<DkimKeys>(&domain, &key);
        let detail = format!("{} key, selector {}", key.algorithm.name(), key.selector);
        self.record(&mut batch, "domain.dkim", &domain, detail)?;
        self.commit(batch, not_found()).await
    }

    /// The DKIM key of `domain`, if it has one.
    pub fn dkim_key(&self, domain: &str) -> Result<Option<DkimKey>, DirectoryError> {
        let Ok(domain) = names::domain(domain) else {
            return Ok(None);
        };
        self.tables.get::<DkimKeys>(&domain).map_err(storage)
    }

    /// Removes the DKIM key of `domain` (`NotFound` when it has none).
    pub async fn remove_dkim_key(&self, domain: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "DKIM key of domain",
            name: domain.to_string(),
        };
        let name = names::domain(domain).map_err(|_| not_found())?;
        let mut batch = self.tables.batch();
        batch.require_present::<DkimKeys>(&name);
        batch.delete::<DkimKeys>(&name);
        self.record(&mut batch, "domain.dkim_remove", &name, "")?;
        self.commit(batch, not_found()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::audit::AuditQuery;
    use crate::shard_store::ShardStore;
    use cairn_shards::local::block_on;

    fn key(selector: &str) -> DkimKey {
        DkimKey {
            selector: selector.into(),
            algorithm: DkimAlgorithm::Ed25519,
            private_key: vec![1; 48],
            public_key: vec![2; 32],
            created: 1_700_000_000,
        }
    }

    #[test]
    fn selectors() {
        assert_eq!(selector("Cairn202611").ok().as_deref(), Some("cairn202611"));
        assert_eq!(selector("a.b-c").ok().as_deref(), Some("a.b-c"));
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", &"x".repeat(64)] {
            assert!(selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn algorithm_names() {
        for a in [DkimAlgorithm::Rsa2048, DkimAlgorithm::Ed25519] {
            assert_eq!(DkimAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(DkimAlgorithm::from_name("dsa"), None);
    }

    #[test]
    fn the_private_key_is_not_in_debug_output() {
        let k = key("s");
        assert!(!format!("{k:?}").contains("[1, 1"));
    }

    #[test]
    fn keys_are_set_replaced_removed_audited_and_go_with_their_domain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        block_on(async {
            let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
            let dir = Directory::new(store.tables.clone()).acting("admin");
            assert!(matches!(
                dir.set_dkim_key("example.org", key("s1")).await,
                Err(DirectoryError::NotFound { what: "domain", .. })
            ));
            dir.add_domain("example.org", None, None)
                .await
                .expect("domain");
            assert!(matches!(
                dir.set_dkim_key("example.org", key("bad_sel")).await,
                Err(DirectoryError::Invalid {
                    field: "selector",
                    ..
                })
            ));
            assert_eq!(dir.dkim_key("example.org").expect("get"), None);
            dir.set_dkim_key("Example.org", key("S1"))
                .await
                .expect("set");
            assert_eq!(
                dir.dkim_key("EXAMPLE.org")
                    .expect("get")
                    .map(|k| k.selector),
                Some("s1".to_string())
            );
            dir.set_dkim_key("example.org", key("s2"))
                .await
                .expect("replace");
            assert_eq!(dir.dkim_key("example.org").expect("get"), Some(key("s2")));

            let q = AuditQuery {
                limit: 10,
                action: Some("domain".into()),
                ..AuditQuery::default()
            };
            let page = dir.audit(&q).expect("audit");
            let newest = &page.entries[0];
            assert_eq!(newest.action, "domain.dkim");
            assert_eq!(newest.actor, "admin");
            assert_eq!(newest.detail, "ed25519 key, selector s2");

            dir.remove_dkim_key("example.org").await.expect("remove");
            assert_eq!(dir.dkim_key("example.org").expect("get"), None);
            assert!(matches!(
                dir.remove_dkim_key("example.org").await,
                Err(DirectoryError::NotFound { .. })
            ));

            // Deleting the domain (and an alias domain with it) deletes keys.
            dir.add_domain("alias.org", Some("example.org"), None)
                .await
                .expect("alias");
            dir.set_dkim_key("example.org", key("s3"))
                .await
                .expect("set");
            dir.set_dkim_key("alias.org", key("s4"))
                .await
                .expect("set alias");
            dir.delete_domain("example.org", true)
                .await
                .expect("delete");
            assert_eq!(dir.dkim_key("example.org").expect("get"), None);
            assert_eq!(dir.dkim_key("alias.org").expect("get"), None);
            dir.add_domain("example.org", None, None)
                .await
                .expect("again");
            assert_eq!(dir.dkim_key("example.org").expect("get"), None);
        })
        .expect("executor");
        // And it is all still so after a reopen.
        block_on(async {
            let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
            let dir = Directory::new(store.tables.clone());
            assert_eq!(dir.dkim_key("example.org").expect("get"), None);
            dir.set_dkim_key("example.org", key("s5"))
                .await
                .expect("set");
        })
        .expect("executor");
        block_on(async {
            let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
            let dir = Directory::new(store.tables.clone());
            assert_eq!(dir.dkim_key("example.org").expect("get"), Some(key("s5")));
        })
        .expect("executor");
    }
}

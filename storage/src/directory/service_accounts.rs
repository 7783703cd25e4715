//! Service accounts: named credentials for programs (an LDAP address book
//! client, a sync job) that are not mail accounts. They have no address and
//! no mailbox, so protocol logins (IMAP, POP3, SMTP), which look up
//! accounts by address, never find them; the LDAP server lets them bind as
//! `cn=<name>,ou=services,<a served domain's base>` and read the address
//! book. Only argon2id hashes are kept (hashing is the caller's, on the
//! blocking pool).

use serde::{Deserialize, Serialize};

use super::{storage, Directory, DirectoryError};
use crate::table::Table;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 256;

/// A service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub name: String,
    /// An argon2id PHC string, never the password.
    pub password_hash: String,
    pub description: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_unix: u64,
}

/// Service accounts by name.
pub struct ServiceAccounts;
impl Table for ServiceAccounts {
    const NAME: &'static str = "directory.service_accounts";
    type Key = String;
    type Value = ServiceAccount;
}

/// Checks a service account name and returns it lower-cased: 1 to 64
/// letters, digits, `-`, `_` or `.` (never an `@`, so it is never an
/// address).
pub fn name(name: &str) -> Result<String, DirectoryError> {
    super::classes::class_name(name, "name")
}

impl Directory {
    /// Adds a service account (its password already hashed).
    pub async fn add_service_account(
        &self,
        account: ServiceAccount,
    ) -> Result<ServiceAccount, DirectoryError> {
        let name = name(&account.name)?;
        if !account.password_hash.starts_with("$argon2") {
            return Err(DirectoryError::Invalid {
                field: "password_hash",
                reason: "not an argon2 hash".into(),
            });
        }
        if account.description.chars().count() > MAX_DESCRIPTION {
            return Err(DirectoryError::Invalid {
                field: "description",
                reason: format!("at most {MAX_DESCRIPTION} characters"),
            });
        }
        let account = ServiceAccount { name, ..account };
        let mut batch = self.tables.batch();
        batch.require_absent::<ServiceAccounts>(&account.name);
        batch.put::<ServiceAccounts>(&account.name, &account);
        self.record(
            &mut batch,
            "service_account.add",
            &account.name,
            account.description.clone(),
        )?;
        let exists = DirectoryError::Exists {
            what: "service account",
            name: account.name.clone(),
        };
        self.commit(batch, exists).await?;
        Ok(account)
    }

    /// A service account by name; `None` for an unknown or malformed one.
    pub fn service_account(&self, name: &str) -> Result<Option<ServiceAccount>, DirectoryError> {
        let Ok(name) = self::name(name) else {
            return Ok(None);
        };
        self.tables.get::<ServiceAccounts>(&name).map_err(storage)
    }

    /// Every service account, by name.
    pub fn service_accounts(&self) -> Result<Vec<ServiceAccount>, DirectoryError> {
        self.scan_all::<ServiceAccounts>()
    }

    /// Deletes a service account.
    pub async fn delete_service_account(&self, name: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "service account",
            name: name.to_string(),
        };
        let key = self::name(name).map_err(|_| not_found())?;
        let mut batch = self.tables.batch();
        batch.require_present::<ServiceAccounts>(&key);
        batch.delete::<ServiceAccounts>(&key);
        self.record(&mut batch, "service_account.delete", &key, "")?;
        self.commit(batch, not_found()).await
    }
}

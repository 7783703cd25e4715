//! App passwords: per-account, named passwords for mail clients, made by
//! the appliance ([`generate`]), shown once and kept only as argon2id
//! hashes (hashing is the caller's, on the blocking pool). Each account has
//! at most [`MAX_PER_ACCOUNT`], with names unique per account; they go
//! with the account.

use argon2::password_hash::rand_core::{OsRng, RngCore};

use super::records::{Accounts, AppPasswords};
use super::{names, storage, AppPassword, Directory, DirectoryError};

/// Most app passwords of one account.
pub const MAX_PER_ACCOUNT: usize = 16;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Groups of [`GROUP`] symbols in a generated password.
const GROUPS: usize = 4;
const GROUP: usize = 4;

/// A new app password from the OS's random source: four groups of four
/// lower-case letters or digits joined by `-` (about 82 bits).
pub fn generate() -> String {
    let mut out = String::with_capacity(GROUPS * (GROUP + 1));
    let mut symbols = 0;
    let mut bytes = [0u8; 32];
    while symbols < GROUPS * GROUP {
        OsRng.fill_bytes(&mut bytes);
        // 252 = 7 × 36: no bias from the modulo.
        for b in bytes.iter().filter(|b| **b < 252) {
            if symbols == GROUPS * GROUP {
                break;
            }
            if symbols > 0 && symbols % GROUP == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
            symbols += 1;
        }
    }
    out
}

/// Whether `password` has the shape [`generate`] gives, so that a login
/// with any other password is checked against the account password only.
pub fn looks_generated(password: &str) -> bool {
    let groups: Vec<&str> = password.split('-').collect();
    groups.len() == GROUPS
        && groups.iter().all(|g| {
            g.len() == GROUP
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks an app password's name (see [`names::short_name`]).
pub fn name(name: &str) -> Result<String, DirectoryError> {
    names::short_name(name, "name").map(str::to_string)
}

impl Directory {
    fn primary(&self, address: &str) -> Result<String, DirectoryError> {
        self.account(address)?
            .map(|a| a.address)
            .ok_or_else(|| DirectoryError::NotFound {
                what: "account",
                name: address.to_string(),
            })
    }

    /// Adds an app password (already hashed) to the account `address`.
    pub async fn add_app_password(
        &self,
        address: &str,
        app: AppPassword,
    ) -> Result<AppPassword, DirectoryError> {
        let app_name = name(&app.name)?;
        if !app.hash.starts_with("$argon2") {
            return Err(DirectoryError::Invalid {
                field: "hash",
                reason: "not an argon2 hash".into(),
            });
        }
        let primary = self.primary(address)?;
        if self.app_passwords(&primary)?.len() >= MAX_PER_ACCOUNT {
            return Err(DirectoryError::Invalid {
                field: "name",
                reason: format!(
                    "{primary} has {MAX_PER_ACCOUNT} app passwords already; delete one first"
                ),
            });
        }
        let app = AppPassword {
            name: app_name.clone(),
            ..app
        };
        let key = (primary.clone(), app_name.clone());
        if self.tables.contains::<AppPasswords>(&key) {
            return Err(DirectoryError::Exists {
                what: "app password",
                name: app_name,
            });
        }
        let mut batch = self.tables.batch();
        batch.require_present::<Accounts>(&primary);
        batch.require_absent::<AppPasswords>(&key);
        batch.put::<AppPasswords>(&key, &app);
        self.record(&mut batch, "app_password.add", &primary, app.name.clone())?;
        // The account was there a moment ago: a failed condition is most
        // likely a concurrent add of the same name.
        let exists = DirectoryError::Exists {
            what: "app password",
            name: app_name,
        };
        self.commit(batch, exists).await?;
        Ok(app)
    }

    /// The app passwords of the account `address` (or alias), by name.
    pub fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, DirectoryError> {
        let primary = self.primary(address)?;
        Ok(self
            .tables
            .scan_prefix::<AppPasswords, _>(&primary, None, usize::MAX)
            .map_err(storage)?
            .into_iter()
            .map(|(_, app)| app)
            .collect())
    }

    /// Deletes the app password `app_name` of the account `address`.
    pub async fn delete_app_password(
        &self,
        address: &str,
        app_name: &str,
    ) -> Result<(), DirectoryError> {
        let primary = self.primary(address)?;
        let not_found = || DirectoryError::NotFound {
            what: "app password",
            name: app_name.to_string(),
        };
        let key = (primary, app_name.to_string());
        let mut batch = self.tables.batch();
        batch.require_present::<AppPasswords>(&key);
        batch.delete::<AppPasswords>(&key);
        self.record(&mut batch, "app_password.delete", &key.0, app_name)?;
        self.commit(batch, not_found()).await
    }

    /// Adds the deletion of every app password of `primary` to `batch`.
    pub(super) fn drop_app_passwords(
        &self,
        batch: &mut crate::table::Batch,
        primary: &str,
    ) -> Result<(), DirectoryError> {
        let keys = self
            .tables
            .scan_prefix::<AppPasswords, _>(&primary.to_string(), None, usize::MAX)
            .map_err(storage)?;
        for (key, _) in keys {
            batch.delete::<AppPasswords>(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_have_their_shape_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 19, "{a}");
        assert!(looks_generated(&a) && looks_generated(&b), "{a} {b}");
        assert_ne!(a, b);
        for other in [
            "correct horse",
            "abcd-efgh-ijkl",
            "ABCD-efgh-ijkl-mnop",
            "abcd-efgh-ijkl-mnopq",
        ] {
            assert!(!looks_generated(other), "{other}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(name("thunderbird-2.laptop_x").is_ok());
        for bad in ["", "with space", "a/b", &"x".repeat(65)] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }
}

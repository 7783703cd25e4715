//! Classes of service: named sets of limits (default quota, message size,
//! password length) and features that accounts refer to by name.
//!
//! The class `default` always exists: until an administrator changes it,
//! it is the built-in one ([`ClassOfService::builtin_default`]) and is
//! returned without being stored; changing it stores it. It can be changed
//! but not deleted. An account that names no class is in `default`.
//! A class still named by accounts cannot be deleted. Changing a class's
//! quota changes, in the same batch, the quota of its accounts that have
//! none of their own (the caller applies it to their mailstores).

use super::records::{Accounts, Classes, OwnQuotas};
use super::{names, storage, Account, ClassOfService, Directory, DirectoryError};

/// Bounds of a class's minimum password length.
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<u32> = 1..=256;

/// Checks a class (or service account) name and returns it lower-cased
/// (see [`names::short_name`]).
pub fn class_name(name: &str, field: &'static str) -> Result<String, DirectoryError> {
    names::short_name(name, field).map(str::to_ascii_lowercase)
}

fn check(class: &ClassOfService) -> Result<(), DirectoryError> {
    if !PASSWORD_LENGTHS.contains(&class.min_password_length) {
        return Err(DirectoryError::Invalid {
            field: "min_password_length",
            reason: format!(
                "between {} and {}",
                PASSWORD_LENGTHS.start(),
                PASSWORD_LENGTHS.end()
            ),
        });
    }
    Ok(())
}

impl Directory {
    /// Adds a class of service; `default` exists already.
    pub async fn add_class(&self, class: ClassOfService) -> Result<ClassOfService, DirectoryError> {
        let name = class_name(&class.name, "name")?;
        let class = ClassOfService { name, ..class };
        check(&class)?;
        let exists = || DirectoryError::Exists {
            what: "class of service",
            name: class.name.clone(),
        };
        if class.name == ClassOfService::DEFAULT {
            return Err(exists());
        }
        let mut batch = self.tables.batch();
        batch.require_absent::<Classes>(&class.name);
        batch.put::<Classes>(&class.name, &class);
        let detail = format!("quota {}", class.quota_bytes);
        self.record(&mut batch, "class.add", &class.name, detail)?;
        self.commit(batch, exists()).await?;
        Ok(class)
    }

    /// A class by name (`default` is always there); `None` for an unknown
    /// or malformed name.
    pub fn class(&self, name: &str) -> Result<Option<ClassOfService>, DirectoryError> {
        let Ok(name) = class_name(name, "name") else {
            return Ok(None);
        };
        let stored = self.tables.get::<Classes>(&name).map_err(storage)?;
        Ok(match stored {
            None if name == ClassOfService::DEFAULT => Some(ClassOfService::builtin_default()),
            other => other,
        })
    }

    /// Every class in name order, `default` included.
    pub fn classes(&self) -> Result<Vec<ClassOfService>, DirectoryError> {
        let mut all = self.scan_all::<Classes>()?;
        if !all.iter().any(|c| c.name == ClassOfService::DEFAULT) {
            let at = all.partition_point(|c| c.name.as_str() < ClassOfService::DEFAULT);
            all.insert(at, ClassOfService::builtin_default());
        }
        Ok(all)
    }

    /// Changes a class with `change` (its name stays) and stores it.
    pub async fn update_class(
        &self,
        name: &str,
        change: impl FnOnce(&mut ClassOfService),
    ) -> Result<ClassOfService, DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "class of service",
            name: name.to_string(),
        };
        let mut class = self.class(name)?.ok_or_else(not_found)?;
        let stored = self.tables.contains::<Classes>(&class.name);
        let key = class.name.clone();
        let before = class.clone();
        change(&mut class);
        class.name = key.clone();
        check(&class)?;
        let mut batch = self.tables.batch();
        if stored {
            batch.require_present::<Classes>(&key);
        }
        batch.put::<Classes>(&key, &class);
        if class.quota_bytes != before.quota_bytes {
            for mut account in self.accounts_in(&key)? {
                if !self.tables.contains::<OwnQuotas>(&account.address) {
                    account.quota_bytes = class.quota_bytes;
                    batch.require_present::<Accounts>(&account.address);
                    batch.put::<Accounts>(&account.address, &account);
                }
            }
        }
        self.record(&mut batch, "class.update", &key, changes(&before, &class))?;
        self.commit(batch, not_found()).await?;
        Ok(class)
    }

    /// How many accounts name the class `name`.
    pub fn class_users(&self, name: &str) -> Result<usize, DirectoryError> {
        Ok(self
            .scan_all::<Accounts>()?
            .iter()
            .filter(|a| a.class_of_service.as_deref() == Some(name))
            .count())
    }

    /// The accounts in the class `name` (for `default`, also those that
    /// name no class).
    pub fn accounts_in(&self, name: &str) -> Result<Vec<Account>, DirectoryError> {
        let name = class_name(name, "name")?;
        Ok(self
            .scan_all::<Accounts>()?
            .into_iter()
            .filter(|a| {
                a.class_of_service
                    .as_deref()
                    .unwrap_or(ClassOfService::DEFAULT)
                    == name
            })
            .collect())
    }

    /// Deletes a class that no account names; `default` cannot be deleted.
    pub async fn delete_class(&self, name: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "class of service",
            name: name.to_string(),
        };
        let name = class_name(name, "name").map_err(|_| not_found())?;
        if name == ClassOfService::DEFAULT {
            return Err(DirectoryError::Invalid {
                field: "name",
                reason: "the default class cannot be deleted".into(),
            });
        }
        let users = self.class_users(&name)?;
        if users > 0 {
            return Err(DirectoryError::InUse {
                what: "class of service",
                name,
                users,
            });
        }
        let mut batch = self.tables.batch();
        batch.require_present::<Classes>(&name);
        batch.delete::<Classes>(&name);
        self.record(&mut batch, "class.delete", &name, "")?;
        self.commit(batch, not_found()).await
    }

    /// The class of the account `address` (or alias): the one it names, or
    /// `default`. A class that went away meanwhile counts as `default`.
    pub fn class_of(&self, address: &str) -> Result<ClassOfService, DirectoryError> {
        let account = self
            .account(address)?
            .ok_or_else(|| DirectoryError::NotFound {
                what: "account",
                name: address.to_string(),
            })?;
        self.class_of_account(&account)
    }

    /// The class `account` names, or `default` (see [`Directory::class_of`]).
    pub(super) fn class_of_account(
        &self,
        account: &Account,
    ) -> Result<ClassOfService, DirectoryError> {
        let name = account
            .class_of_service
            .as_deref()
            .unwrap_or(ClassOfService::DEFAULT);
        match self.class(name)? {
            Some(class) => Ok(class),
            None => {
                tracing::warn!(account = %account.address, class = %name, "the account's class of service is missing; using default");
                self.class(ClassOfService::DEFAULT)
                    .map(|c| c.unwrap_or_else(ClassOfService::builtin_default))
            }
        }
    }

    /// The class an account being added or changed may name: `Invalid`
    /// (field `class_of_service`) when there is none of that name.
    pub(super) fn known_class(&self, name: &str) -> Result<ClassOfService, DirectoryError> {
        let name = class_name(name, "class_of_service")?;
        self.class(&name)?.ok_or_else(|| DirectoryError::Invalid {
            field: "class_of_service",
            reason: format!("no such class of service: {name}"),
        })
    }
}

/// The fields that differ between `a` and `b`, for the audit trail.
fn changes(a: &ClassOfService, b: &ClassOfService) -> String {
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name} {x} -> {y}"));
        }
    };
    field(
        "quota_bytes",
        a.quota_bytes.to_string(),
        b.quota_bytes.to_string(),
    );
    field(
        "max_message_size",
        a.max_message_size.to_string(),
        b.max_message_size.to_string(),
    );
    field(
        "min_password_length",
        a.min_password_length.to_string(),
        b.min_password_length.to_string(),
    );
    field(
        "features",
        format!("{:?}", a.features),
        format!("{:?}", b.features),
    );
    out.join(", ")
}

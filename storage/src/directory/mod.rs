//! The directory: served domains (with alias domains and catch-alls),
//! accounts, aliases and distribution lists, kept in typed tables so that
//! every change is one atomic, durable batch. Duplicate addresses of any
//! kind are refused by one batch condition on the address index.
//!
//! Password hashing is the caller's (on the blocking pool): records only
//! ever hold argon2id hashes.
//!
//! Classes of service ([`classes`]), app passwords ([`app_passwords`]),
//! service accounts ([`service_accounts`]), the domains' DKIM keys
//! ([`dkim`]) and the audit trail ([`audit`]) live in their own tables
//! beside the accounts. Every change is audited in its own batch, with the
//! actor of the handle that made it ([`Directory::acting`]).
//!
//! An account's quota is explicit when it was given at creation (the
//! address is then in `directory.own_quotas`); otherwise it follows its
//! class of service: changing the account's class or the class's quota
//! changes the account's `quota_bytes` in the same batch.

pub mod address_book;
pub mod app_passwords;
pub mod audit;
pub mod auth;
pub mod classes;
pub mod dkim;
pub mod lockout;
pub mod names;
pub mod records;
pub mod sasl;
pub mod service;
pub mod service_accounts;
pub mod sessions;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::table::{Batch, TableError, Tables};
pub use address_book::AddressBook;
pub use records::{Account, Accounts, AppPassword, ClassOfService, Domain, Features, List, Status};
use records::{AddressUse, Addresses, Aliases, ByDomain, Classes, Domains, Lists, OwnQuotas};
use service::AccountChanges;

/// Why a directory operation was refused. The admin API maps these to
/// 400 (with the field), 404, 409.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{what} {name} exists already")]
    Exists { what: &'static str, name: String },
    #[error("no such {what}: {name}")]
    NotFound { what: &'static str, name: String },
    #[error("the domain {domain} still has {addresses} addresses or alias domains; delete them first or force")]
    NotEmpty { domain: String, addresses: usize },
    #[error(
        "the {what} {name} is still used by {users} accounts; move them to another class first"
    )]
    InUse {
        what: &'static str,
        name: String,
        users: usize,
    },
    #[error(transparent)]
    Storage(TableError),
}

/// A new account: the address and the already-hashed password, the rest
/// optional. A `quota_bytes` of 0 takes the quota of its class of service
/// (`None`: `default`).
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub address: String,
    pub password_hash: String,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub phone: String,
    pub quota_bytes: u64,
    pub class_of_service: Option<String>,
    pub shard: u32,
}

/// Where mail for an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The account with this primary address.
    Account(String),
    /// A distribution list.
    List(List),
    /// Nobody here.
    Unknown,
}

fn storage(e: TableError) -> DirectoryError {
    DirectoryError::Storage(e)
}

/// Everything a mail server asks about one recipient address, answered
/// in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The address's domain is one we serve.
    pub served: bool,
    /// Where its mail goes.
    pub recipient: Recipient,
    /// The account's status, for [`Recipient::Account`].
    pub status: Option<Status>,
    /// The account's class's largest message (0 = the appliance's limit).
    pub max_message_size: u64,
}

/// The directory of the appliance, on the shard that keeps it.
#[derive(Clone)]
pub struct Directory {
    tables: Tables,
    /// Bumped after every committed change.
    generation: Rc<Cell<u64>>,
    /// The last address book made, reused while `generation` stands.
    book: Rc<RefCell<Option<Arc<AddressBook>>>>,
    /// Who makes the changes, for the audit trail.
    actor: Rc<str>,
    audit: Rc<audit::AuditState>,
}

impl Directory {
    /// The directory kept in `tables`.
    pub fn new(tables: Tables) -> Self {
        Self {
            tables,
            generation: Rc::default(),
            book: Rc::default(),
            actor: audit::SYSTEM.into(),
            audit: Rc::default(),
        }
    }

    /// Commits `batch`; a failed condition becomes `conflict`.
    async fn commit(&self, batch: Batch, conflict: DirectoryError) -> Result<(), DirectoryError> {
        match self.tables.commit(batch).await {
            Ok(()) => {
                self.generation.set(self.generation.get() + 1);
                Ok(())
            }
            Err(TableError::Conflict { .. }) => Err(conflict),
            Err(e) => Err(storage(e)),
        }
    }

    /// Adds a served domain.
    pub async fn add_domain(
        &self,
        name: &str,
        alias_of: Option<&str>,
        catch_all: Option<&str>,
    ) -> Result<Domain, DirectoryError> {
        let name = names::domain(name)?;
        let alias_of = alias_of.map(names::domain).transpose()?;
        let catch_all = catch_all
            .map(|a| names::address(a).map(|(a, _)| a))
            .transpose()?;
        let domain = Domain {
            name: name.clone(),
            alias_of: alias_of.clone(),
            catch_all,
        };
        let mut batch = self.tables.batch();
        batch.require_absent::<Domains>(&name);
        if let Some(target) = &alias_of {
            if self.domain(target)?.is_none() {
                return Err(DirectoryError::NotFound {
                    what: "domain",
                    name: target.clone(),
                });
            }
            batch.require_present::<Domains>(target);
        }
        batch.put::<Domains>(&name, &domain);
        let detail = match (&domain.alias_of, &domain.catch_all) {
            (Some(a), _) => format!("alias of {a}"),
            (None, Some(c)) => format!("catch-all {c}"),
            (None, None) => String::new(),
        };
        self.record(&mut batch, "domain.add", &name, detail)?;
        let exists = DirectoryError::Exists {
            what: "domain",
            name,
        };
        self.commit(batch, exists).await?;
        Ok(domain)
    }

    /// A domain by name.
    pub fn domain(&self, name: &str) -> Result<Option<Domain>, DirectoryError> {
        let name = name.to_ascii_lowercase();
        self.tables.get::<Domains>(&name).map_err(storage)
    }

    /// Domains in name order, `limit` after `after`, keeping those whose
    /// name contains `search` (case-insensitive).
    pub fn domains(
        &self,
        after: Option<&str>,
        limit: usize,
        search: Option<&str>,
    ) -> Result<Vec<Domain>, DirectoryError> {
        self.page::<Domains>(after, limit, search, |d, n| d.name.contains(n))
    }

    /// Up to `limit` records of table `T` after the key `after`, in key
    /// order, keeping those that `matches` the lower-cased `search`.
    fn page<T: crate::table::Table<Key = String>>(
        &self,
        after: Option<&str>,
        limit: usize,
        search: Option<&str>,
        matches: impl Fn(&T::Value, &str) -> bool,
    ) -> Result<Vec<T::Value>, DirectoryError> {
        let needle = search.map(str::to_lowercase);
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        while out.len() < limit {
            let page = self
                .tables
                .scan::<T>(cursor.as_ref(), limit.clamp(1, 256))
                .map_err(storage)?;
            let Some((last, _)) = page.last() else { break };
            cursor = Some(last.clone());
            out.extend(
                page.into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| needle.as_ref().is_none_or(|n| matches(v, n))),
            );
        }
        out.truncate(limit);
        Ok(out)
    }

    fn addresses_of(&self, domain: &str) -> Result<Vec<(String, AddressUse)>, DirectoryError> {
        Ok(self
            .tables
            .scan_prefix::<ByDomain, _>(&domain.to_string(), None, usize::MAX)
            .map_err(storage)?
            .into_iter()
            .map(|((_, addr), kind)| (addr, kind))
            .collect())
    }

    /// Deletes a domain; one that still has addresses, or that alias
    /// domains point at, is refused unless `force`, which deletes those
    /// with it.
    pub async fn delete_domain(&self, name: &str, force: bool) -> Result<(), DirectoryError> {
        let name = names::domain(name)?;
        let addresses = self.addresses_of(&name)?;
        let aliases: Vec<String> = self
            .domains(None, usize::MAX, None)?
            .into_iter()
            .filter(|d| d.alias_of.as_deref() == Some(name.as_str()))
            .map(|d| d.name)
            .collect();
        let empty = addresses.is_empty() && aliases.is_empty();
        if !empty && !force {
            return Err(DirectoryError::NotEmpty {
                domain: name,
                addresses: addresses.len() + aliases.len(),
            });
        }
        let mut batch = self.tables.batch();
        for alias in &aliases {
            batch.delete::<Domains>(alias);
            batch.delete::<dkim::DkimKeys>(alias);
        }
        batch.require_present::<Domains>(&name);
        for (addr, kind) in &addresses {
            batch.delete::<Addresses>(addr);
            batch.delete::<ByDomain>(&(name.clone(), addr.clone()));
            if *kind == AddressUse::Account {
                self.drop_app_passwords(&mut batch, addr)?;
                batch.delete::<OwnQuotas>(addr);
            }
            match kind {
                AddressUse::Account => batch.delete::<Accounts>(addr),
                AddressUse::Alias => batch.delete::<Aliases>(addr),
                AddressUse::List => batch.delete::<Lists>(addr),
            };
        }
        batch.delete::<Domains>(&name);
        batch.delete::<dkim::DkimKeys>(&name);
        let detail = if empty {
            String::new()
        } else {
            format!(
                "forced: {} addresses, {} alias domains",
                addresses.len(),
                aliases.len()
            )
        };
        self.record(&mut batch, "domain.delete", &name, detail)?;
        let missing = DirectoryError::NotFound {
            what: "domain",
            name,
        };
        self.commit(batch, missing).await
    }

    /// Reserves `address` for `kind` in `batch`, requiring its domain.
    fn claim(
        &self,
        batch: &mut Batch,
        address: &str,
        kind: AddressUse,
    ) -> Result<String, DirectoryError> {
        let (address, domain) = names::address(address)?;
        match self.domain(&domain)? {
            None => {
                return Err(DirectoryError::NotFound {
                    what: "domain",
                    name: domain,
                })
            }
            Some(Domain {
                alias_of: Some(target),
                ..
            }) => {
                return Err(DirectoryError::Invalid {
                    field: "address",
                    reason: format!("{domain} is an alias of {target}: add the address there"),
                })
            }
            Some(_) => {}
        }
        batch.require_present::<Domains>(&domain);
        batch.require_absent::<Addresses>(&address);
        batch.put::<Addresses>(&address, &kind);
        batch.put::<ByDomain>(&(domain, address.clone()), &kind);
        Ok(address)
    }

    /// Adds an account.
    pub async fn add_account(&self, new: NewAccount) -> Result<Account, DirectoryError> {
        if !new.password_hash.starts_with("$argon2") {
            return Err(DirectoryError::Invalid {
                field: "password_hash",
                reason: "not an argon2 hash".into(),
            });
        }
        let class = match &new.class_of_service {
            Some(name) => Some(self.known_class(name)?),
            None => None,
        };
        let quota_bytes = match (&class, new.quota_bytes) {
            (_, q) if q > 0 => q,
            (Some(class), _) => class.quota_bytes,
            (None, _) => self
                .class(ClassOfService::DEFAULT)?
                .map_or(0, |c| c.quota_bytes),
        };
        let mut batch = self.tables.batch();
        let address = self.claim(&mut batch, &new.address, AddressUse::Account)?;
        if let Some(class) = &class {
            if self.tables.contains::<Classes>(&class.name) {
                batch.require_present::<Classes>(&class.name);
            }
        }
        let account = Account {
            address: address.clone(),
            display_name: new.display_name,
            given_name: new.given_name,
            surname: new.surname,
            phone: new.phone,
            password_hash: new.password_hash,
            status: Status::Active,
            quota_bytes,
            class_of_service: class.map(|c| c.name),
            shard: new.shard,
            aliases: Vec::new(),
        };
        batch.put::<Accounts>(&address, &account);
        if new.quota_bytes > 0 {
            batch.put::<OwnQuotas>(&address, &new.quota_bytes);
        }
        let detail = format!(
            "class {}, quota {}",
            account
                .class_of_service
                .as_deref()
                .unwrap_or(ClassOfService::DEFAULT),
            account.quota_bytes
        );
        self.record(&mut batch, "account.add", &address, detail)?;
        let exists = DirectoryError::Exists {
            what: "address",
            name: address,
        };
        self.commit(batch, exists).await?;
        Ok(account)
    }

    /// An account by primary address or alias.
    pub fn account(&self, address: &str) -> Result<Option<Account>, DirectoryError> {
        let Ok((address, _)) = names::address(address) else {
            return Ok(None);
        };
        let primary = match self.tables.get::<Aliases>(&address).map_err(storage)? {
            Some(primary) => primary,
            None => address,
        };
        self.tables.get::<Accounts>(&primary).map_err(storage)
    }

    /// Accounts in address order, `limit` after `after`, keeping those whose
    /// address or display name contains `search` (case-insensitive).
    pub fn accounts(
        &self,
        after: Option<&str>,
        limit: usize,
        search: Option<&str>,
    ) -> Result<Vec<Account>, DirectoryError> {
        self.page::<Accounts>(after, limit, search, |a, n| {
            a.address.contains(n) || a.display_name.to_lowercase().contains(n)
        })
    }

    /// Changes an account with `change` and stores it.
    pub async fn update_account(
        &self,
        address: &str,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, DirectoryError> {
        self.update_account_as(address, "account.update", "", change)
            .await
    }

    /// [`Directory::update_account`], audited as `action` with `detail`.
    async fn update_account_as(
        &self,
        address: &str,
        action: &str,
        detail: &str,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "account",
            name: address.to_string(),
        };
        let mut account = self.account(address)?.ok_or_else(not_found)?;
        let primary = account.address.clone();
        change(&mut account);
        account.address = primary.clone();
        let mut batch = self.tables.batch();
        batch.require_present::<Accounts>(&primary);
        batch.put::<Accounts>(&primary, &account);
        self.record(&mut batch, action, &primary, detail)?;
        self.commit(batch, not_found()).await?;
        Ok(account)
    }

    /// Applies `changes` to an account: a class of service it names must
    /// exist (`Invalid`, field `class_of_service`).
    pub async fn change_account(
        &self,
        address: &str,
        changes: AccountChanges,
    ) -> Result<Account, DirectoryError> {
        let class = match &changes.class_of_service {
            Some(name) => Some(self.known_class(name)?),
            None => None,
        };
        let (action, detail) = changes.audit();
        // The quota follows a new class unless the account has its own.
        let own_quota = match self.account(address)? {
            Some(a) => self.tables.contains::<OwnQuotas>(&a.address),
            None => false,
        };
        self.update_account_as(address, action, &detail, |a| {
            if let Some(hash) = changes.password_hash {
                a.password_hash = hash;
            }
            if let Some(status) = changes.status {
                a.status = status;
            }
            if let Some(name) = changes.display_name {
                a.display_name = name;
            }
            if let Some(class) = class {
                if !own_quota {
                    a.quota_bytes = class.quota_bytes;
                }
                a.class_of_service = Some(class.name);
            }
        })
        .await
    }

    /// Deletes an account, its aliases and its app passwords.
    pub async fn delete_account(&self, address: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "account",
            name: address.to_string(),
        };
        let account = self.account(address)?.ok_or_else(not_found)?;
        let mut batch = self.tables.batch();
        batch.require_present::<Accounts>(&account.address);
        for addr in account
            .aliases
            .iter()
            .chain(std::iter::once(&account.address))
        {
            let domain = addr
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            batch.delete::<Addresses>(addr);
            batch.delete::<ByDomain>(&(domain, addr.clone()));
            batch.delete::<Aliases>(addr);
        }
        self.drop_app_passwords(&mut batch, &account.address)?;
        batch.delete::<OwnQuotas>(&account.address);
        batch.delete::<Accounts>(&account.address);
        self.record(&mut batch, "account.delete", &account.address, "")?;
        self.commit(batch, not_found()).await
    }

    /// Adds `alias` as another address of the account `primary`.
    pub async fn add_alias(&self, alias: &str, primary: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "account",
            name: primary.to_string(),
        };
        let mut account = self.account(primary)?.ok_or_else(not_found)?;
        let mut batch = self.tables.batch();
        let alias = self.claim(&mut batch, alias, AddressUse::Alias)?;
        batch.put::<Aliases>(&alias, &account.address);
        account.aliases.push(alias.clone());
        batch.require_present::<Accounts>(&account.address);
        batch.put::<Accounts>(&account.address, &account);
        self.record(
            &mut batch,
            "alias.add",
            &alias,
            format!("of {}", account.address),
        )?;
        let exists = DirectoryError::Exists {
            what: "address",
            name: alias,
        };
        self.commit(batch, exists).await
    }

    /// Adds a distribution list.
    pub async fn add_list(&self, list: List) -> Result<List, DirectoryError> {
        let mut batch = self.tables.batch();
        let address = self.claim(&mut batch, &list.address, AddressUse::List)?;
        let members = list
            .members
            .iter()
            .map(|m| names::address(m).map(|(a, _)| a))
            .collect::<Result<Vec<_>, _>>()?;
        let list = List {
            address: address.clone(),
            members,
            ..list
        };
        batch.put::<Lists>(&address, &list);
        let detail = format!("{} members", list.members.len());
        self.record(&mut batch, "list.add", &address, detail)?;
        let exists = DirectoryError::Exists {
            what: "address",
            name: address,
        };
        self.commit(batch, exists).await?;
        Ok(list)
    }

    /// Lists in address order, `limit` after `after`, keeping those whose
    /// address contains `search` (case-insensitive).
    pub fn lists(
        &self,
        after: Option<&str>,
        limit: usize,
        search: Option<&str>,
    ) -> Result<Vec<List>, DirectoryError> {
        self.page::<Lists>(after, limit, search, |l, n| l.address.contains(n))
    }

    /// Deletes a distribution list.
    pub async fn delete_list(&self, address: &str) -> Result<(), DirectoryError> {
        let not_found = || DirectoryError::NotFound {
            what: "list",
            name: address.to_string(),
        };
        let (address, domain) = names::address(address).map_err(|_| not_found())?;
        let mut batch = self.tables.batch();
        batch.require_present::<Lists>(&address);
        batch.delete::<Lists>(&address);
        batch.delete::<Addresses>(&address);
        batch.delete::<ByDomain>(&(domain, address.clone()));
        self.record(&mut batch, "list.delete", &address, "")?;
        self.commit(batch, not_found()).await
    }

    /// What a mail server needs to know of `address` (see [`Route`]).
    pub fn route(&self, address: &str) -> Result<Route, DirectoryError> {
        let served = match address.rsplit_once('@') {
            Some((_, domain)) => match names::domain(domain) {
                Ok(domain) => self.domain(&domain)?.is_some(),
                Err(_) => false,
            },
            None => false,
        };
        let mut route = Route {
            served,
            recipient: Recipient::Unknown,
            status: None,
            max_message_size: 0,
        };
        if !served {
            return Ok(route);
        }
        route.recipient = self.resolve(address)?;
        if let Recipient::Account(primary) = &route.recipient {
            if let Some(account) = self.account(primary)? {
                route.status = Some(account.status);
                route.max_message_size = self.class_of_account(&account)?.max_message_size;
            }
        }
        Ok(route)
    }

    /// Where mail for `address` goes: an account (directly or by alias, also
    /// through an alias domain), a list, the domain's catch-all, or nobody.
    pub fn resolve(&self, address: &str) -> Result<Recipient, DirectoryError> {
        let Ok((address, domain)) = names::address(address) else {
            return Ok(Recipient::Unknown);
        };
        let Some(dom) = self.domain(&domain)? else {
            return Ok(Recipient::Unknown);
        };
        if let Some(account) = self.account(&address)? {
            return Ok(Recipient::Account(account.address));
        }
        if let Some(list) = self.tables.get::<Lists>(&address).map_err(storage)? {
            return Ok(Recipient::List(list));
        }
        if let Some(target) = &dom.alias_of {
            let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or_default();
            if let Some(account) = self.account(&format!("{local}@{target}"))? {
                return Ok(Recipient::Account(account.address));
            }
        }
        match &dom.catch_all {
            Some(catch_all) => Ok(self
                .account(catch_all)?
                .map_or(Recipient::Unknown, |a| Recipient::Account(a.address))),
            None => Ok(Recipient::Unknown),
        }
    }
}

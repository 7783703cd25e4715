//! The directory's records and the tables that hold them.

use serde::{Deserialize, Serialize};

use crate::table::Table;

/// A served domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    /// Mail to this domain goes to the same local parts of that domain.
    pub alias_of: Option<String>,
    /// Mail to unknown local parts goes to this address.
    pub catch_all: Option<String>,
}

/// Whether an account may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Active,
    Locked,
    Closed,
}

/// A mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: String,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub phone: String,
    /// An argon2id PHC string, never the password.
    pub password_hash: String,
    pub status: Status,
    pub quota_bytes: u64,
    pub class_of_service: Option<String>,
    /// The shard its mail lives on.
    pub shard: u32,
    pub aliases: Vec<String>,
}

/// A distribution list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    pub address: String,
    /// Local or external addresses.
    pub members: Vec<String>,
    /// Who may send to it; empty means anyone.
    pub senders: Vec<String>,
    /// Hidden from the address book.
    pub hidden: bool,
}

/// Domains by name.
pub struct Domains;
impl Table for Domains {
    const NAME: &'static str = "directory.domains";
    type Key = String;
    type Value = Domain;
}

/// Accounts by primary address.
pub struct Accounts;
impl Table for Accounts {
    const NAME: &'static str = "directory.accounts";
    type Key = String;
    type Value = Account;
}

/// Alias address → primary address.
pub struct Aliases;
impl Table for Aliases {
    const NAME: &'static str = "directory.aliases";
    type Key = String;
    type Value = String;
}

/// Lists by address.
pub struct Lists;
impl Table for Lists {
    const NAME: &'static str = "directory.lists";
    type Key = String;
    type Value = List;
}

/// Every address in use (accounts, aliases, lists) → what uses it, so that
/// one batch condition refuses a duplicate whatever kind it is.
pub struct Addresses;
impl Table for Addresses {
    const NAME: &'static str = "directory.addresses";
    type Key = String;
    type Value = AddressUse;
}

/// What an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressUse {
    Account,
    Alias,
    List,
}

/// (domain, address) for each account, list and alias: a domain's
/// addresses by prefix scan.
pub struct ByDomain;
impl Table for ByDomain {
    const NAME: &'static str = "directory.by_domain";
    type Key = (String, String);
    type Value = AddressUse;
}

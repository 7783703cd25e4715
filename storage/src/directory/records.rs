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

/// What a class of service lets its accounts use. Protocol servers check
/// their flag before they accept a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    pub imap: bool,
    pub pop3: bool,
    pub activesync: bool,
    pub files: bool,
    pub chats: bool,
    pub video: bool,
}

impl Default for Features {
    /// Everything on.
    fn default() -> Self {
        Self {
            imap: true,
            pop3: true,
            activesync: true,
            files: true,
            chats: true,
            video: true,
        }
    }
}

/// A class of service: limits and features shared by the accounts that
/// name it (an account that names none is in [`ClassOfService::DEFAULT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassOfService {
    pub name: String,
    /// The quota of a new account that asks for none; 0 = unlimited.
    pub quota_bytes: u64,
    /// The largest message accepted; 0 = the appliance's limit.
    pub max_message_size: u64,
    pub features: Features,
    /// The shortest password accepted for its accounts (in characters).
    pub min_password_length: u32,
}

impl ClassOfService {
    /// The name of the class that always exists.
    pub const DEFAULT: &'static str = "default";
    /// The shortest password of the built-in default class.
    pub const DEFAULT_MIN_PASSWORD: u32 = 8;

    /// The built-in `default` class: every feature, no quota, the
    /// appliance's message size limit, passwords of 8 characters or more.
    pub fn builtin_default() -> Self {
        Self {
            name: Self::DEFAULT.into(),
            quota_bytes: 0,
            max_message_size: 0,
            features: Features::default(),
            min_password_length: Self::DEFAULT_MIN_PASSWORD,
        }
    }
}

/// Classes of service by name (`default` only once it was changed).
pub struct Classes;
impl Table for Classes {
    const NAME: &'static str = "directory.classes";
    type Key = String;
    type Value = ClassOfService;
}

/// A named password for one mail client of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    pub name: String,
    /// An argon2id PHC string, never the password.
    pub hash: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_unix: u64,
}

/// (primary address, name) → app password: an account's app passwords by
/// prefix scan. Kept beside the account rather than in its record so that
/// the account's stored encoding (and the address book) never carry them.
pub struct AppPasswords;
impl Table for AppPasswords {
    const NAME: &'static str = "directory.app_passwords";
    type Key = (String, String);
    type Value = AppPassword;
}

/// Primary address → the quota given to the account itself. An account
/// not here takes its class's quota, also when that changes.
pub struct OwnQuotas;
impl Table for OwnQuotas {
    const NAME: &'static str = "directory.own_quotas";
    type Key = String;
    type Value = u64;
}

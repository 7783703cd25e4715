//! The command line: `cairn run` and `cairn config …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cairn: mail, directory, files, chats and video in one appliance.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the appliance (the embedded defaults when no --config is given).
    Run(RunArgs),
    /// Check, show or help write the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage domains and accounts of a running appliance.
    Admin(AdminArgs),
    /// The anti-virus signature database.
    #[command(subcommand)]
    Avdb(AvdbCommand),
}

#[derive(Subcommand)]
pub enum AvdbCommand {
    /// Check FILE and make it the signature database (atomically).
    Update {
        file: PathBuf,
        #[command(flatten)]
        place: AvdbPlace,
    },
    /// Print the number of signatures and their source.
    Show {
        #[command(flatten)]
        place: AvdbPlace,
    },
}

/// Which appliance's data directory `avdb` works on.
#[derive(Args)]
pub struct AvdbPlace {
    /// The appliance.toml the appliance runs with (default: the embedded one).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The data directory (default: the configuration's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct AdminArgs {
    /// The appliance's URL (default: its HTTP listener, from the configuration).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The API token (default: the one in the data directory).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The appliance.toml the appliance runs with (default: the embedded one).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// The data directory the appliance runs with.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Served mail domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Mail accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Distribution lists.
    #[command(subcommand)]
    List(ListCommand),
    /// Classes of service (quota, message size, features, password length).
    #[command(subcommand)]
    Cos(CosCommand),
    /// Service accounts (LDAP binds as cn=NAME,ou=services,dc=…).
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCommand),
    /// The outbound queue: mail waiting for other domains.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The audit trail, newest first.
    Audit {
        /// How many entries (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only this action (`account.add`) or kind of record (`account`).
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this record or user.
        #[arg(long)]
        target: Option<String>,
        /// Only entries by this actor (admin, token, cli, or a user).
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Messages waiting for delivery to other domains, on every shard.
    List,
    /// Try now: one message (its id from `list`), or all of them.
    Retry { id: Option<String> },
    /// Drop a queued message without telling its sender.
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum ServiceAccountCommand {
    /// Add a service account.
    Add {
        name: String,
        #[command(flatten)]
        password: PasswordSource,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List service accounts.
    List,
    /// Delete a service account.
    Delete { name: String },
}

/// A feature a class of service can turn off.
#[derive(Clone, Copy, ValueEnum)]
pub enum Feature {
    Imap,
    Pop3,
    Activesync,
    Files,
    Chats,
    Video,
}

impl Feature {
    /// Its key in the API's `features` object.
    pub fn key(self) -> &'static str {
        match self {
            Feature::Imap => "imap",
            Feature::Pop3 => "pop3",
            Feature::Activesync => "activesync",
            Feature::Files => "files",
            Feature::Chats => "chats",
            Feature::Video => "video",
        }
    }
}

#[derive(Subcommand)]
pub enum CosCommand {
    /// Add a class of service (every feature on unless disabled).
    Add {
        name: String,
        /// Default quota of its accounts in bytes (0: none).
        #[arg(long, default_value_t = 0)]
        quota: u64,
        /// Largest message in bytes (0: the appliance's limit).
        #[arg(long, default_value_t = 0)]
        max_message_size: u64,
        /// Turn a feature off; repeat for more.
        #[arg(long = "disable", value_enum)]
        disable: Vec<Feature>,
        /// Shortest password of its accounts (default 8).
        #[arg(long)]
        min_password_length: Option<u32>,
    },
    /// List the classes of service.
    List,
    /// Show a class of service.
    Show { name: String },
    /// Delete a class of service no account uses.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum ListCommand {
    /// Add a distribution list.
    Add {
        address: String,
        /// A member (local or external); repeat for more.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// Who may send to it (default: anyone); repeat for more.
        #[arg(long = "sender")]
        senders: Vec<String>,
        /// Hide it from the address book.
        #[arg(long)]
        hidden: bool,
    },
    /// List the distribution lists.
    List {
        /// Only those whose address contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Delete a distribution list.
    Delete { address: String },
}

#[derive(Subcommand)]
pub enum DomainCommand {
    /// Add a domain.
    Add {
        name: String,
        /// Make it an alias of this domain.
        #[arg(long)]
        alias_of: Option<String>,
        /// Deliver mail for unknown addresses to this address.
        #[arg(long)]
        catch_all: Option<String>,
    },
    /// List the domains.
    List {
        /// Only those whose name contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a domain.
    Show { name: String },
    /// Delete a domain (--force also deletes its addresses).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Make a DKIM key for a domain (replacing its old one) and print the
    /// DNS TXT record to publish; --show prints the current one.
    Dkim {
        name: String,
        /// The kind of key (default: rsa, 2048 bits).
        #[arg(long, value_enum)]
        algorithm: Option<DkimAlgorithmArg>,
        /// The selector (default: cairn and the year and month, cairn202611).
        #[arg(long)]
        selector: Option<String>,
        /// Show the current key's record instead of making a key.
        #[arg(long, conflicts_with_all = ["algorithm", "selector", "remove"])]
        show: bool,
        /// Remove the domain's key: its mail is no longer signed.
        #[arg(long, conflicts_with_all = ["algorithm", "selector"])]
        remove: bool,
    },
}

/// The kind of a DKIM key.
#[derive(Clone, Copy, ValueEnum)]
pub enum DkimAlgorithmArg {
    /// RSA, 2048 bits (rsa-sha256): what every receiver checks.
    Rsa,
    /// Ed25519 (RFC 8463): short, but not yet checked by every receiver.
    Ed25519,
}

impl DkimAlgorithmArg {
    /// Its name in the API.
    pub fn key(self) -> &'static str {
        match self {
            DkimAlgorithmArg::Rsa => "rsa",
            DkimAlgorithmArg::Ed25519 => "ed25519",
        }
    }
}

/// Where a new password comes from.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(long)]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Add an account.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Quota in bytes (default: its class's quota).
        #[arg(long)]
        quota: Option<u64>,
        /// Its class of service (default: `default`).
        #[arg(long)]
        class: Option<String>,
    },
    /// List accounts.
    List {
        /// Only those whose address or name contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show an account.
    Show { address: String },
    /// Set an account's password.
    SetPassword {
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Lock an account (it can no longer log in).
    Lock { address: String },
    /// Unlock an account.
    Unlock { address: String },
    /// Give an account another address.
    AddAlias { address: String, alias: String },
    /// Move an account to another class of service.
    SetClass { address: String, class: String },
    /// App passwords for mail clients.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
    /// Delete an account and its mail.
    Delete { address: String },
    /// Move an account and its mail to another shard.
    Move {
        address: String,
        /// The shard to move it to (0 ..= shards.count - 1).
        #[arg(long)]
        shard: usize,
    },
}

#[derive(Subcommand)]
pub enum AppPasswordCommand {
    /// Make an app password (printed once: only its hash is kept).
    Add { address: String, name: String },
    /// List an account's app passwords (names and creation times).
    List { address: String },
    /// Delete an app password.
    Delete { address: String, name: String },
}

#[derive(Args)]
pub struct RunArgs {
    /// The appliance.toml to use instead of the embedded defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `data_dir` of the configuration).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: exit 0, or every error and exit 1.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the effective configuration (secrets redacted).
    Show {
        /// The appliance.toml to read instead of the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// List the network interfaces and their addresses.
    Interfaces,
}

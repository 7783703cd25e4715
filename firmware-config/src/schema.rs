//! The schema of `appliance.toml`: one struct per section, each with the
//! embedded development default as its `Default`. Every field has a default,
//! so a file need only say what differs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::listener::{self, ListenerConfig};
use crate::service::Service;
use crate::values;

/// The schema version this Cairn writes and reads; older files are migrated.
pub const CURRENT_VERSION: u32 = 1;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Schema version; a file without one is taken as [`CURRENT_VERSION`].
    pub version: u32,
    /// `[node]`
    pub node: NodeConfig,
    /// Where every shard keeps its data (default `./cairn-data`).
    pub data_dir: PathBuf,
    /// `[shards]`
    pub shards: ShardsConfig,
    /// `[tls]`
    pub tls: TlsConfig,
    /// `[listeners.<service>]`: always one entry per service of
    /// [`Service::ALL`]; a file's table overrides only the keys it gives.
    #[serde(deserialize_with = "listener::deserialize_over_defaults")]
    pub listeners: BTreeMap<Service, ListenerConfig>,
    /// `[limits]`
    pub limits: Limits,
    /// `[log]`
    pub log: LogConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[media]`
    pub media: MediaConfig,
    /// `[ldap]`
    pub ldap: LdapConfig,
    /// `[mail_access]`
    pub mail_access: MailAccessConfig,
    /// `[dns]`
    pub dns: DnsConfig,
    /// `[outbound]`
    pub outbound: OutboundConfig,
    /// `[antispam]`
    pub antispam: AntispamConfig,
    /// `[antivirus]`
    pub antivirus: AntivirusConfig,
    /// `[storage]`
    pub storage: StorageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CURRENT_VERSION,
            node: NodeConfig::default(),
            data_dir: PathBuf::from("./cairn-data"),
            shards: ShardsConfig::default(),
            tls: TlsConfig::default(),
            listeners: listener::dev_defaults(),
            limits: Limits::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            media: MediaConfig::default(),
            ldap: LdapConfig::default(),
            mail_access: MailAccessConfig::default(),
            dns: DnsConfig::default(),
            outbound: OutboundConfig::default(),
            antispam: AntispamConfig::default(),
            antivirus: AntivirusConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl Config {
    /// The certificate and key files: the configured ones (relative paths
    /// are relative to `data_dir`), else `data_dir/tls/cert.pem` and
    /// `data_dir/tls/key.pem`, where a generated pair is kept.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        let resolve = |configured: &Option<PathBuf>, generated: &str| match configured {
            Some(path) => self.data_dir.join(path),
            None => self.data_dir.join("tls").join(generated),
        };
        (
            resolve(&self.tls.cert, "cert.pem"),
            resolve(&self.tls.key, "key.pem"),
        )
    }
}

/// `[node]`: who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// A display name for the node (default `cairn`).
    pub name: String,
    /// The host name it greets with and puts in its certificate
    /// (default `localhost`).
    pub hostname: String,
    /// The mail domains it serves (default none).
    pub domains: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "cairn".to_string(),
            hostname: "localhost".to_string(),
            domains: Vec::new(),
        }
    }
}

/// `[shards]`: the thread-per-core runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardsConfig {
    /// Number of shards; 0 = one per core.
    pub count: usize,
    /// Pin each shard to its core (default `true`).
    pub pin: bool,
    /// Threads of the blocking-work pool; 0 = one per core.
    pub blocking_threads: usize,
    /// Seconds that open connections get to finish at shutdown (default 10).
    pub shutdown_grace_secs: u64,
}

impl Default for ShardsConfig {
    fn default() -> Self {
        ShardsConfig {
            count: 0,
            pin: true,
            blocking_threads: 0,
            shutdown_grace_secs: 10,
        }
    }
}

/// `[tls]`: the certificate every TLS listener presents. Both absent: a
/// self-signed pair is generated at first start; relative paths are
/// relative to `data_dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[limits]`: bounds on everything that comes from outside (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Bytes of one message (default 50 MiB).
    pub max_message_size: u64,
    /// Bytes of one protocol line or request head (default 8192).
    pub max_line_length: usize,
    /// Concurrent connections from one IP address (default 100).
    pub max_connections_per_ip: u32,
    /// Failed logins before an account and IP are locked out (default 10).
    pub max_auth_failures: u32,
    /// Bytes of one HTTP request body (default 10 MiB).
    pub max_request_body: u64,
    /// Recipients of one message (default 1000).
    pub max_recipients: u32,
    /// Messages one logged-in user may submit per minute, per shard
    /// (default 600; 0 = no limit).
    pub max_messages_per_user_per_minute: u32,
    /// Messages one client address may send to the MX listener per
    /// minute, per shard (default 0 = no limit: relays push volume).
    pub max_messages_per_ip_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 50 * 1024 * 1024,
            max_line_length: 8192,
            max_connections_per_ip: 100,
            max_auth_failures: 10,
            max_request_body: 10 * 1024 * 1024,
            max_recipients: 1000,
            max_messages_per_user_per_minute: 600,
            max_messages_per_ip_per_minute: 0,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a
    /// directive list such as `info,cairn_http=debug` (default `info`).
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// `[metrics]`: the Prometheus text exposition on the HTTP listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve metrics (default `true`).
    pub enabled: bool,
    /// The HTTP path (default `/metrics`).
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            path: "/metrics".to_string(),
        }
    }
}

/// `[media]`: the UDP ports of the video server (ICE, DTLS-SRTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// The address media sockets bind (default 127.0.0.1).
    #[serde(deserialize_with = "values::address")]
    pub address: IpAddr,
    /// Lowest UDP port (default 30000).
    #[serde(deserialize_with = "values::port")]
    pub port_min: u16,
    /// Highest UDP port (default 30999).
    #[serde(deserialize_with = "values::port")]
    pub port_max: u16,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 30000,
            port_max: 30999,
        }
    }
}

/// `[storage]`: how each shard's segment log commits, checkpoints and
/// compacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// A segment file is closed and the next one started past this many
    /// MiB (default 64).
    pub segment_mib: u64,
    /// The most KiB one group commit writes (default 4096).
    pub group_commit_max_kib: usize,
    /// How long, in microseconds, a group commit waits for more writers
    /// before writing a batch that is not full (default 0: writers that
    /// arrive during a commit form the next batch anyway).
    pub group_commit_max_wait_us: u64,
    /// A background checkpoint is written once this many MiB were logged
    /// since the last one (default 64).
    pub checkpoint_every_mib: u64,
    /// A sealed segment is compacted once this share of its bytes, in
    /// percent, is dead: expunged mail, deleted accounts, records a
    /// checkpoint covers (default 50; 0 compacts every sealed segment,
    /// 100 only wholly dead ones).
    pub compaction_min_dead_percent: u8,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            segment_mib: 64,
            group_commit_max_kib: 4096,
            group_commit_max_wait_us: 0,
            checkpoint_every_mib: 64,
            compaction_min_dead_percent: 50,
        }
    }
}

/// `[ldap]`: the directory served over LDAP (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    /// Let clients search without binding (default `false`).
    pub allow_anonymous: bool,
    /// The most entries one search returns, whatever the client asks
    /// (default 1000; paged searches page through more).
    pub size_limit: usize,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            allow_anonymous: false,
            size_limit: 1000,
        }
    }
}

/// `[mail_access]`: how mail clients (IMAP, POP3) may log in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailAccessConfig {
    /// Accept passwords over unencrypted connections (default `false`:
    /// IMAP says LOGINDISABLED and POP3 offers no USER or SASL until the
    /// client has done STARTTLS/STLS).
    pub allow_plaintext_auth: bool,
}

/// `[dns]`: the name servers Cairn asks (MX and addresses for the
/// outbound queue; SPF, DKIM, DMARC records and blocklists for inbound
/// mail).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsConfig {
    /// `address:port` of each (default empty: the nameservers of
    /// `/etc/resolv.conf`).
    pub servers: Vec<String>,
}

/// How outbound mail is protected on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// Never STARTTLS.
    None,
    /// STARTTLS when the server offers it, any certificate (RFC 7435).
    Opportunistic,
    /// STARTTLS must be offered and succeed, else the attempt fails.
    Required,
    /// TLS from the first byte (a smarthost on port 465).
    Implicit,
}

/// `[outbound]`: the queue of mail to other domains and how it leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundConfig {
    /// The port of remote MX hosts (default 25; tests point it elsewhere).
    pub mx_port: u16,
    /// TLS towards MX hosts (default `opportunistic`).
    pub mx_tls: OutboundTls,
    /// Send everything through this relay, `host:port` (default empty:
    /// deliver to each domain's MX).
    pub smarthost: String,
    /// TLS towards the smarthost (default `required`).
    pub smarthost_tls: OutboundTls,
    /// Check the smarthost's certificate against the system's roots
    /// (default `true`; `false` accepts any, e.g. a self-signed relay).
    pub smarthost_verify_certificate: bool,
    /// AUTH user and password for the smarthost (default none).
    pub smarthost_user: String,
    pub smarthost_password: String,
    /// The first retry after a temporary failure, doubled after each
    /// further one up to `retry_max_secs` (default 300 and 14400).
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// After this long in the queue a message is bounced to its sender
    /// (default 5 days).
    pub max_lifetime_secs: u64,
    /// A "delayed" notice goes to the sender once a message has waited
    /// this long (default 4 hours; 0 = never).
    pub delay_notice_secs: u64,
    /// Connections open at once from one shard (default 50), and to one
    /// destination host (default 5).
    pub max_connections: u32,
    pub max_connections_per_destination: u32,
    /// Networks (CIDR, e.g. `10.0.0.0/8`) whose clients may relay through
    /// the MX listener to other domains without logging in, like
    /// Postfix's `mynetworks` (default none: only submission relays).
    pub relay_networks: Vec<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            mx_port: 25,
            mx_tls: OutboundTls::Opportunistic,
            smarthost: String::new(),
            smarthost_tls: OutboundTls::Required,
            smarthost_verify_certificate: true,
            smarthost_user: String::new(),
            smarthost_password: String::new(),
            retry_initial_secs: 300,
            retry_max_secs: 4 * 3600,
            max_lifetime_secs: 5 * 24 * 3600,
            delay_notice_secs: 4 * 3600,
            max_connections: 50,
            max_connections_per_destination: 5,
            relay_networks: Vec::new(),
        }
    }
}

/// One DNS blocklist of `[antispam]`: its zone and what a listing adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsblConfig {
    pub zone: String,
    pub weight: f32,
}

/// `[antispam]`: how mail from other servers is checked and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AntispamConfig {
    /// Score messages with the rules and blocklists (default `true`).
    pub enabled: bool,
    /// From this score a message is tagged and goes to Junk (default 5).
    pub tag_score: f32,
    /// From this score it is refused with `550 5.7.1` (default 12).
    pub reject_score: f32,
    /// Blocklists, e.g. `[{ zone = "zen.spamhaus.org", weight = 6.0 }]`
    /// (default none).
    pub dnsbl: Vec<DnsblConfig>,
    /// How long all blocklist lookups together may take (default 3000).
    pub dnsbl_timeout_ms: u64,
    /// Check SPF, DKIM and DMARC (default `true`).
    pub verify_senders: bool,
    /// Refuse mail failing DMARC whose domain says `p=reject` (default
    /// `true`; else it goes to Junk).
    pub enforce_dmarc: bool,
    /// Let each account's naive-Bayes classifier, trained from the
    /// messages its user moves into and out of Junk, send mail the score
    /// accepted to its Junk with `X-Spam-Bayes:` (default `true`; the
    /// classifiers learn either way).
    pub bayes: bool,
    /// Trained spam messages, and trained ham messages, an account needs
    /// before its classifier decides (default 20).
    pub bayes_min_messages: u32,
    /// From this probability of spam a message goes to Junk (default
    /// 0.9; above 0.5, at most 1).
    pub bayes_spam_probability: f64,
}

impl Default for AntispamConfig {
    fn default() -> Self {
        AntispamConfig {
            enabled: true,
            tag_score: 5.0,
            reject_score: 12.0,
            dnsbl: Vec::new(),
            dnsbl_timeout_ms: 3000,
            verify_senders: true,
            enforce_dmarc: true,
            bayes: true,
            bayes_min_messages: 20,
            bayes_spam_probability: 0.9,
        }
    }
}

/// What happens to a message a virus scanner finds infected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirusAction {
    /// Refused at the end of DATA with `554 5.7.1`; nothing is stored.
    #[default]
    Reject,
    /// Accepted, and delivered only to `quarantine_account`'s INBOX.
    Quarantine,
}

/// `[antivirus]`: the scanners of incoming mail (the built-in one always
/// runs; ClamAV's clamd after it when configured) and what a virus gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AntivirusConfig {
    /// clamd's socket, `unix:/run/clamav/clamd.ctl` or
    /// `tcp:127.0.0.1:3310` (default empty: clamd is not used).
    pub clamd: String,
    /// How long one clamd scan may take, connecting included (default
    /// 30000); past it, or when clamd fails, the message gets `451 4.3.0`.
    pub clamd_timeout_ms: u64,
    /// `reject` (default) or `quarantine`.
    pub action: VirusAction,
    /// The local address whose INBOX receives quarantined mail (required
    /// with `action = "quarantine"`).
    pub quarantine_account: String,
}

impl Default for AntivirusConfig {
    fn default() -> Self {
        AntivirusConfig {
            clamd: String::new(),
            clamd_timeout_ms: 30_000,
            action: VirusAction::Reject,
            quarantine_account: String::new(),
        }
    }
}

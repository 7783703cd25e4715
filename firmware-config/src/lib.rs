//! `cairn-config` owns the appliance's configuration file, `appliance.toml`:
//! its schema (serde), the embedded defaults, the versioned migrations,
//! the checks, and errors that name the file, line, column, key and reason.
//! It also lists the node's network interfaces.
//!
//! A file need only say what differs from the embedded default (the
//! development setup of DESIGN §4: every listener on 127.0.0.1 at its
//! standard port + 10000). A `[listeners.<service>]` table overrides only
//! the keys it gives. Unknown keys are errors, never ignored, and every
//! problem in a file is reported at once:
//!
//! ```text
//! appliance.toml:12:8: listeners.smtp.port: invalid value 70000, expected a port 1..=65535
//! appliance.toml:20:1: limits.max_line_lenght: unknown key
//! ```
//!
//! An appliance on the standard ports:
//!
//! ```
//! # use cairn_config::{Config, Service, TlsMode};
//! let text = r#"
//! version = 1
//! data_dir = "/var/lib/cairn"
//!
//! [node]
//! name = "mail-1"
//! hostname = "mail.example.com"
//! domains = ["example.com", "example.org"]
//!
//! [shards]
//! count = 0              # one per core
//! shutdown_grace_secs = 30
//!
//! [tls]                  # both absent: a self-signed pair at first start
//! cert = "tls/fullchain.pem"   # relative to data_dir
//! key = "tls/privkey.pem"
//!
//! [listeners.smtp]
//! address = "0.0.0.0"
//! port = 25
//!
//! [listeners.https]
//! address = "0.0.0.0"
//! port = 443
//!
//! [listeners.pop3]
//! enabled = false
//!
//! [limits]
//! max_message_size = 41943040   # 40 MiB (at most one storage segment, 64 MiB)
//!
//! [log]
//! level = "info,cairn_http=debug"
//! format = "json"
//!
//! [media]
//! address = "0.0.0.0"
//! port_min = 20000
//! port_max = 20999
//! "#;
//! let config = Config::from_toml_str(text, "appliance.toml").map_err(|e| e.to_string())?;
//! let smtp = &config.listeners[&Service::Smtp];
//! assert_eq!((smtp.port, smtp.tls), (25, TlsMode::Starttls));
//! assert_eq!(config.listeners[&Service::Imap].port, 10143); // untouched default
//! assert!(!config.listeners[&Service::Pop3].enabled);
//! assert_eq!(
//!     config.tls_paths().0,
//!     std::path::Path::new("/var/lib/cairn/tls/fullchain.pem")
//! );
//! # Ok::<(), String>(())
//! ```
//!
//! Older files are migrated on load (see `migrate`); a file written by a
//! newer Cairn is refused.

mod error;
pub mod interfaces;
mod listener;
mod load;
mod locate;
mod log_filter;
mod migrate;
mod names;
mod read;
mod render;
mod schema;
mod service;
mod source;
mod validate;
mod values;

pub use error::{ConfigError, ConfigErrors};
pub use listener::ListenerConfig;
pub use schema::{
    AntispamConfig, AntivirusConfig, Config, DnsConfig, DnsblConfig, LdapConfig, Limits, LogConfig,
    LogFormat, MailAccessConfig, MediaConfig, MetricsConfig, NodeConfig, OutboundConfig,
    OutboundTls, ShardsConfig, StorageConfig, TlsConfig, VirusAction, CURRENT_VERSION,
};
pub use service::{Service, TlsMode};
pub use validate::{cidr, host_port};

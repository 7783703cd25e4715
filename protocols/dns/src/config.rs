//! The resolver's settings: which servers to ask, how long to wait, how
//! often to try, how much to cache; and reading them from the system's
//! `/etc/resolv.conf` the way the C library does (its `nameserver` lines
//! and the `timeout:` and `attempts:` options).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where the system's settings are.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long to wait for each server's answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds over all servers unless told otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// Cache entries unless told otherwise.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// The C library reads at most three `nameserver` lines; so do we.
const MAX_SERVERS: usize = 3;
/// The C library's caps on `timeout:` (seconds) and `attempts:`.
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;

/// How a [`crate::Resolver`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Recursive name servers, asked in this order.
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one server's answer (over UDP, and again over
    /// TCP after a truncated reply).
    pub timeout: Duration,
    /// Rounds over all servers before giving up (at least one is made).
    pub attempts: u32,
    /// Most answers cached (0: no cache).
    pub cache_entries: usize,
}

impl ResolverConfig {
    /// The system's resolver: the `nameserver` lines of
    /// `/etc/resolv.conf` (port 53), falling back to 127.0.0.1:53, and its
    /// `options timeout:N attempts:N`; 5 s, 2 attempts and 10 000 cache
    /// entries by default. Reads a small file synchronously: call it at
    /// start-up, not from a busy shard.
    pub fn system() -> ResolverConfig {
        match std::fs::read_to_string(RESOLV_CONF) {
            Ok(text) => ResolverConfig::from_resolv_conf(&text),
            Err(e) => {
                tracing::warn!(path = RESOLV_CONF, error = %e, "cannot read; asking 127.0.0.1:53");
                ResolverConfig::default()
            }
        }
    }

    /// Settings from the text of a `resolv.conf`. Unknown lines and
    /// options, comments (`#`, `;`) and unparsable addresses (a link-local
    /// address with a zone, for one) are skipped.
    pub fn from_resolv_conf(text: &str) -> ResolverConfig {
        let mut config = ResolverConfig {
            servers: Vec::new(),
            ..ResolverConfig::default()
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        if config.servers.len() < MAX_SERVERS {
                            config.servers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("options") => {
                    for option in words {
                        if let Some(n) = option.strip_prefix("timeout:") {
                            if let Ok(secs) = n.parse::<u64>() {
                                config.timeout =
                                    Duration::from_secs(secs.clamp(1, MAX_TIMEOUT_SECS));
                            }
                        } else if let Some(n) = option.strip_prefix("attempts:") {
                            if let Ok(attempts) = n.parse::<u32>() {
                                config.attempts = attempts.clamp(1, MAX_ATTEMPTS);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if config.servers.is_empty() {
            config.servers = ResolverConfig::default().servers;
        }
        config
    }
}

impl Default for ResolverConfig {
    /// A local resolver at 127.0.0.1:53 with the default settings.
    fn default() -> ResolverConfig {
        ResolverConfig {
            servers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            cache_entries: DEFAULT_CACHE_ENTRIES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers_and_options_are_read() {
        let config = ResolverConfig::from_resolv_conf(
            "# generated\n\
             search example.com\n\
             nameserver 192.0.2.53\n\
             ; comment\n\
             nameserver   2001:db8::53  \n\
             nameserver fe80::1%eth0\n\
             nameserver not-an-address\n\
             options ndots:2 timeout:3 attempts:4 rotate\n\
             nameserver 192.0.2.54\n\
             nameserver 192.0.2.55\n",
        );
        assert_eq!(
            config.servers,
            vec![
                "192.0.2.53:53".parse().expect("address"),
                "[2001:db8::53]:53".parse().expect("address"),
                "192.0.2.54:53".parse().expect("address"),
            ]
        );
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.attempts, 4);
        assert_eq!(config.cache_entries, DEFAULT_CACHE_ENTRIES);
    }

    #[test]
    fn no_servers_means_the_local_one_and_options_are_capped() {
        let config = ResolverConfig::from_resolv_conf("options timeout:0 attempts:99\n");
        assert_eq!(
            config.servers,
            vec!["127.0.0.1:53".parse().expect("address")]
        );
        assert_eq!(config.timeout, Duration::from_secs(1));
        assert_eq!(config.attempts, 5);
        let empty = ResolverConfig::from_resolv_conf("");
        assert_eq!(empty, ResolverConfig::default());
        assert_eq!(empty.timeout, Duration::from_secs(5));
        assert_eq!(empty.attempts, 2);
        assert_eq!(empty.cache_entries, 10_000);
    }
}

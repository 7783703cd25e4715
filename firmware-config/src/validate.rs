//! Semantic checks on a built [`Config`]: what types alone cannot say
//! (version, names, TLS pairs, clashing ports, limits, ranges). Run by the
//! loader and again by the appliance after command-line overrides.

use std::net::IpAddr;

use crate::error::ConfigError;
use crate::schema::{Config, VirusAction, CURRENT_VERSION};
use crate::service::TlsMode;
use crate::{log_filter, names};

/// The most shards or blocking threads that make sense on one node.
const MAX_THREADS: usize = 1024;
/// The highest `antispam.bayes_min_messages` (the classifier's own bound on
/// trained messages per account is far above it).
const MAX_BAYES_MIN_MESSAGES: u32 = 100_000;

/// Bytes a stored message takes beside itself: its hash and the
/// record's framing, with room to spare.
const STORED_OVERHEAD: u64 = 64 * 1024;

impl Config {
    /// Every semantic problem of this configuration, in schema order; an
    /// empty list means it is fit to run. These errors carry no file or
    /// line: the loader adds them where the key was written.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        self.check_version(&mut errors);
        self.check_node(&mut errors);
        if self.data_dir.as_os_str().is_empty() {
            errors.push(ConfigError::semantic(
                "data_dir",
                "empty; expected a directory",
            ));
        }
        self.check_shards(&mut errors);
        self.check_tls(&mut errors);
        self.check_listeners(&mut errors);
        self.check_limits(&mut errors);
        if let Err(reason) = log_filter::check(&self.log.level) {
            errors.push(ConfigError::semantic("log.level", reason));
        }
        self.check_metrics(&mut errors);
        self.check_media(&mut errors);
        self.check_storage(&mut errors);
        self.check_dns(&mut errors);
        self.check_outbound(&mut errors);
        self.check_antispam(&mut errors);
        self.check_antivirus(&mut errors);
        errors
    }

    fn check_version(&self, errors: &mut Vec<ConfigError>) {
        if self.version > CURRENT_VERSION {
            errors.push(ConfigError::semantic(
                "version",
                format!(
                    "version {} was written by a newer Cairn; this one reads up to version \
                     {CURRENT_VERSION}",
                    self.version
                ),
            ));
        } else if self.version < CURRENT_VERSION {
            errors.push(ConfigError::semantic(
                "version",
                format!(
                    "version {} is older than {CURRENT_VERSION} and was not migrated; \
                     load it from a file",
                    self.version
                ),
            ));
        }
    }

    fn check_node(&self, errors: &mut Vec<ConfigError>) {
        if self.node.name.trim().is_empty() {
            errors.push(ConfigError::semantic(
                "node.name",
                "empty; expected a display name",
            ));
        }
        if let Err(reason) = names::check_host(&self.node.hostname) {
            errors.push(ConfigError::semantic("node.hostname", reason));
        }
        for (i, domain) in self.node.domains.iter().enumerate() {
            let key = format!("node.domains[{i}]");
            if let Err(reason) = names::check_host(domain) {
                errors.push(ConfigError::semantic(key, reason));
            } else if self
                .node
                .domains
                .iter()
                .take(i)
                .any(|earlier| earlier.eq_ignore_ascii_case(domain))
            {
                errors.push(ConfigError::semantic(
                    key,
                    format!("{domain:?} is listed twice"),
                ));
            }
        }
    }

    fn check_shards(&self, errors: &mut Vec<ConfigError>) {
        for (key, value) in [
            ("shards.count", self.shards.count),
            ("shards.blocking_threads", self.shards.blocking_threads),
        ] {
            if value > MAX_THREADS {
                errors.push(ConfigError::semantic(
                    key,
                    format!("{value} is absurd; expected 0 (one per core) up to {MAX_THREADS}"),
                ));
            }
        }
    }

    fn check_tls(&self, errors: &mut Vec<ConfigError>) {
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => errors.push(ConfigError::semantic(
                "tls.cert",
                "a certificate without a key: set tls.key too, or neither to generate a pair",
            )),
            (None, Some(_)) => errors.push(ConfigError::semantic(
                "tls.key",
                "a key without a certificate: set tls.cert too, or neither to generate a pair",
            )),
            _ => {}
        }
        for (key, path) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                errors.push(ConfigError::semantic(key, "empty path"));
            }
        }
    }

    fn check_listeners(&self, errors: &mut Vec<ConfigError>) {
        let enabled: Vec<_> = self.listeners.iter().filter(|(_, l)| l.enabled).collect();
        for (i, (service, listener)) in enabled.iter().enumerate() {
            let key = format!("listeners.{service}");
            if listener.port == 0 {
                errors.push(ConfigError::semantic(
                    format!("{key}.port"),
                    "invalid value 0, expected a port 1..=65535",
                ));
            }
            if !service.has_starttls() && listener.tls == TlsMode::Starttls {
                errors.push(ConfigError::semantic(
                    format!("{key}.tls"),
                    "HTTP has no STARTTLS; use \"none\" or \"implicit\"",
                ));
            }
            let clash = enabled.iter().take(i).find(|(_, earlier)| {
                earlier.port == listener.port && overlap(earlier.address, listener.address)
            });
            if let Some((earlier, _)) = clash {
                errors.push(ConfigError::semantic(
                    format!("{key}.port"),
                    format!(
                        "{}:{} is already taken by listeners.{earlier}",
                        listener.address, listener.port
                    ),
                ));
            }
            let media = self.media.port_min..=self.media.port_max;
            if media.contains(&listener.port) {
                errors.push(ConfigError::semantic(
                    format!("{key}.port"),
                    format!(
                        "port {} is inside the media port range {}..={}",
                        listener.port, self.media.port_min, self.media.port_max
                    ),
                ));
            }
        }
    }

    fn check_limits(&self, errors: &mut Vec<ConfigError>) {
        let limits = &self.limits;
        for (name, value) in [
            ("max_message_size", limits.max_message_size),
            ("max_line_length", limits.max_line_length as u64),
            (
                "max_connections_per_ip",
                u64::from(limits.max_connections_per_ip),
            ),
            ("max_auth_failures", u64::from(limits.max_auth_failures)),
            ("max_request_body", limits.max_request_body),
            ("max_recipients", u64::from(limits.max_recipients)),
        ] {
            if value == 0 {
                errors.push(ConfigError::semantic(
                    format!("limits.{name}"),
                    "0 would refuse everything; expected at least 1",
                ));
            }
        }
    }

    fn check_dns(&self, errors: &mut Vec<ConfigError>) {
        for (i, server) in self.dns.servers.iter().enumerate() {
            if server.parse::<std::net::SocketAddr>().is_err() {
                errors.push(ConfigError::semantic(
                    format!("dns.servers[{i}]"),
                    format!("{server:?} is not an address:port such as \"127.0.0.1:53\""),
                ));
            }
        }
    }

    fn check_antispam(&self, errors: &mut Vec<ConfigError>) {
        let a = &self.antispam;
        if !(a.tag_score.is_finite() && a.reject_score.is_finite()) || a.reject_score <= a.tag_score
        {
            errors.push(ConfigError::semantic(
                "antispam.reject_score",
                "must be a number above tag_score",
            ));
        }
        for (i, list) in a.dnsbl.iter().enumerate() {
            let valid = !list.zone.is_empty()
                && list.zone.len() <= 200
                && list
                    .zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid || !list.weight.is_finite() {
                errors.push(ConfigError::semantic(
                    format!("antispam.dnsbl[{i}]"),
                    "a zone such as \"zen.spamhaus.org\" and a finite weight",
                ));
            }
        }
        if !(1..=MAX_BAYES_MIN_MESSAGES).contains(&a.bayes_min_messages) {
            errors.push(ConfigError::semantic(
                "antispam.bayes_min_messages",
                format!("must be from 1 to {MAX_BAYES_MIN_MESSAGES}"),
            ));
        }
        let p = a.bayes_spam_probability;
        if !(p > 0.5 && p <= 1.0) {
            errors.push(ConfigError::semantic(
                "antispam.bayes_spam_probability",
                "must be a probability above 0.5 and at most 1, such as 0.9",
            ));
        }
    }

    fn check_antivirus(&self, errors: &mut Vec<ConfigError>) {
        let a = &self.antivirus;
        if !a.clamd.is_empty() && !clamd_address(&a.clamd) {
            errors.push(ConfigError::semantic(
                "antivirus.clamd",
                format!(
                    "{:?} is not \"unix:/path/to/clamd.ctl\" or \"tcp:host:port\"",
                    a.clamd
                ),
            ));
        }
        if a.clamd_timeout_ms == 0 {
            errors.push(ConfigError::semantic(
                "antivirus.clamd_timeout_ms",
                "0 would fail every scan; expected at least 1",
            ));
        }
        if a.action == VirusAction::Quarantine && a.quarantine_account.is_empty() {
            errors.push(ConfigError::semantic(
                "antivirus.action",
                "\"quarantine\" needs quarantine_account: the local address whose INBOX \
                 receives infected mail",
            ));
        }
        if !a.quarantine_account.is_empty() && !plain_address(&a.quarantine_account) {
            errors.push(ConfigError::semantic(
                "antivirus.quarantine_account",
                format!(
                    "{:?} is not an address such as \"quarantine@example.org\"",
                    a.quarantine_account
                ),
            ));
        }
    }

    fn check_outbound(&self, errors: &mut Vec<ConfigError>) {
        let outbound = &self.outbound;
        for (i, net) in outbound.relay_networks.iter().enumerate() {
            if cidr(net).is_none() {
                errors.push(ConfigError::semantic(
                    format!("outbound.relay_networks[{i}]"),
                    format!("{net:?} is not a network such as \"10.0.0.0/8\" or \"::1/128\""),
                ));
            }
        }
        if !outbound.smarthost.is_empty() && host_port(&outbound.smarthost).is_none() {
            errors.push(ConfigError::semantic(
                "outbound.smarthost",
                format!("{:?} is not host:port", outbound.smarthost),
            ));
        }
        if outbound.smarthost_user.is_empty() != outbound.smarthost_password.is_empty() {
            errors.push(ConfigError::semantic(
                "outbound.smarthost_user",
                "smarthost_user and smarthost_password go together",
            ));
        }
        for (name, value) in [
            ("mx_port", u64::from(outbound.mx_port)),
            ("retry_initial_secs", outbound.retry_initial_secs),
            ("retry_max_secs", outbound.retry_max_secs),
            ("max_lifetime_secs", outbound.max_lifetime_secs),
            ("max_connections", u64::from(outbound.max_connections)),
            (
                "max_connections_per_destination",
                u64::from(outbound.max_connections_per_destination),
            ),
        ] {
            if value == 0 {
                errors.push(ConfigError::semantic(
                    format!("outbound.{name}"),
                    "0 would never deliver; expected at least 1",
                ));
            }
        }
        if outbound.retry_max_secs < outbound.retry_initial_secs {
            errors.push(ConfigError::semantic(
                "outbound.retry_max_secs",
                "smaller than retry_initial_secs",
            ));
        }
    }

    fn check_metrics(&self, errors: &mut Vec<ConfigError>) {
        let path = &self.metrics.path;
        if !path.starts_with('/') {
            errors.push(ConfigError::semantic(
                "metrics.path",
                format!("{path:?} must start with '/', e.g. \"/metrics\""),
            ));
        } else if path
            .chars()
            .any(|c| !c.is_ascii_graphic() || c == '?' || c == '#')
        {
            errors.push(ConfigError::semantic(
                "metrics.path",
                format!("{path:?} must be a plain URL path (no spaces, '?' or '#')"),
            ));
        }
    }

    fn check_storage(&self, errors: &mut Vec<ConfigError>) {
        let storage = &self.storage;
        // A message is stored whole, as one record of one segment (at most
        // 64 MiB), beside its hash and framing.
        let room = storage.segment_mib.min(64).saturating_mul(1 << 20);
        if room > 0 && self.limits.max_message_size > room.saturating_sub(STORED_OVERHEAD) {
            errors.push(ConfigError::semantic(
                "limits.max_message_size",
                format!(
                    "{} bytes do not fit in one storage segment of {} MiB (a message is stored \
                     whole, in one segment of at most 64 MiB, with {STORED_OVERHEAD} bytes beside \
                     it): lower it or raise storage.segment_mib",
                    self.limits.max_message_size,
                    storage.segment_mib.min(64)
                ),
            ));
        }
        for (key, value, min, max) in [
            ("storage.segment_mib", storage.segment_mib, 1, 4096),
            (
                "storage.group_commit_max_kib",
                storage.group_commit_max_kib as u64,
                64,
                1024 * 1024,
            ),
            (
                "storage.group_commit_max_wait_us",
                storage.group_commit_max_wait_us,
                0,
                100_000,
            ),
            (
                "storage.checkpoint_every_mib",
                storage.checkpoint_every_mib,
                1,
                1024 * 1024,
            ),
            (
                "storage.compaction_min_dead_percent",
                u64::from(storage.compaction_min_dead_percent),
                0,
                100,
            ),
        ] {
            if !(min..=max).contains(&value) {
                errors.push(ConfigError::semantic(
                    key,
                    format!("invalid value {value}, expected {min}..={max}"),
                ));
            }
        }
    }

    fn check_media(&self, errors: &mut Vec<ConfigError>) {
        let media = &self.media;
        for (key, port) in [
            ("media.port_min", media.port_min),
            ("media.port_max", media.port_max),
        ] {
            if port == 0 {
                errors.push(ConfigError::semantic(
                    key,
                    "invalid value 0, expected a port 1..=65535",
                ));
            }
        }
        if media.port_min > media.port_max {
            errors.push(ConfigError::semantic(
                "media.port_min",
                format!(
                    "{} is above media.port_max {}; the range is empty",
                    media.port_min, media.port_max
                ),
            ));
        }
    }
}

/// Whether binding both addresses on one port would collide: the same
/// address, or a wildcard covering the other (`0.0.0.0` covers IPv4, `::`
/// covers both families on a dual-stack host).
/// A network `address/prefix`, the prefix within the family's length.
pub fn cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = value.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

/// `host:port` split, the port a number and the host not empty.
pub fn host_port(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

/// `unix:` and an absolute path, or `tcp:` and `host:port`.
fn clamd_address(value: &str) -> bool {
    if let Some(path) = value.strip_prefix("unix:") {
        path.starts_with('/')
    } else if let Some(address) = value.strip_prefix("tcp:") {
        host_port(address).is_some()
    } else {
        false
    }
}

/// `local@domain`, both sides present, no spaces or brackets.
fn plain_address(value: &str) -> bool {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | ','));
    matches!(value.rsplit_once('@'), Some((local, domain)) if plain && !local.is_empty() && names::check_host(domain).is_ok())
}

fn overlap(a: IpAddr, b: IpAddr) -> bool {
    let covers =
        |wild: IpAddr, other: IpAddr| wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4());
    a == b || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    fn keys(config: &Config) -> Vec<String> {
        config.validate().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn the_embedded_default_is_clean() {
        assert_eq!(Config::embedded_default().validate(), Vec::new());
    }

    #[test]
    fn wildcards_overlap_their_family() {
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6: IpAddr = "::".parse().expect("::");
        let local4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let local6: IpAddr = "::1".parse().expect("::1");
        assert!(overlap(local4, local4));
        assert!(overlap(any4, local4) && overlap(local4, any4));
        assert!(overlap(any6, local4) && overlap(any6, local6) && overlap(any4, any6));
        assert!(!overlap(any4, local6));
        assert!(!overlap(local4, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    }

    #[test]
    fn clashing_listeners_name_the_earlier_one() {
        let mut config = Config::embedded_default();
        let imap = config.listeners.get(&Service::Imap).cloned().expect("imap");
        let imaps = config.listeners.get_mut(&Service::Imaps).expect("imaps");
        imaps.port = imap.port;
        imaps.address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let errors = config.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "listeners.imaps.port");
        assert_eq!(
            errors[0].reason,
            "0.0.0.0:10143 is already taken by listeners.imap"
        );
        // A disabled listener takes no port.
        if let Some(imaps) = config.listeners.get_mut(&Service::Imaps) {
            imaps.enabled = false;
        }
        assert_eq!(config.validate(), Vec::new());
    }

    #[test]
    fn outbound_addresses_and_networks_are_checked() {
        let mut config = Config::embedded_default();
        config.dns.servers = vec!["127.0.0.1:53".into(), "localhost".into()];
        config.antispam.reject_score = 1.0;
        config.outbound.smarthost = "relay.example.net".into();
        config.outbound.smarthost_user = "me".into();
        config.outbound.retry_initial_secs = 0;
        config.outbound.relay_networks =
            vec!["10.0.0.0/8".into(), "::1/129".into(), "10.0.0.1".into()];
        assert_eq!(
            keys(&config),
            [
                "dns.servers[1]",
                "outbound.relay_networks[1]",
                "outbound.relay_networks[2]",
                "outbound.smarthost",
                "outbound.smarthost_user",
                "outbound.retry_initial_secs",
                "antispam.reject_score",
            ]
        );
        assert_eq!(host_port("[::1]:25"), Some(("::1", 25)));
        assert_eq!(
            cidr("192.0.2.0/24"),
            Some(("192.0.2.0".parse().unwrap(), 24))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = Config::embedded_default();
        config.version = CURRENT_VERSION + 1;
        config.node.hostname = "bad host".to_string();
        config.node.domains = vec!["example.com".into(), "EXAMPLE.com".into(), "x..y".into()];
        config.shards.count = 5000;
        config.tls.key = Some(PathBuf::from("key.pem"));
        config.limits.max_recipients = 0;
        config.log.level = "loud".to_string();
        config.metrics.path = "metrics".to_string();
        config.media.port_min = 31000;
        if let Some(http) = config.listeners.get_mut(&Service::Http) {
            http.tls = TlsMode::Starttls;
            http.port = 30500;
        }
        assert_eq!(
            keys(&config),
            [
                "version",
                "node.hostname",
                "node.domains[1]",
                "node.domains[2]",
                "shards.count",
                "tls.key",
                "listeners.http.tls",
                "limits.max_recipients",
                "log.level",
                "metrics.path",
                "media.port_min",
            ]
        );
        let errors = config.validate();
        assert!(errors[0].reason.contains("newer Cairn"), "{}", errors[0]);
        assert!(errors.iter().all(|e| e.file.is_empty() && e.line.is_none()));
    }

    #[test]
    fn antivirus_addresses_and_quarantine_are_checked() {
        let mut config = Config::embedded_default();
        for good in [
            "unix:/run/clamav/clamd.ctl",
            "tcp:127.0.0.1:3310",
            "tcp:[::1]:3310",
        ] {
            config.antivirus.clamd = good.into();
            assert_eq!(keys(&config), Vec::<String>::new(), "{good}");
        }
        config.antivirus.clamd = "/run/clamav/clamd.ctl".into();
        config.antivirus.clamd_timeout_ms = 0;
        config.antivirus.action = VirusAction::Quarantine;
        assert_eq!(
            keys(&config),
            [
                "antivirus.clamd",
                "antivirus.clamd_timeout_ms",
                "antivirus.action"
            ]
        );
        let reasons: Vec<String> = config.validate().into_iter().map(|e| e.reason).collect();
        assert!(
            reasons[0].contains("unix:/path/to/clamd.ctl"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("quarantine_account"), "{reasons:?}");
        for bad in ["tcp:localhost", "unix:relative.sock", "clamd:3310"] {
            config.antivirus.clamd = bad.into();
            assert!(keys(&config).contains(&"antivirus.clamd".into()), "{bad}");
        }
        config.antivirus.clamd = String::new();
        config.antivirus.clamd_timeout_ms = 1;
        config.antivirus.quarantine_account = "Quarantine <q@example.org>".into();
        assert_eq!(keys(&config), ["antivirus.quarantine_account"]);
        config.antivirus.quarantine_account = "quarantine@example.org".into();
        assert_eq!(config.validate(), Vec::new());
    }

    #[test]
    fn a_listener_inside_the_media_range_is_an_error() {
        let mut config = Config::embedded_default();
        if let Some(smtp) = config.listeners.get_mut(&Service::Smtp) {
            smtp.port = 30025;
        }
        let errors = config.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "listeners.smtp.port");
        assert_eq!(
            errors[0].reason,
            "port 30025 is inside the media port range 30000..=30999"
        );
    }
}

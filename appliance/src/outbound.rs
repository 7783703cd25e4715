//! The mail settings made from the configuration: the resolver of
//! `[dns]`; the outbound queue's from `[outbound]` (smarthost or MX
//! delivery, TLS, retries, connection limits, relay networks), with which
//! each shard starts its own [`cairn_smtp::outbound::Runner`]; the
//! inbound checks of `[antispam]`; and clamd and the virus action of
//! `[antivirus]`.

use std::sync::Arc;
use std::time::Duration;

use cairn_config::{cidr, host_port, Config, OutboundTls, VirusAction as ConfiguredAction};
use cairn_dns::ResolverConfig;
use cairn_smtp::antivirus::clamd::{Address, Clamd};
use cairn_smtp::antivirus::VirusAction;
use cairn_smtp::client::TlsMode;
use cairn_smtp::outbound::{OutboundMetrics, OutboundOptions, Schedule};
use cairn_smtp::spam::{BayesPolicy, DnsblZone, SpamOptions};

fn tls(mode: OutboundTls) -> TlsMode {
    match mode {
        OutboundTls::None => TlsMode::None,
        OutboundTls::Opportunistic => TlsMode::Opportunistic,
        OutboundTls::Required => TlsMode::Required,
        OutboundTls::Implicit => TlsMode::Implicit,
    }
}

/// The name servers of `[dns]`: those configured, else the system's.
pub fn resolver(config: &Config) -> Result<ResolverConfig, String> {
    let mut resolver = ResolverConfig::system();
    if !config.dns.servers.is_empty() {
        resolver.servers = config
            .dns
            .servers
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("dns.servers: {s:?} is not address:port"))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(resolver)
}

/// The runners' settings (the configuration was validated already; an
/// address that still does not parse is reported, not guessed).
pub fn options(
    config: &Config,
    resolver: ResolverConfig,
    metrics: Arc<OutboundMetrics>,
) -> Result<OutboundOptions, String> {
    let o = &config.outbound;
    let smarthost = if o.smarthost.is_empty() {
        None
    } else {
        let (host, port) = host_port(&o.smarthost)
            .ok_or_else(|| format!("outbound.smarthost: {:?} is not host:port", o.smarthost))?;
        Some((host.to_string(), port))
    };
    let auth = (!o.smarthost_user.is_empty())
        .then(|| (o.smarthost_user.clone(), o.smarthost_password.clone()));
    Ok(OutboundOptions {
        mx_port: o.mx_port,
        mx_tls: tls(o.mx_tls),
        smarthost,
        smarthost_tls: tls(o.smarthost_tls),
        smarthost_verify: o.smarthost_verify_certificate,
        smarthost_auth: auth,
        schedule: Schedule {
            initial: o.retry_initial_secs,
            max: o.retry_max_secs,
            lifetime: o.max_lifetime_secs,
            delay_notice: o.delay_notice_secs,
        },
        max_connections: o.max_connections,
        max_connections_per_destination: o.max_connections_per_destination,
        metrics: Some(metrics),
        ..OutboundOptions::new(config.node.hostname.clone(), resolver)
    })
}

/// The MX listener's relay networks (`outbound.relay_networks`).
pub fn relay_networks(config: &Config) -> Result<Vec<ipnet::IpNet>, String> {
    config
        .outbound
        .relay_networks
        .iter()
        .map(|net| {
            cidr(net)
                .and_then(|(ip, prefix)| ipnet::IpNet::new(ip, prefix).ok())
                .map(|n| n.trunc())
                .ok_or_else(|| format!("outbound.relay_networks: {net:?} is not a network"))
        })
        .collect()
}

/// The spam scoring of `[antispam]`, with the accounts' Bayes
/// classifiers.
pub fn spam(config: &Config) -> SpamOptions {
    let a = &config.antispam;
    SpamOptions {
        enabled: a.enabled,
        tag_score: a.tag_score,
        reject_score: a.reject_score,
        dnsbl: a
            .dnsbl
            .iter()
            .map(|l| DnsblZone {
                zone: l.zone.clone(),
                weight: l.weight,
            })
            .collect(),
        dnsbl_timeout: Duration::from_millis(a.dnsbl_timeout_ms),
        bayes: a.bayes.then_some(BayesPolicy {
            min_messages: a.bayes_min_messages,
            spam_probability: a.bayes_spam_probability,
        }),
    }
}

/// clamd (when `antivirus.clamd` is set) and what infected mail gets.
pub fn antivirus(config: &Config) -> Result<(Option<Arc<Clamd>>, VirusAction), String> {
    let a = &config.antivirus;
    let clamd = if a.clamd.is_empty() {
        None
    } else {
        let address = Address::parse(&a.clamd).map_err(|e| format!("antivirus.clamd: {e}"))?;
        let timeout = Duration::from_millis(a.clamd_timeout_ms);
        Some(Arc::new(Clamd::new(address, timeout)))
    };
    let action = match a.action {
        ConfiguredAction::Reject => VirusAction::Reject,
        ConfiguredAction::Quarantine => VirusAction::Quarantine(a.quarantine_account.clone()),
    };
    Ok((clamd, action))
}

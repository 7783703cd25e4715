//! The outbound queue's settings, made from `[outbound]`: resolver,
//! smarthost or MX delivery, TLS, retries and connection limits. Each
//! shard starts its own [`cairn_smtp::outbound::Runner`] with them.

use std::sync::Arc;

use cairn_config::{host_port, Config, OutboundTls};
use cairn_dns::ResolverConfig;
use cairn_smtp::client::TlsMode;
use cairn_smtp::outbound::{OutboundMetrics, OutboundOptions, Schedule};

fn tls(mode: OutboundTls) -> TlsMode {
    match mode {
        OutboundTls::None => TlsMode::None,
        OutboundTls::Opportunistic => TlsMode::Opportunistic,
        OutboundTls::Required => TlsMode::Required,
        OutboundTls::Implicit => TlsMode::Implicit,
    }
}

/// The runners' settings (the configuration was validated already; an
/// address that still does not parse is reported, not guessed).
pub fn options(config: &Config, metrics: Arc<OutboundMetrics>) -> Result<OutboundOptions, String> {
    let o = &config.outbound;
    let mut resolver = ResolverConfig::system();
    if !o.dns_servers.is_empty() {
        resolver.servers = o
            .dns_servers
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("outbound.dns_servers: {s:?} is not address:port"))
            })
            .collect::<Result<_, _>>()?;
    }
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

//! Where a recipient's mail goes: the smarthost when one is configured,
//! else the MX hosts of the recipient's domain in preference order (the
//! domain's own address when it has no MX, RFC 5321 §5.1; nowhere when it
//! publishes a null MX, RFC 7505), each with the addresses it resolves to.

use std::net::{IpAddr, SocketAddr};

use cairn_dns::{DnsError, Resolver};

/// The most MX hosts tried for one domain.
const MAX_HOSTS: usize = 10;
/// The most addresses tried for one host.
const MAX_ADDRESSES: usize = 4;

/// One host to try: its name (for TLS and the reports) and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
}

/// Why no host could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoute {
    pub permanent: bool,
    /// An enhanced status code and text, as in a reply.
    pub reason: String,
}

impl NoRoute {
    fn temporary(reason: impl Into<String>) -> Self {
        NoRoute {
            permanent: false,
            reason: reason.into(),
        }
    }

    fn permanent(reason: impl Into<String>) -> Self {
        NoRoute {
            permanent: true,
            reason: reason.into(),
        }
    }
}

/// The domain part of an address, lower-cased.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The addresses of `name` (an IP literal as it is), on `port`.
async fn addresses(resolver: &Resolver, name: &str, port: u16) -> Result<Vec<SocketAddr>, NoRoute> {
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match resolver.ips(name).await {
        Ok(ips) if ips.is_empty() => Err(NoRoute::permanent(format!(
            "5.4.4 Host {name} has no address"
        ))),
        Ok(ips) => Ok(ips
            .into_iter()
            .take(MAX_ADDRESSES)
            .map(|ip| SocketAddr::new(ip, port))
            .collect()),
        Err(DnsError::NxDomain) => Err(NoRoute::permanent(format!("5.4.4 Host {name} not found"))),
        Err(e) => Err(NoRoute::temporary(format!(
            "4.4.3 Cannot look up host {name}: {e}"
        ))),
    }
}

/// The smarthost `host:port` as hosts to try.
pub async fn smarthost(resolver: &Resolver, host: &str, port: u16) -> Result<Vec<Host>, NoRoute> {
    Ok(vec![Host {
        name: host.to_string(),
        addresses: addresses(resolver, host, port).await?,
    }])
}

/// The MX hosts of `domain` on `port`, best first. A host that does not
/// resolve is skipped; when none resolves the failure of the first says
/// what happened.
pub async fn mx_hosts(resolver: &Resolver, domain: &str, port: u16) -> Result<Vec<Host>, NoRoute> {
    let records = match resolver.mx(domain).await {
        Ok(records) => records,
        Err(DnsError::NxDomain) => {
            return Err(NoRoute::permanent(format!(
                "5.1.2 Domain {domain} does not exist"
            )))
        }
        Err(e) => {
            return Err(NoRoute::temporary(format!(
                "4.4.3 Cannot look up the MX of {domain}: {e}"
            )))
        }
    };
    if records.iter().any(|mx| mx.exchange.is_empty()) {
        return Err(NoRoute::permanent(format!(
            "5.1.10 Domain {domain} accepts no mail (null MX)"
        )));
    }
    let names: Vec<String> = if records.is_empty() {
        vec![domain.to_string()]
    } else {
        records
            .into_iter()
            .take(MAX_HOSTS)
            .map(|mx| mx.exchange)
            .collect()
    };
    let mut hosts = Vec::with_capacity(names.len());
    let mut first_error = None;
    for name in names {
        match addresses(resolver, &name, port).await {
            Ok(addresses) => hosts.push(Host { name, addresses }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (hosts.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(hosts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lower_case_without_the_root_dot() {
        assert_eq!(domain_of("Bob@Remote.TEST."), "remote.test");
        assert_eq!(domain_of("a@b@c.test"), "c.test");
        assert_eq!(domain_of("nobody"), "");
    }
}

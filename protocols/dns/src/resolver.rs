//! The stub resolver of one shard: asks the configured recursive servers
//! in turn (UDP, then TCP after a truncated reply), keeps answers in its
//! cache, and shapes them for mail: MX sorted by preference, addresses
//! IPv4 first, TXT strings joined, PTR names.
//!
//! A [`Resolver`] is `!Send`: each shard makes its own (clones share one
//! cache) and its lookups run on that shard's ring.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::cache::Cache;
use crate::codec::{self, Answer, Mx, Record, RecordType};
use crate::config::ResolverConfig;
use crate::{transport, DnsError};

/// A DNS stub resolver on the current shard. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Rc<Inner>,
}

struct Inner {
    config: ResolverConfig,
    cache: RefCell<Cache>,
}

impl Resolver {
    /// A resolver with these settings and an empty cache.
    pub fn new(config: ResolverConfig) -> Resolver {
        let cache = RefCell::new(Cache::new(config.cache_entries));
        Resolver {
            inner: Rc::new(Inner { config, cache }),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.config
    }

    /// MX records sorted by preference (ties in the server's order);
    /// `Ok(empty)` when the domain exists but has no MX (NODATA);
    /// `Err(NxDomain)` when it does not exist. A null MX (RFC 7505,
    /// exchange ".") is returned as exchange `""`.
    pub async fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        let mut mxs: Vec<Mx> = self
            .lookup(domain, RecordType::Mx)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Mx(mx) => Some(mx),
                _ => None,
            })
            .collect();
        mxs.sort_by_key(|mx| mx.preference);
        Ok(mxs)
    }

    /// The addresses of `host`: A and AAAA asked together, IPv4 first;
    /// `Ok(empty)` on NODATA for both. An address literal (`192.0.2.1`,
    /// `2001:db8::1`) is returned as it is, without a query.
    ///
    /// NXDOMAIN only when both answers say so; when one lookup fails
    /// temporarily, the other's addresses are returned if there are any,
    /// and the failure otherwise.
    pub async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let (v4, v6) = futures_lite::future::zip(
            self.lookup(host, RecordType::A),
            self.lookup(host, RecordType::Aaaa),
        )
        .await;
        let ips = |records: Vec<Record>| {
            records.into_iter().filter_map(|r| match r {
                Record::A(ip) => Some(IpAddr::V4(ip)),
                Record::Aaaa(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })
        };
        match (v4, v6) {
            (Ok(v4), Ok(v6)) => Ok(ips(v4).chain(ips(v6)).collect()),
            (Err(e @ DnsError::Permanent(_)), _) | (_, Err(e @ DnsError::Permanent(_))) => Err(e),
            (Ok(found), Err(DnsError::NxDomain)) | (Err(DnsError::NxDomain), Ok(found)) => {
                Ok(ips(found).collect())
            }
            (Ok(found), Err(e)) | (Err(e), Ok(found)) => {
                if found.is_empty() {
                    Err(e)
                } else {
                    Ok(ips(found).collect())
                }
            }
            (Err(DnsError::NxDomain), Err(DnsError::NxDomain)) => Err(DnsError::NxDomain),
            (Err(e @ DnsError::Temporary(_)), Err(_)) | (Err(_), Err(e)) => Err(e),
        }
    }

    /// TXT records of `name`, each one's character-strings concatenated
    /// (lossy UTF-8), in the server's order; `Ok(empty)` on NODATA.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        Ok(self
            .lookup(name, RecordType::Txt)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Txt(text) => Some(text),
                _ => None,
            })
            .collect())
    }

    /// The names of `ip` (its PTR records under `in-addr.arpa` or
    /// `ip6.arpa`), lower-case, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        Ok(self
            .lookup(&reverse_name(ip), RecordType::Ptr)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Ptr(name) => Some(name),
                _ => None,
            })
            .collect())
    }

    /// The records of type `rtype` at `name` (CNAMEs followed), from the
    /// cache or the servers: each server in turn, for `attempts` rounds,
    /// until one answers. NXDOMAIN and NODATA end the search (and are
    /// cached); a temporary failure moves on to the next server, and when
    /// every one failed that is cached briefly too.
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<Record>, DnsError> {
        let name = codec::normalize(name)?;
        if let Some(hit) = self.inner.cache.borrow().get(&name, rtype, Instant::now()) {
            return hit;
        }
        let config = &self.inner.config;
        let mut last = DnsError::Temporary("no name server configured".into());
        for _round in 0..config.attempts.max(1) {
            for &server in &config.servers {
                let mut outcome = transport::udp(server, &name, rtype, config.timeout).await;
                if let Ok(Answer::Truncated) = outcome {
                    tracing::debug!(%server, %name, %rtype, "truncated over UDP; asking over TCP");
                    outcome = transport::tcp(server, &name, rtype, config.timeout).await;
                }
                let (found, ttl) = match outcome {
                    Ok(Answer::Records { records, ttl }) => (Ok(records), ttl),
                    Ok(Answer::Truncated) => {
                        last = DnsError::Temporary(format!("{server}: truncated reply"));
                        continue;
                    }
                    Err(DnsError::Temporary(why)) => {
                        tracing::debug!(%server, %name, %rtype, %why, "no usable answer");
                        last = DnsError::Temporary(why);
                        continue;
                    }
                    Err(e) => (Err(e), 0),
                };
                self.inner.cache.borrow_mut().insert(
                    &name,
                    rtype,
                    found.clone(),
                    ttl,
                    Instant::now(),
                );
                return found;
            }
        }
        let failed = Err(last);
        self.inner
            .cache
            .borrow_mut()
            .insert(&name, rtype, failed.clone(), 0, Instant::now());
        failed
    }
}

/// The reverse-lookup name of an address, e.g. `1.2.0.192.in-addr.arpa`.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => {
            let mut name = String::with_capacity(29);
            for octet in ip.octets().iter().rev() {
                name.push_str(&format!("{octet}."));
            }
            name.push_str("in-addr.arpa");
            name
        }
        IpAddr::V6(ip) => {
            let mut name = String::with_capacity(73);
            for byte in ip.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().expect("ip")),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().expect("ip")),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn bad_names_fail_permanently_without_a_query() {
        // No server could answer: a query would be a temporary failure.
        let resolver = Resolver::new(ResolverConfig {
            servers: vec![],
            ..ResolverConfig::default()
        });
        use futures_lite::future::block_on as run;
        assert!(matches!(
            run(resolver.lookup("", RecordType::A)),
            Err(DnsError::Permanent(_))
        ));
        assert!(matches!(
            run(resolver.lookup(&"a".repeat(300), RecordType::A)),
            Err(DnsError::Permanent(_))
        ));
        assert!(matches!(
            run(resolver.lookup("example.com", RecordType::A)),
            Err(DnsError::Temporary(_))
        ));
        assert_eq!(
            run(resolver.ips("192.0.2.7")),
            Ok(vec!["192.0.2.7".parse().expect("ip")])
        );
    }
}

//! DNS blocklists (RFC 5782): is the client's address listed in the
//! configured zones?
//!
//! The question for `192.0.2.10` in `bl.example` is an A query for
//! `10.2.0.192.bl.example`; for an IPv6 address, its 32 nibbles in reverse
//! order (`…8.b.d.0.1.0.0.2.bl.example`). An answer in 127.0.0.0/8 means
//! listed, NXDOMAIN means not listed. Answers outside 127.0.0.0/8 are
//! ignored (RFC 5782 §2.1: a resolver that rewrites NXDOMAIN, or a
//! wildcard), and so are 127.255.255.0/24, which large lists use for
//! error codes ("you query through a public resolver", "quota exceeded")
//! rather than for listings.
//!
//! All zones are asked at once, through the shard's
//! [`cairn_dns::Resolver`], and the whole check ends at its time bound:
//! a zone that has not answered by then adds nothing and is noted.
//! Addresses that cannot be listed (loopback, private, link-local, shared,
//! multicast …) are not looked up.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use cairn_dns::{DnsError, Record, RecordType, Resolver};

use super::{DnsblZone, Hit};

/// Zones asked at most per message; the rest of a longer list is ignored
/// (and noted).
pub const MAX_ZONES: usize = 16;

/// What the lookups found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// One hit per zone that lists the address.
    pub hits: Vec<Hit>,
    /// What went wrong or was skipped, one line each (zone first):
    /// timeouts, failures, ignored answers.
    pub notes: Vec<String>,
}

/// Looks `ip` up in `zones`, all at once, giving up on any zone that has
/// not answered within `bound`.
pub async fn check(
    resolver: &Resolver,
    ip: IpAddr,
    zones: &[DnsblZone],
    bound: Duration,
) -> Outcome {
    let mut outcome = Outcome::default();
    if zones.is_empty() {
        return outcome;
    }
    let ip = canonical(ip);
    if !is_listable(ip) {
        return outcome;
    }
    if zones.len() > MAX_ZONES {
        outcome.notes.push(format!(
            "dnsbl: only the first {MAX_ZONES} of {} zones are asked",
            zones.len()
        ));
    }
    let lookups = zones.iter().take(MAX_ZONES).map(|zone| async move {
        let name = query_name(ip, &zone.zone);
        let answer =
            cairn_shards::time::timeout(bound, resolver.lookup(&name, RecordType::A)).await;
        (zone, answer)
    });
    for (zone, answer) in futures_util::future::join_all(lookups).await {
        let zone_name = normalize_zone(&zone.zone);
        match answer {
            Err(_elapsed) => outcome
                .notes
                .push(format!("dnsbl {zone_name}: no answer within {bound:?}")),
            Ok(Err(DnsError::NxDomain)) => {}
            Ok(Err(e)) => outcome.notes.push(format!("dnsbl {zone_name}: {e}")),
            Ok(Ok(records)) => {
                let mut listed = false;
                for record in records {
                    let Record::A(code) = record else {
                        continue;
                    };
                    match classify(code) {
                        Code::Listed => listed = true,
                        Code::Error => outcome
                            .notes
                            .push(format!("dnsbl {zone_name}: error code {code} ignored")),
                        Code::NotDnsbl => outcome.notes.push(format!(
                            "dnsbl {zone_name}: answer {code} outside 127.0.0.0/8 ignored"
                        )),
                    }
                }
                if listed {
                    let weight = if zone.weight.is_finite() {
                        zone.weight
                    } else {
                        0.0
                    };
                    outcome.hits.push(Hit {
                        name: Cow::Owned(hit_name(&zone_name)),
                        weight,
                    });
                }
            }
        }
    }
    for note in &outcome.notes {
        tracing::debug!(%ip, note = %note, "dnsbl");
    }
    outcome
}

/// What an A answer from a blocklist means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// 127.0.0.0/8 (but 127.255.255.0/24): listed.
    Listed,
    /// 127.255.255.0/24: the list's error codes.
    Error,
    /// Outside 127.0.0.0/8: not a blocklist answer.
    NotDnsbl,
}

fn classify(code: Ipv4Addr) -> Code {
    match code.octets() {
        [127, 255, 255, _] => Code::Error,
        [127, ..] => Code::Listed,
        _ => Code::NotDnsbl,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// Whether `ip` is an address blocklists could list: not loopback,
/// unspecified, private (RFC 1918, unique local), link-local, shared
/// (100.64.0.0/10), benchmarking (198.18.0.0/15), reserved (240.0.0.0/4),
/// broadcast or multicast. The documentation ranges are listable (tests
/// use them against a loopback name server).
pub fn is_listable(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The name to ask in `zone` for `ip`: `4.3.2.1.zone` for 1.2.3.4, the 32
/// nibbles reversed for IPv6.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = normalize_zone(zone);
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => nibbles(v6, &zone),
    }
}

fn nibbles(ip: Ipv6Addr, zone: &str) -> String {
    let mut name = String::with_capacity(64 + zone.len());
    for byte in ip.octets().iter().rev() {
        name.push(hex(byte & 0xf));
        name.push('.');
        name.push(hex(byte >> 4));
        name.push('.');
    }
    name.push_str(zone);
    name
}

fn hex(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// A zone as configured, trimmed of spaces and dots, lower-case.
fn normalize_zone(zone: &str) -> String {
    zone.trim().trim_matches('.').to_ascii_lowercase()
}

/// `RCVD_IN_` and the zone in capitals, other characters as `_`:
/// `zen.spamhaus.org` gives `RCVD_IN_ZEN_SPAMHAUS_ORG`.
pub fn hit_name(zone: &str) -> String {
    let mut name = String::from("RCVD_IN_");
    name.extend(normalize_zone(zone).chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn query_names() {
        assert_eq!(
            query_name(ip("192.0.2.10"), "bl.test"),
            "10.2.0.192.bl.test"
        );
        assert_eq!(
            query_name(ip("1.2.3.4"), " Zen.Spamhaus.ORG. "),
            "4.3.2.1.zen.spamhaus.org"
        );
        assert_eq!(
            query_name(ip("2001:db8::567:89ab"), "bl.test"),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
        // IPv4-mapped IPv6 is asked as IPv4.
        assert_eq!(
            query_name(ip("::ffff:192.0.2.10"), "bl.test"),
            "10.2.0.192.bl.test"
        );
    }

    #[test]
    fn answers_are_sorted() {
        assert_eq!(classify(Ipv4Addr::new(127, 0, 0, 2)), Code::Listed);
        assert_eq!(classify(Ipv4Addr::new(127, 0, 0, 11)), Code::Listed);
        assert_eq!(classify(Ipv4Addr::new(127, 1, 0, 4)), Code::Listed);
        assert_eq!(classify(Ipv4Addr::new(127, 255, 255, 254)), Code::Error);
        assert_eq!(classify(Ipv4Addr::new(192, 0, 2, 1)), Code::NotDnsbl);
        assert_eq!(classify(Ipv4Addr::new(10, 0, 0, 2)), Code::NotDnsbl);
    }

    #[test]
    fn only_public_addresses_are_looked_up() {
        for listable in [
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.5",
            "8.8.8.8",
            "2001:db8::1",
            "2a00::1",
        ] {
            assert!(is_listable(ip(listable)), "{listable}");
        }
        for not in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_listable(ip(not)), "{not}");
        }
    }

    #[test]
    fn hit_names() {
        assert_eq!(hit_name("zen.spamhaus.org"), "RCVD_IN_ZEN_SPAMHAUS_ORG");
        assert_eq!(hit_name(" bl.Test. "), "RCVD_IN_BL_TEST");
        assert_eq!(hit_name("b-l.test"), "RCVD_IN_B_L_TEST");
    }

    #[test]
    fn nothing_is_asked_for_private_addresses_or_no_zones() {
        // No name server: any query would be noted as a failure.
        let resolver = Resolver::new(cairn_dns::ResolverConfig {
            servers: vec![],
            ..cairn_dns::ResolverConfig::default()
        });
        let zones = vec![DnsblZone {
            zone: "bl.test".into(),
            weight: 5.0,
        }];
        let run = |ip: IpAddr, zones: &[DnsblZone]| {
            futures_lite::future::block_on(check(&resolver, ip, zones, Duration::from_secs(1)))
        };
        assert_eq!(run(ip("10.0.0.1"), &zones), Outcome::default());
        assert_eq!(run(ip("::1"), &zones), Outcome::default());
        assert_eq!(run(ip("192.0.2.10"), &[]), Outcome::default());
    }

    #[test]
    fn failures_and_too_many_zones_are_noted() {
        let resolver = Resolver::new(cairn_dns::ResolverConfig {
            servers: vec![],
            ..cairn_dns::ResolverConfig::default()
        });
        let zones: Vec<DnsblZone> = (0..20)
            .map(|i| DnsblZone {
                zone: format!("bl{i}.test"),
                weight: 1.0,
            })
            .collect();
        let outcome = cairn_shards::local::block_on(check(
            &resolver,
            ip("192.0.2.10"),
            &zones,
            Duration::from_secs(1),
        ))
        .expect("an executor");
        assert!(outcome.hits.is_empty());
        assert_eq!(outcome.notes.len(), 1 + MAX_ZONES, "{:?}", outcome.notes);
        assert!(outcome.notes[0].contains("only the first 16 of 20"));
        assert!(outcome.notes[1].starts_with("dnsbl bl0.test: temporary DNS failure"));
    }
}

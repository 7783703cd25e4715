//! The node's network interfaces, for `cairn config interfaces` and for
//! choosing listener and media addresses.

use std::fmt;
use std::net::IpAddr;

/// One address of an interface with its prefix length (`10.0.0.5/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The kernel's name, e.g. `eth0`.
    pub name: String,
    /// The hardware address as `aa:bb:cc:dd:ee:ff`; `None` when it has none
    /// (or an all-zero one, as loopback does).
    pub mac: Option<String>,
    /// Its IPv4 and IPv6 addresses.
    pub addresses: Vec<InterfaceAddress>,
    /// Administratively up.
    pub up: bool,
    /// The loopback interface.
    pub loopback: bool,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, if self.up { "up" } else { "down" })?;
        if self.loopback {
            f.write_str(" loopback")?;
        }
        if let Some(mac) = &self.mac {
            write!(f, " mac {mac}")?;
        }
        for address in &self.addresses {
            write!(f, " {address}")?;
        }
        Ok(())
    }
}

/// Every interface the kernel reports, in its order.
pub fn list() -> Vec<Interface> {
    pnet_datalink::interfaces()
        .into_iter()
        .map(|nic| Interface {
            mac: nic.mac.filter(|m| !m.is_zero()).map(|m| m.to_string()),
            addresses: nic
                .ips
                .iter()
                .map(|net| InterfaceAddress {
                    ip: net.ip(),
                    prefix: net.prefix(),
                })
                .collect(),
            up: nic.is_up(),
            loopback: nic.is_loopback(),
            name: nic.name,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn loopback_is_listed_with_127_0_0_1() {
        let all = list();
        let lo = all
            .iter()
            .find(|nic| nic.name == "lo")
            .unwrap_or_else(|| panic!("no lo in {all:?}"));
        assert!(lo.loopback && lo.up, "{lo}");
        let v4 = InterfaceAddress {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix: 8,
        };
        assert!(lo.addresses.contains(&v4), "{lo}");
        assert!(lo.to_string().contains("127.0.0.1/8"), "{lo}");
    }

    #[test]
    fn display_reads_as_one_line() {
        let nic = Interface {
            name: "eth0".to_string(),
            mac: Some("52:54:00:12:34:56".to_string()),
            addresses: vec![InterfaceAddress {
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                prefix: 24,
            }],
            up: false,
            loopback: false,
        };
        assert_eq!(
            nic.to_string(),
            "eth0 down mac 52:54:00:12:34:56 10.0.0.5/24"
        );
    }
}

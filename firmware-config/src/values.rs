//! Readers for the values whose plain serde errors read badly: ports
//! (`1..=65535`, never 0) and IP addresses. Their messages are what the
//! operator sees after `file:line:col: key:`.

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A TCP or UDP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Port(pub(crate) u16);

/// For `#[serde(deserialize_with)]` on a `u16` port field.
pub(crate) fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    Port::deserialize(deserializer).map(|p| p.0)
}

struct PortVisitor;

impl PortVisitor {
    fn check<E: de::Error>(value: impl Into<i128>) -> Result<Port, E> {
        let value = value.into();
        match u16::try_from(value) {
            Ok(port) if port != 0 => Ok(Port(port)),
            _ => Err(E::custom(format!(
                "invalid value {value}, expected a port 1..=65535"
            ))),
        }
    }
}

impl Visitor<'_> for PortVisitor {
    type Value = Port;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port 1..=65535")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
        Self::check(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
        Self::check(v)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u16(PortVisitor)
    }
}

/// An IP address written as a string, `127.0.0.1` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Address(pub(crate) IpAddr);

/// For `#[serde(deserialize_with)]` on an `IpAddr` field.
pub(crate) fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpAddr, D::Error> {
    Address::deserialize(deserializer).map(|a| a.0)
}

struct AddressVisitor;

impl Visitor<'_> for AddressVisitor {
    type Value = Address;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address such as \"127.0.0.1\" or \"::1\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Address, E> {
        v.parse().map(Address).map_err(|_| {
            E::custom(format!(
                "invalid value {v:?}, expected an IP address such as \"127.0.0.1\" or \"::1\""
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(AddressVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_port(toml: &str) -> Result<u16, String> {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "port")]
            p: u16,
        }
        toml::from_str::<T>(toml)
            .map(|t| t.p)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn ports_are_one_to_65535() {
        assert_eq!(read_port("p = 1"), Ok(1));
        assert_eq!(read_port("p = 65535"), Ok(65535));
        assert_eq!(
            read_port("p = 70000"),
            Err("invalid value 70000, expected a port 1..=65535".to_string())
        );
        assert_eq!(
            read_port("p = 0"),
            Err("invalid value 0, expected a port 1..=65535".to_string())
        );
        assert_eq!(
            read_port("p = -5"),
            Err("invalid value -5, expected a port 1..=65535".to_string())
        );
        let wrong_type = read_port("p = \"25\"").expect_err("a string is not a port");
        assert!(
            wrong_type.contains("expected a port 1..=65535"),
            "{wrong_type}"
        );
    }

    #[test]
    fn addresses_name_what_was_wrong() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "address")]
            a: IpAddr,
        }
        let ok: T = toml::from_str("a = \"::1\"").expect("::1 parses");
        assert_eq!(ok.a, IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]));
        let bad = toml::from_str::<T>("a = \"1.2.3\"")
            .err()
            .expect("1.2.3 is no address");
        assert_eq!(
            bad.message(),
            "invalid value \"1.2.3\", expected an IP address such as \"127.0.0.1\" or \"::1\""
        );
        let wrong_type = toml::from_str::<T>("a = 5").err().expect("5 is no address");
        assert!(wrong_type.message().contains("expected an IP address"));
    }
}

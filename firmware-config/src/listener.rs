//! One listener (`[listeners.<service>]`) and how a file's partial listener
//! tables are laid over the embedded defaults: a table that gives only
//! `port` keeps the default address, TLS mode and `enabled` of its service.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Deserializer, Serialize};

use crate::service::{Service, TlsMode};
use crate::values::{self, Address, Port};

/// Where and how one service listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerConfig {
    /// A disabled listener is not opened (default `true`).
    pub enabled: bool,
    /// The address to bind.
    #[serde(deserialize_with = "values::address")]
    pub address: IpAddr,
    /// The TCP port to bind, 1..=65535.
    #[serde(deserialize_with = "values::port")]
    pub port: u16,
    /// How the listener uses TLS.
    pub tls: TlsMode,
}

impl ListenerConfig {
    /// The embedded development default of `service`: enabled, on
    /// 127.0.0.1 at its development port with its default TLS mode.
    pub fn dev_default(service: Service) -> ListenerConfig {
        ListenerConfig {
            enabled: true,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: service.dev_port(),
            tls: service.default_tls(),
        }
    }
}

/// Every service's development default listener.
pub(crate) fn dev_defaults() -> BTreeMap<Service, ListenerConfig> {
    Service::ALL
        .into_iter()
        .map(|service| (service, ListenerConfig::dev_default(service)))
        .collect()
}

/// What one `[listeners.<service>]` table says; absent keys keep the default.
#[derive(Deserialize)]
struct ListenerOverride {
    enabled: Option<bool>,
    address: Option<Address>,
    port: Option<Port>,
    tls: Option<TlsMode>,
}

impl ListenerOverride {
    fn apply(self, listener: &mut ListenerConfig) {
        if let Some(enabled) = self.enabled {
            listener.enabled = enabled;
        }
        if let Some(Address(address)) = self.address {
            listener.address = address;
        }
        if let Some(Port(port)) = self.port {
            listener.port = port;
        }
        if let Some(tls) = self.tls {
            listener.tls = tls;
        }
    }
}

/// For `#[serde(deserialize_with)]` on `Config::listeners`: the development
/// defaults with the file's tables laid over them.
pub(crate) fn deserialize_over_defaults<'de, D>(
    deserializer: D,
) -> Result<BTreeMap<Service, ListenerConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    let overrides = BTreeMap::<Service, ListenerOverride>::deserialize(deserializer)?;
    let mut listeners = dev_defaults();
    for (service, given) in overrides {
        given.apply(
            listeners
                .entry(service)
                .or_insert_with(|| ListenerConfig::dev_default(service)),
        );
    }
    Ok(listeners)
}

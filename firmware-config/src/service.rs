//! The services the appliance listens for, their standard and development
//! ports (DESIGN §4), and the TLS mode of a listener.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a listener uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text only.
    None,
    /// Plain text that the client upgrades with STARTTLS (or STLS).
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

impl TlsMode {
    /// The name used in `appliance.toml`.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service with a listener of its own; its name is the key of
/// `[listeners.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Smtp,
    Submission,
    Smtps,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    Ldap,
    Ldaps,
    Http,
    Https,
}

impl Service {
    /// Every service, in the order of DESIGN §4.
    pub const ALL: [Service; 11] = [
        Service::Smtp,
        Service::Submission,
        Service::Smtps,
        Service::Imap,
        Service::Imaps,
        Service::Pop3,
        Service::Pop3s,
        Service::Ldap,
        Service::Ldaps,
        Service::Http,
        Service::Https,
    ];

    /// The name used in `appliance.toml` (`[listeners.<name>]`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Smtps => "smtps",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
            Service::Ldap => "ldap",
            Service::Ldaps => "ldaps",
            Service::Http => "http",
            Service::Https => "https",
        }
    }

    /// The IANA port the appliance image uses.
    pub fn standard_port(self) -> u16 {
        match self {
            Service::Smtp => 25,
            Service::Submission => 587,
            Service::Smtps => 465,
            Service::Imap => 143,
            Service::Imaps => 993,
            Service::Pop3 => 110,
            Service::Pop3s => 995,
            Service::Ldap => 389,
            Service::Ldaps => 636,
            Service::Http => 80,
            Service::Https => 443,
        }
    }

    /// The port of the embedded development default: standard + 10000.
    pub fn dev_port(self) -> u16 {
        self.standard_port() + 10_000
    }

    /// The TLS mode a listener of this service has unless configured.
    pub fn default_tls(self) -> TlsMode {
        match self {
            Service::Smtp | Service::Submission | Service::Imap | Service::Pop3 | Service::Ldap => {
                TlsMode::Starttls
            }
            Service::Smtps | Service::Imaps | Service::Pop3s | Service::Ldaps | Service::Https => {
                TlsMode::Implicit
            }
            Service::Http => TlsMode::None,
        }
    }

    /// Whether the protocol has a STARTTLS-style upgrade (HTTP has none).
    pub fn has_starttls(self) -> bool {
        !matches!(self, Service::Http | Service::Https)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_serde_names() {
        for service in Service::ALL {
            let json = serde_json::to_string(&service).expect("serialize");
            assert_eq!(json, format!("\"{}\"", service.name()));
        }
        for mode in [TlsMode::None, TlsMode::Starttls, TlsMode::Implicit] {
            let json = serde_json::to_string(&mode).expect("serialize");
            assert_eq!(json, format!("\"{mode}\""));
        }
    }

    #[test]
    fn dev_ports_are_the_design_table() {
        let ports: Vec<u16> = Service::ALL.iter().map(|s| s.dev_port()).collect();
        assert_eq!(
            ports,
            [10025, 10587, 10465, 10143, 10993, 10110, 10995, 10389, 10636, 10080, 10443]
        );
    }

    #[test]
    fn implicit_tls_for_the_s_services_and_none_for_http() {
        for service in Service::ALL {
            let expected = if service == Service::Http {
                TlsMode::None
            } else if service.name().ends_with('s') {
                TlsMode::Implicit
            } else {
                TlsMode::Starttls
            };
            assert_eq!(service.default_tls(), expected, "{service}");
        }
    }
}

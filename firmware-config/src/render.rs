//! The effective configuration as TOML, for `cairn config show`.
//!
//! Redaction: no field of the schema is a secret today (the TLS key is a
//! path, not key material). A secret field added later must be a type
//! whose `Serialize` writes `"<redacted>"`, so that this output, logs and
//! the admin console never carry it; such a field then does not round-trip
//! through this text.

use crate::schema::Config;

impl Config {
    /// Every setting, defaults included, as TOML that [`Config::from_toml_str`]
    /// reads back to the same configuration. Should a value have no TOML
    /// form (an integer above `i64::MAX`, a path that is not UTF-8), the text
    /// is a TOML comment saying so.
    pub fn to_toml_redacted(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# this configuration has no TOML form: {e}\n"))
    }
}

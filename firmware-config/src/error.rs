//! The errors a configuration can have, each naming the file, the line and
//! column where known, the dotted key and the reason, printed as
//! `appliance.toml:12:8: listeners.smtp.port: reason`.

use std::fmt;
use std::ops::Range;

/// One problem with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as named to the loader); empty for a configuration that
    /// was built in code and checked with [`crate::Config::validate`].
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column in characters, where known.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `listeners.smtp.port`; empty for a TOML
    /// syntax error or an unreadable file.
    pub key: String,
    /// What is wrong, for a human.
    pub reason: String,
}

impl ConfigError {
    /// A problem with a built configuration: no file, no position.
    pub(crate) fn semantic(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: String::new(),
            line: None,
            column: None,
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut location = self.file.clone();
        if let Some(line) = self.line {
            location.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                location.push_str(&format!(":{column}"));
            }
        }
        if !location.is_empty() {
            write!(f, "{location}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A problem found while reading a document, positioned by a byte span of
/// the text; [`crate::source::Source`] turns it into a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) key: String,
    pub(crate) span: Option<Range<usize>>,
    pub(crate) reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(file: &str, line: Option<usize>, column: Option<usize>, key: &str) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line,
            column,
            key: key.to_string(),
            reason: "why".to_string(),
        }
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        let full = error("appliance.toml", Some(12), Some(8), "listeners.smtp.port");
        assert_eq!(
            full.to_string(),
            "appliance.toml:12:8: listeners.smtp.port: why"
        );
        let no_column = error("a.toml", Some(3), None, "log.level");
        assert_eq!(no_column.to_string(), "a.toml:3: log.level: why");
        let no_key = error("a.toml", Some(1), Some(4), "");
        assert_eq!(no_key.to_string(), "a.toml:1:4: why");
        let built = error("", None, None, "shards.count");
        assert_eq!(built.to_string(), "shards.count: why");
    }

    #[test]
    fn errors_print_one_per_line() {
        let all = ConfigErrors(vec![
            error("a.toml", Some(1), Some(1), "x"),
            error("a.toml", Some(2), Some(1), "y"),
        ]);
        assert_eq!(all.to_string(), "a.toml:1:1: x: why\na.toml:2:1: y: why");
    }
}

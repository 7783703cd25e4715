//! Loading `appliance.toml`: read the file, parse it keeping text
//! positions, migrate, read into a [`Config`], check, and report every
//! problem with its file, line, column, key and reason.

use std::path::Path;

use crate::error::{ConfigError, ConfigErrors, Problem};
use crate::locate::{self, KeyPath};
use crate::schema::Config;
use crate::source::Source;
use crate::{migrate, read};

impl Config {
    /// The embedded development default: every listener of
    /// [`crate::Service::ALL`] on 127.0.0.1 at its `dev_port()` with its
    /// `default_tls()`.
    pub fn embedded_default() -> Config {
        Config::default()
    }

    /// Reads, migrates and checks the file at `path`; an unreadable file is
    /// reported as a [`ConfigError`] too.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigErrors(vec![
                Source::new(&origin, "").whole_file(format!("cannot read: {e}"))
            ])
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::from_toml_str(&text, &origin),
            Err(e) => {
                let valid = e
                    .as_bytes()
                    .get(..e.utf8_error().valid_up_to())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(valid);
                let source = Source::new(&origin, &text);
                Err(ConfigErrors(vec![source.error(Problem {
                    key: String::new(),
                    span: Some(text.len()..text.len()),
                    reason: "not UTF-8 text".to_string(),
                })]))
            }
        }
    }

    /// Parses, migrates and checks `text`; `origin` names it in messages.
    /// Every problem is reported at once, in file order.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        let source = Source::new(origin, text);
        let parsed = toml_edit::ImDocument::parse(text).map_err(|e| {
            ConfigErrors(vec![source.error(Problem {
                key: String::new(),
                span: e.span(),
                reason: format!("TOML syntax error: {}", one_line(e.message())),
            })])
        })?;
        let mut doc = parsed.as_table().clone();
        let mut problems = migrate::to_current(&mut doc);
        let (config, read_problems) = read::read(&doc);
        problems.extend(read_problems);
        if let Some(config) = &config {
            problems.extend(config.validate().into_iter().map(|e| Problem {
                span: locate::span_of(&doc, &KeyPath::parse(&e.key)),
                key: e.key,
                reason: e.reason,
            }));
        }
        let mut errors: Vec<ConfigError> = problems.into_iter().map(|p| source.error(p)).collect();
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

/// A parser message on one line: its lines joined with "; ".
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

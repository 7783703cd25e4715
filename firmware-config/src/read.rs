//! Reads a parsed (and migrated) document into a [`Config`], reporting
//! every unknown key and every rejected value, not only the first.
//!
//! serde stops at its first error, so reading is repeated: each rejected
//! value is reported, located by its text span, removed (so its default
//! applies) and the document read again, until it reads. Each round removes
//! one entry, so it ends, and at most [`MAX_REJECTED`] values are reported;
//! the last, successful round names the unknown keys through
//! `serde_ignored`.

use toml_edit::{DocumentMut, Table};

use crate::error::Problem;
use crate::locate::{self, KeyPath, Segment};
use crate::schema::Config;

/// Rejected values reported before reading gives up: enough for any real
/// file, and it bounds the rounds (each one reads the whole document).
const MAX_REJECTED: usize = 100;

/// The configuration the document describes, with rejected values left at
/// their defaults, and every problem found; `None` when a rejected value
/// could not be located in the document.
pub(crate) fn read(doc: &Table) -> (Option<Config>, Vec<Problem>) {
    let mut doc = doc.clone();
    let mut problems = Vec::new();
    loop {
        let mut unknown = Vec::new();
        let deserializer = toml_edit::de::Deserializer::from(DocumentMut::from(doc.clone()));
        let result: Result<Config, _> =
            serde_ignored::deserialize(deserializer, |path| unknown.push(key_path(&path)));
        match result {
            Ok(config) => {
                problems.extend(unknown.into_iter().map(|path| Problem {
                    span: locate::key_span_of(&doc, &path),
                    key: path.to_string(),
                    reason: "unknown key".to_string(),
                }));
                return (Some(config), problems);
            }
            Err(error) => {
                let span = error.span();
                let at = span.as_ref().and_then(|s| locate::entry_at(&doc, s.start));
                problems.push(Problem {
                    key: at.as_ref().map(KeyPath::to_string).unwrap_or_default(),
                    span,
                    reason: error.message().to_string(),
                });
                if problems.len() >= MAX_REJECTED {
                    problems.push(Problem {
                        key: String::new(),
                        span: None,
                        reason: format!("more than {MAX_REJECTED} rejected values; stopped here"),
                    });
                    return (None, problems);
                }
                match at {
                    Some(path) if locate::remove(&mut doc, &path) => {}
                    _ => return (None, problems),
                }
            }
        }
    }
}

fn key_path(path: &serde_ignored::Path<'_>) -> KeyPath {
    let mut segments = Vec::new();
    push_segments(path, &mut segments);
    KeyPath(segments)
}

fn push_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            push_segments(parent, out);
            out.push(Segment::Index(*index));
        }
        Path::Map { parent, key } => {
            push_segments(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => push_segments(parent, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Table {
        toml_edit::ImDocument::parse(text)
            .expect("valid TOML")
            .as_table()
            .clone()
    }

    #[test]
    fn rejected_values_fall_back_to_their_defaults() {
        let (config, problems) = read(&doc("[shards]\ncount = \"x\"\npin = false\n"));
        let config = config.expect("readable after dropping count");
        assert_eq!(config.shards.count, 0);
        assert!(!config.shards.pin);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "shards.count");
    }

    #[test]
    fn reading_gives_up_after_max_rejected_values() {
        let text: String = (0..MAX_REJECTED + 20)
            .map(|i| format!("[listeners.bogus{i}]\nport = 1\n"))
            .collect();
        let (config, problems) = read(&doc(&text));
        assert!(config.is_none());
        assert_eq!(problems.len(), MAX_REJECTED + 1);
        assert_eq!(problems[0].key, "listeners.bogus0");
        assert!(
            problems[MAX_REJECTED].reason.contains("stopped"),
            "{problems:?}"
        );
    }
}

//! Key paths in a parsed document and the text spans behind them: which
//! entry an error offset falls in, where a key path was written, and
//! removing an entry whose value was rejected so the rest can be read.

use std::fmt;
use std::ops::Range;

use toml_edit::{Item, Table, TableLike};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the document, shown as `listeners.smtp.port` or
/// `node.domains[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Segment>);

impl KeyPath {
    /// Reads the shown form back: dot-separated keys, each optionally
    /// followed by `[index]`.
    pub(crate) fn parse(shown: &str) -> KeyPath {
        let mut segments = Vec::new();
        for part in shown.split('.').filter(|p| !p.is_empty()) {
            let (key, index) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
                Some((key, index)) => (key, index.parse().ok()),
                None => (part, None),
            };
            segments.push(Segment::Key(key.to_string()));
            if let Some(index) = index {
                segments.push(Segment::Index(index));
            }
        }
        KeyPath(segments)
    }

    fn child(&self, key: &str) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        KeyPath(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.contains(&offset) || s.start == offset)
}

/// The deepest table entry whose key or value was written over `offset`.
/// Array elements are not entries of their own: an offset inside an array
/// gives the array's entry.
pub(crate) fn entry_at(table: &Table, offset: usize) -> Option<KeyPath> {
    let mut found = None;
    search(table, &KeyPath::default(), offset, &mut found);
    found
}

fn search(table: &dyn TableLike, path: &KeyPath, offset: usize, found: &mut Option<KeyPath>) {
    for (name, item) in table.iter() {
        let here = path.child(name);
        let key_span = table.key(name).and_then(|k| k.span());
        let deeper = found.as_ref().is_none_or(|f| f.0.len() < here.0.len());
        if deeper && (contains(key_span, offset) || contains(item.span(), offset)) {
            *found = Some(here.clone());
        }
        if let Some(inner) = item.as_table_like() {
            search(inner, &here, offset, found);
        }
    }
}

/// Where `path` was written: its value, else its key, else the nearest
/// written parent; `None` when nothing on the way has a position.
pub(crate) fn span_of(table: &Table, path: &KeyPath) -> Option<Range<usize>> {
    let mut best = table.span();
    let mut item: Option<&Item> = None;
    for segment in &path.0 {
        let step = match (segment, item) {
            (Segment::Key(key), None) => table
                .get_key_value(key)
                .map(|(k, v)| (k.span(), v, v.span())),
            (Segment::Key(key), Some(parent)) => parent
                .as_table_like()
                .and_then(|t| t.get_key_value(key))
                .map(|(k, v)| (k.span(), v, v.span())),
            (Segment::Index(index), Some(parent)) => {
                match parent.as_array().and_then(|a| a.get(*index)) {
                    Some(value) => {
                        best = value.span().or(best);
                        return best;
                    }
                    None => return best,
                }
            }
            (Segment::Index(_), None) => None,
        };
        let Some((key_span, next, value_span)) = step else {
            return best;
        };
        best = value_span.or(key_span).or(best);
        item = Some(next);
    }
    best
}

/// Where the key at the end of `path` was written, for an unknown key.
pub(crate) fn key_span_of(table: &Table, path: &KeyPath) -> Option<Range<usize>> {
    let Some((Segment::Key(last), parents)) = path.0.split_last() else {
        return span_of(table, path);
    };
    let parent: &dyn TableLike = match parents {
        [] => table,
        _ => match walk(table, parents).and_then(Item::as_table_like) {
            Some(parent) => parent,
            None => return span_of(table, path),
        },
    };
    parent
        .key(last)
        .and_then(|k| k.span())
        .or_else(|| span_of(table, path))
}

fn walk<'t>(table: &'t Table, path: &[Segment]) -> Option<&'t Item> {
    let (first, rest) = path.split_first()?;
    let Segment::Key(first) = first else {
        return None;
    };
    let mut item = table.get(first)?;
    for segment in rest {
        let Segment::Key(key) = segment else {
            return None;
        };
        item = item.as_table_like()?.get(key)?;
    }
    Some(item)
}

/// Removes the entry at `path` (keys only); whether there was one.
pub(crate) fn remove(table: &mut Table, path: &KeyPath) -> bool {
    let Some((Segment::Key(last), parents)) = path.0.split_last() else {
        return false;
    };
    let mut parent: &mut dyn TableLike = table;
    for segment in parents {
        let Segment::Key(key) = segment else {
            return false;
        };
        match parent.get_mut(key).and_then(Item::as_table_like_mut) {
            Some(inner) => parent = inner,
            None => return false,
        }
    }
    parent.remove(last).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml_edit::ImDocument::parse(text)
            .expect("valid TOML")
            .as_table()
            .clone()
    }

    fn shown(path: Option<KeyPath>) -> Option<String> {
        path.map(|p| p.to_string())
    }

    #[test]
    fn key_paths_show_and_parse_back() {
        for text in ["listeners.smtp.port", "node.domains[2]", "version"] {
            assert_eq!(KeyPath::parse(text).to_string(), text);
        }
    }

    #[test]
    fn finds_the_deepest_entry_at_an_offset() {
        let text = "a = 1\n[b.c]\nd = { e = [1, 2] }\n";
        let doc = table(text);
        let at = |needle: &str| text.find(needle).expect("needle");
        assert_eq!(shown(entry_at(&doc, at("1\n"))), Some("a".into()));
        assert_eq!(shown(entry_at(&doc, at("e ="))), Some("b.c.d.e".into()));
        assert_eq!(shown(entry_at(&doc, at("2]"))), Some("b.c.d.e".into()));
        assert_eq!(shown(entry_at(&doc, at("c]"))), Some("b.c".into()));
        assert_eq!(entry_at(&doc, text.len() + 5), None);
    }

    #[test]
    fn spans_of_values_keys_and_elements() {
        let text = "[node]\ndomains = [\"a\", \"b\"]\n[x]\n";
        let doc = table(text);
        let span = |path: &str| span_of(&doc, &KeyPath::parse(path)).map(|s| s.start);
        assert_eq!(span("node.domains"), text.find("[\"a\""));
        assert_eq!(span("node.domains[1]"), text.find("\"b\""));
        // Absent keys fall back to the nearest written parent.
        assert_eq!(span("node.missing"), span("node"));
        assert_eq!(
            key_span_of(&doc, &KeyPath::parse("node.domains")).map(|s| s.start),
            text.find("domains")
        );
    }

    #[test]
    fn removes_nested_entries() {
        let mut doc = table("[a]\nb = { c = 1, d = 2 }\n");
        assert!(remove(&mut doc, &KeyPath::parse("a.b.c")));
        assert!(!remove(&mut doc, &KeyPath::parse("a.b.c")));
        assert!(!remove(&mut doc, &KeyPath::parse("a.b.d.e")));
        let b = doc.get("a").and_then(|a| a.get("b")).expect("a.b");
        assert!(b.get("c").is_none() && b.get("d").is_some());
    }
}

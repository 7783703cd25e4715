//! Versioned schema migrations, applied to the parsed document before it
//! is read into a [`crate::Config`]. Each step lifts a document from one
//! version to the next; a schema change adds a step and bumps
//! [`CURRENT_VERSION`]. Values keep their text positions as they move, so
//! errors in a migrated file still point at the line the operator wrote.

use toml_edit::{value, Item, Table};

use crate::error::Problem;
use crate::schema::CURRENT_VERSION;

/// One migration: lifts a document of version `from` to `from + 1`.
struct Step {
    from: u32,
    apply: fn(&mut Table) -> Result<(), Problem>,
}

/// Every step, oldest first.
const STEPS: [Step; 1] = [Step {
    from: 0,
    apply: v0_data_dir,
}];

/// Brings `doc` to [`CURRENT_VERSION`]. A document without `version` is
/// current; one whose version is not a whole number or is newer than this
/// Cairn is left alone for the reader and the checks to report.
pub(crate) fn to_current(doc: &mut Table) -> Vec<Problem> {
    let Some(version) = doc
        .get("version")
        .and_then(Item::as_integer)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v < CURRENT_VERSION)
    else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for step in STEPS.iter().filter(|step| step.from >= version) {
        if let Err(problem) = (step.apply)(doc) {
            problems.push(problem);
        }
    }
    doc.insert("version", value(i64::from(CURRENT_VERSION)));
    problems
}

/// Version 0 kept the data directory in `[server] data`; version 1 has the
/// top-level `data_dir`.
fn v0_data_dir(doc: &mut Table) -> Result<(), Problem> {
    let Some(server) = doc.get_mut("server") else {
        return Ok(());
    };
    let span = server.span();
    let Some(server) = server.as_table_like_mut() else {
        return Err(Problem {
            key: "server".to_string(),
            span,
            reason: "a version 0 file has a [server] table here".to_string(),
        });
    };
    let Some(data) = server.remove("data") else {
        return Ok(());
    };
    if server.is_empty() {
        doc.remove("server");
    }
    if doc.contains_key("data_dir") {
        return Err(Problem {
            key: "server.data".to_string(),
            span: data.span(),
            reason: "both server.data (version 0) and data_dir are set; keep only data_dir"
                .to_string(),
        });
    }
    doc.insert("data_dir", data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated(text: &str) -> (Table, Vec<Problem>) {
        let mut doc = toml_edit::ImDocument::parse(text)
            .expect("valid TOML")
            .as_table()
            .clone();
        let problems = to_current(&mut doc);
        (doc, problems)
    }

    #[test]
    fn v0_server_data_becomes_data_dir() {
        let text = "version = 0\n[server]\ndata = \"/srv/cairn\"\n";
        let (doc, problems) = migrated(text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc.get("version").and_then(Item::as_integer), Some(1));
        assert_eq!(
            doc.get("data_dir").and_then(Item::as_str),
            Some("/srv/cairn")
        );
        assert!(doc.get("server").is_none(), "the emptied [server] goes");
        // The moved value still points at where it was written.
        let start = doc.get("data_dir").and_then(Item::span).map(|s| s.start);
        assert_eq!(start, text.find("\"/srv"));
    }

    #[test]
    fn other_server_keys_stay_to_be_reported() {
        let (doc, problems) = migrated("version = 0\n[server]\ndata = \"d\"\nthreads = 4\n");
        assert!(problems.is_empty());
        assert!(doc.get("server").and_then(|s| s.get("threads")).is_some());
    }

    #[test]
    fn both_old_and_new_data_dir_is_an_error() {
        let text = "version = 0\ndata_dir = \"a\"\n[server]\ndata = \"b\"\n";
        let (_, problems) = migrated(text);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "server.data");
        assert_eq!(
            problems[0].span.as_ref().map(|s| s.start),
            text.find("\"b\"")
        );
    }

    #[test]
    fn current_missing_and_newer_versions_are_untouched() {
        for text in [
            "[server]\ndata = \"x\"\n",
            "version = 1\n[server]\ndata = \"x\"\n",
            "version = 7\n[server]\ndata = \"x\"\n",
            "version = \"zero\"\n[server]\ndata = \"x\"\n",
        ] {
            let (doc, problems) = migrated(text);
            assert!(problems.is_empty());
            assert!(doc.get("server").is_some(), "{text}");
            assert!(doc.get("data_dir").is_none(), "{text}");
        }
    }
}

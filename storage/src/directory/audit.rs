//! The audit trail: one typed entry per directory change (written in the
//! same atomic batch as the change) and per refused login (written on its
//! own), kept in `directory.audit`, newest first.
//!
//! Entries are numbered in the order they are made (1, 2, …); the key is
//! `u64::MAX - id`, so that a forward scan lists the newest first and a
//! page continues after its last id. Retention is bounded: each append
//! also deletes the entries that fell out of the newest [`KEEP`] (at most
//! [`TRIM_PER_APPEND`] at a time), so the table never grows past it for
//! long. Entries never hold a password or a hash.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{storage, Directory, DirectoryError};
use crate::table::{Batch, Table};

/// Entries kept by default.
pub const KEEP: u64 = 100_000;
/// Most old entries one append deletes.
pub const TRIM_PER_APPEND: usize = 64;
/// Most entries one page examines (with filters, a page may come back
/// short with a `next` cursor to go on from).
pub const MAX_EXAMINED: usize = 20_000;
/// The actor of changes made without one (tests, internal jobs).
pub const SYSTEM: &str = "system";

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing with time; the paging cursor.
    pub id: u64,
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Who: `admin` (the admin password), `token` (the API token), `cli`
    /// (the local CLI), `system`, or for logins the user name tried.
    pub actor: String,
    /// What, as `<record>.<verb>`: `account.add`, `account.password`,
    /// `account.lock`, `class.update`, `auth.failed`, `auth.throttled`,
    /// `auth.disabled` …
    pub action: String,
    /// The record changed or the user that tried to log in.
    pub target: String,
    /// Free text: the fields changed, or why a login was refused.
    pub detail: String,
    /// The client's address, for logins.
    pub ip: Option<String>,
    /// The protocol, for logins, when known.
    pub protocol: Option<String>,
}

/// Audit entries by `u64::MAX - id`.
pub struct AuditLog;
impl Table for AuditLog {
    const NAME: &'static str = "directory.audit";
    type Key = u64;
    type Value = AuditEntry;
}

fn key(id: u64) -> u64 {
    u64::MAX - id
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries older than this id (a previous page's `next`).
    pub before: Option<u64>,
    pub limit: usize,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action, or a record kind: `account` matches `account.*`.
    pub action: Option<String>,
    /// Exact target (case-insensitive).
    pub target: Option<String>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.action.as_ref().is_none_or(|a| {
                e.action == *a
                    || (e.action.starts_with(a.as_str())
                        && e.action.as_bytes().get(a.len()) == Some(&b'.'))
            })
            && self
                .target
                .as_ref()
                .is_none_or(|t| e.target.eq_ignore_ascii_case(t))
    }
}

/// One page, newest first; `next` is the `before` of the following page.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<u64>,
}

/// The trail's counters, shared by every clone of a directory.
#[derive(Debug)]
pub(super) struct AuditState {
    /// The next id; `None` until the newest stored entry was read.
    next: Cell<Option<u64>>,
    keep: Cell<u64>,
}

impl Default for AuditState {
    fn default() -> Self {
        Self {
            next: Cell::new(None),
            keep: Cell::new(KEEP),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Directory {
    /// This directory, recording `actor` as the author of its changes.
    pub fn acting(&self, actor: &str) -> Directory {
        let mut dir = self.clone();
        dir.actor = actor.into();
        dir
    }

    /// Keeps the newest `keep` entries (at least 1) instead of [`KEEP`].
    pub fn keep_audit_entries(&self, keep: u64) {
        self.audit.keep.set(keep.max(1));
    }

    fn next_audit_id(&self) -> Result<u64, DirectoryError> {
        let next = match self.audit.next.get() {
            Some(next) => next,
            None => self
                .tables
                .scan::<AuditLog>(None, 1)
                .map_err(storage)?
                .first()
                .map_or(1, |(_, e)| e.id + 1),
        };
        self.audit.next.set(Some(next + 1));
        Ok(next)
    }

    /// Adds `entry` (its id and time set here) and the trimming of what
    /// falls out of retention to `batch`.
    fn put_audit(&self, batch: &mut Batch, mut entry: AuditEntry) -> Result<(), DirectoryError> {
        entry.id = self.next_audit_id()?;
        entry.unix_ms = now_ms();
        batch.put::<AuditLog>(&key(entry.id), &entry);
        let keep = self.audit.keep.get();
        if entry.id >= keep {
            // Ids below `cutoff` fall out; their keys sort after its key.
            let cutoff = entry.id + 1 - keep;
            let old = self
                .tables
                .scan::<AuditLog>(Some(&key(cutoff)), TRIM_PER_APPEND)
                .map_err(storage)?;
            for (k, _) in old {
                batch.delete::<AuditLog>(&k);
            }
        }
        Ok(())
    }

    /// Records, in `batch`, that this directory's actor did `action` to
    /// `target`.
    pub(super) fn record(
        &self,
        batch: &mut Batch,
        action: &str,
        target: &str,
        detail: impl Into<String>,
    ) -> Result<(), DirectoryError> {
        let entry = AuditEntry {
            id: 0,
            unix_ms: 0,
            actor: self.actor.to_string(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
            ip: None,
            protocol: None,
        };
        self.put_audit(batch, entry)
    }

    /// Records a refused login by `user` from `ip` (on its own: there is
    /// no change to go with it). A failure to store it is logged, never
    /// the login's answer.
    pub async fn record_login_refusal(
        &self,
        user: &str,
        ip: IpAddr,
        protocol: Option<&str>,
        action: &str,
        reason: &str,
    ) {
        let entry = AuditEntry {
            id: 0,
            unix_ms: 0,
            actor: user.into(),
            action: action.into(),
            target: user.into(),
            detail: reason.into(),
            ip: Some(ip.to_string()),
            protocol: protocol.map(str::to_string),
        };
        let mut batch = self.tables.batch();
        let stored = match self.put_audit(&mut batch, entry) {
            Ok(()) => self.tables.commit(batch).await.map_err(storage),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, %user, "cannot store an audit entry");
        }
    }

    /// Entries matching `query`, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<AuditPage, DirectoryError> {
        let limit = query.limit.max(1);
        let mut page = AuditPage::default();
        let mut cursor = query.before.map(key);
        let mut examined = 0;
        loop {
            let batch = self
                .tables
                .scan::<AuditLog>(cursor.as_ref(), 256)
                .map_err(storage)?;
            let Some((last, _)) = batch.last() else {
                return Ok(page);
            };
            cursor = Some(*last);
            for (_, entry) in batch {
                examined += 1;
                let id = entry.id;
                if query.matches(&entry) {
                    page.entries.push(entry);
                }
                if page.entries.len() >= limit || examined >= MAX_EXAMINED {
                    // More may follow: the next page starts below `id`.
                    let more = !self
                        .tables
                        .scan::<AuditLog>(Some(&key(id)), 1)
                        .map_err(storage)?
                        .is_empty();
                    page.next = more.then_some(id);
                    return Ok(page);
                }
            }
        }
    }
}

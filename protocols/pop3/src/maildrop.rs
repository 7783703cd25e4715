//! The maildrop of a POP3 session: the per-account lock (one session per
//! account on its owning shard, RFC 1939 §8) and the snapshot of INBOX
//! taken at login, with message numbers that stay put for the session and
//! the deletion marks that QUIT turns into an expunge.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use cairn_storage::mailbox::{BlobRef, Mailbox};

/// The accounts with a session on this shard. Cheap to clone.
#[derive(Clone, Default)]
pub struct Locks {
    held: Rc<RefCell<HashSet<String>>>,
}

impl Locks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks `account`'s maildrop, or `None` if a session holds it.
    pub fn try_lock(&self, account: &str) -> Option<LockGuard> {
        if !self.held.borrow_mut().insert(account.to_string()) {
            return None;
        }
        Some(LockGuard {
            held: self.held.clone(),
            account: account.to_string(),
        })
    }

    /// Whether `account` is locked now.
    pub fn is_locked(&self, account: &str) -> bool {
        self.held.borrow().contains(account)
    }
}

/// A held maildrop lock; released when dropped, however the session ends.
pub struct LockGuard {
    held: Rc<RefCell<HashSet<String>>>,
    account: String,
}

impl LockGuard {
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.held.borrow_mut().remove(&self.account);
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard({})", self.account)
    }
}

/// One message as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    pub size: u64,
    pub blob: BlobRef,
    pub deleted: bool,
}

/// Why a message number does not name a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchMessage;

/// INBOX as it was at login, and the session's deletion marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildrop {
    uidvalidity: u32,
    entries: Vec<Entry>,
}

impl Maildrop {
    /// The snapshot of a mailbox, in UID order (message 1 is the oldest).
    pub fn snapshot(mailbox: &Mailbox) -> Self {
        Self::from_parts(
            mailbox.uidvalidity,
            mailbox
                .messages
                .values()
                .map(|m| (m.uid, m.size, m.blob))
                .collect(),
        )
    }

    /// A maildrop of (uid, size, blob) in this order.
    pub fn from_parts(uidvalidity: u32, messages: Vec<(u32, u64, BlobRef)>) -> Self {
        Self {
            uidvalidity,
            entries: messages
                .into_iter()
                .map(|(uid, size, blob)| Entry {
                    uid,
                    size,
                    blob,
                    deleted: false,
                })
                .collect(),
        }
    }

    /// Messages not marked deleted, and their octets (STAT).
    pub fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, octets), (_, e)| (n + 1, octets + e.size))
    }

    /// Message `n` (1-based), unless it is marked deleted or out of range.
    pub fn get(&self, n: u32) -> Result<&Entry, NoSuchMessage> {
        let index = (n as usize).checked_sub(1).ok_or(NoSuchMessage)?;
        match self.entries.get(index) {
            Some(e) if !e.deleted => Ok(e),
            _ => Err(NoSuchMessage),
        }
    }

    /// The messages not marked deleted, with their numbers.
    pub fn live(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .zip(1u32..)
            .filter(|(e, _)| !e.deleted)
            .map(|(e, n)| (n, e))
    }

    /// Marks message `n` deleted (DELE).
    pub fn delete(&mut self, n: u32) -> Result<(), NoSuchMessage> {
        let index = (n as usize).checked_sub(1).ok_or(NoSuchMessage)?;
        match self.entries.get_mut(index) {
            Some(e) if !e.deleted => {
                e.deleted = true;
                Ok(())
            }
            _ => Err(NoSuchMessage),
        }
    }

    /// Unmarks every message (RSET).
    pub fn reset(&mut self) {
        for e in &mut self.entries {
            e.deleted = false;
        }
    }

    /// The UIDs marked deleted, for the UPDATE state.
    pub fn deleted_uids(&self) -> Vec<u32> {
        self.entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect()
    }

    /// The unique-id listing string of a message (RFC 1939 §7): the same
    /// for the message in every session, never reused for another one
    /// (UIDVALIDITY changes if UIDs are ever reused).
    pub fn unique_id(&self, entry: &Entry) -> String {
        format!("{}.{}", self.uidvalidity, entry.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> BlobRef {
        BlobRef {
            hash: [0; 32],
            segment: 0,
            offset: 0,
            seq: 0,
            len: 0,
        }
    }

    #[test]
    fn marks_and_numbers() {
        let mut m = Maildrop::from_parts(7, vec![(3, 10, blob()), (5, 20, blob())]);
        assert_eq!(m.stat(), (2, 30));
        assert_eq!(m.get(0), Err(NoSuchMessage));
        assert_eq!(m.get(3), Err(NoSuchMessage));
        assert_eq!(m.get(u32::MAX), Err(NoSuchMessage));
        assert_eq!(m.get(2).map(|e| e.uid), Ok(5));
        assert_eq!(m.delete(1), Ok(()));
        assert_eq!(m.delete(1), Err(NoSuchMessage));
        assert_eq!(m.get(1), Err(NoSuchMessage));
        assert_eq!(m.stat(), (1, 20));
        assert_eq!(m.live().map(|(n, _)| n).collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.deleted_uids(), vec![3]);
        m.reset();
        assert_eq!(m.stat(), (2, 30));
        assert!(m.deleted_uids().is_empty());
        let e = m.get(2).expect("message 2").clone();
        assert_eq!(m.unique_id(&e), "7.5");
    }

    #[test]
    fn one_lock_per_account() {
        let locks = Locks::new();
        let a = locks.try_lock("a@x").expect("first");
        assert!(locks.try_lock("a@x").is_none());
        assert!(locks.try_lock("b@x").is_some());
        assert!(locks.is_locked("a@x"));
        drop(a);
        assert!(!locks.is_locked("a@x"));
        assert!(locks.try_lock("a@x").is_some());
    }
}

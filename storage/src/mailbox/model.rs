//! The in-memory mail state of one shard — accounts, their mailboxes and
//! message metadata — and the deterministic application of [`MailOp`]s to
//! it, sans-IO. Planning an operation (checking names, quotas, assigning
//! UIDs and MODSEQs) reads this state; applying a durable one changes it.

use std::collections::BTreeMap;

use super::flags::Flags;
use super::ops::{BlobRef, MailOp, Role};

/// Why a mail operation is refused. The protocols map these to their own
/// replies (IMAP `[NONEXISTENT]`, `[ALREADYEXISTS]`, `[OVERQUOTA]`, SMTP
/// `550 5.1.1`, `552 5.2.2` …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("no such account: {0}")]
    NoSuchAccount(String),
    #[error("the account {0} exists already")]
    AccountExists(String),
    #[error("no such mailbox: {0}")]
    NoSuchMailbox(String),
    #[error("the mailbox {0} exists already")]
    MailboxExists(String),
    #[error("invalid mailbox name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("the mailbox {0} cannot be deleted or renamed")]
    Protected(String),
    #[error("over quota: {used} of {limit} {unit} used, {wanted} more wanted")]
    OverQuota {
        used: u64,
        limit: u64,
        wanted: u64,
        unit: &'static str,
    },
    #[error("no message with UID {0}")]
    NoSuchMessage(u32),
    #[error("too many keywords on one message (at most {0})")]
    TooManyKeywords(usize),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("stored mail data is corrupt: {0}")]
    Corrupt(String),
    /// A step of moving an account to another shard failed (the copy did
    /// not match its source, or the shards lost or misunderstood each
    /// other): not damaged data, and the move may be tried again.
    #[error("moving the account failed: {0}")]
    MoveFailed(String),
}

/// The hierarchy separator of mailbox names.
pub const SEPARATOR: char = '/';
/// The longest mailbox name, in bytes.
pub const MAX_NAME: usize = 512;

/// Checks a mailbox name (UTF-8; the IMAP layer decodes modified UTF-7).
pub fn validate_name(name: &str) -> Result<(), MailError> {
    let bad = |reason| {
        Err(MailError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME {
        return bad("too long");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("control character");
    }
    if name.split(SEPARATOR).any(str::is_empty) {
        return bad("empty hierarchy level");
    }
    if name.contains(['*', '%']) {
        return bad("wildcard character");
    }
    Ok(())
}

/// INBOX is case-insensitive; every other name is exact.
pub fn canonical(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

/// One stored message's metadata.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Message {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    pub internal_date: i64,
    pub size: u64,
    pub blob: BlobRef,
}

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Mailbox {
    pub role: Option<Role>,
    pub subscribed: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub messages: BTreeMap<u32, Message>,
    /// Expunged UIDs and the MODSEQ of their expunge (QRESYNC VANISHED).
    pub expunged: Vec<(u32, u64)>,
}

/// A mailbox's counters (IMAP STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub unseen: u32,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub size: u64,
}

impl Mailbox {
    fn new(role: Option<Role>, uidvalidity: u32) -> Self {
        Self {
            role,
            subscribed: true,
            uidvalidity,
            uidnext: 1,
            highest_modseq: 1,
            messages: BTreeMap::new(),
            expunged: Vec::new(),
        }
    }

    /// Its counters.
    pub fn status(&self) -> Status {
        Status {
            messages: self.messages.len() as u32,
            unseen: self.messages.values().filter(|m| !m.flags.seen()).count() as u32,
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highest_modseq: self.highest_modseq,
            size: self.messages.values().map(|m| m.size).sum(),
        }
    }
}

/// One account's mail.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Account {
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub quota_bytes: u64,
    pub quota_messages: u64,
    pub used_bytes: u64,
    pub used_messages: u64,
    /// The highest UIDVALIDITY given out, so that a mailbox re-created
    /// under an old name never reuses one.
    pub last_uidvalidity: u32,
}

impl Account {
    /// Refuses `bytes` more in `messages` more messages beyond the quota
    /// (0 means unlimited).
    pub fn check_quota(&self, bytes: u64, messages: u64) -> Result<(), MailError> {
        if self.quota_bytes > 0 && self.used_bytes + bytes > self.quota_bytes {
            return Err(MailError::OverQuota {
                used: self.used_bytes,
                limit: self.quota_bytes,
                wanted: bytes,
                unit: "bytes",
            });
        }
        if self.quota_messages > 0 && self.used_messages + messages > self.quota_messages {
            return Err(MailError::OverQuota {
                used: self.used_messages,
                limit: self.quota_messages,
                wanted: messages,
                unit: "messages",
            });
        }
        Ok(())
    }

    /// The mailbox called `name`.
    pub fn mailbox(&self, name: &str) -> Result<&Mailbox, MailError> {
        self.mailboxes
            .get(&canonical(name))
            .ok_or_else(|| MailError::NoSuchMailbox(name.to_string()))
    }
}

/// The mailboxes every new account gets.
pub const DEFAULT_MAILBOXES: [(&str, Role); 6] = [
    ("INBOX", Role::Inbox),
    ("Sent", Role::Sent),
    ("Drafts", Role::Drafts),
    ("Trash", Role::Trash),
    ("Junk", Role::Junk),
    ("Archive", Role::Archive),
];

/// All accounts of a shard.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct State {
    pub accounts: BTreeMap<String, Account>,
}

fn corrupt(what: &str) -> MailError {
    MailError::Corrupt(what.to_string())
}

impl State {
    /// The account called `name`.
    pub fn account(&self, name: &str) -> Result<&Account, MailError> {
        self.accounts
            .get(name)
            .ok_or_else(|| MailError::NoSuchAccount(name.to_string()))
    }

    fn mailbox_mut(&mut self, account: &str, name: &str) -> Result<&mut Mailbox, MailError> {
        self.accounts
            .get_mut(account)
            .ok_or_else(|| corrupt("operation on a missing account"))?
            .mailboxes
            .get_mut(name)
            .ok_or_else(|| corrupt("operation on a missing mailbox"))
    }

    /// Applies a durable operation. An operation that does not fit the state
    /// (which planning never produces) is refused as corruption and changes
    /// nothing.
    pub fn apply(&mut self, op: &MailOp) -> Result<(), MailError> {
        self.apply_counting(op, &mut |_, _| {})
    }

    /// Calls `refs(hash, n)` for each body reference it holds: once per
    /// message (the blob reference counts are rebuilt from this at start).
    pub fn each_reference(&self, refs: &mut dyn FnMut(&[u8; 32], i64)) {
        for m in self
            .accounts
            .values()
            .flat_map(|a| a.mailboxes.values())
            .flat_map(|mb| mb.messages.values())
        {
            refs(&m.blob.hash, 1);
        }
    }

    /// Points each message at `current(hash)`, its body's place now, where
    /// that differs from its reference (bodies moved by compaction);
    /// returns how many references changed.
    pub fn relink(&mut self, current: &dyn Fn(&[u8; 32]) -> Option<BlobRef>) -> usize {
        let mut changed = 0;
        for m in self
            .accounts
            .values_mut()
            .flat_map(|a| a.mailboxes.values_mut())
            .flat_map(|mb| mb.messages.values_mut())
        {
            if let Some(now) = current(&m.blob.hash) {
                if now != m.blob {
                    m.blob = now;
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Like [`State::apply`], telling `refs(hash, delta)` how the number of
    /// messages referring to each body changed (+1 per message added, -1 per
    /// message removed).
    pub fn apply_counting(
        &mut self,
        op: &MailOp,
        refs: &mut dyn FnMut(&[u8; 32], i64),
    ) -> Result<(), MailError> {
        match op {
            MailOp::CreateAccount {
                account,
                quota_bytes,
                quota_messages,
                uidvalidity,
            } => {
                if self.accounts.contains_key(account) {
                    return Err(corrupt("account created twice"));
                }
                let mailboxes = DEFAULT_MAILBOXES
                    .iter()
                    .zip(0u32..)
                    .map(|((name, role), i)| {
                        let mb = Mailbox::new(Some(*role), uidvalidity.wrapping_add(i));
                        (name.to_string(), mb)
                    })
                    .collect();
                self.accounts.insert(
                    account.clone(),
                    Account {
                        mailboxes,
                        quota_bytes: *quota_bytes,
                        quota_messages: *quota_messages,
                        used_bytes: 0,
                        used_messages: 0,
                        last_uidvalidity: uidvalidity
                            .wrapping_add(DEFAULT_MAILBOXES.len() as u32 - 1),
                    },
                );
            }
            MailOp::DeleteAccount { account } => {
                let gone = self
                    .accounts
                    .remove(account)
                    .ok_or_else(|| corrupt("delete of a missing account"))?;
                for m in gone.mailboxes.values().flat_map(|mb| mb.messages.values()) {
                    refs(&m.blob.hash, -1);
                }
            }
            MailOp::SetQuota {
                account,
                quota_bytes,
                quota_messages,
            } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| corrupt("quota of a missing account"))?;
                a.quota_bytes = *quota_bytes;
                a.quota_messages = *quota_messages;
            }
            MailOp::CreateMailbox {
                account,
                name,
                role,
                uidvalidity,
            } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| corrupt("mailbox of a missing account"))?;
                if a.mailboxes.contains_key(name) {
                    return Err(corrupt("mailbox created twice"));
                }
                a.last_uidvalidity = a.last_uidvalidity.max(*uidvalidity);
                a.mailboxes
                    .insert(name.clone(), Mailbox::new(*role, *uidvalidity));
            }
            MailOp::RenameMailbox { account, from, to } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| corrupt("rename in a missing account"))?;
                if a.mailboxes.contains_key(to) {
                    return Err(corrupt("rename onto an existing mailbox"));
                }
                let mb = a
                    .mailboxes
                    .remove(from)
                    .ok_or_else(|| corrupt("rename of a missing mailbox"))?;
                a.mailboxes.insert(to.clone(), mb);
            }
            MailOp::DeleteMailbox { account, name } => {
                let a = self
                    .accounts
                    .get_mut(account)
                    .ok_or_else(|| corrupt("delete in a missing account"))?;
                let mb = a
                    .mailboxes
                    .remove(name)
                    .ok_or_else(|| corrupt("delete of a missing mailbox"))?;
                a.used_messages -= mb.messages.len() as u64;
                a.used_bytes -= mb.messages.values().map(|m| m.size).sum::<u64>();
                for m in mb.messages.values() {
                    refs(&m.blob.hash, -1);
                }
            }
            MailOp::Subscribe {
                account,
                name,
                subscribed,
            } => self.mailbox_mut(account, name)?.subscribed = *subscribed,
            MailOp::Append {
                account,
                mailbox,
                uid,
                modseq,
                flags,
                internal_date,
                size,
                blob,
            } => {
                let mb = self.mailbox_mut(account, mailbox)?;
                if *uid < mb.uidnext || *modseq <= mb.highest_modseq {
                    return Err(corrupt("append out of order"));
                }
                mb.uidnext = uid + 1;
                mb.highest_modseq = *modseq;
                mb.messages.insert(
                    *uid,
                    Message {
                        uid: *uid,
                        modseq: *modseq,
                        flags: flags.clone(),
                        internal_date: *internal_date,
                        size: *size,
                        blob: *blob,
                    },
                );
                self.charge(account, *size as i64, 1);
                refs(&blob.hash, 1);
            }
            MailOp::SetFlags {
                account,
                mailbox,
                modseq,
                changes,
            } => {
                let mb = self.mailbox_mut(account, mailbox)?;
                if *modseq <= mb.highest_modseq {
                    return Err(corrupt("flag change out of order"));
                }
                mb.highest_modseq = *modseq;
                for (uid, flags) in changes {
                    if let Some(m) = mb.messages.get_mut(uid) {
                        m.flags = flags.clone();
                        m.modseq = *modseq;
                    }
                }
            }
            MailOp::Expunge {
                account,
                mailbox,
                modseq,
                uids,
            } => {
                let (bytes, count) = self.expunge(account, mailbox, *modseq, uids, refs)?;
                self.charge(account, -bytes, -count);
            }
            MailOp::Copy {
                account,
                from,
                to,
                pairs,
                modseq,
                expunge_at,
            } => {
                let source = self.mailbox_mut(account, from)?.messages.clone();
                let dest = self.mailbox_mut(account, to)?;
                if *modseq <= dest.highest_modseq {
                    return Err(corrupt("copy out of order"));
                }
                let (mut bytes, mut count) = (0i64, 0i64);
                for (src, dst) in pairs {
                    let Some(m) = source.get(src) else { continue };
                    dest.messages.insert(
                        *dst,
                        Message {
                            uid: *dst,
                            modseq: *modseq,
                            ..m.clone()
                        },
                    );
                    dest.uidnext = dest.uidnext.max(dst + 1);
                    refs(&m.blob.hash, 1);
                    bytes += m.size as i64;
                    count += 1;
                }
                dest.highest_modseq = *modseq;
                self.charge(account, bytes, count);
                if let Some(at) = expunge_at {
                    let uids: Vec<u32> = pairs.iter().map(|(s, _)| *s).collect();
                    let (b, c) = self.expunge(account, from, *at, &uids, refs)?;
                    self.charge(account, -b, -c);
                }
            }
            MailOp::AppendMany {
                account,
                mailbox,
                modseq,
                messages,
            } => {
                let mb = self.mailbox_mut(account, mailbox)?;
                // Checked whole before any change: all or nothing.
                let uidnext = messages.iter().try_fold(mb.uidnext, |next, m| {
                    (m.uid >= next).then(|| m.uid.checked_add(1)).flatten()
                });
                let Some(uidnext) = uidnext.filter(|_| *modseq > mb.highest_modseq) else {
                    return Err(corrupt("append out of order"));
                };
                mb.uidnext = uidnext;
                mb.highest_modseq = *modseq;
                for m in messages {
                    mb.messages.insert(
                        m.uid,
                        Message {
                            uid: m.uid,
                            modseq: *modseq,
                            flags: m.flags.clone(),
                            internal_date: m.internal_date,
                            size: m.size,
                            blob: m.blob,
                        },
                    );
                    refs(&m.blob.hash, 1);
                }
                let bytes = messages.iter().map(|m| m.size as i64).sum();
                self.charge(account, bytes, messages.len() as i64);
            }
        }
        Ok(())
    }

    fn expunge(
        &mut self,
        account: &str,
        mailbox: &str,
        modseq: u64,
        uids: &[u32],
        refs: &mut dyn FnMut(&[u8; 32], i64),
    ) -> Result<(i64, i64), MailError> {
        let mb = self.mailbox_mut(account, mailbox)?;
        if modseq <= mb.highest_modseq {
            return Err(corrupt("expunge out of order"));
        }
        mb.highest_modseq = modseq;
        let (mut bytes, mut count) = (0i64, 0i64);
        for uid in uids {
            if let Some(m) = mb.messages.remove(uid) {
                refs(&m.blob.hash, -1);
                mb.expunged.push((*uid, modseq));
                bytes += m.size as i64;
                count += 1;
            }
        }
        Ok((bytes, count))
    }

    fn charge(&mut self, account: &str, bytes: i64, messages: i64) {
        if let Some(a) = self.accounts.get_mut(account) {
            a.used_bytes = a.used_bytes.saturating_add_signed(bytes);
            a.used_messages = a.used_messages.saturating_add_signed(messages);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("Work/2026").is_ok());
        for bad in ["", "a//b", "/a", "a/", "x*", "tab\there", &"n".repeat(600)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(canonical("inBox"), "INBOX");
        assert_eq!(canonical("Inboxes"), "Inboxes");
    }

    #[test]
    fn an_operation_that_does_not_fit_changes_nothing() {
        let mut s = State::default();
        let before = s.clone();
        let op = MailOp::Subscribe {
            account: "nobody".into(),
            name: "INBOX".into(),
            subscribed: false,
        };
        assert!(matches!(s.apply(&op), Err(MailError::Corrupt(_))));
        assert_eq!(s, before);
    }

    #[test]
    fn a_batch_is_applied_whole_or_not_at_all() {
        let mut s = State::default();
        let create = MailOp::CreateAccount {
            account: "a".into(),
            quota_bytes: 0,
            quota_messages: 0,
            uidvalidity: 1,
        };
        s.apply(&create).expect("account");
        let message = |uid| super::super::ops::NewMessage {
            uid,
            flags: Flags::default(),
            internal_date: 0,
            size: 10,
            blob: BlobRef::pending([uid as u8; 32]),
        };
        let batch = |uids: &[u32]| MailOp::AppendMany {
            account: "a".into(),
            mailbox: "INBOX".into(),
            modseq: 2,
            messages: uids.iter().map(|u| message(*u)).collect(),
        };
        // The second UID is not above the first: nothing of it is applied.
        let before = s.clone();
        assert!(matches!(
            s.apply(&batch(&[1, 1])),
            Err(MailError::Corrupt(_))
        ));
        assert_eq!(s, before);
        s.apply(&batch(&[1, 2, 5])).expect("batch");
        let a = s.account("a").expect("account");
        let inbox = a.mailbox("INBOX").expect("inbox");
        assert_eq!(
            inbox.messages.keys().copied().collect::<Vec<_>>(),
            [1, 2, 5]
        );
        assert_eq!((inbox.uidnext, inbox.highest_modseq), (6, 2));
        assert_eq!((a.used_bytes, a.used_messages), (30, 3));
    }
}

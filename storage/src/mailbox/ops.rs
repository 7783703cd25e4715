//! The mailbox operations as they are written to the log: each carries
//! everything its effect depends on (UIDs, MODSEQs, resulting flags), so
//! that applying the same operations in the same order always rebuilds the
//! same state.

use serde::{Deserialize, Serialize};

use super::flags::Flags;

/// A special-use role (RFC 6154).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum Role {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

/// Where a message body lies: its content hash and its log location.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct BlobRef {
    pub hash: [u8; 32],
    pub segment: u64,
    pub offset: u64,
    pub seq: u64,
    pub len: u32,
}

/// One durable change to an account's mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailOp {
    /// A new account with the default mailboxes; the i-th default gets
    /// UIDVALIDITY `uidvalidity + i`.
    CreateAccount {
        account: String,
        quota_bytes: u64,
        quota_messages: u64,
        uidvalidity: u32,
    },
    SetQuota {
        account: String,
        quota_bytes: u64,
        quota_messages: u64,
    },
    CreateMailbox {
        account: String,
        name: String,
        role: Option<Role>,
        uidvalidity: u32,
    },
    RenameMailbox {
        account: String,
        from: String,
        to: String,
    },
    DeleteMailbox {
        account: String,
        name: String,
    },
    Subscribe {
        account: String,
        name: String,
        subscribed: bool,
    },
    Append {
        account: String,
        mailbox: String,
        uid: u32,
        modseq: u64,
        flags: Flags,
        internal_date: i64,
        size: u64,
        blob: BlobRef,
    },
    /// The resulting flags of each changed message, all at one MODSEQ.
    SetFlags {
        account: String,
        mailbox: String,
        modseq: u64,
        changes: Vec<(u32, Flags)>,
    },
    Expunge {
        account: String,
        mailbox: String,
        modseq: u64,
        uids: Vec<u32>,
    },
    /// Copies `pairs` (source UID → new UID) into `to`; with `expunge_at`,
    /// removes the sources at that MODSEQ (MOVE).
    Copy {
        account: String,
        from: String,
        to: String,
        pairs: Vec<(u32, u32)>,
        modseq: u64,
        expunge_at: Option<u64>,
    },
    /// Removes an account and all of its mail.
    DeleteAccount {
        account: String,
    },
    /// Several messages appended to one mailbox together (MULTIAPPEND), all
    /// at one MODSEQ, with increasing UIDs: one record, so that recovery
    /// and readers see all of them or none. (Added last: the variants'
    /// indexes are their encoding.)
    AppendMany {
        account: String,
        mailbox: String,
        modseq: u64,
        messages: Vec<NewMessage>,
    },
}

/// One message of a [`MailOp::AppendMany`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub uid: u32,
    pub flags: Flags,
    pub internal_date: i64,
    pub size: u64,
    pub blob: BlobRef,
}

impl MailOp {
    /// The account it changes.
    pub fn account(&self) -> &str {
        match self {
            MailOp::CreateAccount { account, .. }
            | MailOp::SetQuota { account, .. }
            | MailOp::CreateMailbox { account, .. }
            | MailOp::RenameMailbox { account, .. }
            | MailOp::DeleteMailbox { account, .. }
            | MailOp::Subscribe { account, .. }
            | MailOp::Append { account, .. }
            | MailOp::SetFlags { account, .. }
            | MailOp::Expunge { account, .. }
            | MailOp::Copy { account, .. }
            | MailOp::AppendMany { account, .. }
            | MailOp::DeleteAccount { account } => account,
        }
    }

    /// The body references it carries (to resolve them to the bodies'
    /// places when it is applied).
    pub fn blobs_mut(&mut self) -> Vec<&mut BlobRef> {
        match self {
            MailOp::Append { blob, .. } => vec![blob],
            MailOp::AppendMany { messages, .. } => {
                messages.iter_mut().map(|m| &mut m.blob).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl BlobRef {
    /// A reference to a body whose record is queued but not yet durable:
    /// the hash only. An operation carrying one is queued after the body's
    /// record (so it is durable only with it); the mailstore resolves it to
    /// the body's location when it applies the operation, and by hash (the
    /// body's record replays first) at recovery.
    pub fn pending(hash: [u8; 32]) -> Self {
        Self {
            hash,
            segment: u64::MAX,
            offset: u64::MAX,
            seq: 0,
            len: 0,
        }
    }

    /// Whether this is a [`BlobRef::pending`] reference.
    pub fn is_pending(&self) -> bool {
        self.segment == u64::MAX
    }

    /// Its record's place in the log.
    pub fn location(&self) -> crate::log::Location {
        crate::log::Location {
            seq: self.seq,
            segment: self.segment,
            offset: self.offset,
            len: self.len,
        }
    }
}

impl MailOp {
    /// Serialises for the log.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding an owned enum of plain fields into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Reads an operation back from the log.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_keep_their_encoding() {
        // The variant index leads a record: a new variant goes last.
        let old = MailOp::DeleteAccount {
            account: "a".into(),
        };
        assert_eq!(old.encode().first(), Some(&10));
        let many = MailOp::AppendMany {
            account: "a".into(),
            mailbox: "INBOX".into(),
            modseq: 2,
            messages: vec![NewMessage {
                uid: 1,
                flags: Flags::default(),
                internal_date: 0,
                size: 3,
                blob: BlobRef::pending([7; 32]),
            }],
        };
        assert_eq!(many.encode().first(), Some(&11));
        assert_eq!(MailOp::decode(&many.encode()), Ok(many));
    }
}

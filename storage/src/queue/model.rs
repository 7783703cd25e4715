//! What a queued outbound message is: its envelope (with the DSN
//! parameters of RFC 3461), one state per recipient, and where its body
//! lies; and the limits that keep every entry within a table value.

use serde::{Deserialize, Serialize};

use super::QueueError;

/// The most recipients one queued message holds (a caller with more
/// queues several messages). With every string at its limit an entry
/// stays under the tables' value limit (see the test `a_full_entry_fits`).
pub const MAX_RECIPIENTS: usize = 500;
/// The longest address (sender or recipient), in bytes: RFC 5321's path.
pub const MAX_ADDRESS: usize = 256;
/// The longest ORCPT value, in bytes (RFC 3461 section 4.2).
pub const MAX_ORCPT: usize = 500;
/// The longest ENVID, in bytes (RFC 3461 section 4.4).
pub const MAX_ENVID: usize = 100;
/// The longest reply or error text kept; longer ones are cut (on a
/// character boundary).
pub const MAX_REPLY: usize = 512;
/// The longest host name kept for the exchanger that answered; longer ones
/// are cut.
pub const MAX_MX: usize = 255;

/// Which delivery status notifications a recipient asked for (RFC 3461
/// NOTIFY). `NOTIFY=NEVER` is all false; without NOTIFY a sender gets
/// failures and delays ([`Notify::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`: no notification at all.
    pub const fn never() -> Self {
        Self {
            success: false,
            failure: false,
            delay: false,
        }
    }
}

impl Default for Notify {
    /// No NOTIFY parameter: failures and delays.
    fn default() -> Self {
        Self {
            success: false,
            failure: true,
            delay: true,
        }
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    /// Not delivered yet (a temporary failure keeps it here).
    Pending,
    /// Accepted by `mx` at `at` (unix seconds) with `reply`.
    Delivered { at: i64, reply: String, mx: String },
    /// Refused for good by `mx` (empty when no exchanger answered) at
    /// `at`, or given up after too long; `reply` says why.
    Failed { at: i64, reply: String, mx: String },
}

impl RecipientState {
    /// Whether the recipient still waits for delivery.
    pub fn is_pending(&self) -> bool {
        matches!(self, RecipientState::Pending)
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    pub address: String,
    /// The DSN ORCPT parameter as given (`rfc822;addr`, xtext decoded).
    pub orcpt: Option<String>,
    pub notify: Notify,
    pub state: RecipientState,
}

/// A message in a shard's outbound queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Its sequence number on its shard: increasing, never reused.
    pub id: u64,
    /// The reverse path; empty for the null reverse path (a bounce).
    pub sender: String,
    pub recipients: Vec<QueuedRecipient>,
    /// The SHA-256 of the body, stored in the shard's blob store.
    pub body: [u8; 32],
    /// The body's length in bytes.
    pub size: u64,
    /// When it was queued (unix seconds).
    pub created: i64,
    /// When the next delivery attempt is due (unix seconds).
    pub next_attempt: i64,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// The DSN ENVID parameter.
    pub envid: Option<String>,
    /// DSN `RET=FULL` (else `RET=HDRS`, the default).
    pub ret_full: bool,
    /// Why the last attempt did not finish.
    pub last_error: Option<String>,
    /// A "delayed" DSN was sent already.
    pub delay_notified: bool,
}

impl QueuedMessage {
    /// The recipients still waiting for delivery.
    pub fn pending(&self) -> impl Iterator<Item = &QueuedRecipient> {
        self.recipients.iter().filter(|r| r.state.is_pending())
    }

    /// Whether no recipient waits any more (every one delivered or failed).
    pub fn is_done(&self) -> bool {
        self.pending().next().is_none()
    }
}

/// A message to queue, before it has an id and a stored body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The reverse path; empty for the null reverse path.
    pub sender: String,
    /// (address, ORCPT, NOTIFY) per recipient.
    pub recipients: Vec<(String, Option<String>, Notify)>,
    pub envid: Option<String>,
    pub ret_full: bool,
    /// The time it is queued (unix seconds): `created`, and the first
    /// attempt is due then.
    pub now: i64,
}

fn too_long(field: &'static str, value: &str, max: usize) -> Result<(), QueueError> {
    if value.len() > max {
        return Err(QueueError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub(super) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn check_recipient_count(count: usize) -> Result<(), QueueError> {
    if count == 0 {
        return Err(QueueError::NoRecipients);
    }
    if count > MAX_RECIPIENTS {
        return Err(QueueError::TooManyRecipients {
            count,
            max: MAX_RECIPIENTS,
        });
    }
    Ok(())
}

impl NewMessage {
    /// Checks the limits and makes the entry (its id and body still to be
    /// filled in): every recipient pending, the first attempt due now.
    pub(super) fn into_queued(self, size: u64) -> Result<QueuedMessage, QueueError> {
        check_recipient_count(self.recipients.len())?;
        too_long("sender", &self.sender, MAX_ADDRESS)?;
        if let Some(envid) = &self.envid {
            too_long("envid", envid, MAX_ENVID)?;
        }
        let mut recipients = Vec::with_capacity(self.recipients.len());
        for (address, orcpt, notify) in self.recipients {
            too_long("recipient", &address, MAX_ADDRESS)?;
            if let Some(orcpt) = &orcpt {
                too_long("orcpt", orcpt, MAX_ORCPT)?;
            }
            recipients.push(QueuedRecipient {
                address,
                orcpt,
                notify,
                state: RecipientState::Pending,
            });
        }
        Ok(QueuedMessage {
            id: 0,
            sender: self.sender,
            recipients,
            body: [0; 32],
            size,
            created: self.now,
            next_attempt: self.now,
            attempts: 0,
            envid: self.envid,
            ret_full: self.ret_full,
            last_error: None,
            delay_notified: false,
        })
    }
}

impl QueuedMessage {
    /// Checks the limits an update must keep and cuts the texts a delivery
    /// attempt fills in (replies, exchangers, the last error) to theirs.
    pub(super) fn check_update(&mut self) -> Result<(), QueueError> {
        check_recipient_count(self.recipients.len())?;
        too_long("sender", &self.sender, MAX_ADDRESS)?;
        if let Some(envid) = &self.envid {
            too_long("envid", envid, MAX_ENVID)?;
        }
        for r in &mut self.recipients {
            too_long("recipient", &r.address, MAX_ADDRESS)?;
            if let Some(orcpt) = &r.orcpt {
                too_long("orcpt", orcpt, MAX_ORCPT)?;
            }
            if let RecipientState::Delivered { reply, mx, .. }
            | RecipientState::Failed { reply, mx, .. } = &mut r.state
            {
                truncate(reply, MAX_REPLY);
                truncate(mx, MAX_MX);
            }
        }
        if let Some(error) = &mut self.last_error {
            truncate(error, MAX_REPLY);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::MAX_VALUE_BYTES;

    fn full_string(len: usize) -> String {
        // Multi-byte characters make a string long in postcard as in UTF-8.
        "é".repeat(len / 2)
    }

    #[test]
    fn a_full_entry_fits() {
        let recipient = QueuedRecipient {
            address: full_string(MAX_ADDRESS),
            orcpt: Some(full_string(MAX_ORCPT)),
            notify: Notify::default(),
            state: RecipientState::Failed {
                at: i64::MIN,
                reply: full_string(MAX_REPLY),
                mx: full_string(MAX_MX + 1),
            },
        };
        let message = QueuedMessage {
            id: u64::MAX,
            sender: full_string(MAX_ADDRESS),
            recipients: vec![recipient; MAX_RECIPIENTS],
            body: [0xff; 32],
            size: u64::MAX,
            created: i64::MIN,
            next_attempt: i64::MIN,
            attempts: u32::MAX,
            envid: Some(full_string(MAX_ENVID)),
            ret_full: true,
            last_error: Some(full_string(MAX_REPLY)),
            delay_notified: true,
        };
        let mut checked = message.clone();
        checked.check_update().expect("within the limits");
        let len = postcard::to_allocvec(&checked).expect("encode").len();
        assert!(len <= MAX_VALUE_BYTES, "{len} bytes");
    }

    #[test]
    fn limits_are_checked_and_texts_cut() {
        let new = |recipients: usize| NewMessage {
            sender: "a@example.org".into(),
            recipients: (0..recipients)
                .map(|i| (format!("r{i}@example.net"), None, Notify::default()))
                .collect(),
            envid: None,
            ret_full: false,
            now: 7,
        };
        assert_eq!(new(0).into_queued(1), Err(QueueError::NoRecipients));
        assert!(matches!(
            new(MAX_RECIPIENTS + 1).into_queued(1),
            Err(QueueError::TooManyRecipients { .. })
        ));
        let mut long = new(1);
        long.recipients[0].0 = "x".repeat(MAX_ADDRESS + 1);
        assert!(matches!(
            long.into_queued(1),
            Err(QueueError::TooLong {
                field: "recipient",
                ..
            })
        ));
        let mut m = new(MAX_RECIPIENTS).into_queued(1).expect("queued");
        assert_eq!((m.created, m.next_attempt, m.size), (7, 7, 1));
        assert!(m.recipients.iter().all(|r| r.state.is_pending()));
        m.recipients[0].state = RecipientState::Delivered {
            at: 1,
            reply: format!("250 {}", "ü".repeat(400)),
            mx: "m".repeat(300),
        };
        m.last_error = Some("e".repeat(1000));
        m.check_update().expect("update");
        let RecipientState::Delivered { reply, mx, .. } = &m.recipients[0].state else {
            panic!("state");
        };
        assert!(reply.len() <= MAX_REPLY && reply.len() >= MAX_REPLY - 1);
        assert_eq!(mx.len(), MAX_MX);
        assert_eq!(m.last_error.as_deref().map(str::len), Some(MAX_REPLY));
        assert!(!m.is_done());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let mut s = "aé".to_string();
        truncate(&mut s, 2);
        assert_eq!(s, "a");
        let mut s = "abc".to_string();
        truncate(&mut s, 5);
        assert_eq!(s, "abc");
    }
}

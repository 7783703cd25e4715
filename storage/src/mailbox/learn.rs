//! What filing a message teaches the account's Bayes classifier
//! ([`crate::bayes`]): after a copy or move between two mailboxes is
//! durable, the copied messages are learned as the class the two
//! mailboxes' roles say:
//!
//! - into Junk from any other mailbox: spam;
//! - out of Junk into a mailbox that is neither Junk nor Trash: ham (a
//!   message learned as spam before moves over to ham);
//! - from INBOX into a mailbox that is neither INBOX, Junk nor Trash
//!   (Archive, a folder of the user's): ham. Without it an account would
//!   learn ham only from the rare rescue out of Junk and seldom reach the
//!   classifier's minimum; filing a message is the user saying it is
//!   wanted, and a later move into Junk flips it.
//!
//! Learning runs in a task of its own (a client going away does not cut
//! it short) that the copy waits for, so the client's `OK` comes after the
//! counts are durable; its failure is logged and never fails the copy,
//! which is durable already. At most [`MAX_LESSONS_PER_COPY`] messages of
//! one copy are learned, [`LEARN_BATCH`] per commit, yielding between
//! messages so that a large move does not stall the shard.

use futures_channel::oneshot;

use super::{MailStore, Role};
use crate::bayes::{self, Class, Sample, LEARN_BATCH};

/// The most messages of one copy or move that are learned.
pub const MAX_LESSONS_PER_COPY: usize = 1_000;

/// What filing a message from a mailbox of role `from` into one of role
/// `to` says of it, if anything.
pub(super) fn lesson(from: Option<Role>, to: Option<Role>) -> Option<Class> {
    match (from, to) {
        (Some(Role::Junk), Some(Role::Junk | Role::Trash)) => None,
        (_, Some(Role::Junk)) => Some(Class::Spam),
        (Some(Role::Junk), _) => Some(Class::Ham),
        (Some(Role::Inbox), Some(Role::Inbox | Role::Trash)) => None,
        (Some(Role::Inbox), _) => Some(Class::Ham),
        _ => None,
    }
}

impl MailStore {
    /// Learns the bodies `hashes` (just copied) as `class` for `account`,
    /// when this store has a classifier; returns once done.
    pub(super) async fn teach(&self, account: &str, class: Class, hashes: Vec<[u8; 32]>) {
        let Some(bayes) = self.inner.learner.borrow().clone() else {
            return;
        };
        if hashes.len() > MAX_LESSONS_PER_COPY {
            tracing::info!(%account, messages = hashes.len(), "bayes: only the first {MAX_LESSONS_PER_COPY} messages of a copy are learned");
        }
        let (mail, account) = (self.clone(), account.to_string());
        let (tx, rx) = oneshot::channel();
        cairn_shards::spawn_detached(async move {
            let picked = hashes.get(..MAX_LESSONS_PER_COPY).unwrap_or(&hashes);
            for chunk in picked.chunks(LEARN_BATCH) {
                let mut samples = Vec::with_capacity(chunk.len());
                for hash in chunk {
                    match mail.body_by_hash(hash).await {
                        Ok(body) => samples.push(Sample {
                            message: bayes::message_id(hash),
                            tokens: bayes::tokenize(&body),
                        }),
                        Err(error) => {
                            tracing::warn!(%account, %error, "bayes: a copied message's body does not read back; not learned");
                        }
                    }
                    cairn_shards::yield_if_needed().await;
                }
                if let Err(error) = bayes.learn(&account, class, &samples).await {
                    tracing::warn!(%account, %error, class = class.name(), "bayes: learning failed");
                    break;
                }
            }
            let _ = tx.send(());
        });
        let _ = rx.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_say_what_a_move_means() {
        use Role::*;
        let cases = [
            (Some(Inbox), Some(Junk), Some(Class::Spam)),
            (None, Some(Junk), Some(Class::Spam)),
            (Some(Trash), Some(Junk), Some(Class::Spam)),
            (Some(Junk), Some(Inbox), Some(Class::Ham)),
            (Some(Junk), None, Some(Class::Ham)),
            (Some(Junk), Some(Archive), Some(Class::Ham)),
            (Some(Junk), Some(Trash), None),
            (Some(Junk), Some(Junk), None),
            (Some(Inbox), Some(Archive), Some(Class::Ham)),
            (Some(Inbox), None, Some(Class::Ham)),
            (Some(Inbox), Some(Trash), None),
            (Some(Inbox), Some(Inbox), None),
            (Some(Archive), Some(Inbox), None),
            (None, None, None),
            (Some(Sent), Some(Trash), None),
        ];
        for (from, to, want) in cases {
            assert_eq!(lesson(from, to), want, "{from:?} → {to:?}");
        }
    }
}

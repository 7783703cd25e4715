//! The slots of a command (see [`extended::slots`]) written out before it
//! is decoded: `$` (RFC 5182) as the saved result, and the search keys
//! `EMAILID id` and `THREADID id` (RFC 8474 §6) as `UID set` of the
//! selected mailbox's messages with that id. EMAILIDs come from the
//! index; THREADIDs from the summaries (cached, or the bodies' digests),
//! reading the messages with neither (as a SEARCH on a header would).

use std::ops::Range;
use std::rc::Rc;

use cairn_storage::mailbox::{BlobRef, MailError};

use super::summaries::Summary;
use super::view::set_in_command;
use super::{Reply, Session};
use crate::codec::extended::{self, Slot};
use crate::codec::objectid;
use crate::message::Parsed;

/// The most EMAILID and THREADID keys one command may have (each is
/// written out as a set of UIDs).
const MAX_OBJECT_KEYS: usize = 64;

/// A message's object id values.
struct Ids {
    uid: u32,
    email: u64,
    /// Only when a THREADID key asked for them.
    thread: Option<u64>,
}

/// The UID set of the messages of `ids` whose value (by `value`) is
/// `want`; none for an id Cairn never gives.
fn matching(ids: &[Ids], want: Option<u64>, value: impl Fn(&Ids) -> Option<u64>) -> String {
    let uids: Vec<u32> = match want {
        Some(want) => ids
            .iter()
            .filter(|i| value(i) == Some(want))
            .map(|i| i.uid)
            .collect(),
        None => Vec::new(),
    };
    format!("UID {}", set_in_command(&uids))
}

impl Session<'_> {
    /// The command with its slots written out: `None` when it has none
    /// (or no mailbox is selected to work them out in), `Err` with the
    /// refusal.
    pub(super) async fn fill_slots(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
        let Some(account) = self.account.clone().filter(|_| self.selected.is_some()) else {
            return Ok(None);
        };
        let slots = extended::slots(bytes);
        if slots.is_empty() {
            return Ok(None);
        }
        let keys = slots
            .iter()
            .filter(|(_, slot)| !matches!(slot, Slot::Saved { .. }))
            .count();
        if keys > MAX_OBJECT_KEYS {
            return Err(Reply::bad(format!(
                "More than {MAX_OBJECT_KEYS} EMAILID and THREADID keys"
            )));
        }
        let ids = if keys > 0 {
            let threads = slots
                .iter()
                .any(|(_, slot)| matches!(slot, Slot::ThreadId(_)));
            self.object_ids(&account, threads)
                .await
                .map_err(|e| Reply::mail(&e))?
        } else {
            Vec::new()
        };
        let Some(view) = &self.selected else {
            return Ok(None);
        };
        let filled: Vec<(Range<usize>, String)> = slots
            .into_iter()
            .map(|(at, slot)| {
                let text = match slot {
                    Slot::Saved { uid } => view.saved_set(uid),
                    Slot::EmailId(id) => {
                        matching(&ids, objectid::parse_email(&id), |i| Some(i.email))
                    }
                    Slot::ThreadId(id) => matching(&ids, objectid::parse_thread(&id), |i| i.thread),
                };
                (at, text)
            })
            .collect();
        Ok(Some(extended::splice(bytes, &filled)))
    }

    /// The object id values of the selected mailbox's messages (with
    /// their THREADIDs when `threads`).
    async fn object_ids(&self, account: &str, threads: bool) -> Result<Vec<Ids>, MailError> {
        let Some(view) = &self.selected else {
            return Ok(Vec::new());
        };
        let uids = view.uids();
        let messages: Vec<(u32, BlobRef)> =
            self.inner
                .services
                .mailstore
                .read_mailbox(account, &view.mailbox, |mb| {
                    uids.iter()
                        .filter_map(|u| mb.messages.get(u).map(|m| (*u, m.blob)))
                        .collect()
                })?;
        let mut out = Vec::with_capacity(messages.len());
        for (uid, blob) in messages {
            let thread = if threads {
                let thread = self.summary(&blob).await?.thread(&blob.hash);
                cairn_shards::yield_if_needed().await;
                Some(thread)
            } else {
                None
            };
            out.push(Ids {
                uid,
                email: objectid::email_value(&blob.hash),
                thread,
            });
        }
        Ok(out)
    }

    /// The summary of the message whose body is `blob` if it costs no
    /// body read: from the shard's cache, or from the body's digest (then
    /// kept in the cache). `None`: the body must be read and parsed (no
    /// digest, or one that does not read back or decode: counted).
    pub(super) async fn stored_summary(&self, blob: &BlobRef) -> Option<Rc<Summary>> {
        let summaries = &self.inner.summaries;
        if let Some(summary) = summaries.get(&blob.hash) {
            return Some(summary);
        }
        let store = &self.inner.services.mailstore;
        let digest = match store.digest(blob).await {
            Ok(digest) => digest?,
            Err(error) => {
                tracing::warn!(%error, "a message's digest did not read back; parsing the message");
                return None;
            }
        };
        match Summary::from_digest(&digest) {
            Some(summary) => Some(summaries.insert(blob.hash, summary)),
            None => {
                store.digest_rejected();
                tracing::warn!("a message's digest did not decode; parsing the message");
                None
            }
        }
    }

    /// The summary of the message whose body is `blob`: stored (see
    /// [`Session::stored_summary`]), or read, parsed and kept in the cache.
    async fn summary(&self, blob: &BlobRef) -> Result<Rc<Summary>, MailError> {
        if let Some(summary) = self.stored_summary(blob).await {
            return Ok(summary);
        }
        let raw = self.inner.services.mailstore.body(blob).await?;
        Ok(self
            .inner
            .summaries
            .insert(blob.hash, Summary::of(&Parsed::parse(&raw))))
    }
}

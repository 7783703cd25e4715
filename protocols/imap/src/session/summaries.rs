//! The shard's cache of the parts of a message FETCH asks for most and
//! that cost a read and a parse each: ENVELOPE, BODY and BODYSTRUCTURE
//! (and the thread a THREADID names, RFC 8474), by
//! the body's hash (bodies never change, and a body delivered to many
//! mailboxes is one entry). A client listing a mailbox reads each message
//! once, then from here. Bounded by entries; the oldest go first.
//!
//! A summary is also made once when a body is first stored on the shard
//! and kept on disk beside it ([`DIGESTER`], storage's digests): after a
//! restart a summary missing here is read from there, and the body is read
//! and parsed only when there is none (or it does not decode).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use cairn_storage::mailbox::Digester;
use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;
use serde::{Deserialize, Serialize};

use crate::codec::objectid;
use crate::message::{thread_root, Parsed};

/// Entries kept by default (a summary is typically under 2 KiB).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// Summaries as storage's digests: made at delivery from the raw body,
/// JSON-encoded [`Summary`] (serde through imap-types' derives; postcard
/// cannot carry imap-types' adjacently tagged enums).
///
/// Bump `version` whenever the encoding of a [`Summary`] changes (a field,
/// an imap-types upgrade that changes its serde form, a change in what
/// [`Summary::of`] computes): digests of an older version are then never
/// read, and those messages are parsed again at their first FETCH.
pub const DIGESTER: Digester = Digester {
    version: 1,
    digest: digest_of,
};

fn digest_of(raw: &[u8]) -> Vec<u8> {
    // Cannot fail (no maps with non-string keys); an empty digest would
    // not decode, and the body would be parsed at FETCH.
    serde_json::to_vec(&Summary::of(&Parsed::parse(raw))).unwrap_or_default()
}

/// What FETCH answers without the message's bytes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub envelope: Envelope<'static>,
    /// BODY (non-extensible).
    pub body: BodyStructure<'static>,
    /// BODYSTRUCTURE (with extension data).
    pub structure: BodyStructure<'static>,
    /// The THREADID value of the thread's root Message-ID, if the
    /// message names one.
    thread_root: Option<u64>,
}

impl Summary {
    pub fn of(parsed: &Parsed<'_>) -> Self {
        Self {
            envelope: parsed.envelope(),
            body: parsed.body_structure(false),
            structure: parsed.body_structure(true),
            thread_root: thread_root(parsed).map(|root| objectid::thread_value(&root)),
        }
    }

    /// A summary made by [`DIGESTER`] (read from disk: untrusted; `None`
    /// when it does not decode, imap-types' checks included).
    pub fn from_digest(digest: &[u8]) -> Option<Self> {
        serde_json::from_slice(digest).ok()
    }

    /// The THREADID value of the message whose body hash is `body_hash`:
    /// its thread root's, or for a message naming no Message-ID at all
    /// (its own thread), its EMAILID value.
    pub fn thread(&self, body_hash: &[u8; 32]) -> u64 {
        self.thread_root
            .unwrap_or_else(|| objectid::email_value(body_hash))
    }
}

/// The cache (one per shard).
pub struct Summaries {
    capacity: usize,
    entries: RefCell<HashMap<[u8; 32], Rc<Summary>>>,
    order: RefCell<VecDeque<[u8; 32]>>,
}

impl Summaries {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RefCell::default(),
            order: RefCell::default(),
        }
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<Rc<Summary>> {
        self.entries.borrow().get(hash).cloned()
    }

    /// Keeps `summary` for `hash` (evicting the oldest entry when full).
    pub fn insert(&self, hash: [u8; 32], summary: Summary) -> Rc<Summary> {
        let summary = Rc::new(summary);
        let mut entries = self.entries.borrow_mut();
        if self.capacity == 0 {
            return summary;
        }
        if entries.insert(hash, summary.clone()).is_none() {
            let mut order = self.order.borrow_mut();
            order.push_back(hash);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    entries.remove(&old);
                }
            }
        }
        summary
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_drops_the_oldest() {
        let cache = Summaries::new(2);
        let raw = b"Subject: hi\r\n\r\nbody\r\n";
        let parsed = Parsed::parse(raw);
        for i in 0..3u8 {
            cache.insert([i; 32], Summary::of(&parsed));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&[0; 32]).is_none(), "the oldest went");
        assert!(cache.get(&[1; 32]).is_some() && cache.get(&[2; 32]).is_some());
        let again = cache.insert([2; 32], Summary::of(&parsed));
        assert_eq!(cache.len(), 2);
        assert!(again.envelope.subject.0.is_some());
    }

    #[test]
    fn digests_round_trip_on_every_fixture() {
        use crate::message::fixtures::{alternative, bare, mixed, thread_set};
        let all = [alternative(), mixed(), bare()]
            .into_iter()
            .chain(thread_set());
        for (i, raw) in all.enumerate() {
            let digest = (DIGESTER.digest)(&raw);
            let back = Summary::from_digest(&digest);
            assert_eq!(
                back.as_ref(),
                Some(&Summary::of(&Parsed::parse(&raw))),
                "fixture {i}"
            );
        }
    }

    #[test]
    fn digests_that_do_not_decode_are_refused() {
        let digest = (DIGESTER.digest)(b"Subject: hi\r\n\r\nbody\r\n");
        assert!(Summary::from_digest(&digest).is_some());
        assert!(Summary::from_digest(&digest[..digest.len() - 1]).is_none());
        assert!(Summary::from_digest(b"").is_none());
        assert!(Summary::from_digest(b"{}").is_none());
        // A quoted string imap-types' checks refuse (a CR in a subject).
        let text = String::from_utf8_lossy(&digest).replace("\"hi\"", "\"h\\ri\"");
        assert_ne!(text.as_bytes(), &digest[..]);
        assert!(Summary::from_digest(text.as_bytes()).is_none(), "{text}");
    }
}

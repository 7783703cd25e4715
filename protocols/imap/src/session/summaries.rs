//! The shard's cache of the parts of a message FETCH asks for most and
//! that cost a read and a parse each: ENVELOPE, BODY and BODYSTRUCTURE
//! (and the thread a THREADID names, RFC 8474), by
//! the body's hash (bodies never change, and a body delivered to many
//! mailboxes is one entry). A client listing a mailbox reads each message
//! once, then from here. Bounded by entries; the oldest go first.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;

use crate::codec::objectid;
use crate::message::{thread_root, Parsed};

/// Entries kept by default (a summary is typically under 2 KiB).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// What FETCH answers without the message's bytes.
#[derive(Debug)]
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
}

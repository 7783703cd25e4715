//! Key claims: a commit holds every key it reads or writes from before its
//! conditions are checked until its changes are applied (or failed), so
//! that the conditions still hold when it applies and the log orders any
//! two batches that share a key as they were checked. Commits on disjoint
//! keys do not wait for each other and share group commits.
//!
//! A commit claims all of its keys at once or none, so claims never
//! deadlock.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use event_listener::Event;

/// A table name and an encoded key.
pub(super) type ClaimKey = (String, Vec<u8>);

/// The keys claimed by commits in flight.
#[derive(Default)]
pub(super) struct Claims {
    held: RefCell<HashSet<ClaimKey>>,
    released: Event,
}

/// Holds its keys until dropped.
pub(super) struct Claim {
    claims: Rc<Claims>,
    keys: Vec<ClaimKey>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.claims.held.borrow_mut();
        for key in &self.keys {
            held.remove(key);
        }
        drop(held);
        // Waiters want keys we do not know; each checks its own again.
        self.claims.released.notify(usize::MAX);
    }
}

impl Claims {
    /// Waits until none of `keys` is held, then holds them all.
    pub async fn claim(self: &Rc<Self>, keys: Vec<ClaimKey>) -> Claim {
        loop {
            if self.try_claim(&keys) {
                return Claim {
                    claims: self.clone(),
                    keys,
                };
            }
            let listener = self.released.listen();
            if self.try_claim(&keys) {
                return Claim {
                    claims: self.clone(),
                    keys,
                };
            }
            listener.await;
        }
    }

    fn try_claim(&self, keys: &[ClaimKey]) -> bool {
        let mut held = self.held.borrow_mut();
        if keys.iter().any(|k| held.contains(k)) {
            return false;
        }
        held.extend(keys.iter().cloned());
        true
    }
}

//! `\Recent` (RFC 3501): a message is recent to the first session that
//! sees it in its mailbox after it arrived. Kept per shard in memory (a
//! mailbox's sessions all run on its owner's shard): for each mailbox,
//! the first UID no session has claimed yet.

use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Default)]
pub struct Recent {
    marks: RefCell<HashMap<(String, String), u32>>,
}

impl Recent {
    /// Claims the messages from the mark up to `uidnext` (exclusive) for
    /// the calling session: returns the first UID that is recent to it.
    pub fn claim(&self, account: &str, mailbox: &str, uidnext: u32) -> u32 {
        let mut marks = self.marks.borrow_mut();
        let mark = marks
            .entry((account.to_string(), mailbox.to_string()))
            .or_insert(1);
        let first = *mark;
        *mark = (*mark).max(uidnext);
        first
    }

    /// How many messages of `uids` (at or over the mark) are recent to
    /// nobody yet, without claiming them (STATUS RECENT).
    pub fn unclaimed(&self, account: &str, mailbox: &str, uids: impl Iterator<Item = u32>) -> u32 {
        let mark = self
            .marks
            .borrow()
            .get(&(account.to_string(), mailbox.to_string()))
            .copied()
            .unwrap_or(1);
        uids.filter(|&u| u >= mark).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_session_claims() {
        let r = Recent::default();
        assert_eq!(r.unclaimed("a", "INBOX", [1, 2].into_iter()), 2);
        assert_eq!(r.claim("a", "INBOX", 3), 1);
        assert_eq!(r.claim("a", "INBOX", 3), 3);
        assert_eq!(r.unclaimed("a", "INBOX", [1, 2, 3].into_iter()), 1);
        assert_eq!(r.claim("a", "INBOX", 4), 3);
    }
}

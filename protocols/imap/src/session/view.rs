//! The selected mailbox as this session knows it: sequence number → UID,
//! the MODSEQ each message had when last reported, which are `\Recent`
//! here; and the diff against the store that reports others' changes
//! (`EXISTS`, `RECENT`, `EXPUNGE` or `VANISHED`, `FETCH (FLAGS …)`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use cairn_storage::mailbox::flags::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN};
use cairn_storage::mailbox::{Flags, Mailbox};
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::recent::Recent;
use super::Enabled;
use crate::codec::response;

pub(crate) struct View {
    /// The mailbox's name in the store.
    pub(crate) mailbox: String,
    pub(crate) read_only: bool,
    /// UIDs in sequence order (ascending).
    uids: Vec<u32>,
    /// The MODSEQ last reported for each, parallel to `uids`.
    modseqs: Vec<u64>,
    /// Messages that are `\Recent` in this session.
    recent: BTreeSet<u32>,
    /// The mailbox's HIGHESTMODSEQ when last synced.
    synced_modseq: u64,
    /// The saved search result (RFC 5182 SEARCHRES), as UIDs.
    pub(crate) saved: Vec<u32>,
    /// IMAP4rev2: nothing is `\Recent`, no RECENT responses.
    pub(crate) rev2: bool,
}

/// The flags as IMAP writes them, `(\Seen foo)`.
pub(crate) fn flag_list(flags: &Flags, recent: bool) -> String {
    let mut s = String::from("(");
    for (bit, name) in [
        (SEEN, "\\Seen"),
        (ANSWERED, "\\Answered"),
        (FLAGGED, "\\Flagged"),
        (DELETED, "\\Deleted"),
        (DRAFT, "\\Draft"),
    ] {
        if flags.system & bit != 0 {
            s.push_str(name);
            s.push(' ');
        }
    }
    if recent {
        s.push_str("\\Recent ");
    }
    for k in &flags.keywords {
        s.push_str(k);
        s.push(' ');
    }
    if s.ends_with(' ') {
        s.pop();
    }
    s.push(')');
    s
}

/// Resolves a set against sorted `values` (sequence numbers when `max` is
/// the count, or UIDs): the positions in `values` it names.
fn positions(set: &SequenceSet, values: &[u32], largest: u32) -> BTreeSet<usize> {
    let resolve = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut out = BTreeSet::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(s) => (resolve(s), resolve(s)),
            Sequence::Range(x, y) => (resolve(x), resolve(y)),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        let start = values.partition_point(|&v| v < lo);
        let end = values.partition_point(|&v| v <= hi);
        out.extend(start..end);
    }
    out
}

impl View {
    /// Opens the view of `mb` (claiming its recent messages).
    pub(crate) fn open(
        name: String,
        mb: &Mailbox,
        read_only: bool,
        recent: &Recent,
        account: &str,
    ) -> Self {
        let first_recent = if read_only {
            u32::MAX
        } else {
            recent.claim(account, &name, mb.uidnext)
        };
        let uids: Vec<u32> = mb.messages.keys().copied().collect();
        Self {
            recent: uids
                .iter()
                .copied()
                .filter(|&u| u >= first_recent)
                .collect(),
            modseqs: mb.messages.values().map(|m| m.modseq).collect(),
            uids,
            mailbox: name,
            read_only,
            synced_modseq: mb.highest_modseq,
            saved: Vec::new(),
            rev2: false,
        }
    }

    pub(crate) fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    pub(crate) fn recent_count(&self) -> u32 {
        if self.rev2 {
            0
        } else {
            self.recent.len() as u32
        }
    }

    pub(crate) fn is_recent(&self, uid: u32) -> bool {
        !self.rev2 && self.recent.contains(&uid)
    }

    /// The saved search result for `$` (RFC 5182), as UIDs or sequence
    /// numbers of the messages still here (see [`set_in_command`]).
    pub(crate) fn saved_set(&self, uid: bool) -> String {
        let ids: Vec<u32> = if uid {
            self.saved
                .iter()
                .copied()
                .filter(|u| self.uids.binary_search(u).is_ok())
                .collect()
        } else {
            self.saved.iter().filter_map(|&u| self.seq_of(u)).collect()
        };
        set_in_command(&ids)
    }

    pub(crate) fn uids(&self) -> &[u32] {
        &self.uids
    }

    /// The sequence number of a UID.
    pub(crate) fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// The (sequence number, UID) pairs a set names, in order.
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        let picked = if uid {
            let largest = self.uids.last().copied().unwrap_or(0);
            positions(set, &self.uids, largest)
        } else {
            let seqs: Vec<u32> = (1..=self.exists()).collect();
            positions(set, &seqs, self.exists())
        };
        picked
            .into_iter()
            .filter_map(|i| self.uids.get(i).map(|&u| (i as u32 + 1, u)))
            .collect()
    }

    /// The UIDs a QRESYNC known-UIDs set names that the mailbox had or
    /// has (`*` is the highest UID ever given).
    pub(crate) fn resolve_known(&self, set: &SequenceSet, mb: &Mailbox) -> Vec<u32> {
        let mut all: Vec<u32> = mb.messages.keys().copied().collect();
        all.extend(mb.expunged.iter().map(|(u, _)| *u));
        all.sort_unstable();
        all.dedup();
        let largest = mb.uidnext.saturating_sub(1);
        positions(set, &all, largest)
            .into_iter()
            .filter_map(|i| all.get(i).copied())
            .collect()
    }

    /// Records that `uid` was reported at `modseq` by the command itself.
    pub(crate) fn reported(&mut self, uid: u32, modseq: u64) {
        if let Ok(i) = self.uids.binary_search(&uid) {
            if let Some(m) = self.modseqs.get_mut(i) {
                *m = (*m).max(modseq);
            }
        }
    }

    /// Reports what changed in `mb` since the last sync.
    pub(crate) fn sync(
        &mut self,
        mb: &Mailbox,
        allow_expunge: bool,
        enabled: Enabled,
        recent: &Recent,
        account: &str,
        out: &mut Vec<u8>,
    ) {
        let last_uid = self.uids.last().copied().unwrap_or(0);
        if mb.highest_modseq == self.synced_modseq
            && mb.messages.len() == self.uids.len()
            && mb.messages.keys().next_back().copied().unwrap_or(0) == last_uid
        {
            return;
        }
        let mut complete = true;
        // Expunges, highest sequence number first (no renumbering).
        let gone: Vec<usize> = self
            .uids
            .iter()
            .enumerate()
            .filter(|(_, u)| !mb.messages.contains_key(u))
            .map(|(i, _)| i)
            .collect();
        if !gone.is_empty() {
            if allow_expunge {
                let mut vanished = Vec::new();
                for &i in gone.iter().rev() {
                    let uid = self.uids.remove(i);
                    self.modseqs.remove(i);
                    self.recent.remove(&uid);
                    if enabled.qresync {
                        vanished.push(uid);
                    } else {
                        response::untagged(out, &format!("{} EXPUNGE", i + 1));
                    }
                }
                if !vanished.is_empty() {
                    vanished.sort_unstable();
                    response::untagged(out, &format!("VANISHED {}", uid_set(&vanished)));
                }
            } else {
                complete = false;
            }
        }
        // Flag changes.
        for (i, uid) in self.uids.iter().enumerate() {
            let (Some(m), Some(seen)) = (mb.messages.get(uid), self.modseqs.get_mut(i)) else {
                continue;
            };
            if m.modseq > *seen {
                *seen = m.modseq;
                let mut line = format!(
                    "{} FETCH (UID {uid} FLAGS {}",
                    i + 1,
                    flag_list(&m.flags, self.is_recent(*uid))
                );
                if enabled.condstore {
                    let _ = write!(line, " MODSEQ ({})", m.modseq);
                }
                line.push(')');
                response::untagged(out, &line);
            }
        }
        // New messages.
        let before = self.uids.len();
        for (uid, m) in mb.messages.range(last_uid.saturating_add(1)..) {
            self.uids.push(*uid);
            self.modseqs.push(m.modseq);
        }
        if self.uids.len() != before {
            response::untagged(out, &format!("{} EXISTS", self.uids.len()));
            if !self.read_only {
                let first = recent.claim(account, &self.mailbox, mb.uidnext);
                let fresh: Vec<u32> = self
                    .uids
                    .iter()
                    .copied()
                    .filter(|&u| u >= first && u > last_uid)
                    .collect();
                self.recent.extend(fresh);
            }
            if !self.rev2 {
                response::untagged(out, &format!("{} RECENT", self.recent.len()));
            }
        }
        if complete {
            self.synced_modseq = mb.highest_modseq;
        }
    }
}

/// A set written into a command in place of `$` or an object id key:
/// an empty one is a number no message has, so that it names nothing.
pub(crate) fn set_in_command(ids: &[u32]) -> String {
    if ids.is_empty() {
        u32::MAX.to_string()
    } else {
        uid_set(ids)
    }
}

/// A UID set in the shortest form, `1:3,7`.
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut s = String::new();
    let mut iter = uids.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end.wrapping_add(1))) {
            end = end.wrapping_add(1);
            iter.next();
        }
        if !s.is_empty() {
            s.push(',');
        }
        if start == end {
            let _ = write!(s, "{start}");
        } else {
            let _ = write!(s, "{start}:{end}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        let set: SequenceSet = "2:*".try_into().expect("set");
        assert_eq!(
            positions(&set, &[3, 5, 9], 9)
                .into_iter()
                .collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let set: SequenceSet = "4:6,1".try_into().expect("set");
        assert_eq!(
            positions(&set, &[3, 5, 9], 9)
                .into_iter()
                .collect::<Vec<_>>(),
            vec![1]
        );
        let set: SequenceSet = "1:4294967295".try_into().expect("set");
        assert_eq!(positions(&set, &[3, 5], 5).len(), 2);
    }
}

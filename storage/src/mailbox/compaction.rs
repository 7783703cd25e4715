//! The mailstore's part of compaction: emptying a sealed segment of the
//! bodies that matter. A body no message refers to and no operation in
//! flight will (see `blobs`) is forgotten; every other body in the segment
//! is read and appended again through the normal, group-committed path,
//! and once the copy is durable the index points at it.
//!
//! The copy is an ordinary blob record: replay maps the hash to the newest
//! record holding it, so recovery finds the copy whether or not the old
//! segment is still there, and messages resolve their body by hash (the
//! references they hold are refreshed by [`MailStore::relink`] and at
//! start). Nothing here deletes a file: the caller removes the segment once
//! a durable checkpoint no longer refers to it (`shard_store`).
//!
//! Work goes in bounded batches (a batch of reads, then one batch of
//! appends waited for together), with no lock held: writers keep appending
//! and share the group commits.

use super::{MailError, MailStore};
use crate::kinds;
use crate::log::Appending;

/// What emptying one segment did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evacuated {
    /// Bodies copied into the active segment.
    pub moved: u64,
    /// Their payload bytes.
    pub moved_bytes: u64,
    /// Dead bodies forgotten.
    pub forgotten: u64,
    /// Bodies still in the segment (a body was pinned again while it was
    /// being copied, or it moved meanwhile): the segment must stay.
    pub left: u64,
}

impl MailStore {
    /// Frame bytes of the live bodies per segment.
    pub fn live_blob_bytes(&self) -> std::collections::HashMap<u64, u64> {
        self.inner.blobs.live_bytes()
    }

    /// Moves the live bodies out of `segment` (sealed: nothing is appended
    /// to it any more) and forgets the dead ones, in batches of about
    /// `batch_bytes`. Afterwards the index holds nothing in `segment`
    /// unless [`Evacuated::left`] says otherwise.
    pub async fn evacuate(&self, segment: u64, batch_bytes: usize) -> Result<Evacuated, MailError> {
        let blobs = &self.inner.blobs;
        let log = &self.inner.log;
        let mut done = Evacuated::default();
        let found = blobs.in_segment(segment);
        let mut rest = found.as_slice();
        while !rest.is_empty() {
            let mut take = 0;
            let mut bytes = 0usize;
            while let Some(b) = rest.get(take) {
                if take > 0 && bytes + b.len as usize > batch_bytes {
                    break;
                }
                bytes += b.len as usize;
                take += 1;
            }
            let (batch, after) = rest.split_at(take);
            rest = after;
            let mut copies = Vec::new();
            for b in batch {
                if blobs.forget(b) {
                    done.forgotten += 1;
                    continue;
                }
                if blobs.find(&b.hash) != Some(*b) {
                    continue;
                }
                // Pinned for the copy, so that it is not forgotten meanwhile.
                let pin = blobs.pin(b.hash);
                let payload = log
                    .read(crate::log::Location {
                        seq: b.seq,
                        segment: b.segment,
                        offset: b.offset,
                        len: b.len,
                    })
                    .await?;
                if payload.get(..32) != Some(&b.hash[..]) {
                    return Err(MailError::Corrupt(format!(
                        "the body at segment {} offset {} does not carry its hash",
                        b.segment, b.offset
                    )));
                }
                copies.push((*b, pin, payload));
            }
            let appending: Vec<(_, Appending)> = copies
                .iter()
                .map(|(b, _, payload)| (b, log.start_append(kinds::BLOB, payload)))
                .collect();
            for (b, append) in appending {
                let at = append.wait().await?;
                if blobs.moved(b, at) {
                    done.moved += 1;
                    done.moved_bytes += u64::from(b.len);
                }
            }
        }
        done.left = blobs.in_segment(segment).len() as u64;
        Ok(done)
    }

    /// Points every message at its body's place now (after bodies moved),
    /// so that a checkpoint refers to no segment compaction emptied; returns
    /// how many references changed.
    pub fn relink(&self) -> usize {
        let blobs = &self.inner.blobs;
        self.inner
            .state
            .borrow_mut()
            .relink(&|hash| blobs.find(hash))
    }
}

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
//! A body's digest (`digests`) is a record of its own: it is copied the
//! same way while its body is live, and forgotten with it.
//!
//! Work goes in bounded batches (a batch of reads, then one batch of
//! appends waited for together), with no lock held: writers keep appending
//! and share the group commits.

use super::digests::DigestRef;
use super::{MailError, MailStore};
use crate::kinds;
use crate::log::{Appending, Location};

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

    /// Moves the live bodies and their digests out of `segment` (sealed:
    /// nothing is appended to it any more) and forgets the dead ones (and
    /// digests of another version than the digester's), in batches of
    /// about `batch_bytes`. Afterwards the index holds nothing in `segment`
    /// unless [`Evacuated::left`] says otherwise.
    pub async fn evacuate(&self, segment: u64, batch_bytes: usize) -> Result<Evacuated, MailError> {
        let blobs = &self.inner.blobs;
        let mut done = Evacuated::default();
        let found = blobs.in_segment(segment);
        for batch in batches(&found, |b| b.len, batch_bytes) {
            let mut keep = Vec::new();
            for b in batch {
                if blobs.forget(b) {
                    done.forgotten += 1;
                } else if blobs.find(&b.hash) == Some(*b) {
                    // Pinned for the copy, so that it is not forgotten meanwhile.
                    keep.push((*b, blobs.pin(b.hash)));
                }
            }
            let places = keep.iter().map(|(b, _)| (b.hash, b.location()));
            let copies = self.copy_records(kinds::BLOB, places).await?;
            for ((b, _pin), at) in keep.iter().zip(copies) {
                if blobs.moved(b, at) {
                    done.moved += 1;
                    done.moved_bytes += u64::from(b.len);
                }
            }
        }
        let digests = blobs.digests_in_segment(segment);
        for batch in batches(&digests, |d| d.len, batch_bytes) {
            let keep: Vec<DigestRef> = batch
                .iter()
                .filter(|d| !blobs.forget_digest(d) && blobs.holds_digest(d))
                .copied()
                .collect();
            let places = keep.iter().map(|d| (d.hash, d.location()));
            let copies = self.copy_records(kinds::BLOB_DIGEST, places).await?;
            for (d, at) in keep.iter().zip(copies) {
                blobs.moved_digest(d, at);
            }
        }
        done.left =
            (blobs.in_segment(segment).len() + blobs.digests_in_segment(segment).len()) as u64;
        Ok(done)
    }

    /// Reads the records at `places` (each starting with its body's hash)
    /// and appends copies of them as `kind`, waited for together; returns
    /// the copies' places, in order.
    async fn copy_records(
        &self,
        kind: u8,
        places: impl Iterator<Item = ([u8; 32], Location)>,
    ) -> Result<Vec<Location>, MailError> {
        let log = &self.inner.log;
        let mut payloads = Vec::new();
        for (hash, at) in places {
            let payload = log.read(at).await?;
            if payload.get(..32) != Some(&hash[..]) {
                return Err(MailError::Corrupt(format!(
                    "the record at segment {} offset {} does not carry its body's hash",
                    at.segment, at.offset
                )));
            }
            payloads.push(payload);
        }
        let appending: Vec<Appending> = payloads
            .iter()
            .map(|payload| log.start_append(kind, payload))
            .collect();
        let mut copies = Vec::with_capacity(appending.len());
        for append in appending {
            copies.push(append.wait().await?);
        }
        Ok(copies)
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

/// `items` cut into runs of about `batch_bytes` (by `len`), each holding
/// at least one item.
fn batches<T>(items: &[T], len: impl Fn(&T) -> u32, batch_bytes: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let mut take = 0;
        let mut bytes = 0usize;
        while let Some(item) = rest.get(take) {
            let n = len(item) as usize;
            if take > 0 && bytes + n > batch_bytes {
                break;
            }
            bytes += n;
            take += 1;
        }
        let (batch, after) = rest.split_at(take);
        out.push(batch);
        rest = after;
    }
    out
}

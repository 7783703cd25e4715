//! Message bodies read in chunks, for protocols that send a body (or a
//! byte range of it) to a socket without holding it whole: IMAP `BODY[]`
//! and its kin, POP3 RETR. A [`BodyReader`] reads the body's record in
//! pieces of [`BODY_CHUNK`] bytes through the segment log
//! ([`crate::log::RecordReader`]).
//!
//! The body is found by its hash, where the index says it lies now, like
//! [`MailStore::body`](super::MailStore::body) (a body moved by compaction
//! while the reader opened is opened again at its new place). Once open,
//! the reader holds the segment file open: compaction may copy the body
//! and remove the file meanwhile, and the reads go on from the file as it
//! was. No pin is needed for that, so a reader does not keep a body that
//! its messages gave up from being forgotten.
//!
//! A whole body is hashed as it goes and checked against its SHA-256 at
//! the end: a mismatch is the reader's last item, [`MailError::Corrupt`],
//! after every byte was handed out (a caller that already sent them cannot
//! take them back, and must end its connection rather than report success).
//! A range is not checked (that would read the whole body for every
//! piece): its record's header and stored hash are, when it opens.

use std::ops::Range;

use sha2::{Digest, Sha256};

use super::blobs::Blobs;
use super::ops::BlobRef;
use super::MailError;
use crate::log::{RecordReader, SegmentLog};

/// The most bytes a [`BodyReader`] hands out at a time: every chunk but
/// the last of a read is this long.
pub const BODY_CHUNK: usize = 64 * 1024;

/// Bytes before the body in its record: its SHA-256.
const HASH_LEN: u64 = 32;

/// A body, or a range of it, being read in chunks (see the module).
pub struct BodyReader {
    record: RecordReader,
    hash: [u8; 32],
    /// The next byte of the body to hand out, and the end of what is read.
    next: u64,
    end: u64,
    /// The bytes handed out in all.
    size: u64,
    /// Hashes the body as it is read (whole reads only).
    hasher: Option<Sha256>,
    /// Everything was handed out, or an error was.
    done: bool,
}

impl BodyReader {
    /// Opens the body `blob` (see [`Blobs::resolve`]): all of it, or the
    /// bytes `range` of it (cut at the body's end: a range starting past
    /// it reads nothing).
    pub(super) async fn open(
        blobs: &Blobs,
        log: &SegmentLog,
        blob: &BlobRef,
        range: Option<Range<u64>>,
    ) -> Result<Self, MailError> {
        blobs.count_read(|r| r.streams += 1);
        // The hash, and the first chunk or a range within it, are read
        // with the record's header: one read for a small range.
        let head = HASH_LEN as usize
            + match &range {
                None => BODY_CHUNK,
                Some(r) if r.end <= BODY_CHUNK as u64 => r.end as usize,
                Some(_) => 0,
            };
        let first = blobs.resolve(blob)?;
        let record = match open_at(log, &first, head).await {
            Ok(record) => record,
            Err(e) => match blobs.resolve(blob) {
                Ok(now) if now != first => open_at(log, &now, head).await?,
                _ => return Err(e),
            },
        };
        let body_len = u64::from(record.payload_len()) - HASH_LEN;
        let (next, end, hasher) = match range {
            None => (0, body_len, Some(Sha256::new())),
            Some(r) => {
                let start = r.start.min(body_len);
                (start, r.end.clamp(start, body_len), None)
            }
        };
        Ok(Self {
            record,
            hash: blob.hash,
            next,
            end,
            size: end - next,
            hasher,
            done: false,
        })
    }

    /// The bytes this reader hands out in all.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next chunk; `None` once everything was handed out (a whole
    /// body's hash checked) or after an error.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, MailError>> {
        if self.done {
            return None;
        }
        if self.next >= self.end {
            self.done = true;
            let hash = self.hasher.take().map(|h| <[u8; 32]>::from(h.finalize()));
            return match hash {
                Some(hash) if hash != self.hash => Some(Err(MailError::Corrupt(
                    "blob content does not match its hash".into(),
                ))),
                _ => None,
            };
        }
        let want = (self.end - self.next).min(BODY_CHUNK as u64);
        match self.record.read(HASH_LEN + self.next, want as usize).await {
            Ok(chunk) => {
                self.next += want;
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&chunk);
                }
                Some(Ok(chunk))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e.into()))
            }
        }
    }
}

/// Opens the record of `blob` (its first `head` bytes read at once) and
/// checks the hash stored at its head.
async fn open_at(log: &SegmentLog, blob: &BlobRef, head: usize) -> Result<RecordReader, MailError> {
    let record = log.open_record(blob.location(), head).await?;
    if u64::from(record.payload_len()) < HASH_LEN {
        return Err(MailError::Corrupt(
            "blob record shorter than its hash".into(),
        ));
    }
    if record.read(0, HASH_LEN as usize).await? != blob.hash {
        return Err(MailError::Corrupt("blob hash does not match".into()));
    }
    Ok(record)
}

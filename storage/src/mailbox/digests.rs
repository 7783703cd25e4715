//! Digests: what a protocol computes from a body once (IMAP: ENVELOPE and
//! BODYSTRUCTURE), made when the body is first stored on the shard and
//! kept on disk beside it, so that reads need neither the body nor a parse.
//!
//! Storage does not know what a digest means: the shard's services are
//! given a [`Digester`] (a version and a plain function of the body), and a
//! digest is handed back only to a reader of the same version (a digest of
//! another version is as good as none: the reader parses the body).
//!
//! A digest is made off the shard, on its blocking pool, from a copy of a
//! new body once the body's record is queued; nobody waits for it (the
//! delivery is acknowledged once its body and its message are durable).
//! Its record ([`kinds::BLOB_DIGEST`]) is appended when it is made, so it
//! lies after its body's record, in a later group commit (a record of an
//! older store may lie before it); it is indexed once durable if its body
//! is stored by then. A digest is a cache: a body without one (a crash
//! before it was durable, a pool that failed, one still being made, or too
//! many being made at once) is parsed when read, and replay drops a digest
//! whose body it does not find. Reading a digest reads only that small
//! record. Its payload:
//!
//! ```text
//! | body hash (32) | version (u16 LE) | digest … |
//! ```
//!
//! [`kinds::BLOB_DIGEST`]: crate::kinds::BLOB_DIGEST

use crate::log::Location;

/// Bytes of a digest record before the digest.
const HEADER_LEN: usize = 34;

/// Computes the digest of a body; given to the mailstore when a shard's
/// services are built ([`MailStore::digest_with`](super::MailStore::digest_with)).
/// A plain function, so that it is `Copy` and `Send` across shards.
#[derive(Debug, Clone, Copy)]
pub struct Digester {
    /// The digest's format: a digest of another version is never handed
    /// back. Change it whenever `digest`'s output changes.
    pub version: u16,
    /// The digest of a raw body.
    pub digest: fn(&[u8]) -> Vec<u8>,
}

/// Where a body's digest lies, and the version of the [`Digester`] that
/// made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct DigestRef {
    /// The body's SHA-256.
    pub hash: [u8; 32],
    pub version: u16,
    pub seq: u64,
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl DigestRef {
    /// The digest of `hash` at version `version`, recorded at `at`.
    pub(super) fn new(hash: [u8; 32], version: u16, at: Location) -> Self {
        Self {
            hash,
            version,
            seq: at.seq,
            segment: at.segment,
            offset: at.offset,
            len: at.len,
        }
    }

    /// Its record's place in the log.
    pub(super) fn location(&self) -> Location {
        Location {
            seq: self.seq,
            segment: self.segment,
            offset: self.offset,
            len: self.len,
        }
    }
}

/// The payload of the digest record of `hash`.
pub(super) fn encode(hash: &[u8; 32], version: u16, digest: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(HEADER_LEN + digest.len());
    payload.extend_from_slice(hash);
    payload.extend_from_slice(&version.to_le_bytes());
    payload.extend_from_slice(digest);
    payload
}

/// The body hash, version and digest of a digest record's payload (`None`:
/// shorter than its header).
pub(super) fn decode(payload: &[u8]) -> Option<([u8; 32], u16, &[u8])> {
    let hash: [u8; 32] = payload.get(..32)?.try_into().ok()?;
    let version = u16::from_le_bytes(payload.get(32..HEADER_LEN)?.try_into().ok()?);
    Some((hash, version, payload.get(HEADER_LEN..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_short_ones_are_refused() {
        let payload = encode(&[7; 32], 3, b"summary");
        assert_eq!(decode(&payload), Some(([7; 32], 3, &b"summary"[..])));
        assert_eq!(
            decode(&encode(&[1; 32], 1, b"")),
            Some(([1; 32], 1, &b""[..]))
        );
        assert_eq!(decode(&payload[..33]), None);
        assert_eq!(decode(&[]), None);
    }
}

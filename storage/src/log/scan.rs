//! Reading a segment's bytes back into records, sans-IO: where the good
//! records are, where damage sits, and whether the segment ends in a torn
//! write (damage with nothing valid after it).

use crate::record::{decode, Corruption, Decoded, Record};

/// What is wrong at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Bytes that are not a record.
    Corrupt(Corruption),
    /// A record cut short.
    Incomplete,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Corrupt(c) => c.fmt(f),
            Damage::Incomplete => write!(f, "record cut short"),
        }
    }
}

/// A segment read back.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// Intact records and their offsets, in order.
    pub records: Vec<(u64, Record<'a>)>,
    /// Damaged ranges that have valid records after them (skipped).
    pub damaged: Vec<(u64, Damage)>,
    /// Where the last valid record ends: the next write goes here.
    pub end: u64,
    /// Damage with no valid record after it: a write that never completed.
    pub torn_tail: Option<(u64, Damage)>,
}

/// Scans `bytes` from the start.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut out = Scan::default();
    let mut pos = 0usize;
    let mut last_seq = None;
    while let Some(rest) = bytes.get(pos..) {
        let damage = match decode(rest) {
            Decoded::Record { record, len } => {
                last_seq = Some(record.seq);
                out.records.push((pos as u64, record));
                pos += len;
                continue;
            }
            Decoded::End => break,
            Decoded::Incomplete => Damage::Incomplete,
            Decoded::Corrupt(c) => Damage::Corrupt(c),
        };
        match resync(bytes, pos + 1, last_seq) {
            Some(next) => {
                out.damaged.push((pos as u64, damage));
                pos = next;
            }
            None => {
                out.torn_tail = Some((pos as u64, damage));
                break;
            }
        }
    }
    out.end = pos as u64;
    out
}

/// The first offset at or after `from` holding an intact record whose
/// sequence number follows `after` (so that bytes inside a payload that
/// happen to look like a record from the past are not taken for one).
fn resync(bytes: &[u8], from: usize, after: Option<u64>) -> Option<usize> {
    (from..bytes.len()).find(|&p| {
        bytes.get(p..).is_some_and(|rest| {
            matches!(decode(rest), Decoded::Record { record, .. }
                if after.is_none_or(|a| record.seq > a))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode;

    fn log_of(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for seq in 1..=n {
            starts.push(bytes.len());
            let payload = format!("record number {seq}");
            encode(
                &Record {
                    kind: 1,
                    seq,
                    payload: payload.as_bytes(),
                },
                &mut bytes,
            );
        }
        (bytes, starts)
    }

    #[test]
    fn a_clean_log_ends_at_the_zeroes() {
        let (mut bytes, _) = log_of(5);
        let end = bytes.len() as u64;
        bytes.resize(bytes.len() + 4096, 0);
        let s = scan(&bytes);
        assert_eq!(s.records.len(), 5);
        assert_eq!(s.end, end);
        assert!(s.damaged.is_empty() && s.torn_tail.is_none());
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let (bytes, starts) = log_of(5);
        let cut = &bytes[..bytes.len() - 3];
        let s = scan(cut);
        assert_eq!(s.records.len(), 4);
        assert_eq!(s.end, starts[4] as u64);
        assert_eq!(s.torn_tail, Some((starts[4] as u64, Damage::Incomplete)));
    }

    #[test]
    fn damage_in_the_middle_is_skipped_and_reported() {
        let (mut bytes, starts) = log_of(5);
        bytes[starts[2] + 22] ^= 0xff; // inside record 3's payload
        let s = scan(&bytes);
        let seqs: Vec<u64> = s.records.iter().map(|(_, r)| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 4, 5]);
        assert_eq!(s.damaged.len(), 1);
        assert_eq!(s.damaged[0].0, starts[2] as u64);
        assert!(s.torn_tail.is_none());
    }

    #[test]
    fn an_old_record_inside_a_payload_is_not_resynced_to() {
        let mut bytes = Vec::new();
        let mut inner = Vec::new();
        encode(
            &Record {
                kind: 1,
                seq: 1,
                payload: b"ghost",
            },
            &mut inner,
        );
        encode(
            &Record {
                kind: 1,
                seq: 5,
                payload: b"first",
            },
            &mut bytes,
        );
        let second = bytes.len();
        encode(
            &Record {
                kind: 1,
                seq: 6,
                payload: &inner,
            },
            &mut bytes,
        );
        bytes[second + 4] = 0; // break record 6's header
        let s = scan(&bytes);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.torn_tail.map(|(o, _)| o), Some(second as u64));
    }
}

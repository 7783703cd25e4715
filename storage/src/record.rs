//! The framing of the segment log, sans-IO: how one record is laid out on
//! disk and how a byte run is read back into records, telling a clean end
//! (zeroes past the last record), a torn tail and corruption apart.
//!
//! ```text
//! 0      4      5        8        16       20
//! | len  | kind | 0 0 0  |  seq   |  crc   | payload (len bytes) |
//! ```
//! All integers little-endian; `crc` is CRC32C over kind, the three zero
//! bytes, seq and the payload. A record never has `len == 0` and `kind == 0`
//! together with a zero crc, so a zeroed region reads as the end of the log.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;
/// The largest payload a record may carry (64 MiB): a length above it is
/// corruption, never an allocation.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// One record as written by a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// What the payload is (a table, a message blob, a checkpoint mark…);
    /// 0 is reserved.
    pub kind: u8,
    /// The log's sequence number, increasing by one per record.
    pub seq: u64,
    /// The bytes.
    pub payload: &'a [u8],
}

/// The size `record` takes on disk.
pub fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Appends the framed `record` to `out`.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let mut crc_input = [0u8; 12];
    crc_input[0] = record.kind;
    crc_input[4..12].copy_from_slice(&record.seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&crc_input), record.payload);
    out.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(record.payload);
}

/// What [`decode`] found at the start of a byte run.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact record taking `len` bytes.
    Record { record: Record<'a>, len: usize },
    /// Zeroes: nothing was ever written here.
    End,
    /// The bytes stop inside a record (a torn write, or the caller must read
    /// more).
    Incomplete,
    /// Bytes that are not a valid record.
    Corrupt(Corruption),
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// The length field is beyond [`MAX_PAYLOAD`].
    Length(u32),
    /// Kind 0 or non-zero reserved bytes.
    Header,
    /// The checksum does not match.
    Checksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::Length(n) => write!(f, "record length {n} is beyond the limit"),
            Corruption::Header => write!(f, "record header is malformed"),
            Corruption::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Reads the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return if buf.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Incomplete
        };
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let (Some(len), Some(stored)) = (u32_at(header, 0), u32_at(header, 16)) else {
        return Decoded::Incomplete;
    };
    if len as usize > MAX_PAYLOAD {
        return Decoded::Corrupt(Corruption::Length(len));
    }
    let crc_input = &header[4..16];
    if crc_input[0] == 0 || crc_input[1..4] != [0, 0, 0] {
        return Decoded::Corrupt(Corruption::Header);
    }
    let total = HEADER_LEN + len as usize;
    let Some(payload) = buf.get(HEADER_LEN..total) else {
        return Decoded::Incomplete;
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(crc_input), payload);
    if computed != stored {
        return Decoded::Corrupt(Corruption::Checksum { stored, computed });
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&crc_input[4..12]);
    Decoded::Record {
        record: Record {
            kind: crc_input[0],
            seq: u64::from_le_bytes(seq),
            payload,
        },
        len: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(kind: u8, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&Record { kind, seq, payload }, &mut out);
        out
    }

    #[test]
    fn zeroes_are_the_end_and_a_cut_record_is_incomplete() {
        assert_eq!(decode(&[0u8; 100]), Decoded::End);
        assert_eq!(decode(&[]), Decoded::End);
        let rec = framed(1, 7, b"hello");
        assert_eq!(decode(&rec[..rec.len() - 1]), Decoded::Incomplete);
        assert_eq!(decode(&rec[..5]), Decoded::Incomplete);
    }

    #[test]
    fn kind_zero_and_huge_lengths_are_corrupt() {
        let mut rec = framed(1, 1, b"x");
        rec[4] = 0;
        assert_eq!(decode(&rec), Decoded::Corrupt(Corruption::Header));
        let mut rec = framed(1, 1, b"x");
        rec[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&rec), Decoded::Corrupt(Corruption::Length(u32::MAX)));
    }

    proptest! {
        #[test]
        fn records_round_trip(kind in 1u8.., seq: u64, payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let bytes = framed(kind, seq, &payload);
            prop_assert_eq!(bytes.len(), encoded_len(payload.len()));
            match decode(&bytes) {
                Decoded::Record { record, len } => {
                    prop_assert_eq!(len, bytes.len());
                    prop_assert_eq!(record, Record { kind, seq, payload: &payload });
                }
                other => prop_assert!(false, "decoded {:?}", other),
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..512), bit in 0usize..4096) {
            let mut bytes = framed(3, 42, &payload);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let intact = matches!(decode(&bytes), Decoded::Record { ref record, .. } if record.payload == payload.as_slice() && record.seq == 42 && record.kind == 3);
            prop_assert!(!intact, "a flipped bit went unnoticed");
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}

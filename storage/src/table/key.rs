//! The byte encoding of table keys: order-preserving (the bytes of two keys
//! compare as the keys do, so that the in-memory maps scan in key order) and
//! prefix-free (no key's bytes begin another key's of the same type, so that
//! tuple keys are plain concatenations and scanning by a tuple's first
//! element is scanning by a byte prefix).
//!
//! - `u32`, `u64`: big-endian, fixed width.
//! - `String`: its UTF-8 bytes with every `0x00` written as `0x00 0xFF`,
//!   ended by `0x00 0x01`; so `"a" < "a\0" < "ab"` holds for the bytes too,
//!   and `("a", "b") < ("ab", "")`.
//! - `(A, B)`: `A`'s encoding followed by `B`'s.

/// A key of a [`Table`](super::Table): an order-preserving, prefix-free
/// byte encoding. The encoding is persisted, so it must never change.
pub trait TableKey: Sized {
    /// Appends the key's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one key from the start of `bytes`; returns it and the bytes
    /// after it, or `None` if they do not begin with a valid key.
    fn decode_prefix(bytes: &[u8]) -> Option<(Self, &[u8])>;

    /// Reads a key that takes exactly `bytes`.
    fn decode(bytes: &[u8]) -> Option<Self> {
        match Self::decode_prefix(bytes)? {
            (key, []) => Some(key),
            _ => None,
        }
    }

    /// The key's bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A key type whose values are prefixes of the key type `K`: every `K`
/// whose bytes begin with a prefix's bytes is one that begins with that
/// prefix (see [`Tables::scan_prefix`](super::Tables::scan_prefix)).
pub trait KeyPrefix<K: TableKey>: TableKey {}

impl<A: TableKey, B: TableKey> KeyPrefix<(A, B)> for A {}

impl TableKey for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_prefix(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (head, rest) = bytes.split_first_chunk::<8>()?;
        Some((u64::from_be_bytes(*head), rest))
    }
}

impl TableKey for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_prefix(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        Some((u32::from_be_bytes(*head), rest))
    }
}

/// Escapes a zero byte inside a string.
const ESCAPED_ZERO: u8 = 0xFF;
/// Ends a string.
const END: u8 = 0x01;

impl TableKey for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.len() + 2);
        for &b in self.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(ESCAPED_ZERO);
            }
        }
        out.extend_from_slice(&[0, END]);
    }

    fn decode_prefix(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let mut raw = Vec::new();
        let mut rest = bytes;
        loop {
            match rest {
                [0, ESCAPED_ZERO, tail @ ..] => {
                    raw.push(0);
                    rest = tail;
                }
                [0, END, tail @ ..] => return Some((String::from_utf8(raw).ok()?, tail)),
                [0, ..] | [] => return None,
                [b, tail @ ..] => {
                    raw.push(*b);
                    rest = tail;
                }
            }
        }
    }
}

impl<A: TableKey, B: TableKey> TableKey for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }

    fn decode_prefix(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (a, rest) = A::decode_prefix(bytes)?;
        let (b, rest) = B::decode_prefix(rest)?;
        Some(((a, b), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_zero_bytes_and_tuples_order_as_values() {
        let keys = ["", "\0", "\0\0", "a", "a\0", "a\0b", "ab", "b"];
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| k.to_string().to_bytes()).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
        let ab = ("a".to_string(), "b".to_string()).to_bytes();
        let ab_empty = ("ab".to_string(), String::new()).to_bytes();
        assert!(ab < ab_empty);
    }

    #[test]
    fn malformed_bytes_decode_to_none() {
        assert_eq!(String::decode(b"abc"), None, "no terminator");
        assert_eq!(String::decode(&[b'a', 0, 7]), None, "bad escape");
        assert_eq!(String::decode(&[0xC3, 0, END]), None, "not UTF-8");
        assert_eq!(u64::decode(&[1, 2, 3]), None, "short");
        assert_eq!(u32::decode(&[0, 0, 0, 1, 9]), None, "trailing bytes");
        assert_eq!(
            <(String, u32)>::decode(&[b'x', 0, END, 0, 0, 0, 5]),
            Some(("x".to_string(), 5))
        );
    }
}

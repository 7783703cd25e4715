//! Object identifiers (RFC 8474 OBJECTID): their syntax, and the ids
//! Cairn gives, all derived from what the store keeps anyway, so that
//! nothing new is stored and an id never changes:
//!
//! - MAILBOXID `F` + the mailbox's UIDVALIDITY in hex: the store gives
//!   each mailbox of an account a UIDVALIDITY above every one given
//!   before (never reused, even after a DELETE), and RENAME keeps it;
//! - EMAILID `M` + the first 64 bits of the body's SHA-256 (its blob
//!   key) in hex: every copy of a message (COPY, MOVE, one delivery to
//!   several mailboxes) has the same;
//! - THREADID `T` + the first 64 bits of the SHA-256 of the thread's
//!   root Message-ID (the first of References, else In-Reply-To, else
//!   the message's own id; see [`crate::message::thread_root`]), or the
//!   message's EMAILID value when it names no id at all.

use sha2::{Digest, Sha256};

/// The longest objectid (RFC 8474 §7).
pub const MAX_LEN: usize = 255;

/// `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`.
pub fn valid(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// The first 64 bits of a SHA-256, as a number.
fn prefix(hash: &[u8; 32]) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash;
    u64::from_be_bytes([a, b, c, d, e, f, g, h])
}

/// A mailbox's MAILBOXID.
pub fn mailbox(uidvalidity: u32) -> String {
    format!("F{uidvalidity:08x}")
}

/// The value an EMAILID writes, from the body's SHA-256.
pub fn email_value(body_hash: &[u8; 32]) -> u64 {
    prefix(body_hash)
}

/// The value a THREADID writes for the thread rooted at `root` (a
/// Message-ID without its angle brackets).
pub fn thread_value(root: &[u8]) -> u64 {
    prefix(&Sha256::digest(root).into())
}

/// An EMAILID.
pub fn email(value: u64) -> String {
    format!("M{value:016x}")
}

/// A THREADID.
pub fn thread(value: u64) -> String {
    format!("T{value:016x}")
}

/// The value of an EMAILID (`M…`), `None` for an id Cairn never gives.
pub fn parse_email(id: &str) -> Option<u64> {
    parse(id, 'M')
}

/// The value of a THREADID (`T…`), `None` for an id Cairn never gives.
pub fn parse_thread(id: &str) -> Option<u64> {
    parse(id, 'T')
}

fn parse(id: &str, letter: char) -> Option<u64> {
    let hex = id.strip_prefix(letter)?;
    let lower = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hex.len() != 16 || !hex.chars().all(lower) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_objectids_and_read_back() {
        let hash = [0xab; 32];
        let e = email(email_value(&hash));
        assert_eq!(e, "Mabababababababab");
        assert!(valid(e.as_bytes()));
        assert_eq!(parse_email(&e), Some(email_value(&hash)));
        assert_eq!(parse_thread(&e), None, "another kind");
        let t = thread(thread_value(b"1@example.org"));
        assert!(t.starts_with('T') && t.len() == 17 && valid(t.as_bytes()));
        assert_eq!(parse_thread(&t), Some(thread_value(b"1@example.org")));
        assert_eq!(mailbox(0x1234), "F00001234");
        assert!(valid(mailbox(u32::MAX).as_bytes()));
        for bad in ["", "M12", "MABABABABABABABAB", "M+bababababababab"] {
            assert_eq!(parse_email(bad), None, "{bad}");
        }
        assert!(!valid(b""));
        assert!(!valid(b"a b"));
        assert!(!valid(&[b'a'; 256]));
        assert!(valid(&[b'a'; 255]));
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(id in "[ -~]{0,40}", value in any::<u64>()) {
            let _ = parse_email(&id);
            let _ = parse_thread(&id);
            let _ = valid(id.as_bytes());
            prop_assert_eq!(parse_email(&email(value)), Some(value));
            prop_assert_eq!(parse_thread(&thread(value)), Some(value));
        }
    }
}

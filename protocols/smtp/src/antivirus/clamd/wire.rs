//! clamd's INSTREAM exchange on the wire, sans-IO: the request's framing
//! ([`request`]) and the reply's parser ([`parse_reply`]).
//!
//! The request is `zINSTREAM\0` (the `z` asks for NUL-terminated replies),
//! then the data as chunks, each a 4-byte big-endian length and that many
//! bytes, and a zero length to end. The one reply is
//!
//! - `stream: OK\0`: nothing found;
//! - `stream: NAME FOUND\0`: a signature matched (names from a database
//!   that ClamAV did not sign end in `.UNOFFICIAL`);
//! - `stream: REASON ERROR\0`: the scan failed;
//! - `INSTREAM size limit exceeded. ERROR\0`: the data went over clamd's
//!   `StreamMaxLength`; clamd sends this and closes at once, often before
//!   the whole request was written.
//!
//! Limits: a reply is at most [`MAX_REPLY`] bytes, a signature name at
//! most [`MAX_NAME`] visible ASCII characters (it goes into SMTP replies
//! and header fields); anything else is [`ReplyError::Malformed`].

use std::fmt;

/// The command that starts the exchange.
pub const COMMAND: &[u8] = b"zINSTREAM\0";

/// The chunk size clients commonly use (clamdscan sends 8 KiB; any size up
/// to clamd's `StreamMaxLength` is accepted).
pub const CHUNK: usize = 64 * 1024;

/// The longest reply read (a reply is one short line).
pub const MAX_REPLY: usize = 1024;

/// The longest signature name accepted in a reply.
pub const MAX_NAME: usize = 200;

/// The whole request for `data`, in chunks of at most `chunk` bytes (at
/// least 1).
pub fn request(data: &[u8], chunk: usize) -> Vec<u8> {
    let chunk = chunk.clamp(1, u32::MAX as usize);
    let frames = data.len().div_ceil(chunk) + 1;
    let mut out = Vec::with_capacity(COMMAND.len() + data.len() + 4 * frames);
    out.extend_from_slice(COMMAND);
    for piece in data.chunks(chunk) {
        // `chunk` fits in u32, so every piece's length does.
        out.extend_from_slice(&(piece.len() as u32).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Clean,
    /// A signature matched: its name.
    Found(String),
}

/// A reply that is not an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The data was over clamd's `StreamMaxLength`.
    SizeLimit,
    /// clamd could not scan: its reason (control characters replaced).
    Clamd(String),
    /// Not a reply to INSTREAM: its start (control characters replaced).
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::SizeLimit => f.write_str(
                "the message is over clamd's StreamMaxLength (raise it above Cairn's \
                 limits.max_message_size)",
            ),
            ReplyError::Clamd(reason) => write!(f, "clamd failed: {reason}"),
            ReplyError::Malformed(text) => write!(f, "not a clamd reply: {text:?}"),
        }
    }
}

/// Where the reply in `buf` ends (its NUL), if it is complete.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    memchr::memchr(0, buf).map(|at| at + 1)
}

/// Reads one reply: with or without its NUL (a reply cut short by the
/// connection closing is read as far as it goes), at most [`MAX_REPLY`]
/// bytes.
pub fn parse_reply(reply: &[u8]) -> Result<Answer, ReplyError> {
    let reply = reply.strip_suffix(b"\0").unwrap_or(reply);
    if reply.len() > MAX_REPLY {
        return Err(ReplyError::Malformed(shown(reply)));
    }
    let Ok(text) = std::str::from_utf8(reply) else {
        return Err(ReplyError::Malformed(shown(reply)));
    };
    // Without the `z`, clamd ends replies with a newline instead.
    let text = text.trim_end_matches('\n');
    if let Some(reason) = text.strip_suffix(" ERROR") {
        if reason.contains("size limit exceeded") {
            return Err(ReplyError::SizeLimit);
        }
        let reason = reason.strip_prefix("stream: ").unwrap_or(reason);
        return Err(ReplyError::Clamd(shown(reason.as_bytes())));
    }
    match text.strip_prefix("stream: ") {
        Some("OK") => Ok(Answer::Clean),
        Some(rest) => match rest.strip_suffix(" FOUND") {
            Some(name) if valid_name(name) => Ok(Answer::Found(name.to_string())),
            _ => Err(ReplyError::Malformed(shown(reply))),
        },
        None => Err(ReplyError::Malformed(shown(reply))),
    }
}

/// 1 to [`MAX_NAME`] visible ASCII characters.
fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Up to 100 characters of `bytes` for a log, control characters as `?`.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The request read back as clamd reads it: the data, and the length
    /// of every chunk (the zero that ends it included).
    fn read_request(mut bytes: &[u8]) -> Option<(Vec<u8>, Vec<usize>)> {
        bytes = bytes.strip_prefix(COMMAND)?;
        let (mut data, mut lengths) = (Vec::new(), Vec::new());
        loop {
            let (head, rest) = bytes.split_first_chunk::<4>()?;
            let len = u32::from_be_bytes(*head) as usize;
            lengths.push(len);
            if len == 0 {
                return rest.is_empty().then_some((data, lengths));
            }
            data.extend_from_slice(rest.get(..len)?);
            bytes = rest.get(len..)?;
        }
    }

    #[test]
    fn known_replies() {
        assert_eq!(parse_reply(b"stream: OK\0"), Ok(Answer::Clean));
        assert_eq!(parse_reply(b"stream: OK\n"), Ok(Answer::Clean));
        assert_eq!(
            parse_reply(b"stream: Cairn.Test.Ndb.UNOFFICIAL FOUND\0"),
            Ok(Answer::Found("Cairn.Test.Ndb.UNOFFICIAL".into()))
        );
        assert_eq!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ReplyError::SizeLimit)
        );
        assert_eq!(
            parse_reply(b"stream: Can't allocate memory ERROR\0"),
            Err(ReplyError::Clamd("Can't allocate memory".into()))
        );
        for bad in [
            &b"UNKNOWN COMMAND\0"[..],
            b"stream: FOUND\0",
            b"stream:  FOUND\0",
            b"stream: two words FOUND\0",
            b"stream: Evil\r\nX-Injected: 1 FOUND\0",
            b"",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
        let long = format!("stream: {} FOUND", "N".repeat(MAX_NAME + 1));
        assert!(parse_reply(long.as_bytes()).is_err());
        assert_eq!(reply_len(b"stream: OK\0rest"), Some(11));
        assert_eq!(reply_len(b"stream: O"), None);
    }

    #[test]
    fn an_empty_message_is_one_end_marker() {
        assert_eq!(request(b"", CHUNK), b"zINSTREAM\0\0\0\0\0");
        assert_eq!(
            request(b"abc", 2),
            b"zINSTREAM\0\0\0\0\x02ab\0\0\0\x01c\0\0\0\0"
        );
    }

    proptest! {
        #[test]
        fn the_request_frames_the_data_in_chunks(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            chunk in 1usize..600,
        ) {
            let bytes = request(&data, chunk);
            let (back, lengths) = read_request(&bytes).expect("well framed");
            prop_assert_eq!(back, data.clone());
            let (last, body) = lengths.split_last().expect("an end marker");
            prop_assert_eq!(*last, 0);
            prop_assert!(body.iter().all(|&n| n >= 1 && n <= chunk));
            prop_assert_eq!(body.len(), data.len().div_ceil(chunk));
        }

        #[test]
        fn any_reply_parses_without_panic_and_names_are_header_safe(
            reply in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            match parse_reply(&reply) {
                Ok(Answer::Found(name)) => prop_assert!(valid_name(&name)),
                Ok(Answer::Clean) => {}
                Err(ReplyError::Clamd(text) | ReplyError::Malformed(text)) => {
                    prop_assert!(!text.chars().any(char::is_control));
                }
                Err(ReplyError::SizeLimit) => {}
            }
        }

        #[test]
        fn found_replies_give_back_their_name(name in "[!-~]{1,200}") {
            let reply = format!("stream: {name} FOUND\0");
            prop_assert_eq!(parse_reply(reply.as_bytes()), Ok(Answer::Found(name)));
        }
    }
}

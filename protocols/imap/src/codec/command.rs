//! Command decoding over imap-codec: a framed command (see
//! [`super::framer`]) into a typed [`Command`], borrowing from the
//! framed bytes; and the tag of a command that cannot be decoded, for
//! its `BAD`.

use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::CommandCodec;
use imap_types::command::Command;
use imap_types::core::Tag;

/// Why a framed command is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Its tag, when it starts with a valid one.
    pub tag: Option<String>,
}

/// Decodes a whole command.
pub fn decode(bytes: &[u8]) -> Result<Command<'_>, Malformed> {
    match CommandCodec::default().decode(bytes) {
        Ok((b"", command)) => Ok(command),
        _ => Err(Malformed { tag: tag(bytes) }),
    }
}

/// Checks a command cut at a literal announcement: `Ok` when imap-codec
/// expects a literal there (with the command's tag), else the refusal.
pub fn check_literal(pending: &[u8]) -> Result<String, Malformed> {
    match CommandCodec::default().decode(pending) {
        Err(CommandDecodeError::LiteralFound { tag, .. }) => Ok(tag.inner().to_string()),
        _ => Err(Malformed { tag: tag(pending) }),
    }
}

/// The tag a line starts with, if it is a valid one.
pub fn tag(bytes: &[u8]) -> Option<String> {
    let end = memchr::memchr2(b' ', b'\r', bytes).unwrap_or(bytes.len());
    let word = std::str::from_utf8(bytes.get(..end)?).ok()?;
    Tag::try_from(word).ok().map(|t| t.inner().to_string())
}

/// The command name after the tag, upper-cased (for metrics and logs).
pub fn name(bytes: &[u8]) -> String {
    let mut words = bytes.split(|&b| b == b' ' || b == b'\r' || b == b'\n');
    let _tag = words.next();
    let name = words.next().unwrap_or_default();
    String::from_utf8_lossy(name).to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_and_finds_tags() {
        assert!(decode(b"a1 NOOP\r\n").is_ok());
        assert_eq!(
            decode(b"a1 FOO\r\n"),
            Err(Malformed {
                tag: Some("a1".into())
            })
        );
        assert_eq!(decode(b"{x NOOP\r\n"), Err(Malformed { tag: None }));
        assert_eq!(check_literal(b"a2 LOGIN {5}\r\n"), Ok("a2".into()));
        assert!(check_literal(b"a2 NOOP {5}\r\n").is_err());
        assert_eq!(name(b"a1 uid fetch 1 FLAGS\r\n"), "UID");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = check_literal(&bytes);
            let _ = tag(&bytes);
        }

        #[test]
        fn command_shaped_input_never_panics(
            name in "(FETCH|UID FETCH|STORE|SEARCH|APPEND|LOGIN|SELECT|LIST|STATUS|COPY) ",
            args in "[ -~]{0,80}",
        ) {
            let line = format!("t {name}{args}\r\n");
            let _ = decode(line.as_bytes());
        }
    }
}

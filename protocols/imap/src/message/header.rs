//! Raw header blocks: splitting a header into fields (name, raw value,
//! original lines with their folding), unfolding, and decoding a raw value
//! (RFC 2047 encoded-words) into UTF-8.

use std::borrow::Cow;

use mail_parser::{parsers::MessageStream, HeaderValue};

/// One header field as it stands in the raw message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    /// The field name, without the colon and trailing blanks.
    pub name: &'a [u8],
    /// Everything after the colon, folding and final line end included.
    pub value: &'a [u8],
    /// The field's complete lines, folding and final line end included.
    pub lines: &'a [u8],
}

impl Field<'_> {
    /// Whether the field is called `name` (ASCII case-insensitive).
    pub fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value unfolded and trimmed, as raw bytes.
    pub fn unfolded(&self) -> Vec<u8> {
        unfold(self.value)
    }

    /// The value unfolded and decoded (RFC 2047) into UTF-8.
    pub fn decoded(&self) -> String {
        decode(self.value)
    }
}

/// Iterates the fields of a header block, stopping at the blank line.
/// Lines that are not fields (no colon, stray continuation lines) are
/// skipped.
pub(crate) fn fields(block: &[u8]) -> Fields<'_> {
    Fields { rest: block }
}

/// The header block at the start of a raw message: its fields as
/// [`fields`] finds them and the blank line after them (all of `raw` when
/// there is none).
pub fn block(raw: &[u8]) -> &[u8] {
    let mut at = 0;
    loop {
        let rest = raw.get(at..).unwrap_or_default();
        if rest.is_empty() {
            return raw;
        }
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            let blank = if rest[0] == b'\r' { 2 } else { 1 };
            return raw.get(..at + blank).unwrap_or(raw);
        }
        at += field_len(rest).max(1);
    }
}

/// The iterator [`fields`] returns.
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        loop {
            if self.rest.is_empty()
                || self.rest.starts_with(b"\n")
                || self.rest.starts_with(b"\r\n")
            {
                return None;
            }
            let len = field_len(self.rest);
            let (lines, rest) = self.rest.split_at(len.min(self.rest.len()));
            self.rest = rest;
            if let Some(field) = split_field(lines) {
                return Some(field);
            }
        }
    }
}

/// The length of the field at the start of `bytes`: up to and including
/// the line end that is not followed by a blank (folding).
fn field_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(nl) = bytes.get(at..).and_then(|b| memchr::memchr(b'\n', b)) {
        at += nl + 1;
        if !matches!(bytes.get(at), Some(b' ' | b'\t')) {
            return at;
        }
    }
    bytes.len()
}

fn split_field(lines: &[u8]) -> Option<Field<'_>> {
    if matches!(lines.first(), Some(b' ' | b'\t')) {
        return None;
    }
    let first_line = lines.get(..memchr::memchr(b'\n', lines).unwrap_or(lines.len()))?;
    let colon = memchr::memchr(b':', first_line)?;
    let name = lines.get(..colon)?.trim_ascii_end();
    if name.is_empty() {
        return None;
    }
    Some(Field {
        name,
        value: lines.get(colon + 1..)?,
        lines,
    })
}

/// RFC 5322 unfolding (line ends removed, the blanks after them kept),
/// then trimmed of surrounding blanks.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect::<Vec<u8>>()
        .trim_ascii()
        .to_vec()
}

/// A raw (possibly folded) header value decoded into UTF-8: unfolded,
/// RFC 2047 encoded-words decoded, runs of blanks kept as mail-parser
/// tokenises them.
pub(crate) fn decode(value: &[u8]) -> String {
    // mail-parser reads a value as it follows a field's colon: give it the
    // blank before and the line end after that it expects.
    let mut line = Vec::with_capacity(value.len() + 3);
    line.push(b' ');
    line.extend_from_slice(value);
    if !value.ends_with(b"\n") {
        line.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

/// The first field called `name` in `block`, unfolded.
pub(crate) fn first_raw(block: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    fields(block).find(|f| f.is(name)).map(|f| f.unfolded())
}

/// Bytes as text, lossily (invalid UTF-8 replaced).
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_folding_and_stop_at_blank_line() {
        let block = b"Subject: a\r\n  b\r\nX-Y:z\r\n cont\r\n\r\nBody: no\r\n";
        let all: Vec<_> = fields(block).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, b"Subject");
        assert_eq!(all[0].lines, b"Subject: a\r\n  b\r\n");
        assert_eq!(all[0].unfolded(), b"a  b");
        assert_eq!(all[1].name, b"X-Y");
        assert_eq!(all[1].unfolded(), b"z cont");
    }

    #[test]
    fn stray_lines_are_skipped_and_last_line_may_lack_newline() {
        let block = b" lead\r\nnocolon\r\nA: 1\r\nB: 2";
        let names: Vec<_> = fields(block).map(|f| f.name.to_vec()).collect();
        assert_eq!(names, vec![b"A".to_vec(), b"B".to_vec()]);
        assert_eq!(first_raw(block, b"b"), Some(b"2".to_vec()));
    }

    #[test]
    fn the_block_ends_after_the_blank_line() {
        let raw = b"A: 1\r\nB: 2\r\n folded\r\n\r\nbody\r\n\r\nmore";
        assert_eq!(block(raw), b"A: 1\r\nB: 2\r\n folded\r\n\r\n");
        assert_eq!(block(b"A: 1\n\nbody"), b"A: 1\n\n");
        assert_eq!(block(b"A: 1\r\nno blank line"), b"A: 1\r\nno blank line");
        assert_eq!(block(b"\r\nbody"), b"\r\n");
        assert_eq!(block(b""), b"");
        let parsed = crate::message::Parsed::parse(raw);
        assert_eq!(block(raw), parsed.bytes(parsed.root().header.clone()));
    }

    #[test]
    fn encoded_words_are_decoded() {
        assert_eq!(decode(b" =?utf-8?q?caf=C3=A9?= ok\r\n"), "café ok");
        assert_eq!(
            decode(b" =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"),
            "If you can read this yo"
        );
    }
}

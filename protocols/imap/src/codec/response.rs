//! Writing responses. Typed data (FETCH items with envelopes, body
//! structures and literals) goes through imap-codec's encoder; status
//! lines and the simple untagged data are written directly, with strings
//! quoted or sent as literals as RFC 3501 §4.3 requires.

use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::ResponseCodec;
use imap_types::core::Vec1;
use imap_types::fetch::MessageDataItem;
use imap_types::response::{Data, Response};

/// A status kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    No,
    Bad,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Ok => "OK",
            Kind::No => "NO",
            Kind::Bad => "BAD",
        }
    }
}

/// Writes `<tag|*> <kind> [<code>] <text>`.
pub fn status(out: &mut Vec<u8>, tag: Option<&str>, kind: Kind, code: Option<&str>, text: &str) {
    out.extend_from_slice(tag.unwrap_or("*").as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.word().as_bytes());
    out.push(b' ');
    if let Some(code) = code {
        out.push(b'[');
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(b"] ");
    }
    // Text is one line: no CR or LF from anywhere.
    out.extend(text.bytes().filter(|&b| b != b'\r' && b != b'\n'));
    out.extend_from_slice(b"\r\n");
}

/// Writes an untagged line `* <line>`.
pub fn untagged(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes typed data with imap-codec's encoder.
pub fn data(out: &mut Vec<u8>, data: Data<'_>) {
    let encoded = ResponseCodec::default().encode(&Response::Data(data));
    out.extend_from_slice(&encoded.dump());
}

/// Writes `* seq FETCH (…)`: the typed items with imap-codec's encoder,
/// then `extra` items imap-types lacks (`EMAILID (M…)`), as written.
/// Nothing when there is no item at all.
pub fn fetch(
    out: &mut Vec<u8>,
    seq: NonZeroU32,
    items: Vec<MessageDataItem<'_>>,
    extra: &[String],
) {
    let Ok(items) = Vec1::try_from(items) else {
        if !extra.is_empty() {
            untagged(out, &format!("{seq} FETCH ({})", extra.join(" ")));
        }
        return;
    };
    let encoded = ResponseCodec::default()
        .encode(&Response::Data(Data::Fetch { seq, items }))
        .dump();
    match encoded.strip_suffix(b")\r\n") {
        Some(open) if !extra.is_empty() => {
            out.extend_from_slice(open);
            for item in extra {
                out.push(b' ');
                out.extend_from_slice(item.as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        _ => out.extend_from_slice(&encoded),
    }
}

/// An IMAP string: an atom-safe quoted string, or a literal when the value
/// has bytes a quoted string cannot carry.
pub fn string(value: &str) -> String {
    let quotable = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b >= 0x80)
        && value.len() < 1024;
    if quotable {
        let mut s = String::with_capacity(value.len() + 2);
        s.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    } else {
        format!("{{{}}}\r\n{value}", value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut out = Vec::new();
        status(
            &mut out,
            Some("a1"),
            Kind::No,
            Some("NONEXISTENT"),
            "no\r\nsuch",
        );
        untagged(&mut out, "3 EXISTS");
        assert_eq!(out, b"a1 NO [NONEXISTENT] nosuch\r\n* 3 EXISTS\r\n");
        assert_eq!(string("a \"b\""), "\"a \\\"b\\\"\"");
        assert_eq!(string("x\ny"), "{3}\r\nx\ny");
    }

    #[test]
    fn fetch_with_extra_items() {
        let seq = NonZeroU32::MIN;
        let uid = || vec![MessageDataItem::Uid(NonZeroU32::MIN)];
        let mut out = Vec::new();
        fetch(&mut out, seq, uid(), &["EMAILID (M1)".into()]);
        fetch(
            &mut out,
            seq,
            Vec::new(),
            &["EMAILID (M1)".into(), "THREADID (T2)".into()],
        );
        fetch(&mut out, seq, uid(), &[]);
        fetch(&mut out, seq, Vec::new(), &[]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* 1 FETCH (UID 1 EMAILID (M1))\r\n* 1 FETCH (EMAILID (M1) THREADID (T2))\r\n* 1 FETCH (UID 1)\r\n"
        );
    }
}

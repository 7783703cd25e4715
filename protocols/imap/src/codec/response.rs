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

/// Makes `bytes` fit a literal: a literal carries no NUL (RFC 9051
/// §4.3, CHAR8), so each NUL of a message sent in one becomes 0x80, as
/// Dovecot does (its length is unchanged); BINARY's literal8 carries NUL
/// as it is.
pub fn without_nul(bytes: &mut [u8]) {
    for b in bytes.iter_mut().filter(|b| **b == 0) {
        *b = 0x80;
    }
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
    with_extra(out, &encoded, extra);
}

/// Appends an encoded FETCH response (or its last piece) to `out`, with
/// `extra` items before its closing parenthesis.
fn with_extra(out: &mut Vec<u8>, encoded: &[u8], extra: &[String]) {
    match encoded.strip_suffix(b")\r\n") {
        Some(open) if !extra.is_empty() => {
            out.extend_from_slice(open);
            for item in extra {
                out.push(b' ');
                out.extend_from_slice(item.as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        _ => out.extend_from_slice(encoded),
    }
}

/// Encodes `* seq FETCH (…)` as [`fetch`] does, except for the items at
/// `holes` (indexes into `items`, in order), each with one literal left
/// empty whose bytes are sent apart (streamed from storage): returns the
/// bytes around those literals, one piece more than there are holes. Each
/// piece but the last stops right before its hole's literal announcement
/// (`{n}` CRLF; after the `~` of a literal8), which the caller writes with
/// the real length, then the literal's bytes, then the next piece. The
/// items are encoded one by one with imap-codec's encoder and joined as
/// it joins them. `None` when there is no item, or an item at a hole does
/// not end in an empty literal.
pub fn fetch_pieces(
    seq: NonZeroU32,
    items: Vec<MessageDataItem<'_>>,
    holes: &[usize],
    extra: &[String],
) -> Option<Vec<Vec<u8>>> {
    if items.is_empty() {
        return None;
    }
    let open = format!("* {seq} FETCH (");
    let mut pieces = Vec::with_capacity(holes.len() + 1);
    let mut current = open.clone().into_bytes();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            current.push(b' ');
        }
        let items = Vec1::from(item);
        let encoded = ResponseCodec::default()
            .encode(&Response::Data(Data::Fetch { seq, items }))
            .dump();
        let inner = encoded
            .strip_prefix(open.as_bytes())
            .and_then(|e| e.strip_suffix(b")\r\n"))?;
        if holes.contains(&i) {
            current.extend_from_slice(inner.strip_suffix(b"{0}\r\n")?);
            pieces.push(std::mem::take(&mut current));
        } else {
            current.extend_from_slice(inner);
        }
    }
    current.extend_from_slice(b")\r\n");
    let mut last = Vec::with_capacity(current.len());
    with_extra(&mut last, &current, extra);
    pieces.push(last);
    Some(pieces)
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

    /// FETCH items with the message's bytes (empty for a streamed one):
    /// `BODY[]<2>`, a literal of another item, `BINARY[]`, RFC822.
    fn items(body: &[u8], tail: &[u8]) -> Vec<MessageDataItem<'static>> {
        use imap_types::core::{IString, Literal, NString, NString8};
        use imap_types::extensions::binary::Literal8;
        let literal =
            |data: &[u8]| NString(Some(IString::Literal(Literal::unvalidated(data.to_vec()))));
        vec![
            MessageDataItem::Uid(NonZeroU32::MIN),
            MessageDataItem::BodyExt {
                section: None,
                origin: Some(2),
                data: literal(tail),
            },
            MessageDataItem::Rfc822Size(7),
            MessageDataItem::Rfc822Header(literal(b"caf\xc3\xa9\r\n")),
            MessageDataItem::Binary {
                section: Vec::new(),
                value: NString8::Literal8(Literal8 {
                    data: body.to_vec().into(),
                    mode: imap_types::core::LiteralMode::Sync,
                }),
            },
            MessageDataItem::Rfc822(literal(body)),
        ]
    }

    #[test]
    fn pieces_around_holes_make_the_encoders_bytes() {
        let seq = NonZeroU32::new(42).unwrap_or(NonZeroU32::MIN);
        let body = b"Subject: x\r\n\r\nhello\r\n";
        let tail = &body[2..];
        let holes = [1, 4, 5];
        for extra in [Vec::new(), vec!["EMAILID (M1)".to_string()]] {
            let mut whole = Vec::new();
            fetch(&mut whole, seq, items(body, tail), &extra);
            let pieces = fetch_pieces(seq, items(b"", b""), &holes, &extra).unwrap_or_default();
            assert_eq!(pieces.len(), 4);
            let mut joined = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                joined.extend_from_slice(piece);
                let content: &[u8] = match i {
                    0 => tail,
                    1 | 2 => body,
                    _ => continue,
                };
                joined.extend_from_slice(format!("{{{}}}\r\n", content.len()).as_bytes());
                joined.extend_from_slice(content);
            }
            assert_eq!(
                String::from_utf8_lossy(&joined),
                String::from_utf8_lossy(&whole)
            );
        }
        assert!(fetch_pieces(seq, Vec::new(), &[], &[]).is_none());
        // A hole whose item has no empty literal at its end.
        assert!(fetch_pieces(seq, items(body, tail), &holes, &[]).is_none());
    }
}

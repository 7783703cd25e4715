//! SEARCH evaluation (RFC 9051 §6.4.4, CONDSTORE's MODSEQ): one message
//! (a [`Candidate`]) against one search key.
//!
//! Text keys match by case-insensitive substring (Unicode simple
//! lowercase) on decoded UTF-8: header keys on the message header
//! (RFC 2047 words decoded), BODY on the text of the text parts
//! (transfer encoding and charset undone, HTML reduced to text), TEXT on
//! both ([`MessageText`]). Dates: BEFORE/ON/SINCE compare the
//! internal date's day in UTC; SENTBEFORE/SENTON/SENTSINCE the Date:
//! header's own day (its time and zone ignored), or the internal date's
//! day when the message has no parseable Date:.

use cairn_storage::mailbox::Flags;
use std::ops::Range;

use chrono::NaiveDate;
use imap_types::{
    search::SearchKey,
    sequence::{SeqOrUid, Sequence, SequenceSet},
};
use mail_parser::HeaderName;

use super::parsed::Parsed;
use super::shape::{Framing, Shape};

/// The message a search key is evaluated against.
pub struct Candidate<'a> {
    /// Its sequence number.
    pub seq: u32,
    /// Its UID.
    pub uid: u32,
    /// Its modification sequence (CONDSTORE).
    pub modseq: u64,
    /// Its flags.
    pub flags: &'a Flags,
    /// Whether it is `\Recent` in this session.
    pub recent: bool,
    /// Its internal date, seconds since the epoch, UTC.
    pub internal_date: i64,
    /// Its size in octets (RFC822.SIZE).
    pub size: u64,
    /// The message's text; `Some` when [`needs_message`] says the key
    /// needs it (keys that need it do not match without it).
    pub text: Option<&'a MessageText<'a>>,
}

/// What the text keys of SEARCH read of one message: its header when a
/// key needs it ([`needs_header`]), the text of its body when one needs
/// that ([`needs_body`]).
pub struct MessageText<'a> {
    /// The message header, parsed on its own (empty when not asked for).
    header: Parsed<'a>,
    /// The body's text, case-folded; `None` when not asked for.
    body: Option<String>,
}

impl<'a> MessageText<'a> {
    /// The text of a message whose header is `header` (the raw header,
    /// blank line included) and whose body's text (as
    /// [`Parsed::body_text`] or [`part_text`] give it) is `body`.
    pub fn new(header: &'a [u8], body: Option<&str>) -> Self {
        Self {
            header: Parsed::parse(header),
            body: body.map(fold),
        }
    }
}

/// What SEARCH reads of a message whose MIME tree is kept ([`Shape`]):
/// the header's range and the text parts' ranges, as the keys need them;
/// those lying close together are read together ([`TextReads::spans`]).
pub struct TextReads {
    /// The ranges to read: the header's first if asked for, then the
    /// text parts' (starts ascending; the header and a single-part
    /// message's text part overlap).
    pub ranges: Vec<Range<usize>>,
    header: bool,
    /// The text parts' framings; `None`: the body's text is not asked for.
    framings: Option<Vec<Framing>>,
}

impl TextReads {
    /// The reads for the header (when `header`) and the body's text
    /// (when `body`) of the message whose tree is `tree`.
    pub fn new(tree: &Shape, header: bool, body: bool) -> Self {
        let parts: Vec<_> = match body {
            true => tree.text_parts().collect(),
            false => Vec::new(),
        };
        Self {
            ranges: header
                .then(|| tree.header())
                .into_iter()
                .chain(parts.iter().map(|(range, _)| range.clone()))
                .collect(),
            header,
            framings: body.then(|| parts.into_iter().map(|(_, framing)| framing).collect()),
        }
    }

    /// The ranges to read: the ranges grouped where less than `gap`
    /// bytes lie between one and the next (an attachment between two text
    /// parts keeps them apart), in order.
    pub fn spans(&self, gap: usize) -> Vec<Range<usize>> {
        let mut spans: Vec<Range<usize>> = Vec::new();
        for range in &self.ranges {
            match spans.last_mut() {
                Some(last) if range.start <= last.end.saturating_add(gap) => {
                    last.end = last.end.max(range.end);
                }
                _ => spans.push(range.clone()),
            }
        }
        spans
    }

    /// Each range's bytes, cut from the bytes `read` of `spans` (see
    /// [`TextReads::spans`]).
    pub fn cut(&self, spans: &[Range<usize>], read: &[Vec<u8>]) -> Vec<Vec<u8>> {
        self.ranges
            .iter()
            .map(|r| {
                let within = spans
                    .iter()
                    .zip(read)
                    .find(|(span, _)| span.start <= r.start && r.end <= span.end);
                within
                    .and_then(|(span, bytes)| bytes.get(r.start - span.start..r.end - span.start))
                    .unwrap_or_default()
                    .to_vec()
            })
            .collect()
    }

    /// The header (empty if not asked for) and the body's text (if asked
    /// for) from the bytes of each range, in order.
    pub fn text(&self, read: Vec<Vec<u8>>) -> (Vec<u8>, Option<String>) {
        let mut read = read.into_iter();
        let header = match self.header {
            true => read.next().unwrap_or_default(),
            false => Vec::new(),
        };
        let body = self.framings.as_ref().map(|framings| {
            read.zip(framings)
                .map(|(part, framing)| part_text(&part, *framing))
                .collect()
        });
        (header, body)
    }
}

/// The text of one text part, given whole (its header and body: see
/// [`super::Shape::text_parts`]), decoded as a parse of the whole message
/// decodes it; the texts of a message's text parts, in order, make its
/// [`Parsed::body_text`]. A part of a multipart is parsed as the one part
/// of a multipart (see [`Framing`]), a message's root part alone.
pub fn part_text(part: &[u8], framing: Framing) -> String {
    if framing == Framing::Root {
        return Parsed::parse(part).body_text();
    }
    let mut boundary = String::from("=_cairn_part");
    while part
        .windows(boundary.len())
        .any(|w| w == boundary.as_bytes())
    {
        boundary.push('_');
    }
    let mut wrapped = Vec::with_capacity(part.len() + 3 * boundary.len() + 64);
    wrapped.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"");
    wrapped.extend_from_slice(boundary.as_bytes());
    wrapped.extend_from_slice(b"\"\r\n\r\n--");
    wrapped.extend_from_slice(boundary.as_bytes());
    wrapped.extend_from_slice(b"\r\n");
    wrapped.extend_from_slice(part);
    if framing == Framing::Bounded {
        wrapped.extend_from_slice(b"\r\n--");
        wrapped.extend_from_slice(boundary.as_bytes());
        wrapped.extend_from_slice(b"--\r\n");
    }
    Parsed::parse(&wrapped).body_text()
}

/// What a search key's sequence sets expand against. (imap-types does not
/// model SEARCHRES `$`, so there is no saved result here.)
pub struct SearchContext {
    /// The mailbox's largest sequence number (`*` in sequence sets).
    pub largest_seq: u32,
    /// The mailbox's largest UID (`*` in UID sets).
    pub largest_uid: u32,
}

/// Whether evaluating `key` needs the message's bytes (header, body, sent
/// date); flag, UID, size and internal-date searches do not.
pub fn needs_message(key: &SearchKey<'_>) -> bool {
    needs_header(key) || needs_body(key)
}

/// Whether evaluating `key` needs the message's header (header fields,
/// the sent date, TEXT).
pub fn needs_header(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_header),
        SearchKey::Not(key) => needs_header(key),
        SearchKey::Or(a, b) => needs_header(a) || needs_header(b),
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_) => true,
        _ => false,
    }
}

/// Whether evaluating `key` needs the text of the message's body (BODY,
/// TEXT).
pub fn needs_body(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_body),
        SearchKey::Not(key) => needs_body(key),
        SearchKey::Or(a, b) => needs_body(a) || needs_body(b),
        SearchKey::Body(_) | SearchKey::Text(_) => true,
        _ => false,
    }
}

/// Whether the message `c` matches `key`.
pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>, ctx: &SearchContext) -> bool {
    use cairn_storage::mailbox::flags::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN};
    let has = |bit: u8| c.flags.system & bit != 0;
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, ctx)),
        SearchKey::Not(key) => !matches(key, c, ctx),
        SearchKey::Or(a, b) => matches(a, c, ctx) || matches(b, c, ctx),
        SearchKey::SequenceSet(set) => in_set(set, c.seq, ctx.largest_seq),
        SearchKey::Uid(set) => in_set(set, c.uid, ctx.largest_uid),
        SearchKey::All => true,
        SearchKey::Answered => has(ANSWERED),
        SearchKey::Deleted => has(DELETED),
        SearchKey::Draft => has(DRAFT),
        SearchKey::Flagged => has(FLAGGED),
        SearchKey::Seen => has(SEEN),
        SearchKey::Unanswered => !has(ANSWERED),
        SearchKey::Undeleted => !has(DELETED),
        SearchKey::Undraft => !has(DRAFT),
        SearchKey::Unflagged => !has(FLAGGED),
        SearchKey::Unseen => !has(SEEN),
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !has(SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::Keyword(k) => has_keyword(c.flags, k.inner()),
        SearchKey::Unkeyword(k) => !has_keyword(c.flags, k.inner()),
        SearchKey::Larger(n) => c.size > u64::from(*n),
        SearchKey::Smaller(n) => c.size < u64::from(*n),
        SearchKey::Before(d) => internal_day(c).is_some_and(|day| day < *d.as_ref()),
        SearchKey::On(d) => internal_day(c).is_some_and(|day| day == *d.as_ref()),
        SearchKey::Since(d) => internal_day(c).is_some_and(|day| day >= *d.as_ref()),
        SearchKey::SentBefore(d) => sent_day(c).is_some_and(|day| day < *d.as_ref()),
        SearchKey::SentOn(d) => sent_day(c).is_some_and(|day| day == *d.as_ref()),
        SearchKey::SentSince(d) => sent_day(c).is_some_and(|day| day >= *d.as_ref()),
        SearchKey::ModSequence { modseq, .. } => c.modseq >= *modseq,
        SearchKey::Bcc(s) => header_has(c, "Bcc", s.as_ref()),
        SearchKey::Cc(s) => header_has(c, "Cc", s.as_ref()),
        SearchKey::From(s) => header_has(c, "From", s.as_ref()),
        SearchKey::To(s) => header_has(c, "To", s.as_ref()),
        SearchKey::Subject(s) => header_has(c, "Subject", s.as_ref()),
        SearchKey::Header(name, s) => {
            header_has(c, &String::from_utf8_lossy(name.as_ref()), s.as_ref())
        }
        SearchKey::Body(s) => text_has(c, s.as_ref(), false),
        SearchKey::Text(s) => text_has(c, s.as_ref(), true),
    }
}

/// Whether `n` is in `set`, `*` being `largest`; ranges either way round.
fn in_set(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => value(v) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            (a.min(b)..=a.max(b)).contains(&n)
        }
    })
}

fn has_keyword(flags: &Flags, keyword: &str) -> bool {
    flags
        .keywords
        .binary_search(&keyword.to_ascii_lowercase())
        .is_ok()
}

/// The internal date's day (UTC).
fn internal_day(c: &Candidate<'_>) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp(c.internal_date, 0).map(|t| t.date_naive())
}

/// The Date: header's day as written, else the internal date's day.
fn sent_day(c: &Candidate<'_>) -> Option<NaiveDate> {
    c.text
        .and_then(|t| {
            t.header
                .root()
                .parsed(&HeaderName::Date)?
                .as_datetime()
                .copied()
        })
        .and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()))
        .or_else(|| internal_day(c))
}

fn header_has(c: &Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    let Some(text) = c.text else {
        return false;
    };
    let needle = fold(&String::from_utf8_lossy(needle));
    text.header
        .header_values(name)
        .iter()
        .any(|value| fold(value).contains(&needle))
}

fn text_has(c: &Candidate<'_>, needle: &[u8], with_header: bool) -> bool {
    let Some(text) = c.text else {
        return false;
    };
    let needle = fold(&String::from_utf8_lossy(needle));
    (with_header && fold(&text.header.header_text()).contains(&needle))
        || text.body.as_deref().is_some_and(|b| b.contains(&needle))
}

/// Case folding for text matching (Unicode lowercase).
fn fold(text: &str) -> String {
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use cairn_storage::mailbox::flags::{ANSWERED, SEEN};
    use imap_types::{core::AString, datetime::NaiveDate as Day};

    use super::*;
    use crate::message::fixtures::{crlf, mixed};
    use crate::message::Shape;

    fn s(text: &'static str) -> AString<'static> {
        AString::try_from(text).unwrap_or_else(|_| unreachable!())
    }

    fn day(y: i32, m: u32, d: u32) -> Day {
        Day::unvalidated(NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default())
    }

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap_or_else(|_| unreachable!())
    }

    fn and(keys: Vec<SearchKey<'static>>) -> SearchKey<'static> {
        SearchKey::And(keys.try_into().unwrap_or_else(|_| unreachable!()))
    }

    const CTX: SearchContext = SearchContext {
        largest_seq: 10,
        largest_uid: 500,
    };

    /// The text of `raw` both ways a session makes it: from a parse of
    /// the whole message, and from its kept tree (its header and text
    /// parts read and decoded on their own).
    fn texts(raw: &[u8]) -> [MessageText<'_>; 2] {
        let parsed = Parsed::parse(raw);
        let whole = MessageText::new(
            parsed.bytes(parsed.root().header.clone()),
            Some(&parsed.body_text()),
        );
        let shape = Shape::of(&parsed).unwrap_or_else(|| unreachable!());
        let reads = TextReads::new(&shape, true, true);
        let each: Vec<Vec<u8>> = reads
            .ranges
            .iter()
            .map(|r| raw[r.clone()].to_vec())
            .collect();
        let spans = reads.spans(usize::MAX);
        assert_eq!(spans.len(), 1);
        let read: Vec<Vec<u8>> = spans.iter().map(|s| raw[s.clone()].to_vec()).collect();
        let (header, text) = reads.text(reads.cut(&spans, &read));
        assert_eq!((header.clone(), text.clone()), reads.text(each));
        let header = raw
            .windows(header.len())
            .position(|w| w == header)
            .map_or(&[][..], |at| &raw[at..at + header.len()]);
        let kept = MessageText::new(header, text.as_deref());
        [whole, kept]
    }

    #[test]
    fn text_parts_apart_are_read_apart() {
        let attachment = "QUJD\n".repeat(40_000);
        let raw = crlf(&format!(
            "Subject: apart\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\
             Content-Type: text/plain\n\nfirst words\n--x\n\
             Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n{attachment}--x\n\
             Content-Type: text/html\n\n<p>last words</p>\n--x--\n"
        ));
        let shape = Shape::of(&Parsed::parse(&raw)).unwrap_or_else(|| unreachable!());
        let both = TextReads::new(&shape, true, true);
        assert_eq!(both.ranges.len(), 3);
        // The header and the first text part are read together; the
        // attachment lies between them and the last.
        let spans = both.spans(64 * 1024);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(spans[0], both.ranges[0].start..both.ranges[1].end);
        assert_eq!(spans[1], both.ranges[2]);
        let read: Vec<Vec<u8>> = spans.iter().map(|s| raw[s.clone()].to_vec()).collect();
        let cut = both.cut(&spans, &read);
        let each: Vec<Vec<u8>> = both
            .ranges
            .iter()
            .map(|r| raw[r.clone()].to_vec())
            .collect();
        assert_eq!(cut, each);
        let (header, text) = both.text(cut);
        assert!(header.starts_with(b"Subject: apart"));
        let text = text.unwrap_or_default();
        assert!(text.starts_with("first words\nlast words"), "{text:?}");
        assert!(!text.contains("QUJD"), "{text:?}");
        let header_only = TextReads::new(&shape, true, false);
        assert_eq!(header_only.spans(0), [shape.header()]);
        let (_, text) = header_only.text(vec![raw[shape.header()].to_vec()]);
        assert_eq!(text, None);
        // Asked for, a body without text parts has an empty text.
        let bare = crlf("Content-Type: image/png\n\nAAAA\n");
        let shape = Shape::of(&Parsed::parse(&bare)).unwrap_or_else(|| unreachable!());
        let reads = TextReads::new(&shape, false, true);
        assert!(reads.ranges.is_empty() && reads.spans(0).is_empty());
        assert_eq!(reads.text(Vec::new()), (Vec::new(), Some(String::new())));
    }

    fn candidate<'a>(flags: &'a Flags, text: Option<&'a MessageText<'a>>) -> Candidate<'a> {
        Candidate {
            seq: 3,
            uid: 300,
            modseq: 42,
            flags,
            recent: true,
            // 2022-03-05T12:00:00Z
            internal_date: 1_646_481_600,
            size: 1000,
            text,
        }
    }

    #[test]
    fn flags_sets_sizes_and_modseq() {
        let flags = Flags::new(SEEN | ANSWERED, &["$Work"]);
        let c = candidate(&flags, None);
        let yes = [
            SearchKey::All,
            SearchKey::Seen,
            SearchKey::Answered,
            SearchKey::Unflagged,
            SearchKey::Undeleted,
            SearchKey::Undraft,
            SearchKey::Recent,
            SearchKey::Keyword(
                imap_types::core::Atom::try_from("$WORK").unwrap_or_else(|_| unreachable!()),
            ),
            SearchKey::SequenceSet(set("1,3:2")),
            SearchKey::SequenceSet(set("*:3")),
            SearchKey::Uid(set("300")),
            SearchKey::Uid(set("299:*")),
            SearchKey::Larger(999),
            SearchKey::Smaller(1001),
            SearchKey::ModSequence {
                entry: None,
                modseq: 42,
            },
            SearchKey::Not(Box::new(SearchKey::New)),
            SearchKey::Or(Box::new(SearchKey::Deleted), Box::new(SearchKey::Seen)),
        ];
        for key in &yes {
            assert!(matches(key, &c, &CTX), "{key:?}");
            assert!(!needs_message(key), "{key:?}");
        }
        let no = [
            SearchKey::Unseen,
            SearchKey::Old,
            SearchKey::New,
            SearchKey::Flagged,
            SearchKey::Unkeyword(
                imap_types::core::Atom::try_from("$work").unwrap_or_else(|_| unreachable!()),
            ),
            SearchKey::SequenceSet(set("4:*")),
            SearchKey::Uid(set("1:299")),
            SearchKey::Larger(1000),
            SearchKey::ModSequence {
                entry: None,
                modseq: 43,
            },
        ];
        for key in &no {
            assert!(!matches(key, &c, &CTX), "{key:?}");
        }
    }

    #[test]
    fn internal_and_sent_dates() {
        let raw = crlf("Date: Tue, 1 Mar 2022 23:30:00 -0500\nSubject: x\n\nbody\n");
        let flags = Flags::default();
        for text in &texts(&raw) {
            dates_of(&candidate(&flags, Some(text)));
        }
        let undated = texts(b"Subject: x\r\n\r\n");
        let c = candidate(&flags, Some(&undated[1]));
        assert!(matches(&SearchKey::SentOn(day(2022, 3, 5)), &c, &CTX));
    }

    fn dates_of(c: &Candidate<'_>) {
        let yes = [
            SearchKey::On(day(2022, 3, 5)),
            SearchKey::Since(day(2022, 3, 5)),
            SearchKey::Before(day(2022, 3, 6)),
            SearchKey::SentOn(day(2022, 3, 1)),
            SearchKey::SentBefore(day(2022, 3, 2)),
            SearchKey::SentSince(day(2022, 3, 1)),
        ];
        for key in &yes {
            assert!(matches(key, c, &CTX), "{key:?}");
        }
        let no = [
            SearchKey::Before(day(2022, 3, 5)),
            SearchKey::Since(day(2022, 3, 6)),
            SearchKey::SentOn(day(2022, 3, 2)),
            SearchKey::SentBefore(day(2022, 3, 1)),
        ];
        for key in &no {
            assert!(!matches(key, c, &CTX), "{key:?}");
        }
    }

    #[test]
    fn text_keys_match_decoded_text_case_insensitively() {
        let raw = mixed();
        let flags = Flags::default();
        for text in &texts(&raw) {
            text_keys_of(&candidate(&flags, Some(text)));
        }
        let without = candidate(&flags, None);
        assert!(!matches(&SearchKey::Subject(s("")), &without, &CTX));
        assert!(needs_message(&SearchKey::Or(
            Box::new(SearchKey::All),
            Box::new(SearchKey::Text(s("x")))
        )));
        assert!(needs_body(&SearchKey::Not(Box::new(SearchKey::Body(s(
            "x"
        ))))));
        assert!(!needs_body(&SearchKey::Subject(s("x"))));
        assert!(!needs_header(&SearchKey::Body(s("x"))));
        assert!(needs_header(&SearchKey::Text(s("x"))));
    }

    fn text_keys_of(c: &Candidate<'_>) {
        let yes = [
            SearchKey::From(s("JÖRG")),
            SearchKey::From(s("jorg@example")),
            SearchKey::To(s("b@y.example")),
            SearchKey::Cc(s("undisclosed")),
            SearchKey::Subject(s("café MENU")),
            SearchKey::Body(s("AU LAIT")),
            SearchKey::Body(s("inner text")),
            SearchKey::Text(s("m1@example.org")),
            SearchKey::Text(s("au lait soon")),
            SearchKey::Header(s("message-id"), s("")),
            SearchKey::Header(s("MIME-Version"), s("1.0")),
            and(vec![SearchKey::Unseen, SearchKey::Subject(s("menu"))]),
        ];
        for key in &yes {
            assert!(matches(key, c, &CTX), "{key:?}");
            assert!(needs_message(key), "{key:?}");
        }
        let no = [
            SearchKey::Bcc(s("")),
            SearchKey::Header(s("X-Absent"), s("")),
            SearchKey::Body(s("m1@example.org")),
            SearchKey::Subject(s("tea")),
            and(vec![SearchKey::Seen, SearchKey::Subject(s("menu"))]),
        ];
        for key in &no {
            assert!(!matches(key, c, &CTX), "{key:?}");
        }
    }
}

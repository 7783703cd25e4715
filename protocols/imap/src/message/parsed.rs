//! [`Parsed`]: a message parsed once with mail-parser and turned into a
//! MIME tree of byte ranges over the raw message ([`Node`]), which every
//! other IMAP view (envelope, structure, sections, search) reads.
//!
//! mail-parser's offsets: a part's header runs from `offset_header` to
//! `offset_body` (blank line included), its body from `offset_body` to
//! `offset_end` (the line end before the next boundary excluded, as IMAP
//! wants). Parts of a message/rfc822 part that is not transfer-encoded are
//! parsed in place, so their offsets are offsets into the same raw bytes;
//! an encoded message/rfc822 part is parsed from its decoded copy, so it is
//! kept here as an opaque leaf.

use std::{borrow::Cow, ops::Range};

use mail_parser::{
    decoders::html::html_to_text, ContentType, Encoding, Header, HeaderName, HeaderValue, Message,
    MessageParser, MessagePart, PartType,
};

use super::header;

/// Deepest MIME nesting followed; deeper parts are kept as opaque leaves.
pub(crate) const MAX_DEPTH: usize = 50;

/// A message parsed once (mail-parser), borrowing its raw bytes.
pub struct Parsed<'a> {
    raw: &'a [u8],
    root: Node<'a>,
}

/// One MIME part: its header and body as ranges of the raw message.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    /// The part's header, blank line included.
    pub header: Range<usize>,
    /// The part's body (for a multipart: preamble, parts and epilogue).
    pub body: Range<usize>,
    /// mail-parser's parsed header fields (Content-Type, Date …).
    pub headers: Vec<Header<'a>>,
    /// What the body holds.
    pub content: Content<'a>,
}

/// What a part's body holds.
#[derive(Debug)]
pub(crate) enum Content<'a> {
    /// A text part, decoded (transfer encoding and charset) to UTF-8.
    Text { text: Cow<'a, str>, html: bool },
    /// Any other leaf (binary, encoded message, parts past the depth limit).
    Opaque,
    /// A multipart and its parts.
    Multipart(Vec<Node<'a>>),
    /// A message/rfc822 part: the root part of the nested message.
    Message(Box<Node<'a>>),
}

impl<'a> Parsed<'a> {
    /// Parses `raw`. Never panics; input mail-parser cannot parse becomes
    /// a single text/plain part with an empty header.
    pub fn parse(raw: &'a [u8]) -> Parsed<'a> {
        let root = MessageParser::new()
            .parse(raw)
            .and_then(|message| root_node(message, raw.len(), 0))
            .unwrap_or_else(|| Node {
                header: 0..0,
                body: 0..raw.len(),
                headers: Vec::new(),
                content: Content::Text {
                    text: String::from_utf8_lossy(raw),
                    html: false,
                },
            });
        Parsed { raw, root }
    }

    /// The raw message.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The root part (the message itself).
    pub(crate) fn root(&self) -> &Node<'a> {
        &self.root
    }

    /// The bytes of `range` (empty if out of bounds).
    pub(crate) fn bytes(&self, range: Range<usize>) -> &'a [u8] {
        self.raw.get(range).unwrap_or_default()
    }

    /// Header values for SEARCH HEADER / SORT: every value of the field
    /// `name` (case-insensitive) in the message header, unfolded and
    /// decoded from RFC 2047 encoded-words into UTF-8.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        header::fields(self.bytes(self.root.header.clone()))
            .filter(|f| f.is(name.as_bytes()))
            .map(|f| f.decoded())
            .collect()
    }

    /// The whole message header as decoded text, one `Name: value` line
    /// per field (for SEARCH TEXT).
    pub(crate) fn header_text(&self) -> String {
        let mut out = String::new();
        for f in header::fields(self.bytes(self.root.header.clone())) {
            out.push_str(&header::lossy(f.name));
            out.push_str(": ");
            out.push_str(&f.decoded());
            out.push('\n');
        }
        out
    }

    /// The decoded text of the body, for SEARCH BODY/TEXT: every text part
    /// (nested messages' included), transfer encoding and charset undone,
    /// HTML reduced to its text.
    pub fn body_text(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            match &node.content {
                Content::Text { text, html: false } => push_line(&mut out, text),
                Content::Text { text, html: true } => push_line(&mut out, &html_to_text(text)),
                Content::Opaque => {}
                Content::Multipart(parts) => stack.extend(parts.iter().rev()),
                Content::Message(inner) => stack.push(inner),
            }
        }
        out
    }
}

/// Adds a part's text as a line of its own; an empty text adds nothing
/// (so that the texts of parts decoded alone add up to the same).
fn push_line(out: &mut String, text: &str) {
    if !text.is_empty() {
        out.push_str(text);
        out.push('\n');
    }
}

impl Node<'_> {
    /// The parsed Content-Type, if the part has one.
    pub fn content_type(&self) -> Option<&ContentType<'_>> {
        self.parsed(&HeaderName::ContentType)
            .and_then(HeaderValue::as_content_type)
    }

    /// The parsed Content-Disposition, if the part has one.
    pub fn disposition(&self) -> Option<&ContentType<'_>> {
        self.parsed(&HeaderName::ContentDisposition)
            .and_then(HeaderValue::as_content_type)
    }

    /// The first parsed value of the field `name`.
    pub fn parsed(&self, name: &HeaderName<'_>) -> Option<&HeaderValue<'_>> {
        self.headers
            .iter()
            .find(|h| &h.name == name)
            .map(|h| &h.value)
    }
}

/// The root part of `message` as a [`Node`] (`None` if it has no parts).
fn root_node<'a>(message: Message<'a>, len: usize, depth: usize) -> Option<Node<'a>> {
    let mut parts: Vec<Option<MessagePart<'a>>> = message.parts.into_iter().map(Some).collect();
    node(&mut parts, 0, len, depth)
}

/// The part `id` of `parts` as a [`Node`]; each part is taken at most once,
/// so a malformed part list cannot loop.
fn node<'a>(
    parts: &mut [Option<MessagePart<'a>>],
    id: usize,
    len: usize,
    depth: usize,
) -> Option<Node<'a>> {
    let part = parts.get_mut(id)?.take()?;
    let start = clamp(part.offset_header, 0, len);
    let body_start = clamp(part.offset_body, start, len);
    let body_end = clamp(part.offset_end, body_start, len);
    let content = match part.body {
        _ if depth >= MAX_DEPTH => Content::Opaque,
        PartType::Text(text) => Content::Text { text, html: false },
        PartType::Html(text) => Content::Text { text, html: true },
        PartType::Binary(_) | PartType::InlineBinary(_) => Content::Opaque,
        PartType::Multipart(ids) => Content::Multipart(
            ids.iter()
                .filter_map(|&sub| node(parts, usize::try_from(sub).ok()?, len, depth + 1))
                .collect(),
        ),
        PartType::Message(inner) if part.encoding == Encoding::None => {
            match root_node(inner, len, depth + 1) {
                Some(inner) => Content::Message(Box::new(inner)),
                None => Content::Opaque,
            }
        }
        PartType::Message(_) => Content::Opaque,
    };
    Some(Node {
        header: start..body_start,
        body: body_start..body_end,
        headers: part.headers,
        content,
    })
}

fn clamp(offset: u32, low: usize, high: usize) -> usize {
    usize::try_from(offset)
        .unwrap_or(high)
        .clamp(low, high.max(low))
}

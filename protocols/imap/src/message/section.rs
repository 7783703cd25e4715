//! `BODY[section]` (RFC 9051 §6.4.5) and `BINARY[part]` (RFC 3516)
//! content: part numbers resolved over the MIME tree, header field
//! filtering, transfer decoding.

use std::{borrow::Cow, num::NonZeroU32, ops::Range};

use imap_types::{
    core::{AString, Vec1},
    fetch::{Part, Section},
};
use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};

use super::{
    header::{fields, first_raw},
    parsed::{Content, Node, Parsed},
};

/// Longest part number list resolved; longer ones name no part.
const MAX_PART_DEPTH: usize = 64;

/// Why `BINARY[part]` cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one this server decodes
    /// (the server answers `NO [UNKNOWN-CTE]`).
    #[error("unknown content transfer encoding {0:?}")]
    UnknownEncoding(String),
    /// The part's content is not valid in its transfer encoding.
    #[error("the part's {0} content cannot be decoded")]
    Corrupt(String),
}

/// What a MIME part is, for section resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any part without numbered parts under it (text, binary, an
    /// encoded message/rfc822, a part past the depth limit).
    Leaf,
    /// A multipart: its parts.
    Multipart,
    /// A message/rfc822 part: one child, the nested message's root part.
    Message,
}

/// A MIME tree of byte ranges over the raw message, as section resolution
/// walks it: the parsed message's ([`Parsed`]), or the one kept in a
/// digest ([`super::Shape`]); both resolve sections by the same code.
pub(crate) trait Tree: Copy {
    type Id: Copy;
    /// The root part (the message itself).
    fn root(self) -> Self::Id;
    fn kind(self, id: Self::Id) -> Kind;
    /// The part's header, blank line included.
    fn header(self, id: Self::Id) -> Range<usize>;
    /// The part's body.
    fn body(self, id: Self::Id) -> Range<usize>;
    /// A multipart's `index`-th part; a message/rfc822 part's nested
    /// message (index 0).
    fn child(self, id: Self::Id, index: usize) -> Option<Self::Id>;
}

/// Where a section's content lies in the raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Located<'s> {
    /// These bytes, as they are.
    Bytes(Range<usize>),
    /// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT (not `keep`) of the
    /// header at `header` ([`filter_fields`]).
    Fields {
        header: Range<usize>,
        names: &'s Vec1<AString<'s>>,
        keep: bool,
    },
}

/// Where `section`'s content lies in the message of `tree`; `None` where
/// it names no part (its content is empty).
pub(crate) fn locate<'s, T: Tree>(tree: T, section: &'s Section<'_>) -> Option<Located<'s>> {
    Some(match section {
        Section::Part(part) => Located::Bytes(tree.body(part_of(tree, Some(part))?)),
        Section::Mime(part) => Located::Bytes(tree.header(part_of(tree, Some(part))?)),
        Section::Header(part) => Located::Bytes(tree.header(message_of(tree, part.as_ref())?)),
        Section::Text(part) => Located::Bytes(tree.body(message_of(tree, part.as_ref())?)),
        Section::HeaderFields(part, names) | Section::HeaderFieldsNot(part, names) => {
            Located::Fields {
                header: tree.header(message_of(tree, part.as_ref())?),
                names,
                keep: matches!(section, Section::HeaderFields(..)),
            }
        }
    })
}

/// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT (not `keep`) of the header
/// block `header`: the matching fields' original lines (folding included),
/// each ending with a line break, then the blank line.
pub(crate) fn filter_fields(header: &[u8], names: &Vec1<AString<'_>>, keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields(header) {
        let listed = names.as_ref().iter().any(|n| field.is(n.as_ref()));
        if listed == keep {
            out.extend_from_slice(field.lines);
            if !field.lines.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The parts IMAP numbers at one level.
enum Numbered<Id> {
    /// A multipart's parts.
    Parts(Id),
    /// A non-multipart message's only part: its root (part 1 of a
    /// non-multipart message is its body).
    Itself(Id),
    None,
}

/// The numbered parts of a message whose root part is `id`.
fn message_children<T: Tree>(tree: T, id: T::Id) -> Numbered<T::Id> {
    match tree.kind(id) {
        Kind::Multipart => Numbered::Parts(id),
        Kind::Leaf | Kind::Message => Numbered::Itself(id),
    }
}

/// The parts numbered under `id`: a multipart's parts; for a
/// message/rfc822 part, its nested message's numbered parts.
fn numbered_children<T: Tree>(tree: T, id: T::Id) -> Numbered<T::Id> {
    match tree.kind(id) {
        Kind::Multipart => Numbered::Parts(id),
        Kind::Message => match tree.child(id, 0) {
            Some(inner) => message_children(tree, inner),
            None => Numbered::None,
        },
        Kind::Leaf => Numbered::None,
    }
}

/// Resolves a part number list (RFC 9051 §6.4.5).
pub(crate) fn resolve<T: Tree>(tree: T, numbers: &[NonZeroU32]) -> Option<T::Id> {
    if numbers.len() > MAX_PART_DEPTH {
        return None;
    }
    let mut children = message_children(tree, tree.root());
    let mut found = None;
    for number in numbers {
        let index = usize::try_from(number.get() - 1).ok()?;
        let node = match children {
            Numbered::Parts(parent) => tree.child(parent, index)?,
            Numbered::Itself(only) if index == 0 => only,
            Numbered::Itself(_) | Numbered::None => return None,
        };
        children = numbered_children(tree, node);
        found = Some(node);
    }
    found
}

/// The part a section's part number names (`None`: the message).
fn part_of<T: Tree>(tree: T, part: Option<&Part>) -> Option<T::Id> {
    match part {
        None => Some(tree.root()),
        Some(Part(numbers)) => resolve(tree, numbers.as_ref()),
    }
}

/// The message a HEADER/TEXT section addresses: the message itself, or
/// the nested message of a message/rfc822 part.
fn message_of<T: Tree>(tree: T, part: Option<&Part>) -> Option<T::Id> {
    let id = part_of(tree, part)?;
    match (part, tree.kind(id)) {
        (None, _) => Some(id),
        (Some(_), Kind::Message) => tree.child(id, 0),
        _ => None,
    }
}

impl<'t, 'a> Tree for &'t Parsed<'a> {
    type Id = &'t Node<'a>;

    fn root(self) -> Self::Id {
        Parsed::root(self)
    }

    fn kind(self, id: Self::Id) -> Kind {
        match id.content {
            Content::Multipart(_) => Kind::Multipart,
            Content::Message(_) => Kind::Message,
            Content::Text { .. } | Content::Opaque => Kind::Leaf,
        }
    }

    fn header(self, id: Self::Id) -> Range<usize> {
        id.header.clone()
    }

    fn body(self, id: Self::Id) -> Range<usize> {
        id.body.clone()
    }

    fn child(self, id: Self::Id, index: usize) -> Option<Self::Id> {
        match &id.content {
            Content::Multipart(parts) => parts.get(index),
            Content::Message(inner) => (index == 0).then_some(&**inner),
            Content::Text { .. } | Content::Opaque => None,
        }
    }
}

impl<'a> Parsed<'a> {
    /// `BODY[section]` content (before any `<partial>`). `None` is the
    /// whole message. A part that does not exist (or HEADER/TEXT of a part
    /// that is not a message/rfc822) gives empty content. Owned only for
    /// HEADER.FIELDS[.NOT], whose result keeps the matching fields' original
    /// lines (folding included) and ends with the blank line.
    pub fn section(&self, section: Option<&Section<'_>>) -> Cow<'a, [u8]> {
        self.find_section(section).unwrap_or_default()
    }

    /// `BODY[section]` content as [`Parsed::section`] gives it, or `None`
    /// where the section names no part (a URL that does not resolve).
    pub fn find_section(&self, section: Option<&Section<'_>>) -> Option<Cow<'a, [u8]>> {
        let Some(section) = section else {
            return Some(Cow::Borrowed(self.raw()));
        };
        Some(match locate(self, section)? {
            Located::Bytes(range) => Cow::Borrowed(self.bytes(range)),
            Located::Fields {
                header,
                names,
                keep,
            } => Cow::Owned(filter_fields(self.bytes(header), names, keep)),
        })
    }

    /// `BINARY[part]` content: the part's body with its transfer encoding
    /// undone (base64, quoted-printable; 7bit, 8bit and binary as they
    /// are). An empty part list is the whole message, as it is; a part
    /// that does not exist is empty.
    pub fn binary(&self, part: &[NonZeroU32]) -> Result<Cow<'a, [u8]>, BinaryError> {
        if part.is_empty() {
            return Ok(Cow::Borrowed(self.raw()));
        }
        let Some(node) = resolve(self, part) else {
            return Ok(Cow::Borrowed(&[]));
        };
        decode_part(
            self.bytes(node.header.clone()),
            self.bytes(node.body.clone()),
        )
    }
}

/// A part's body (`body`) with the transfer encoding its header (`header`)
/// names undone: `BINARY[part]` content (see [`Parsed::binary`]).
pub(crate) fn decode_part<'b>(header: &[u8], body: &'b [u8]) -> Result<Cow<'b, [u8]>, BinaryError> {
    let cte = first_raw(header, b"Content-Transfer-Encoding")
        .map(|raw| String::from_utf8_lossy(&raw).to_ascii_lowercase())
        .unwrap_or_default();
    let decoded = match cte.as_str() {
        "" | "7bit" | "8bit" | "binary" => return Ok(Cow::Borrowed(body)),
        "base64" => base64_decode(body),
        "quoted-printable" => quoted_printable_decode(body),
        _ => return Err(BinaryError::UnknownEncoding(cte)),
    };
    decoded.map(Cow::Owned).ok_or(BinaryError::Corrupt(cte))
}

//! `BODY[section]` (RFC 9051 §6.4.5) and `BINARY[part]` (RFC 3516)
//! content: part numbers resolved over the MIME tree, header field
//! filtering, transfer decoding.

use std::{borrow::Cow, num::NonZeroU32};

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
        let content = match section {
            Section::Part(part) => self.part(Some(part)).map(|n| self.bytes(n.body.clone())),
            Section::Mime(part) => self.part(Some(part)).map(|n| self.bytes(n.header.clone())),
            Section::Header(part) => self
                .message(part.as_ref())
                .map(|n| self.bytes(n.header.clone())),
            Section::Text(part) => self
                .message(part.as_ref())
                .map(|n| self.bytes(n.body.clone())),
            Section::HeaderFields(part, names) => {
                return self.filtered(part.as_ref(), names, true);
            }
            Section::HeaderFieldsNot(part, names) => {
                return self.filtered(part.as_ref(), names, false);
            }
        };
        content.map(Cow::Borrowed)
    }

    /// `BINARY[part]` content: the part's body with its transfer encoding
    /// undone (base64, quoted-printable; 7bit, 8bit and binary as they
    /// are). An empty part list is the whole message, as it is; a part
    /// that does not exist is empty.
    pub fn binary(&self, part: &[NonZeroU32]) -> Result<Cow<'a, [u8]>, BinaryError> {
        if part.is_empty() {
            return Ok(Cow::Borrowed(self.raw()));
        }
        let Some(node) = self.resolve(part) else {
            return Ok(Cow::Borrowed(&[]));
        };
        let body = self.bytes(node.body.clone());
        let cte = first_raw(
            self.bytes(node.header.clone()),
            b"Content-Transfer-Encoding",
        )
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

    /// The part a section's part number names (`None`: the message).
    fn part(&self, part: Option<&Part>) -> Option<&Node<'a>> {
        match part {
            None => Some(self.root()),
            Some(Part(numbers)) => self.resolve(numbers.as_ref()),
        }
    }

    /// The message a HEADER/TEXT section addresses: the message itself, or
    /// the nested message of a message/rfc822 part.
    fn message(&self, part: Option<&Part>) -> Option<&Node<'a>> {
        match (part, self.part(part)?) {
            (None, root) => Some(root),
            (
                Some(_),
                Node {
                    content: Content::Message(inner),
                    ..
                },
            ) => Some(inner),
            _ => None,
        }
    }

    /// Resolves a part number list (RFC 9051 §6.4.5).
    fn resolve(&self, numbers: &[NonZeroU32]) -> Option<&Node<'a>> {
        if numbers.len() > MAX_PART_DEPTH {
            return None;
        }
        let mut children = self.root().as_message_children();
        let mut found = None;
        for number in numbers {
            let index = usize::try_from(number.get() - 1).ok()?;
            let node = children.get(index)?;
            children = node.numbered_children();
            found = Some(node);
        }
        found
    }

    /// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT (not `keep`).
    fn filtered(
        &self,
        part: Option<&Part>,
        names: &Vec1<AString<'_>>,
        keep: bool,
    ) -> Option<Cow<'a, [u8]>> {
        let node = self.message(part)?;
        let mut out = Vec::new();
        for field in fields(self.bytes(node.header.clone())) {
            let listed = names.as_ref().iter().any(|n| field.is(n.as_ref()));
            if listed == keep {
                out.extend_from_slice(field.lines);
                if !field.lines.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        Some(Cow::Owned(out))
    }
}

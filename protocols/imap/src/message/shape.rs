//! [`Shape`]: a message's MIME tree as byte ranges only — each part's
//! header and body and whether it is a leaf, a multipart or a
//! message/rfc822 — the tree [`Parsed`] computes, kept in a digest at
//! delivery so that `BODY[section]` is located without reading the whole
//! body and parsing it again (sections resolve over it with the code that
//! resolves them over [`Parsed`], see [`super::section::Tree`]).
//!
//! It also names the text parts (those the parse decoded to text), so
//! that SEARCH reads the text of a message from those parts alone, each
//! decoded on its own ([`Shape::text_parts`]), never the attachments.
//!
//! Encoded compactly (LEB128 varints): the body's size, the node count,
//! then the nodes in preorder, each a kind byte (0 a leaf, 1 a multipart,
//! 2 a message/rfc822, 3 a text leaf), its header's start, the
//! header's and the body's lengths (a part's body follows its header), and
//! for a multipart its part count. A digest is read from disk, so decoding
//! checks everything: every range within the body, each part within its
//! parent's body and after its previous sibling, depth at most
//! [`MAX_DEPTH`], at most [`MAX_NODES`] nodes, every byte used.

use std::num::NonZeroU32;
use std::ops::Range;

use super::parsed::{Content, Node, MAX_DEPTH};
use super::section::{locate, resolve, Kind, Located, Tree};
use super::Parsed;
use imap_types::fetch::Section;

/// The most parts a kept tree has; a message with more has none kept.
pub(crate) const MAX_NODES: usize = 10_000;

/// A message's MIME tree as byte ranges (see the module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The body's size.
    size: usize,
    /// Preorder: the root first.
    nodes: Vec<ShapeNode>,
    /// Each node's children (node indexes), at the node's `children`.
    children: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShapeNode {
    header: Range<usize>,
    body: Range<usize>,
    kind: Kind,
    /// A leaf the parse decoded to text (plain or HTML).
    text: bool,
    /// Where the part lies: what decoding it alone needs.
    framing: Framing,
    children: Range<usize>,
}

impl Shape {
    /// The tree `parsed` computes; `None` for one that would not decode
    /// back (more than [`MAX_NODES`] parts, parts out of order).
    pub fn of(parsed: &Parsed<'_>) -> Option<Self> {
        let mut out = Vec::new();
        put(&mut out, parsed.raw().len() as u64);
        let mut count = 0u64;
        count_nodes(parsed, parsed.root(), &mut count);
        put(&mut out, count);
        put_node(parsed, parsed.root(), &mut out);
        Self::decode(&out)
    }

    /// The body's size (the tree is for a body of this size only).
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// The tree, encoded (see the module).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put(out, self.size as u64);
        put(out, self.nodes.len() as u64);
        for node in &self.nodes {
            out.push(kind_byte(node.kind, node.text));
            put(out, node.header.start as u64);
            put(out, node.header.len() as u64);
            put(out, node.body.len() as u64);
            if node.kind == Kind::Multipart {
                put(out, node.children.len() as u64);
            }
        }
    }

    /// A tree [`Shape::encode`] wrote, all of `bytes`; `None` when it does
    /// not decode or fails a check (see the module).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader(bytes);
        let size = usize::try_from(reader.varint()?).ok()?;
        let count = usize::try_from(reader.varint()?).ok()?;
        if count == 0 || count > MAX_NODES {
            return None;
        }
        let mut shape = Shape {
            size,
            nodes: Vec::with_capacity(count),
            children: Vec::with_capacity(count - 1),
        };
        shape.node(&mut reader, 0, 0..size, Some(Framing::Root))?;
        (reader.0.is_empty() && shape.nodes.len() == count).then_some(shape)
    }

    /// Decodes one node and the nodes under it, at `depth`, within
    /// `within`, its framing `framing` (`None`: a part of a multipart,
    /// framed by where it ends); its index.
    fn node(
        &mut self,
        reader: &mut Reader<'_>,
        depth: usize,
        within: Range<usize>,
        framing: Option<Framing>,
    ) -> Option<u32> {
        if depth > MAX_DEPTH || self.nodes.len() >= MAX_NODES {
            return None;
        }
        let (kind, text) = match reader.byte()? {
            0 => (Kind::Leaf, false),
            1 => (Kind::Multipart, false),
            2 => (Kind::Message, false),
            3 => (Kind::Leaf, true),
            _ => return None,
        };
        let start = usize::try_from(reader.varint()?).ok()?;
        let header_end = start.checked_add(usize::try_from(reader.varint()?).ok()?)?;
        let body_end = header_end.checked_add(usize::try_from(reader.varint()?).ok()?)?;
        if start < within.start || body_end > within.end {
            return None;
        }
        let count = match kind {
            Kind::Leaf => 0,
            Kind::Message => 1,
            Kind::Multipart => usize::try_from(reader.varint()?).ok()?,
        };
        if count > MAX_NODES {
            return None;
        }
        let id = self.nodes.len();
        self.nodes.push(ShapeNode {
            header: start..header_end,
            body: header_end..body_end,
            kind,
            text,
            framing: match framing {
                Some(framing) => framing,
                None if body_end < within.end => Framing::Bounded,
                None => Framing::Unended,
            },
            children: 0..0,
        });
        let mut mine = Vec::with_capacity(count.min(64));
        let mut next = header_end;
        // A message/rfc822 part's message lies as the part lies: its root
        // is decoded as a part so framed would be.
        let framing = (kind == Kind::Message).then_some(self.nodes[id].framing);
        for _ in 0..count {
            let child = self.node(reader, depth + 1, next..body_end, framing)?;
            next = self.nodes[child as usize].body.end;
            mine.push(child);
        }
        let from = self.children.len();
        self.children.extend(mine);
        self.nodes[id].children = from..self.children.len();
        u32::try_from(id).ok()
    }

    /// The message's header (its blank line included).
    pub fn header(&self) -> Range<usize> {
        self.nodes[0].header.clone()
    }

    /// Each text part, in the order [`Parsed::body_text`] takes them: its
    /// header and body, and where it lies (what [`super::part_text`]
    /// needs to decode it alone).
    pub fn text_parts(&self) -> impl Iterator<Item = (Range<usize>, Framing)> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.text)
            .map(|node| (node.header.start..node.body.end, node.framing))
    }

    /// The header and body of the part `part` names (`None`: no such
    /// part), for `BINARY[part]` ([`super::decode_part`] of them).
    pub(crate) fn part(&self, part: &[NonZeroU32]) -> Option<(Range<usize>, Range<usize>)> {
        let id = resolve(self, part)?;
        let node = &self.nodes[id as usize];
        Some((node.header.clone(), node.body.clone()))
    }

    /// Where `section`'s content lies (as [`Parsed::find_section`] finds
    /// it); `None` where it names no part (empty content).
    pub(crate) fn locate<'s>(&self, section: &'s Section<'_>) -> Option<Located<'s>> {
        locate(self, section)
    }
}

impl Tree for &Shape {
    type Id = u32;

    fn root(self) -> u32 {
        0
    }

    fn kind(self, id: u32) -> Kind {
        self.nodes[id as usize].kind
    }

    fn header(self, id: u32) -> Range<usize> {
        self.nodes[id as usize].header.clone()
    }

    fn body(self, id: u32) -> Range<usize> {
        self.nodes[id as usize].body.clone()
    }

    fn child(self, id: u32, index: usize) -> Option<u32> {
        let children = self.nodes[id as usize].children.clone();
        self.children.get(children)?.get(index).copied()
    }
}

/// The bytes of `range` a `<start.length>` partial takes (all of it
/// without one): [`super::partial`] as a range.
pub fn cut_range(range: Range<usize>, partial: Option<(u32, NonZeroU32)>) -> Range<usize> {
    let Some((start, length)) = partial else {
        return range;
    };
    let start = range
        .start
        .saturating_add(usize::try_from(start).unwrap_or(usize::MAX))
        .min(range.end);
    let length = usize::try_from(length.get()).unwrap_or(usize::MAX);
    start..start.saturating_add(length).min(range.end)
}

fn count_nodes<'t, 'a>(parsed: &'t Parsed<'a>, node: &'t Node<'a>, count: &mut u64) {
    *count += 1;
    let mut index = 0;
    while let Some(child) = parsed.child(node, index) {
        count_nodes(parsed, child, count);
        index += 1;
    }
}

fn put_node<'t, 'a>(parsed: &'t Parsed<'a>, node: &'t Node<'a>, out: &mut Vec<u8>) {
    let kind = parsed.kind(node);
    out.push(kind_byte(
        kind,
        matches!(node.content, Content::Text { .. }),
    ));
    put(out, node.header.start as u64);
    put(out, node.header.len() as u64);
    put(out, node.body.len() as u64);
    let mut children = Vec::new();
    while let Some(child) = parsed.child(node, children.len()) {
        children.push(child);
    }
    if kind == Kind::Multipart {
        put(out, children.len() as u64);
    }
    for child in children {
        put_node(parsed, child, out);
    }
}

/// Where a part lies, for decoding it alone as it decodes within its
/// message (mail-parser decodes a part of a multipart its own way, e.g. a
/// malformed quoted-printable escape, and a last part that no boundary
/// ends its own way again). The root of a message/rfc822 part's message
/// lies as that part lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A message's root part (the message's or a message/rfc822's).
    Root,
    /// A part of a multipart, a boundary after it.
    Bounded,
    /// The last part of a multipart that no boundary ends.
    Unended,
}

/// A node's kind byte (see the module).
fn kind_byte(kind: Kind, text: bool) -> u8 {
    match kind {
        Kind::Leaf if text => 3,
        Kind::Leaf => 0,
        Kind::Multipart => 1,
        Kind::Message => 2,
    }
}

/// `value` as a LEB128 varint.
fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'b>(&'b [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    /// A LEB128 varint of at most 10 bytes that fits a u64, in its
    /// shortest form.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return (i == 0 || bits != 0).then_some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use imap_codec::decode::Decoder;
    use imap_codec::CommandCodec;
    use imap_types::command::CommandBody;
    use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};

    use super::super::fixtures::{alternative, bare, crlf, mixed, thread_set};
    use super::super::{filter_fields, partial};
    use super::*;

    /// A message/rfc822 part whose message is not multipart, inside a
    /// message/rfc822 part; a base64 message/rfc822 (a leaf).
    fn nested() -> Vec<u8> {
        crlf(
            "From: a@example.org
Subject: outer
Content-Type: multipart/mixed; boundary=\"o\"

--o
Content-Type: text/plain

first
--o
Content-Type: message/rfc822

From: b@example.org
Subject: middle
Content-Type: multipart/mixed; boundary=\"m\"

--m
Content-Type: message/rfc822

From: c@example.org
Subject: inner

innermost text
--m
Content-Type: text/plain

second of middle
--m--
--o
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

U3ViamVjdDogZW5jb2RlZA0KDQpib2R5DQo=
--o--
",
        )
    }

    /// A multipart/mixed inside a multipart/alternative; a message whose
    /// only part is a message/rfc822.
    fn mixed_in_alternative() -> Vec<u8> {
        crlf(
            "Subject: alt
Content-Type: multipart/alternative; boundary=\"a\"

--a
Content-Type: text/plain

plain
--a
Content-Type: multipart/mixed; boundary=\"x\"

--x
Content-Type: text/html

<p>html</p>
--x
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--x--
--a
Content-Type: text/enriched

rich
--a--
epilogue
",
        )
    }

    fn forwarded_only() -> Vec<u8> {
        crlf(
            "Subject: fwd
Content-Type: message/rfc822

Subject: the forwarded one
From: f@example.org

forwarded body
",
        )
    }

    fn all() -> Vec<Vec<u8>> {
        let mut all = vec![
            alternative(),
            mixed(),
            bare(),
            nested(),
            mixed_in_alternative(),
            forwarded_only(),
            b"no header at all".to_vec(),
            Vec::new(),
        ];
        all.extend(thread_set());
        all
    }

    /// The sections of one FETCH command, as the session gets them.
    fn names(items: &str) -> Vec<MessageDataItemName<'static>> {
        let line = format!("a FETCH 1 ({items})\r\n");
        let (_, command) = CommandCodec::default()
            .decode(line.as_bytes())
            .expect("a FETCH command");
        let CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            ..
        } = command.body
        else {
            panic!("not a FETCH");
        };
        names
            .into_iter()
            .map(imap_types::IntoStatic::into_static)
            .collect()
    }

    const SECTIONS: [&str; 19] = [
        "HEADER",
        "TEXT",
        "1",
        "1.MIME",
        "2",
        "2.1",
        "2.HEADER",
        "3.TEXT",
        "99",
        "2.2.1.TEXT",
        "3.1",
        "2.2.HEADER",
        "2.MIME",
        "1.1",
        "2.1.MIME",
        "2.2.2",
        "HEADER.FIELDS (Subject From)",
        "HEADER.FIELDS.NOT (Subject)",
        "2.HEADER.FIELDS (SUBJECT)",
    ];

    #[test]
    fn sections_located_on_the_decoded_tree_are_the_parsed_sections() {
        let mut items = vec!["BODY[]".to_string(), "BODY[]<3.7>".to_string()];
        for section in SECTIONS.iter().chain([&"3.HEADER.FIELDS.NOT (From)"]) {
            for partial in ["", "<0.1>", "<2.5>", "<5.100000>", "<100000.3>"] {
                items.push(format!("BODY[{section}]{partial}"));
            }
        }
        for item in &items {
            assert!(
                CommandCodec::default()
                    .decode(format!("a FETCH 1 ({item})\r\n").as_bytes())
                    .is_ok(),
                "{item}"
            );
        }
        let names = names(&items.join(" "));
        assert_eq!(names.len(), items.len());
        for (i, raw) in all().into_iter().enumerate() {
            let parsed = Parsed::parse(&raw);
            let shape = Shape::of(&parsed).expect("a tree");
            let mut encoded = Vec::new();
            shape.encode(&mut encoded);
            let shape = Shape::decode(&encoded).expect("decodes");
            assert_eq!(shape.size(), raw.len() as u64);
            for (name, text) in names.iter().zip(&items) {
                let MessageDataItemName::BodyExt {
                    section,
                    partial: range,
                    ..
                } = name
                else {
                    panic!("{text}");
                };
                let want = partial(&parsed.section(section.as_ref()), *range).to_vec();
                let got = match section.as_ref().map(|s| shape.locate(s)) {
                    None => raw[cut_range(0..raw.len(), *range)].to_vec(),
                    Some(None) => Vec::new(),
                    Some(Some(Located::Bytes(r))) => raw[cut_range(r, *range)].to_vec(),
                    Some(Some(Located::Fields {
                        header,
                        names,
                        keep,
                    })) => partial(&filter_fields(&raw[header], names, keep), *range).to_vec(),
                };
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "message {i}, {text}"
                );
            }
        }
    }

    #[test]
    fn nested_parts_are_found_where_they_should_be() {
        let raw = nested();
        let parsed = Parsed::parse(&raw);
        let shape = Shape::of(&parsed).expect("a tree");
        let text = |section: &str| {
            let name = names(&format!("BODY[{section}]"));
            let MessageDataItemName::BodyExt {
                section: Some(section),
                ..
            } = &name[0]
            else {
                panic!("{section}");
            };
            match shape.locate(section) {
                Some(Located::Bytes(r)) => String::from_utf8_lossy(&raw[r]).into_owned(),
                None => "(none)".to_string(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(text("1"), "first");
        assert_eq!(text("2.1.1"), "innermost text");
        assert_eq!(text("2.1.TEXT"), "innermost text");
        assert!(text("2.1.HEADER").starts_with("From: c@example.org\r\n"));
        assert_eq!(text("2.2"), "second of middle");
        assert!(text("3").starts_with("U3ViamVj"));
        assert_eq!(text("3.TEXT"), "(none)", "an encoded message is a leaf");
        assert_eq!(text("4"), "(none)");
        assert_eq!(text("1.1"), "(none)");
    }

    #[test]
    fn trees_that_fail_a_check_do_not_decode() {
        let raw = mixed();
        let shape = Shape::of(&Parsed::parse(&raw)).expect("a tree");
        let mut good = Vec::new();
        shape.encode(&mut good);
        assert_eq!(Shape::decode(&good).as_ref(), Some(&shape));
        // Every truncation, and anything after the tree.
        for end in 0..good.len() {
            assert!(Shape::decode(&good[..end]).is_none(), "cut at {end}");
        }
        assert!(Shape::decode(&[&good[..], &[0]].concat()).is_none());
        // Every single byte changed, to a few values: never a panic, and
        // what decodes stays within the body.
        for at in 0..good.len() {
            for value in [0, 1, 2, 3, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                if let Some(tree) = Shape::decode(&bad) {
                    for node in &tree.nodes {
                        assert!(node.header.start <= node.body.end);
                        assert!(node.body.end as u64 <= tree.size());
                    }
                }
            }
        }
        // Too small a body for the tree's ranges.
        let mut small = Vec::new();
        put(&mut small, raw.len() as u64 - 1);
        small.extend_from_slice(&good[varint_len(raw.len() as u64)..]);
        assert!(Shape::decode(&small).is_none());
        // A part before its previous sibling.
        let mut swapped = Vec::new();
        put(&mut swapped, 100);
        put(&mut swapped, 3);
        swapped.extend_from_slice(&[1, 0, 10, 90, 2, 0, 50, 5, 10, 0, 10, 5, 10]);
        assert!(Shape::decode(&swapped).is_none());
        swapped[7..11].copy_from_slice(&[0, 10, 5, 10]);
        swapped[11..].copy_from_slice(&[0, 50, 5, 10]);
        assert!(Shape::decode(&swapped).is_some(), "in order it decodes");
        // A child outside its parent's body.
        let mut outside = Vec::new();
        put(&mut outside, 100);
        put(&mut outside, 2);
        outside.extend_from_slice(&[2, 0, 10, 20, 0, 25, 1, 10]);
        assert!(Shape::decode(&outside).is_none());
        // Counts: none, more than the limit, more than there are, an
        // unknown kind, a varint too long or not in its shortest form.
        assert!(Shape::decode(&[10, 0]).is_none());
        let mut many = Vec::new();
        put(&mut many, 10);
        put(&mut many, MAX_NODES as u64 + 1);
        many.extend_from_slice(&[0, 0, 0, 0]);
        assert!(Shape::decode(&many).is_none());
        assert!(Shape::decode(&[10, 2, 0, 0, 0, 0]).is_none());
        assert!(Shape::decode(&[10, 1, 4, 0, 0, 0]).is_none());
        assert!(Shape::decode(&[10, 1, 0, 0, 0, 0]).is_some());
        assert!(Shape::decode(&[0x8a, 0x00, 1, 0, 0, 0, 0]).is_none());
        assert!(Shape::decode(&[0xff; 12]).is_none());
        assert!(Shape::decode(&[]).is_none());
    }

    #[test]
    fn deep_nesting_is_kept_to_the_depth_limit() {
        let mut text = String::new();
        for i in 0..(MAX_DEPTH + 10) {
            text.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
            ));
        }
        text.push_str("Content-Type: text/plain\n\ndeep\n");
        let raw = crlf(&text);
        let parsed = Parsed::parse(&raw);
        let shape = Shape::of(&parsed).expect("a tree");
        let mut encoded = Vec::new();
        shape.encode(&mut encoded);
        assert_eq!(Shape::decode(&encoded), Some(shape));
        // One level deeper than the limit: refused.
        let mut deep = Vec::new();
        put(&mut deep, 10);
        put(&mut deep, MAX_DEPTH as u64 + 2);
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(&[1, 0, 0, 0, 1]);
        }
        deep.extend_from_slice(&[0, 0, 0, 0]);
        assert!(Shape::decode(&deep).is_none());
    }

    #[test]
    fn partials_cut_ranges_like_partial_cuts_bytes() {
        let content: Vec<u8> = (0..20).collect();
        let nz = |n| NonZeroU32::new(n).expect("non-zero");
        for p in [
            None,
            Some((0, nz(1))),
            Some((5, nz(3))),
            Some((15, nz(100))),
            Some((20, nz(1))),
            Some((u32::MAX, nz(u32::MAX))),
        ] {
            let r = cut_range(30..50, p);
            assert_eq!(
                content[r.start - 30..r.end - 30],
                *partial(&content, p),
                "{p:?}"
            );
        }
    }

    fn varint_len(value: u64) -> usize {
        let mut out = Vec::new();
        put(&mut out, value);
        out.len()
    }
}

//! FETCH items that carry the raw message, whole or a byte range of it
//! (`BODY[]`, `BODY.PEEK[]`, `BINARY[]`, `BINARY.PEEK[]`, each with or
//! without `<partial>`, and `RFC822`), streamed from storage to the socket
//! when no other item of the message needs it parsed; so are the
//! sections the message's MIME tree kept in its digest locates
//! ([`Shape`]: `BODY[section]<partial>` of part numbers, HEADER, TEXT,
//! MIME, `RFC822.HEADER`, `RFC822.TEXT`, each a byte range of the body),
//! and HEADER.FIELDS[.NOT] is filtered from a read of the header's range
//! only, and `BINARY[part]`/`BINARY.SIZE[part]` decoded from a read of
//! the part's header and body only (so these never read the whole body,
//! nor parse it). The response is
//! encoded with an empty literal in each such item
//! ([`response::fetch_pieces`]), and each literal is announced with its
//! length and copied from a [`BodyReader`] chunk by chunk, so the session
//! never holds the message whole.
//!
//! A body whose bytes went out cannot be taken back: when a chunk cannot
//! be read, the connection ends at once (the literal cannot be finished);
//! when the whole body read back does not match its hash, the FETCH
//! response is finished, `* BYE [CORRUPTION]` follows, and the connection
//! ends without the command completing.

use std::num::NonZeroU32;
use std::ops::Range;

use cairn_storage::mailbox::{BlobRef, BodyReader, MailError};
use imap_types::core::{AString, IString, Literal, LiteralMode, NString, NString8, Vec1};
use imap_types::extensions::binary::Literal8;
use imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use imap_types::IntoStatic;

use super::conn::Conn;
use super::{Reply, Session};
use crate::codec::response;
use crate::message::{cut_range, decode_part, filter_fields, partial, Located, Shape};

/// An empty literal: a hole (see the module), or an empty section.
fn hole() -> NString<'static> {
    NString(Some(IString::Literal(Literal::unvalidated(&b""[..]))))
}

/// An item sent from the raw message, with its literal left empty (see
/// the module), and the byte range of the message it carries (`None`: all
/// of it); `None` for any other item.
pub(super) fn raw_item(
    name: &MessageDataItemName<'_>,
) -> Option<(MessageDataItem<'static>, Option<Range<u64>>)> {
    let range = |partial: &Option<(u32, std::num::NonZeroU32)>| {
        partial.map(|(start, length)| {
            let start = u64::from(start);
            start..start + u64::from(length.get())
        })
    };
    match name {
        MessageDataItemName::Rfc822 => Some((MessageDataItem::Rfc822(hole()), None)),
        MessageDataItemName::BodyExt {
            section: None,
            partial,
            ..
        } => Some((
            MessageDataItem::BodyExt {
                section: None,
                origin: partial.map(|(start, _)| start),
                data: hole(),
            },
            range(partial),
        )),
        MessageDataItemName::Binary {
            section, partial, ..
        } if section.is_empty() => Some((
            MessageDataItem::Binary {
                section: Vec::new(),
                value: NString8::Literal8(Literal8 {
                    data: (&b""[..]).into(),
                    mode: LiteralMode::Sync,
                }),
            },
            range(partial),
        )),
        _ => None,
    }
}

/// Whether an item is a section of the message (not all of it) that a
/// kept MIME tree locates ([`unparsed`]).
pub(super) fn is_section(name: &MessageDataItemName<'_>) -> bool {
    match name {
        MessageDataItemName::Rfc822Header
        | MessageDataItemName::Rfc822Text
        | MessageDataItemName::BinarySize { .. }
        | MessageDataItemName::BodyExt {
            section: Some(_), ..
        } => true,
        MessageDataItemName::Binary { section, .. } => !section.is_empty(),
        _ => false,
    }
}

/// What a BINARY item of a part wants of the part's decoded body.
#[derive(Debug, Clone, Copy)]
pub(super) enum Decoded {
    /// BINARY[part]<partial>: its bytes.
    Content(Option<(u32, std::num::NonZeroU32)>),
    /// BINARY.SIZE[part]: its size.
    Size,
}

/// The BINARY item of [`Unparsed::Part`] for `section`, given the part's
/// header and body: the body decoded ([`decode_part`]), cut to the
/// partial or measured; a transfer encoding that does not decode is a
/// `NO [UNKNOWN-CTE]`, as when the message is parsed.
pub(super) fn decoded_item(
    section: &[NonZeroU32],
    want: Decoded,
    header: &[u8],
    body: &[u8],
) -> Result<MessageDataItem<'static>, Reply> {
    let content = decode_part(header, body).map_err(|e| Reply::no("UNKNOWN-CTE", e.to_string()))?;
    Ok(match want {
        Decoded::Content(range) => MessageDataItem::Binary {
            section: section.to_vec(),
            value: NString8::Literal8(Literal8 {
                data: partial(&content, range).to_vec().into(),
                mode: LiteralMode::Sync,
            }),
        },
        Decoded::Size => MessageDataItem::BinarySize {
            section: section.to_vec(),
            size: u32::try_from(content.len()).unwrap_or(u32::MAX),
        },
    })
}

/// How an item is sent without the message parsed.
pub(super) enum Unparsed<'n> {
    /// The item's literal (left empty) carries the bytes `range` of the
    /// body (`None`: all of it), as a literal8 (NUL as it is) when
    /// `binary`, else as a literal (NUL as 0x80).
    Stream {
        item: MessageDataItem<'static>,
        range: Option<Range<u64>>,
        binary: bool,
    },
    /// The item as it is (an empty section).
    Ready(MessageDataItem<'static>),
    /// BINARY[part] or BINARY.SIZE[part]: the part's header and body read
    /// (`header` then `body`, side by side), then [`decoded_item`].
    Part {
        section: &'n [NonZeroU32],
        want: Decoded,
        header: Range<u64>,
        body: Range<u64>,
    },
    /// HEADER.FIELDS[.NOT]: the header's bytes `header` read, then
    /// [`fields_item`].
    Fields {
        item: MessageDataItem<'static>,
        header: Range<u64>,
        names: &'n Vec1<AString<'n>>,
        keep: bool,
        partial: Option<(u32, std::num::NonZeroU32)>,
    },
}

/// The HEADER.FIELDS[.NOT] item of [`Unparsed::Fields`], given the
/// header's bytes: `item` with the fields of `header` that `names` lists
/// (or does not, unless `keep`), cut to `range`, NUL as 0x80.
pub(super) fn fields_item(
    mut item: MessageDataItem<'static>,
    header: &[u8],
    names: &Vec1<AString<'_>>,
    keep: bool,
    range: Option<(u32, std::num::NonZeroU32)>,
) -> MessageDataItem<'static> {
    let mut data = partial(&filter_fields(header, names, keep), range).to_vec();
    response::without_nul(&mut data);
    if let MessageDataItem::BodyExt { data: literal, .. } = &mut item {
        *literal = NString(Some(IString::Literal(Literal::unvalidated(data))));
    }
    item
}

/// How `name` is sent without the message parsed, given its MIME tree
/// (`tree`, when kept): the raw message ([`raw_item`]), or a section the
/// tree locates (following [`crate::message::Parsed::section`]'s rules
/// exactly: it resolves sections with the same code); `None`: the
/// message must be parsed for it.
pub(super) fn unparsed<'n>(
    name: &'n MessageDataItemName<'_>,
    tree: Option<&Shape>,
) -> Option<Unparsed<'n>> {
    static HEADER: Section<'static> = Section::Header(None);
    static TEXT: Section<'static> = Section::Text(None);
    if let Some((item, range)) = raw_item(name) {
        let binary = matches!(item, MessageDataItem::Binary { .. });
        return Some(Unparsed::Stream {
            item,
            range,
            binary,
        });
    }
    let tree = tree?;
    let wide = |r: Range<usize>| r.start as u64..r.end as u64;
    let binary = match name {
        MessageDataItemName::Binary {
            section, partial, ..
        } => Some((section, Decoded::Content(*partial))),
        MessageDataItemName::BinarySize { section } => Some((section, Decoded::Size)),
        _ => None,
    };
    if let Some((section, want)) = binary {
        return Some(match (section.is_empty(), tree.part(section)) {
            // BINARY.SIZE[]: the message as it is.
            (true, _) => Unparsed::Ready(MessageDataItem::BinarySize {
                section: Vec::new(),
                size: u32::try_from(tree.size()).unwrap_or(u32::MAX),
            }),
            (false, Some((header, body))) => Unparsed::Part {
                section,
                want,
                header: wide(header),
                body: wide(body),
            },
            // No such part: empty.
            (false, None) => Unparsed::Ready(match decoded_item(section, want, &[], &[]) {
                Ok(item) => item,
                Err(_) => return None,
            }),
        });
    }
    let (item, section, range) = match name {
        MessageDataItemName::Rfc822Header => (MessageDataItem::Rfc822Header(hole()), &HEADER, None),
        MessageDataItemName::Rfc822Text => (MessageDataItem::Rfc822Text(hole()), &TEXT, None),
        MessageDataItemName::BodyExt {
            section: Some(section),
            partial,
            ..
        } => (
            MessageDataItem::BodyExt {
                section: Some(section.clone().into_static()),
                origin: partial.map(|(start, _)| start),
                data: hole(),
            },
            section,
            *partial,
        ),
        _ => return None,
    };
    Some(match tree.locate(section) {
        None => Unparsed::Ready(item),
        Some(Located::Bytes(bytes)) => {
            let bytes = cut_range(bytes, range);
            if bytes.is_empty() {
                Unparsed::Ready(item)
            } else {
                Unparsed::Stream {
                    item,
                    range: Some(wide(bytes)),
                    binary: false,
                }
            }
        }
        Some(Located::Fields {
            header,
            names,
            keep,
        }) => Unparsed::Fields {
            item,
            header: wide(header),
            names,
            keep,
            partial: range,
        },
    })
}

/// How a streamed FETCH response failed.
pub(super) enum Failed {
    /// Before anything of it was written: the command fails.
    Reply(Reply),
    /// Part-way: the connection was ended.
    Ended,
}

impl Session<'_> {
    /// The bytes `range` of the body `blob`, read in chunks (a header for
    /// HEADER.FIELDS: not the whole body).
    pub(super) async fn read_range(
        &self,
        blob: &BlobRef,
        range: Range<u64>,
    ) -> Result<Vec<u8>, MailError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let store = &self.inner.services.mailstore;
        let mut reader = store.body_reader(blob, Some(range)).await?;
        let mut out = Vec::with_capacity(usize::try_from(reader.size()).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Writes `* seq FETCH (…)` of `items`, whose items at `holes` carry
    /// the bytes of `readers`, in order (see the module), each marked
    /// whether it is a literal8 (BINARY: NUL sent as it is) or a literal
    /// (NUL sent as 0x80); the last piece is left in the output buffer.
    pub(super) async fn send_streamed(
        &mut self,
        seq: NonZeroU32,
        items: Vec<MessageDataItem<'_>>,
        holes: &[usize],
        extra: &[String],
        readers: Vec<(BodyReader, bool)>,
        conn: &mut Conn,
    ) -> Result<(), Failed> {
        let pieces = response::fetch_pieces(seq, items, holes, extra).unwrap_or_default();
        let Some((last, before)) = pieces.split_last() else {
            return Err(Failed::Reply(Reply::no("SERVERBUG", "No FETCH items")));
        };
        if before.len() != readers.len() {
            return Err(Failed::Reply(Reply::no(
                "SERVERBUG",
                "The FETCH response lost a literal",
            )));
        }
        let holes = readers.len();
        for (i, (piece, (mut reader, binary))) in before.iter().zip(readers).enumerate() {
            self.out.extend_from_slice(piece);
            self.out
                .extend_from_slice(format!("{{{}}}\r\n", reader.size()).as_bytes());
            if conn.flush(&mut self.out).await.is_err() {
                return Err(Failed::Ended);
            }
            let mut sent = 0;
            while let Some(chunk) = reader.next_chunk().await {
                let mut chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        tracing::error!(peer = %self.peer, %seq, error = %e, "imap: a streamed body failed");
                        // Every byte of the last literal went out (a whole
                        // body not matching its hash): the response can be
                        // finished and followed by BYE; otherwise a literal
                        // is cut short and the connection just ends.
                        if sent == reader.size() && i + 1 == holes {
                            self.out.extend_from_slice(last);
                            response::untagged(
                                &mut self.out,
                                "BYE [CORRUPTION] A message is damaged in storage",
                            );
                        }
                        conn.abort(&mut self.out).await;
                        return Err(Failed::Ended);
                    }
                };
                sent += chunk.len() as u64;
                if !binary {
                    response::without_nul(&mut chunk);
                }
                if conn.flush(&mut chunk).await.is_err() {
                    return Err(Failed::Ended);
                }
            }
        }
        self.out.extend_from_slice(last);
        Ok(())
    }
}

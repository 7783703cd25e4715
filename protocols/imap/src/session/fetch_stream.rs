//! FETCH items that carry the raw message, whole or a byte range of it
//! (`BODY[]`, `BODY.PEEK[]`, `BINARY[]`, `BINARY.PEEK[]`, each with or
//! without `<partial>`, and `RFC822`), streamed from storage to the socket
//! when no other item of the message needs it parsed: the response is
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

use cairn_storage::mailbox::BodyReader;
use imap_types::core::{IString, Literal, LiteralMode, NString, NString8};
use imap_types::extensions::binary::Literal8;
use imap_types::fetch::{MessageDataItem, MessageDataItemName};

use super::conn::Conn;
use super::{Reply, Session};
use crate::codec::response;

/// An item sent from the raw message, with its literal left empty (see
/// the module), and the byte range of the message it carries (`None`: all
/// of it); `None` for any other item.
pub(super) fn raw_item(
    name: &MessageDataItemName<'_>,
) -> Option<(MessageDataItem<'static>, Option<Range<u64>>)> {
    let hole = || NString(Some(IString::Literal(Literal::unvalidated(&b""[..]))));
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

/// How a streamed FETCH response failed.
pub(super) enum Failed {
    /// Before anything of it was written: the command fails.
    Reply(Reply),
    /// Part-way: the connection was ended.
    Ended,
}

impl Session<'_> {
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

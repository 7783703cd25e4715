//! FETCH and UID FETCH: message attributes from the index; ENVELOPE, BODY
//! and BODYSTRUCTURE from the shard's summaries, or from the digest made
//! when the body was stored (the message is read and parsed only when it
//! has neither, then not again); the raw message (`BODY[]`, `RFC822`,
//! `BINARY[]`, with or without a range) and the sections the digest's
//! MIME tree locates streamed from storage, and `BINARY[part]` and
//! `BINARY.SIZE[part]` decoded from a read of the part alone, when
//! nothing else needs the message parsed (see [`super::fetch_stream`]);
//! without a kept tree, every item of the message's bytes from the parsed
//! message, read only when asked; `BODY[…]` without
//! PEEK sets `\Seen` durably first; CHANGEDSINCE
//! and VANISHED (RFC 7162); EMAILID from the index and THREADID from the
//! summaries (RFC 8474, see [`crate::codec::objectid`]).

use std::borrow::Cow;
use std::num::{NonZeroU32, NonZeroU64};

use cairn_storage::mailbox::flags::SEEN;
use cairn_storage::mailbox::{FlagAction, Flags, Message};
use chrono::{FixedOffset, TimeZone};
use imap_types::command::FetchModifier;
use imap_types::core::Atom;
use imap_types::core::NString8;
use imap_types::core::{IString, Literal, NString};
use imap_types::datetime::DateTime;
use imap_types::extensions::binary::Literal8;
use imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_types::flag::{Flag, FlagFetch};
use imap_types::sequence::SequenceSet;

use super::conn::Conn;
use super::fetch_stream::{
    decoded_item, fields_item, is_section, raw_item, unparsed, Failed, Unparsed,
};
use super::summaries::Summary;
use super::view::uid_set;
use super::{Reply, Session};
use crate::codec::extended::FetchObjects;
use crate::codec::{objectid, response};
use crate::message::{partial, Parsed};

/// Past this many bytes of answer, FETCH writes what it has before going
/// on: a fetch of a whole large mailbox streams instead of building the
/// whole answer in memory.
const STREAM_AT: usize = 256 * 1024;

/// The flags as typed FETCH data.
pub(crate) fn flag_fetch(flags: &Flags, recent: bool) -> Vec<FlagFetch<'static>> {
    use cairn_storage::mailbox::flags::{ANSWERED, DELETED, DRAFT, FLAGGED};
    let mut out = Vec::new();
    for (bit, flag) in [
        (SEEN, Flag::Seen),
        (ANSWERED, Flag::Answered),
        (FLAGGED, Flag::Flagged),
        (DELETED, Flag::Deleted),
        (DRAFT, Flag::Draft),
    ] {
        if flags.system & bit != 0 {
            out.push(FlagFetch::Flag(flag));
        }
    }
    if recent {
        out.push(FlagFetch::Recent);
    }
    for k in &flags.keywords {
        if let Ok(atom) = Atom::try_from(k.clone()) {
            out.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    out
}

fn internal_date(secs: i64) -> Option<DateTime> {
    let utc = FixedOffset::east_opt(0)?;
    let at = utc.timestamp_opt(secs, 0).single()?;
    DateTime::try_from(at).ok()
}

fn literal(mut data: Cow<'_, [u8]>) -> NString<'_> {
    if data.contains(&0) {
        response::without_nul(data.to_mut());
    }
    NString(Some(IString::Literal(Literal::unvalidated(data))))
}

/// Whether an item needs the message's bytes.
fn needs_body(name: &MessageDataItemName<'_>) -> bool {
    !matches!(
        name,
        MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::Uid
            | MessageDataItemName::ModSeq
    ) && !is_summary(name)
}

/// Whether an item is answered from the message's [`Summary`].
fn is_summary(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::Envelope
            | MessageDataItemName::Body
            | MessageDataItemName::BodyStructure
    )
}

fn sets_seen(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Binary { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

impl Session<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch(
        &mut self,
        account: &str,
        set: &SequenceSet,
        names: MacroOrMessageDataItemNames<'_>,
        objects: FetchObjects,
        uid: bool,
        modifiers: &[FetchModifier],
        conn: &mut Conn,
    ) -> Reply {
        let Some(view) = &self.selected else {
            return Reply::bad("No mailbox selected");
        };
        let mut names = match names {
            MacroOrMessageDataItemNames::Macro(m) => m
                .expand()
                .into_iter()
                .map(imap_types::IntoStatic::into_static)
                .collect(),
            MacroOrMessageDataItemNames::MessageDataItemNames(n) => n,
        };
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(v) => changed_since = Some(v.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && (!uid || !self.enabled.qresync || changed_since.is_none()) {
            return Reply::bad("VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
        }
        if uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        if changed_since.is_some() || names.contains(&MessageDataItemName::ModSeq) {
            self.enabled.condstore = true;
            if !names.contains(&MessageDataItemName::ModSeq) {
                names.push(MessageDataItemName::ModSeq);
            }
        }
        let targets = view.resolve(set, uid);
        let mailbox = view.mailbox.clone();
        let read_only = view.read_only;
        let store = &self.inner.services.mailstore;
        if vanished {
            let since = changed_since.unwrap_or(0);
            let gone = store.read_mailbox(account, &mailbox, |mb| {
                let all: Vec<u32> = mb
                    .expunged
                    .iter()
                    .filter(|(_, at)| *at > since)
                    .map(|(u, _)| *u)
                    .collect();
                let mut all = all;
                all.sort_unstable();
                all.dedup();
                all
            });
            if let Ok(gone) = gone {
                let largest = self
                    .selected
                    .as_ref()
                    .and_then(|v| v.uids().last().copied())
                    .unwrap_or(0);
                let picked = filter_set(set, &gone, largest);
                if !picked.is_empty() {
                    response::untagged(
                        &mut self.out,
                        &format!("VANISHED (EARLIER) {}", uid_set(&picked)),
                    );
                }
            }
        }
        // \Seen first, durably, for what the fetch reads.
        if !read_only && names.iter().any(sets_seen) {
            let unseen: Vec<u32> = store
                .read_mailbox(account, &mailbox, |mb| {
                    targets
                        .iter()
                        .filter(|(_, u)| mb.messages.get(u).is_some_and(|m| !m.flags.seen()))
                        .map(|(_, u)| *u)
                        .collect()
                })
                .unwrap_or_default();
            if !unseen.is_empty() {
                let seen = Flags::new(SEEN, &[]);
                if let Err(e) = store
                    .store_flags(account, &mailbox, &unseen, FlagAction::Add, &seen, None)
                    .await
                {
                    return Reply::mail(&e);
                }
                if !names.contains(&MessageDataItemName::Flags) {
                    names.push(MessageDataItemName::Flags);
                }
            }
        }
        let messages: Vec<(u32, Message)> = match store.read_mailbox(account, &mailbox, |mb| {
            targets
                .iter()
                .filter_map(|(seq, u)| mb.messages.get(u).map(|m| (*seq, m.clone())))
                .filter(|(_, m)| changed_since.is_none_or(|c| m.modseq > c))
                .collect()
        }) {
            Ok(m) => m,
            Err(e) => return Reply::mail(&e),
        };
        let with_body = names.iter().any(needs_body);
        // Only the raw message and sections are asked for: they stream
        // (see fetch_stream), sections when the summary has the tree.
        let unparsed_only = names
            .iter()
            .filter(|n| needs_body(n))
            .all(|n| raw_item(n).is_some() || is_section(n));
        let sections = with_body && unparsed_only && names.iter().any(is_section);
        let with_summary = names.iter().any(is_summary) || objects.threadid || sections;
        let summaries = &self.inner.summaries;
        for (seq, m) in messages {
            let mut summary = if with_summary {
                self.stored_summary(&m.blob).await
            } else {
                None
            };
            let streamed = with_body
                && unparsed_only
                && (!with_summary || summary.is_some())
                && (!sections || summary.as_ref().is_some_and(|s| s.tree(m.size).is_some()));
            let raw = if (with_body && !streamed) || (with_summary && summary.is_none()) {
                match store.body(&m.blob).await {
                    Ok(raw) => Some(raw),
                    Err(e) => return Reply::mail(&e),
                }
            } else {
                None
            };
            let parsed = raw.as_deref().map(Parsed::parse);
            if let (true, None, Some(p)) = (with_summary, &summary, &parsed) {
                summary = Some(summaries.insert(m.blob.hash, Summary::of(p)));
            }
            let tree = summary.as_deref().and_then(|s| s.tree(m.size));
            let recent = self.selected.as_ref().is_some_and(|v| v.is_recent(m.uid));
            let mut items = Vec::with_capacity(names.len());
            let (mut holes, mut readers) = (Vec::new(), Vec::new());
            for name in &names {
                match streamed.then(|| unparsed(name, tree)).flatten() {
                    Some(Unparsed::Stream {
                        item,
                        range,
                        binary,
                    }) => {
                        match store.body_reader(&m.blob, range).await {
                            Ok(reader) => readers.push((reader, binary)),
                            Err(e) => return Reply::mail(&e),
                        }
                        holes.push(items.len());
                        items.push(item);
                        continue;
                    }
                    Some(Unparsed::Ready(item)) => {
                        items.push(item);
                        continue;
                    }
                    Some(Unparsed::Part {
                        section,
                        want,
                        header,
                        body,
                    }) => {
                        let part = match self.read_range(&m.blob, header.start..body.end).await {
                            Ok(part) => part,
                            Err(e) => return Reply::mail(&e),
                        };
                        let (head, rest) =
                            part.split_at(((header.end - header.start) as usize).min(part.len()));
                        match decoded_item(section, want, head, rest) {
                            Ok(item) => items.push(item),
                            Err(reply) => return reply,
                        }
                        continue;
                    }
                    Some(Unparsed::Fields {
                        item,
                        header,
                        names,
                        keep,
                        partial,
                    }) => {
                        match self.read_range(&m.blob, header).await {
                            Ok(header) => {
                                items.push(fields_item(item, &header, names, keep, partial));
                            }
                            Err(e) => return Reply::mail(&e),
                        }
                        continue;
                    }
                    None => {}
                }
                match self.item(name, &m, recent, parsed.as_ref(), summary.as_deref()) {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => {}
                    Err(reply) => return reply,
                }
            }
            if let Some(view) = &mut self.selected {
                if names.contains(&MessageDataItemName::Flags) {
                    view.reported(m.uid, m.modseq);
                }
            }
            let mut extra = Vec::new();
            if objects.emailid {
                let id = objectid::email(objectid::email_value(&m.blob.hash));
                extra.push(format!("EMAILID ({id})"));
            }
            if let (true, Some(summary)) = (objects.threadid, &summary) {
                let id = objectid::thread(summary.thread(&m.blob.hash));
                extra.push(format!("THREADID ({id})"));
            }
            let Some(seq) = NonZeroU32::new(seq) else {
                continue;
            };
            if readers.is_empty() {
                response::fetch(&mut self.out, seq, items, &extra);
            } else {
                let sent = self
                    .send_streamed(seq, items, &holes, &extra, readers, conn)
                    .await;
                match sent {
                    Ok(()) => {}
                    Err(Failed::Reply(reply)) => return reply,
                    Err(Failed::Ended) => return Reply::no("UNAVAILABLE", "The connection failed"),
                }
            }
            // A large answer goes out as it is made, not whole.
            if self.out.len() >= STREAM_AT && conn.flush(&mut self.out).await.is_err() {
                return Reply::no("UNAVAILABLE", "The connection failed");
            }
        }
        Reply::ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        })
    }

    fn item<'p>(
        &self,
        name: &MessageDataItemName<'_>,
        m: &Message,
        recent: bool,
        parsed: Option<&Parsed<'p>>,
        summary: Option<&Summary>,
    ) -> Result<Option<MessageDataItem<'p>>, Reply> {
        let need = || parsed.ok_or_else(|| Reply::no("SERVERBUG", "Message not loaded"));
        let summary = || summary.ok_or_else(|| Reply::no("SERVERBUG", "Message not loaded"));
        Ok(Some(match name {
            MessageDataItemName::Flags => MessageDataItem::Flags(flag_fetch(&m.flags, recent)),
            MessageDataItemName::Uid => match NonZeroU32::new(m.uid) {
                Some(u) => MessageDataItem::Uid(u),
                None => return Ok(None),
            },
            MessageDataItemName::InternalDate => match internal_date(m.internal_date) {
                Some(d) => MessageDataItem::InternalDate(d),
                None => return Ok(None),
            },
            MessageDataItemName::Rfc822Size => {
                MessageDataItem::Rfc822Size(u32::try_from(m.size).unwrap_or(u32::MAX))
            }
            MessageDataItemName::ModSeq => match NonZeroU64::new(m.modseq) {
                Some(v) => MessageDataItem::ModSeq(v),
                None => return Ok(None),
            },
            MessageDataItemName::Envelope => MessageDataItem::Envelope(summary()?.envelope.clone()),
            MessageDataItemName::Body => MessageDataItem::Body(summary()?.body.clone()),
            MessageDataItemName::BodyStructure => {
                MessageDataItem::BodyStructure(summary()?.structure.clone())
            }
            MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(literal(need()?.section(None))),
            MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(literal(
                need()?.section(Some(&Section::Header(None))),
            )),
            MessageDataItemName::Rfc822Text => {
                MessageDataItem::Rfc822Text(literal(need()?.section(Some(&Section::Text(None)))))
            }
            MessageDataItemName::BodyExt {
                section,
                partial: range,
                ..
            } => {
                let content = need()?.section(section.as_ref());
                let data = cut(content, *range);
                MessageDataItem::BodyExt {
                    section: section.clone().map(imap_types::IntoStatic::into_static),
                    origin: range.map(|(start, _)| start),
                    data: literal(data),
                }
            }
            MessageDataItemName::Binary {
                section,
                partial: range,
                ..
            } => {
                let content = need()?
                    .binary(section)
                    .map_err(|e| Reply::no("UNKNOWN-CTE", e.to_string()))?;
                MessageDataItem::Binary {
                    section: section.clone(),
                    value: NString8::Literal8(Literal8 {
                        data: cut(content, *range),
                        mode: imap_types::core::LiteralMode::Sync,
                    }),
                }
            }
            MessageDataItemName::BinarySize { section } => {
                let content = need()?
                    .binary(section)
                    .map_err(|e| Reply::no("UNKNOWN-CTE", e.to_string()))?;
                MessageDataItem::BinarySize {
                    section: section.clone(),
                    size: u32::try_from(content.len()).unwrap_or(u32::MAX),
                }
            }
        }))
    }
}

/// `<start.length>` of owned or borrowed content.
fn cut(content: Cow<'_, [u8]>, range: Option<(u32, NonZeroU32)>) -> Cow<'_, [u8]> {
    match content {
        Cow::Borrowed(b) => Cow::Borrowed(partial(b, range)),
        Cow::Owned(o) => Cow::Owned(partial(&o, range).to_vec()),
    }
}

/// The UIDs of `uids` (sorted) that `set` names.
fn filter_set(set: &SequenceSet, uids: &[u32], largest: u32) -> Vec<u32> {
    use imap_types::sequence::{SeqOrUid, Sequence};
    let resolve = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest.max(uids.last().copied().unwrap_or(0)),
    };
    uids.iter()
        .copied()
        .filter(|u| {
            set.0.as_ref().iter().any(|s| {
                let (a, b) = match s {
                    Sequence::Single(x) => (resolve(x), resolve(x)),
                    Sequence::Range(x, y) => (resolve(x), resolve(y)),
                };
                (a.min(b)..=a.max(b)).contains(u)
            })
        })
        .collect()
}

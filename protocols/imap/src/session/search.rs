//! SEARCH, SORT and THREAD (and their UID forms): candidates from the
//! index, message bytes loaded only when a key needs them; evaluation,
//! ordering and threading by [`crate::message`].
//!
//! What a key reads of a message comes from the MIME tree kept in its
//! digest when there is one: the header's range alone (header keys, SORT,
//! THREAD), and the text parts' ranges alone, each decoded on its own
//! (BODY, TEXT), so that attachments are never read and nothing is parsed
//! whole. A message without a kept tree, or a small one whose summary is
//! not in memory, is read whole (and parsed only for its text). Headers
//! read are kept in the shard's header cache ([`Headers`]), so searching
//! header keys again reads nothing; the reads of up to [`READ_WINDOW`]
//! messages are in flight together. SEARCH RETURN answers
//! `* ESEARCH` (RFC 4731) and saves the result for `$` (RFC 5182), as
//! does every SEARCH once IMAP4rev2 is enabled.

use std::fmt::Write as _;
use std::ops::Range;
use std::rc::Rc;

use cairn_storage::mailbox::{MailError, Message, BODY_CHUNK};
use futures_util::future::join_all;
use imap_types::extensions::sort::SortCriterion;
use imap_types::extensions::thread::{Thread, ThreadingAlgorithm};
use imap_types::response::Data;
use imap_types::search::SearchKey;

use super::view::uid_set;
use super::{Reply, Session};
use crate::codec::extended::SearchReturn;
use crate::codec::response::{self, string};
use crate::message::{
    self, Candidate, MessageText, Parsed, SearchContext, Shape, SortItem, TextReads,
};
use crate::session::shard_cache::ShardCache;
use crate::session::summaries::Summary;

/// A message that matched: its number, UID, and (for SORT/THREAD) header.
struct Hit {
    seq: u32,
    uid: u32,
    internal_date: i64,
    size: u64,
    header: Option<Vec<u8>>,
}

/// The hits' headers, parsed (SORT and THREAD read nothing else).
fn parse_all(hits: &[Hit]) -> Vec<Parsed<'_>> {
    hits.iter()
        .map(|h| Parsed::parse(h.header.as_deref().unwrap_or_default()))
        .collect()
}

/// Message headers SEARCH read (header keys, SORT, THREAD), by body, up
/// to [`HEADER_CACHE_BYTES`] of them: a search of the same mailbox again
/// reads no header from disk (as Dovecot's cache file keeps the header
/// fields searched on).
pub(crate) type Headers = ShardCache<Vec<u8>>;

/// The bytes of headers a shard keeps for SEARCH.
const HEADER_CACHE_BYTES: usize = 16 << 20;

/// The shard's header cache (see [`Headers`]); an entry weighs its bytes
/// and what keeping it costs besides.
pub(crate) fn headers() -> Headers {
    ShardCache::new(HEADER_CACHE_BYTES, |header| header.len() + 96)
}

/// MIME trees SEARCH decoded from digests (of messages whose summary is
/// not in memory), by body, up to [`TREE_CACHE_ENTRIES`]: a search of the
/// same messages again reads no digest.
pub(crate) type Trees = ShardCache<Shape>;

/// The trees a shard keeps for SEARCH.
const TREE_CACHE_ENTRIES: usize = 20_000;

/// The shard's tree cache (see [`Trees`]).
pub(crate) fn trees() -> Trees {
    ShardCache::new(TREE_CACHE_ENTRIES, |_| 1)
}

/// Most messages whose reads are in flight together in a search, and
/// most bytes of them (a message larger is read alone).
const READ_WINDOW: usize = 32;
const READ_WINDOW_BYTES: u64 = 4 << 20;

/// How many of `messages` (at least one) the next window reads.
fn read_window(messages: &[(u32, Message)]) -> usize {
    let mut bytes = 0u64;
    let fits = messages
        .iter()
        .take(READ_WINDOW)
        .take_while(|(_, m)| {
            bytes = bytes.saturating_add(m.size);
            bytes <= READ_WINDOW_BYTES
        })
        .count();
    fits.max(1)
}

fn wide(range: Range<usize>) -> Range<u64> {
    range.start as u64..range.end as u64
}

fn sort_items<'p>(hits: &[Hit], parsed: &'p [Parsed<'p>], uid: bool) -> Vec<SortItem<'p>> {
    hits.iter()
        .zip(parsed)
        .map(|(h, p)| SortItem {
            id: if uid { h.uid } else { h.seq },
            seq: h.seq,
            internal_date: h.internal_date,
            size: h.size,
            parsed: p,
        })
        .collect()
}

impl Session<'_> {
    /// The MIME tree kept for the message `m`: its summary's if the
    /// shard's cache has it, or one SEARCH decoded before ([`Trees`]),
    /// else, for a message larger than a chunk, decoded alone from its
    /// digest (the rest of the digest is not needed here) and kept.
    /// `None`: none is kept (or its digest does not read back or decode:
    /// counted), or the message is small and its summary not in memory:
    /// one read of it whole costs what the read of its digest would, and
    /// parsing it less than a second read (see `benches/RESULTS.md`,
    /// "parse cache").
    async fn kept_tree(&self, m: &Message) -> Option<Rc<Shape>> {
        if let Some(summary) = self.inner.summaries.get(&m.blob.hash) {
            return summary.tree(m.size).cloned().map(Rc::new);
        }
        if let Some(tree) = self.inner.trees.get(&m.blob.hash) {
            return Some(tree).filter(|tree| tree.size() == m.size);
        }
        if m.size <= BODY_CHUNK as u64 {
            return None;
        }
        let store = &self.inner.services.mailstore;
        let digest = match store.digest(&m.blob).await {
            Ok(digest) => digest?,
            Err(error) => {
                tracing::warn!(%error, "a message's digest did not read back; parsing the message");
                return None;
            }
        };
        match Summary::tree_from_digest(&digest) {
            Some(tree) => tree
                .filter(|tree| tree.size() == m.size)
                .map(|tree| self.inner.trees.insert(m.blob.hash, tree)),
            None => {
                store.digest_rejected();
                tracing::warn!("a message's digest did not decode; parsing the message");
                None
            }
        }
    }

    /// The header of the message `m` when `header` (else empty), from
    /// the shard's header cache or else read (and then kept there), and
    /// its body's text when `body` (see [`Session::read_text`]).
    async fn searched_text(
        &self,
        m: &Message,
        header: bool,
        body: bool,
    ) -> Result<(Vec<u8>, Option<String>), MailError> {
        let cached = header
            .then(|| self.inner.headers.get(&m.blob.hash))
            .flatten();
        let read_header = header && cached.is_none();
        let (read, text) = self.read_text(m, read_header, body).await?;
        let header = match cached {
            Some(kept) => kept.to_vec(),
            None if read_header => {
                self.inner.headers.insert(m.blob.hash, read.clone());
                read
            }
            None => Vec::new(),
        };
        Ok((header, text))
    }

    /// Reads the header of the message `m` when `header` (else empty) and
    /// its body's text when `body` ([`message::part_text`] of each text
    /// part): from the ranges its kept tree names ([`TextReads`]: those
    /// close together read together), or else from the whole message (its
    /// header block cut out, or the message parsed for its text).
    async fn read_text(
        &self,
        m: &Message,
        header: bool,
        body: bool,
    ) -> Result<(Vec<u8>, Option<String>), MailError> {
        if !header && !body {
            return Ok((Vec::new(), None));
        }
        if let Some(tree) = self.kept_tree(m).await {
            let reads = TextReads::new(&tree, header, body);
            let spans = reads.spans(BODY_CHUNK);
            let mut read = Vec::with_capacity(spans.len());
            for span in &spans {
                read.push(self.read_range(&m.blob, wide(span.clone())).await?);
            }
            return Ok(reads.text(reads.cut(&spans, &read)));
        }
        let raw = self.inner.services.mailstore.body(&m.blob).await?;
        let header = match header {
            true => message::header_block(&raw).to_vec(),
            false => Vec::new(),
        };
        Ok((header, body.then(|| Parsed::parse(&raw).body_text())))
    }

    /// The messages matching every key; with their headers when
    /// `headers`.
    async fn matching(
        &mut self,
        account: &str,
        keys: &[SearchKey<'_>],
        headers: bool,
    ) -> Result<Vec<Hit>, Reply> {
        let Some(view) = &self.selected else {
            return Err(Reply::bad("No mailbox selected"));
        };
        let store = &self.inner.services.mailstore;
        let header = headers || keys.iter().any(message::needs_header);
        let body = keys.iter().any(message::needs_body);
        let uids = view.uids().to_vec();
        let messages = store
            .read_mailbox(account, &view.mailbox, |mb| {
                uids.iter()
                    .enumerate()
                    .filter_map(|(i, u)| mb.messages.get(u).map(|m| (i as u32 + 1, m.clone())))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| Reply::mail(&e))?;
        let ctx = SearchContext {
            largest_seq: uids.len() as u32,
            largest_uid: uids.last().copied().unwrap_or(0),
        };
        let mut hits = Vec::new();
        let mut rest = &messages[..];
        while !rest.is_empty() {
            let (window, after) = rest.split_at(read_window(rest));
            rest = after;
            // The window's reads are in flight together (they are
            // independent disk reads); evaluation goes in order.
            let reads = match header || body {
                true => join_all(
                    window
                        .iter()
                        .map(|(_, m)| self.searched_text(m, header, body)),
                )
                .await
                .into_iter()
                .map(Some)
                .collect(),
                false => vec![None; window.len()],
            };
            for ((seq, m), read) in window.iter().zip(reads) {
                let read = read.transpose().map_err(|e| Reply::mail(&e))?;
                self.evaluate(keys, &ctx, (*seq, m), read, headers, &mut hits);
            }
            cairn_shards::yield_if_needed().await;
        }
        Ok(hits)
    }

    /// Evaluates `keys` on the message `m` (number `seq`) given what was
    /// read of it, keeping a hit (with its header when `headers`).
    fn evaluate(
        &self,
        keys: &[SearchKey<'_>],
        ctx: &SearchContext,
        (seq, m): (u32, &Message),
        read: Option<(Vec<u8>, Option<String>)>,
        headers: bool,
        hits: &mut Vec<Hit>,
    ) {
        let recent = self.selected.as_ref().is_some_and(|v| v.is_recent(m.uid));
        {
            let text = read
                .as_ref()
                .map(|(header, body)| MessageText::new(header, body.as_deref()));
            let candidate = Candidate {
                seq,
                uid: m.uid,
                modseq: m.modseq,
                flags: &m.flags,
                recent,
                internal_date: m.internal_date,
                size: m.size,
                text: text.as_ref(),
            };
            if !keys.iter().all(|k| message::matches(k, &candidate, ctx)) {
                return;
            }
        }
        hits.push(Hit {
            seq,
            uid: m.uid,
            internal_date: m.internal_date,
            size: m.size,
            header: read.filter(|_| headers).map(|(header, _)| header),
        });
    }

    pub(super) async fn search(
        &mut self,
        account: &str,
        tag: &str,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        if self.enabled.rev2 {
            let all = SearchReturn {
                all: true,
                ..SearchReturn::default()
            };
            return self.esearch(account, tag, keys, uid, all).await;
        }
        let hits = match self.matching(account, keys, false).await {
            Ok(h) => h,
            Err(r) => return r,
        };
        let mut line = "SEARCH".to_string();
        for h in &hits {
            let _ = write!(line, " {}", if uid { h.uid } else { h.seq });
        }
        response::untagged(&mut self.out, &line);
        Reply::ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }

    /// SEARCH RETURN (…): `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n
    /// ALL set`, and with SAVE the result kept for `$`.
    pub(super) async fn esearch(
        &mut self,
        account: &str,
        tag: &str,
        keys: &[SearchKey<'_>],
        uid: bool,
        ret: SearchReturn,
    ) -> Reply {
        let hits = match self.matching(account, keys, false).await {
            Ok(h) => h,
            Err(r) => {
                // RFC 5182 §2.1: a failed SEARCH ... SAVE empties `$`.
                if let (true, Some(view)) = (ret.save, &mut self.selected) {
                    view.saved.clear();
                }
                return r;
            }
        };
        let (first, last) = (hits.first(), hits.last());
        if let (true, Some(view)) = (ret.save, &mut self.selected) {
            // With only MIN and/or MAX, those are what is saved (§2.4).
            view.saved = if (ret.min || ret.max) && !(ret.all || ret.count) {
                let mut ends: Vec<u32> = [(ret.min, first), (ret.max, last)]
                    .into_iter()
                    .filter_map(|(on, h)| h.filter(|_| on).map(|h| h.uid))
                    .collect();
                ends.dedup();
                ends
            } else {
                hits.iter().map(|h| h.uid).collect()
            };
        }
        let only_save = ret
            == SearchReturn {
                save: true,
                ..SearchReturn::default()
            };
        if !only_save {
            let id = |h: &Hit| if uid { h.uid } else { h.seq };
            let mut line = format!("ESEARCH (TAG {})", string(tag));
            if uid {
                line.push_str(" UID");
            }
            if let (true, Some(h)) = (ret.min, first) {
                let _ = write!(line, " MIN {}", id(h));
            }
            if let (true, Some(h)) = (ret.max, last) {
                let _ = write!(line, " MAX {}", id(h));
            }
            if ret.count {
                let _ = write!(line, " COUNT {}", hits.len());
            }
            if ret.all && !hits.is_empty() {
                let ids: Vec<u32> = hits.iter().map(id).collect();
                let _ = write!(line, " ALL {}", uid_set(&ids));
            }
            response::untagged(&mut self.out, &line);
        }
        Reply::ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }

    pub(super) async fn sort(
        &mut self,
        account: &str,
        criteria: &[SortCriterion],
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        let hits = match self.matching(account, keys, true).await {
            Ok(h) => h,
            Err(r) => return r,
        };
        let parsed = parse_all(&hits);
        let items = sort_items(&hits, &parsed, uid);
        let ids = message::sort(criteria, &items);
        let mut line = "SORT".to_string();
        for id in ids {
            let _ = write!(line, " {id}");
        }
        response::untagged(&mut self.out, &line);
        Reply::ok(if uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }

    pub(super) async fn thread(
        &mut self,
        account: &str,
        algorithm: &ThreadingAlgorithm<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        if !matches!(
            algorithm,
            ThreadingAlgorithm::OrderedSubject | ThreadingAlgorithm::References
        ) {
            return Reply::bad("Unknown threading algorithm");
        }
        let hits = match self.matching(account, keys, true).await {
            Ok(h) => h,
            Err(r) => return r,
        };
        let parsed = parse_all(&hits);
        let items = sort_items(&hits, &parsed, uid);
        let threads: Vec<Thread> = message::thread(algorithm, &items);
        response::data(&mut self.out, Data::Thread(threads));
        Reply::ok(if uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }
}

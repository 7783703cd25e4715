//! The shard's cache of the parts of a message FETCH asks for most and
//! that cost a read and a parse each: ENVELOPE, BODY and BODYSTRUCTURE
//! (and the thread a THREADID names, RFC 8474), by
//! the body's hash (bodies never change, and a body delivered to many
//! mailboxes is one entry). A client listing a mailbox reads each message
//! once, then from here. Bounded by entries; the oldest go first.
//!
//! A summary is also made once when a body is first stored on the shard
//! and kept on disk beside it ([`DIGESTER`], storage's digests): after a
//! restart a summary missing here is read from there, and the body is read
//! and parsed only when there is none (or it does not decode).

use std::num::NonZeroU32;

use cairn_storage::mailbox::Digester;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::ResponseCodec;
use imap_types::body::BodyStructure;
use imap_types::core::Vec1;
use imap_types::envelope::Envelope;
use imap_types::fetch::MessageDataItem;
use imap_types::response::{Data, Response};
use imap_types::IntoStatic;

use super::shard_cache::ShardCache;
use crate::codec::objectid;
use crate::message::{thread_root, Parsed, Shape};

/// Entries kept by default (a summary is typically under 2 KiB).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// Summaries as storage's digests, made at delivery from the raw body, in
/// IMAP's own wire form: a byte saying whether a thread root follows, the
/// root (u64 LE); a byte saying whether the MIME tree follows, its length
/// (u32 LE) and the tree as byte ranges ([`Shape`], checked as it
/// decodes), which locates `BODY[section]` without the body parsed (see
/// [`super::fetch_stream`]) and names the text parts SEARCH reads (see
/// [`super::search`]: it decodes the tree alone, [`Summary::tree_from_digest`]);
/// then `* 1 FETCH (ENVELOPE … BODY … BODYSTRUCTURE …)\r\n` as
/// imap-codec writes it (about a fifth of the size of a JSON form of the
/// same values), read back with imap-codec's response parser, whose
/// checks a digest from disk passes like any server's answer.
///
/// Bump `version` whenever the encoding changes (the layout, a change in
/// what [`Summary::of`] computes): digests of an older version are then
/// never read, and those messages are parsed again at their first FETCH.
pub const DIGESTER: Digester = Digester {
    version: 4,
    digest: digest_of,
};

fn digest_of(raw: &[u8]) -> Vec<u8> {
    Summary::of(&Parsed::parse(raw)).to_digest()
}

/// What FETCH answers without the message's bytes.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub envelope: Envelope<'static>,
    /// BODY (non-extensible).
    pub body: BodyStructure<'static>,
    /// BODYSTRUCTURE (with extension data).
    pub structure: BodyStructure<'static>,
    /// The THREADID value of the thread's root Message-ID, if the
    /// message names one.
    thread_root: Option<u64>,
    /// The MIME tree as byte ranges (`None`: the message's has too many
    /// parts to keep).
    tree: Option<Shape>,
}

impl Summary {
    pub fn of(parsed: &Parsed<'_>) -> Self {
        Self {
            envelope: parsed.envelope(),
            body: parsed.body_structure(false),
            structure: parsed.body_structure(true),
            thread_root: thread_root(parsed).map(|root| objectid::thread_value(&root)),
            tree: Shape::of(parsed),
        }
    }

    /// The summary as [`DIGESTER`] keeps it (empty if imap-codec could not
    /// write it: then it does not decode, and the body is parsed at FETCH).
    fn to_digest(&self) -> Vec<u8> {
        let mut out = match self.thread_root {
            Some(root) => [&[1][..], &root.to_le_bytes()].concat(),
            None => vec![0],
        };
        let items = vec![
            MessageDataItem::Envelope(self.envelope.clone()),
            MessageDataItem::Body(self.body.clone()),
            MessageDataItem::BodyStructure(self.structure.clone()),
        ];
        let Ok(items) = Vec1::try_from(items) else {
            return Vec::new();
        };
        let fetch = Response::Data(Data::Fetch {
            seq: NonZeroU32::MIN,
            items,
        });
        let mut tree = Vec::new();
        if let Some(shape) = &self.tree {
            shape.encode(&mut tree);
        }
        match u32::try_from(tree.len()) {
            Ok(len) if self.tree.is_some() => {
                out.push(1);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&tree);
            }
            _ => out.push(0),
        }
        out.extend_from_slice(&ResponseCodec::default().encode(&fetch).dump());
        out
    }

    /// The thread root and the MIME tree at the head of a digest, and the
    /// rest (`None` when they do not decode).
    fn digest_head(digest: &[u8]) -> Option<(Option<u64>, Option<Shape>, &[u8])> {
        let (thread_root, rest) = match digest.split_first()? {
            (0, rest) => (None, rest),
            (1, rest) => {
                let (root, rest) = rest.split_first_chunk::<8>()?;
                (Some(u64::from_le_bytes(*root)), rest)
            }
            _ => return None,
        };
        let (tree, wire) = match rest.split_first()? {
            (0, wire) => (None, wire),
            (1, rest) => {
                let (len, rest) = rest.split_first_chunk::<4>()?;
                let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
                let tree = rest.get(..len)?;
                (Some(Shape::decode(tree)?), rest.get(len..)?)
            }
            _ => return None,
        };
        Some((thread_root, tree, wire))
    }

    /// The MIME tree alone of a digest [`DIGESTER`] made, without the rest
    /// decoded (what SEARCH needs): `None` when it does not decode,
    /// `Some(None)` when the digest keeps no tree.
    pub fn tree_from_digest(digest: &[u8]) -> Option<Option<Shape>> {
        Self::digest_head(digest).map(|(_, tree, _)| tree)
    }

    /// A summary made by [`DIGESTER`] (read from disk: untrusted; `None`
    /// when it does not decode, imap-codec's checks included).
    pub fn from_digest(digest: &[u8]) -> Option<Self> {
        let (thread_root, tree, wire) = Self::digest_head(digest)?;
        let ([], Response::Data(Data::Fetch { items, .. })) =
            ResponseCodec::default().decode(wire).ok()?
        else {
            return None;
        };
        let (mut envelope, mut body, mut structure) = (None, None, None);
        for item in items.into_inner() {
            match item {
                MessageDataItem::Envelope(e) => envelope = Some(e.into_static()),
                MessageDataItem::Body(b) => body = Some(b.into_static()),
                MessageDataItem::BodyStructure(b) => structure = Some(b.into_static()),
                _ => return None,
            }
        }
        Some(Self {
            envelope: envelope?,
            body: body?,
            structure: structure?,
            thread_root,
            tree,
        })
    }

    /// The THREADID value of the message whose body hash is `body_hash`:
    /// its thread root's, or for a message naming no Message-ID at all
    /// (its own thread), its EMAILID value.
    pub fn thread(&self, body_hash: &[u8; 32]) -> u64 {
        self.thread_root
            .unwrap_or_else(|| objectid::email_value(body_hash))
    }

    /// The MIME tree, if kept and made for a body of `size` bytes.
    pub fn tree(&self, size: u64) -> Option<&Shape> {
        self.tree.as_ref().filter(|tree| tree.size() == size)
    }
}

/// The cache (one per shard), by entries.
pub type Summaries = ShardCache<Summary>;

/// The shard's summary cache, of [`DEFAULT_CAPACITY`] entries.
pub fn summaries() -> Summaries {
    ShardCache::new(DEFAULT_CAPACITY, |_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_drops_the_oldest() {
        let cache = Summaries::new(2, |_| 1);
        let raw = b"Subject: hi\r\n\r\nbody\r\n";
        let parsed = Parsed::parse(raw);
        for i in 0..3u8 {
            cache.insert([i; 32], Summary::of(&parsed));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&[0; 32]).is_none(), "the oldest went");
        assert!(cache.get(&[1; 32]).is_some() && cache.get(&[2; 32]).is_some());
        let again = cache.insert([2; 32], Summary::of(&parsed));
        assert_eq!(cache.len(), 2);
        assert!(again.envelope.subject.0.is_some());
    }

    #[test]
    fn digests_round_trip_on_every_fixture() {
        use crate::message::fixtures::{alternative, bare, mixed, thread_set};
        // Raw UTF-8, quotes, backslashes and a CR-free line break in
        // headers: strings imap-codec writes as literals or escapes.
        let awkward = "Subject: Gr\u{fc}\u{df}e \"quoted\" back\\slash\r\n \
                       folded\r\nFrom: \"D\u{e9}j\u{e0} Vu\" <dv@example.org>\r\n\
                       Content-Type: text/plain; name=\"r\u{e9}sum\u{e9}.txt\"\r\n\r\nbody\r\n"
            .as_bytes()
            .to_vec();
        let all = [alternative(), mixed(), bare(), awkward]
            .into_iter()
            .chain(thread_set());
        for (i, raw) in all.enumerate() {
            let digest = (DIGESTER.digest)(&raw);
            let back = Summary::from_digest(&digest);
            assert_eq!(
                back.as_ref(),
                Some(&Summary::of(&Parsed::parse(&raw))),
                "fixture {i}"
            );
        }
    }

    #[test]
    fn digests_that_do_not_decode_are_refused() {
        let digest = (DIGESTER.digest)(b"Subject: hi\r\n\r\nbody\r\n");
        assert!(Summary::from_digest(&digest).is_some());
        assert!(Summary::from_digest(&digest[..digest.len() - 1]).is_none());
        assert!(Summary::from_digest(b"").is_none());
        assert!(Summary::from_digest(b"\x02* 1 FETCH (FLAGS ())\r\n").is_none());
        assert!(Summary::from_digest(b"\x00* 1 FETCH (FLAGS ())\r\n").is_none());
        assert!(Summary::from_digest(b"\x01\x00\x00").is_none());
        // A quoted string imap-codec's checks refuse (a CR in a subject).
        let text = String::from_utf8_lossy(&digest).replace("\"hi\"", "\"h\ri\"");
        assert_ne!(text.as_bytes(), &digest[..]);
        assert!(Summary::from_digest(text.as_bytes()).is_none(), "{text}");
        // Bytes after the response.
        let mut longer = digest.clone();
        longer.extend_from_slice(b"* 2 FETCH (FLAGS ())\r\n");
        assert!(Summary::from_digest(&longer).is_none());
    }

    #[test]
    fn digests_keep_the_mime_tree_and_refuse_a_damaged_one() {
        use crate::message::fixtures::mixed;
        let raw = mixed();
        let digest = (DIGESTER.digest)(&raw);
        let back = Summary::from_digest(&digest).expect("decodes");
        let tree = back.tree(raw.len() as u64).expect("a tree");
        assert_eq!(Some(tree), Shape::of(&Parsed::parse(&raw)).as_ref());
        assert!(back.tree(raw.len() as u64 + 1).is_none(), "another size");
        // Where the tree's marker is: after the thread root.
        let at = if digest[0] == 1 { 9 } else { 1 };
        let mut tree_bytes = Vec::new();
        tree.encode(&mut tree_bytes);
        let len = (tree_bytes.len() as u32).to_le_bytes();
        let wire = at + 5 + tree_bytes.len();
        assert_eq!(digest[at..wire], [&[1][..], &len, &tree_bytes].concat()[..]);
        assert!(digest[wire..].starts_with(b"* 1 FETCH ("));
        assert_eq!(Summary::tree_from_digest(&digest), Some(Some(tree.clone())));
        // Without a tree: the summary, with none.
        let without = [&digest[..at], &[0], &digest[wire..]].concat();
        let summary = Summary::from_digest(&without).expect("decodes");
        assert!(summary.tree(raw.len() as u64).is_none());
        assert_eq!(summary.envelope, back.envelope);
        assert_eq!(Summary::tree_from_digest(&without), Some(None));
        // Every truncation, anything after the tree, an unknown marker,
        // garbage in place of the tree: refused, never a panic.
        for end in 0..digest.len() {
            assert!(
                Summary::from_digest(&digest[..end]).is_none(),
                "cut at {end}"
            );
        }
        assert!(Summary::from_digest(&[&digest[..], &[0]].concat()).is_none());
        assert!(Summary::from_digest(&[&without[..], &[0]].concat()).is_none());
        let unknown = [&digest[..at], &[2], &digest[at + 1..]].concat();
        assert!(Summary::from_digest(&unknown).is_none());
        assert!(Summary::tree_from_digest(&unknown).is_none());
        for garbage in [
            &[1u8][..],
            &[1, 3, 0, 0, 0, 0xff, 0xff],
            &[1, 7, 0, 0, 0, 5, 1, 0, 0, 9, 0],
        ] {
            let bad = [&digest[..at], garbage, &digest[wire..]].concat();
            assert!(Summary::from_digest(&bad).is_none(), "{garbage:?}");
            assert!(Summary::tree_from_digest(&bad).is_none(), "{garbage:?}");
        }
        // Every byte of the tree changed: decodes or not, never a panic,
        // and a tree that decodes stays within its body.
        for i in at..wire {
            for value in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = digest.clone();
                bad[i] = value;
                if let Some(summary) = Summary::from_digest(&bad) {
                    if let Some(tree) = &summary.tree {
                        assert!(tree.size() < 1 << 32);
                    }
                }
            }
        }
    }

    #[test]
    fn a_digest_is_a_fraction_of_the_message_and_keeps_its_thread_root() {
        use crate::message::fixtures::{alternative, thread_set};
        let raw = alternative();
        let digest = (DIGESTER.digest)(&raw);
        assert!(
            digest.len() < 3 * raw.len(),
            "{} for {}",
            digest.len(),
            raw.len()
        );
        for raw in thread_set() {
            let parsed = Parsed::parse(&raw);
            let back = Summary::from_digest(&(DIGESTER.digest)(&raw)).expect("decodes");
            assert_eq!(back.thread_root, Summary::of(&parsed).thread_root);
        }
    }
}

//! Property tests of the decoders of the digests kept on disk (untrusted
//! bytes): `Summary::from_digest`, `Summary::tree_from_digest` and
//! `Shape::decode` never panic on arbitrary bytes, nor on a valid digest
//! with one byte changed or cut short; and the digest [`DIGESTER`] makes of
//! a generated message (headers, multiparts of text and base64 parts,
//! nested `message/rfc822`) decodes back to the summary and MIME tree of
//! the parsed message.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_imap::message::{Parsed, Shape};
use cairn_imap::session::summaries::Summary;
use cairn_imap::DIGESTER;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Header text: printable ASCII (quotes and backslashes included), some
/// UTF-8, or an encoded word.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[a-zA-Z0-9 éüß€]{1,20}",
        "[a-zA-Z0-9]{1,12}".prop_map(|w| format!("=?UTF-8?Q?{w}_x?=")),
    ]
}

/// An address with an optional display name.
fn mailbox() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,8}",
        "[a-z]{1,8}",
        proptest::option::of("[A-Za-z ]{1,16}"),
    )
        .prop_map(|(local, domain, name)| match name {
            Some(name) => format!("\"{name}\" <{local}@{domain}.example>"),
            None => format!("{local}@{domain}.example"),
        })
}

/// The message's header fields, without Content-Type (a CRLF ends each).
fn headers() -> impl Strategy<Value = String> {
    (
        mailbox(),
        vec(mailbox(), 0..3),
        text(),
        proptest::option::of("[a-z0-9]{1,10}"),
        proptest::option::of("[a-z0-9]{1,10}"),
        any::<bool>(),
    )
        .prop_map(|(from, to, subject, id, parent, dated)| {
            let mut h = format!("From: {from}\r\nSubject: {subject}\r\n");
            if !to.is_empty() {
                h.push_str(&format!("To: {}\r\n", to.join(", ")));
            }
            if dated {
                h.push_str("Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n");
            }
            if let Some(id) = id {
                h.push_str(&format!("Message-ID: <{id}@example.org>\r\n"));
            }
            if let Some(parent) = parent {
                h.push_str(&format!("In-Reply-To: <{parent}@example.org>\r\n"));
                h.push_str(&format!("References: <{parent}@example.org>\r\n"));
            }
            h
        })
}

/// Lines of body text.
fn lines() -> impl Strategy<Value = String> {
    vec("[ -~]{0,30}", 0..4).prop_map(|l| l.iter().map(|l| format!("{l}\r\n")).collect())
}

/// One part of a multipart: text, base64 data, or a nested message.
fn part(depth: u32) -> BoxedStrategy<String> {
    let text = lines().prop_map(|body| format!("Content-Type: text/plain\r\n\r\n{body}"));
    let attachment = ("[a-z]{1,8}", vec(any::<u8>(), 0..120)).prop_map(|(name, data)| {
        let encoded = base64_lines(&data);
        format!(
            "Content-Type: application/octet-stream; name=\"{name}.bin\"\r\n\
             Content-Disposition: attachment; filename=\"{name}.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    });
    if depth == 0 {
        return prop_oneof![text, attachment].boxed();
    }
    let nested =
        message(depth - 1).prop_map(|inner| format!("Content-Type: message/rfc822\r\n\r\n{inner}"));
    prop_oneof![3 => text, 2 => attachment, 1 => nested].boxed()
}

/// A whole message, multipart or not, with parts nested `depth` deep at
/// most.
fn message(depth: u32) -> BoxedStrategy<String> {
    let single = (headers(), lines())
        .prop_map(|(headers, body)| format!("{headers}Content-Type: text/plain\r\n\r\n{body}"));
    let multipart = (headers(), "[a-z0-9]{1,12}", vec(part(depth), 1..5)).prop_map(
        |(headers, boundary, parts)| {
            let boundary = format!("=_{boundary}");
            let mut out = format!(
                "{headers}MIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            );
            for part in parts {
                out.push_str(&format!("--{boundary}\r\n{part}\r\n"));
            }
            out.push_str(&format!("--{boundary}--\r\n"));
            out
        },
    );
    prop_oneof![1 => single, 2 => multipart].boxed()
}

/// `data` in base64, in lines of 76 characters.
fn base64_lines(data: &[u8]) -> String {
    let encoded = STANDARD.encode(data);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
        .collect()
}

/// A message and a valid digest of it.
fn digested() -> impl Strategy<Value = Vec<u8>> {
    message(2).prop_map(|raw| (DIGESTER.digest)(raw.as_bytes()))
}

/// A message's MIME tree, encoded.
fn encoded_shape() -> impl Strategy<Value = Vec<u8>> {
    message(2).prop_map(|raw| {
        let mut out = Vec::new();
        if let Some(shape) = Shape::of(&Parsed::parse(raw.as_bytes())) {
            shape.encode(&mut out);
        }
        out
    })
}

/// `bytes` with the byte at `at` replaced by `with`.
fn changed(mut bytes: Vec<u8>, at: Index, with: u8) -> Vec<u8> {
    if !bytes.is_empty() {
        let i = at.index(bytes.len());
        bytes[i] = with;
    }
    bytes
}

/// `bytes` cut at `at` (possibly to nothing).
fn truncated(mut bytes: Vec<u8>, at: Index) -> Vec<u8> {
    bytes.truncate(at.index(bytes.len() + 1));
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = Summary::from_digest(&bytes);
        let _ = Summary::tree_from_digest(&bytes);
        let _ = Shape::decode(&bytes);
    }

    /// Past the head's flags and lengths, into the tree's decoder and
    /// imap-codec's parser.
    #[test]
    fn arbitrary_bytes_after_a_valid_head_never_panic(
        root in any::<bool>(),
        tree in proptest::option::of(vec(any::<u8>(), 0..64)),
        fetch in vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = if root { vec![1, 0, 0, 0, 0, 0, 0, 0, 9] } else { vec![0] };
        match tree {
            Some(tree) => {
                bytes.push(1);
                bytes.extend_from_slice(&(tree.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&tree);
            }
            None => bytes.push(0),
        }
        bytes.extend_from_slice(b"* 1 FETCH (");
        bytes.extend_from_slice(&fetch);
        bytes.extend_from_slice(b")\r\n");
        let _ = Summary::from_digest(&bytes);
        let _ = Summary::tree_from_digest(&bytes);
    }

    #[test]
    fn a_digest_decodes_to_the_summary_of_the_parsed_message(raw in message(2)) {
        let raw = raw.as_bytes();
        let parsed = Parsed::parse(raw);
        let digest = (DIGESTER.digest)(raw);
        let decoded = Summary::from_digest(&digest);
        prop_assert!(decoded.is_some(), "{}", String::from_utf8_lossy(raw));
        prop_assert_eq!(decoded, Some(Summary::of(&parsed)));
        let shape = Shape::of(&parsed);
        prop_assert!(shape.is_some());
        prop_assert_eq!(Summary::tree_from_digest(&digest), Some(shape.clone()));
        let mut encoded = Vec::new();
        if let Some(shape) = &shape {
            shape.encode(&mut encoded);
        }
        prop_assert_eq!(Shape::decode(&encoded), shape);
    }

    #[test]
    fn a_changed_digest_never_panics(digest in digested(), at in any::<Index>(), with in any::<u8>()) {
        let digest = changed(digest, at, with);
        let _ = Summary::from_digest(&digest);
        let _ = Summary::tree_from_digest(&digest);
    }

    #[test]
    fn a_truncated_digest_never_panics(digest in digested(), at in any::<Index>()) {
        let digest = truncated(digest, at);
        let _ = Summary::from_digest(&digest);
        let _ = Summary::tree_from_digest(&digest);
    }

    #[test]
    fn a_changed_or_truncated_tree_never_panics(
        tree in encoded_shape(),
        at in any::<Index>(),
        with in any::<u8>(),
    ) {
        let _ = Shape::decode(&changed(tree.clone(), at, with));
        let _ = Shape::decode(&truncated(tree, at));
    }
}

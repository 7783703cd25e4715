//! Tests of the parsed views (ENVELOPE, BODY/BODYSTRUCTURE, sections,
//! BINARY) against hand-made messages, written out as IMAP wire text;
//! property tests that nothing panics on arbitrary input; mail-parser's
//! own sample messages.

use std::{borrow::Cow, num::NonZeroU32};

use imap_types::{
    core::{AString, Vec1},
    fetch::{MessageDataItem, Part, Section},
};
use proptest::prelude::*;

use super::{fixtures::*, *};

fn part(numbers: &[u32]) -> Part {
    let numbers: Vec<NonZeroU32> = numbers.iter().filter_map(|&n| NonZeroU32::new(n)).collect();
    Part(Vec1::try_from(numbers).unwrap_or_else(|_| Vec1::from(NonZeroU32::MIN)))
}

fn text(bytes: Cow<'_, [u8]>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The text of `raw` between the end of `after` and the start of `before`.
fn between(raw: &[u8], after: &str, before: &str) -> String {
    let raw = String::from_utf8_lossy(raw);
    let start = raw.find(after).map_or(0, |at| at + after.len());
    let end = raw[start..].find(before).map_or(raw.len(), |at| start + at);
    raw[start..end].to_owned()
}

#[test]
fn envelope_of_a_simple_message() {
    let raw = alternative();
    let p = Parsed::parse(&raw);
    let alice = r#"(("Alice" NIL "alice" "example.com"))"#;
    assert_eq!(
        wire(MessageDataItem::Envelope(p.envelope())),
        format!(
            r#"ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "Test" {alice} {alice} {alice} (("Bob" NIL "bob" "example.org")) NIL NIL NIL "<B27397-0100000@cac.washington.edu>")"#
        )
    );
}

#[test]
fn envelope_keeps_encoded_words_and_writes_groups() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    let jorg = r#"(("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.org"))"#;
    let to = r#"((NIL NIL "Team" NIL)(NIL NIL "a" "x.example")("B, b" NIL "b" "y.example")(NIL NIL NIL NIL)(NIL NIL "c" "z.example"))"#;
    let cc = r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))"#;
    assert_eq!(
        wire(MessageDataItem::Envelope(p.envelope())),
        format!(
            r#"ENVELOPE ("Tue, 1 Mar 2022 10:00:00 +0100" "=?utf-8?q?Caf=C3=A9?=  menu" {jorg} {jorg} {jorg} {to} {cc} NIL NIL "<m1@example.org>")"#
        )
    );
}

#[test]
fn envelope_of_missing_headers_is_nil() {
    let raw = crlf("X-Other: 1\n\nbody\n");
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::Envelope(p.envelope())),
        "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn bodystructure_of_multipart_alternative() {
    let raw = alternative();
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::BodyStructure(p.body_structure(true))),
        r#"BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "b1") NIL NIL NIL)"#
    );
    assert_eq!(
        wire(MessageDataItem::Body(p.body_structure(false))),
        r#"BODY (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1) "ALTERNATIVE")"#
    );
}

#[test]
fn body_of_rfc9051_example_shape() {
    // RFC 9051 §7.5.2's BODY example: a text part and a base64 text part
    // with a name, an id and a description.
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=x

--x
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

hi
--x
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff
Content-ID: <960723163407.20117h@cac.washington.edu>
Content-Description: Compiler diff
Content-Transfer-Encoding: BASE64

aGk=
--x--
",
    );
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::Body(p.body_structure(false))),
        r#"BODY (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 2 1)("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4 1) "MIXED")"#
    );
}

#[test]
fn bodystructure_of_mixed_with_nested_message() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    let nested = between(
        &raw,
        "Content-Description: forwarded\r\n\r\n",
        "\r\n--outer--",
    );
    let nested_lines = nested.matches('\n').count() + 1;
    let carol = r#"(("Carol" NIL "carol" "example.net"))"#;
    let expected = format!(
        concat!(
            r#"BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 25 2 NIL NIL NIL NIL)"#,
            r#"("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "data.bin")) NIL NIL)"#,
            r#"("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" {size} ("Wed, 2 Mar 2022 11:00:00 +0000" "inner" {carol} {carol} {carol} NIL NIL NIL NIL "<inner@example.net>") "#,
            r#"(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL) {lines} NIL NIL NIL NIL)"#,
            r#" "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)"#
        ),
        size = nested.len(),
        carol = carol,
        lines = nested_lines,
    );
    assert_eq!(
        wire(MessageDataItem::BodyStructure(p.body_structure(true))),
        expected
    );
}

#[test]
fn bodystructure_defaults_and_extension_fields() {
    let raw = bare();
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::BodyStructure(p.body_structure(true))),
        r#"BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 20 2 NIL NIL NIL NIL)"#
    );
    let raw = crlf(
        "Content-Type: image/png
Content-Disposition: inline
Content-Language: en, de
Content-Location: http://example.com/a.png
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

x",
    );
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::BodyStructure(p.body_structure(true))),
        r#"BODYSTRUCTURE ("IMAGE" "PNG" NIL NIL NIL "7BIT" 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("INLINE" NIL) ("en" "de") "http://example.com/a.png")"#
    );
}

#[test]
fn sections_of_a_mixed_message() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    let s = |section: Section<'static>| text(p.section(Some(&section)));
    assert_eq!(text(p.section(None)).as_bytes(), &raw[..]);
    assert_eq!(s(Section::Part(part(&[1]))), "Caf=C3=A9 au lait=\r\n soon");
    assert_eq!(s(Section::Part(part(&[2]))), "AAECAw==");
    assert_eq!(
        s(Section::Mime(part(&[2]))),
        "Content-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"
    );
    let nested = between(
        &raw,
        "Content-Description: forwarded\r\n\r\n",
        "\r\n--outer--",
    );
    assert_eq!(s(Section::Part(part(&[3]))), nested);
    assert_eq!(
        s(Section::Header(Some(part(&[3])))),
        between(&raw, "forwarded\r\n\r\n", "--inner\r\n")
    );
    assert_eq!(
        s(Section::Text(Some(part(&[3])))),
        between(&raw, "boundary=\"inner\"\r\n\r\n", "\r\n--outer--")
    );
    assert_eq!(s(Section::Part(part(&[3, 1]))), "inner text");
    assert_eq!(s(Section::Part(part(&[3, 2]))), "<b>inner</b>");
    assert_eq!(
        s(Section::Mime(part(&[3, 1]))),
        "Content-Type: text/plain\r\n\r\n"
    );
    assert_eq!(s(Section::Header(None)), between(&raw, "", "preamble"));
    assert_eq!(
        s(Section::Text(None)),
        between(&raw, "boundary=\"outer\"\r\n\r\n", "\u{0}")
    );
    assert_eq!(s(Section::Part(part(&[4]))), "");
    assert_eq!(s(Section::Part(part(&[1, 1]))), "");
    assert_eq!(s(Section::Header(Some(part(&[1])))), "");
}

#[test]
fn header_fields_keep_lines_and_end_with_blank_line() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    let names = |list: &[&'static str]| {
        let list: Vec<AString<'static>> = list
            .iter()
            .filter_map(|n| AString::try_from(*n).ok())
            .collect();
        Vec1::try_from(list).unwrap_or_else(|_| {
            Vec1::from(AString::try_from("x").unwrap_or_else(|_| unreachable!()))
        })
    };
    let fields = Section::HeaderFields(None, names(&["SUBJECT", "to"]));
    assert_eq!(
        text(p.section(Some(&fields))),
        "To: Team: a@x.example, \"B, b\" <b@y.example>;, c@z.example\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n  menu\r\n\r\n"
    );
    let not = Section::HeaderFieldsNot(Some(part(&[3])), names(&["from", "Content-Type", "Date"]));
    assert_eq!(
        text(p.section(Some(&not))),
        "Subject: inner\r\nMessage-ID: <inner@example.net>\r\n\r\n"
    );
    let none = Section::HeaderFields(None, names(&["X-Absent"]));
    assert_eq!(text(p.section(Some(&none))), "\r\n");
}

#[test]
fn non_multipart_part_one_is_the_body() {
    let raw = bare();
    let p = Parsed::parse(&raw);
    assert_eq!(
        text(p.section(Some(&Section::Part(part(&[1]))))),
        "line one\r\nline two\r\n"
    );
    assert_eq!(
        text(p.section(Some(&Section::Mime(part(&[1]))))),
        "Subject: no mime\r\n\r\n"
    );
    assert_eq!(text(p.section(Some(&Section::Part(part(&[2]))))), "");
}

#[test]
fn binary_undoes_transfer_encodings() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    let one = |n: u32| vec![NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)];
    assert_eq!(
        p.binary(&one(1)).as_deref().ok(),
        Some("Café au lait soon".as_bytes())
    );
    assert_eq!(p.binary(&one(2)).as_deref().ok(), Some(&[0u8, 1, 2, 3][..]));
    assert_eq!(p.binary(&[]).as_deref().ok(), Some(&raw[..]));
    assert_eq!(p.binary(&one(9)).as_deref().ok(), Some(&[][..]));
    let raw = crlf("Content-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n");
    let p = Parsed::parse(&raw);
    assert_eq!(
        p.binary(&one(1)),
        Err(BinaryError::UnknownEncoding("x-uuencode".into()))
    );
    let raw = crlf("Content-Transfer-Encoding: base64\n\n!!!\n");
    assert!(matches!(
        Parsed::parse(&raw).binary(&one(1)),
        Err(BinaryError::Corrupt(_))
    ));
}

#[test]
fn partial_clamps() {
    let ten = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN);
    let two = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
    assert_eq!(partial(b"abcdef", None), b"abcdef");
    assert_eq!(partial(b"abcdef", Some((1, two))), b"bc");
    assert_eq!(partial(b"abcdef", Some((4, ten))), b"ef");
    assert_eq!(partial(b"abcdef", Some((6, ten))), b"");
    assert_eq!(partial(b"abcdef", Some((u32::MAX, ten))), b"");
}

#[test]
fn header_values_and_body_text_are_decoded() {
    let raw = mixed();
    let p = Parsed::parse(&raw);
    assert_eq!(p.header_values("subject"), vec!["Café menu".to_owned()]);
    assert_eq!(p.header_values("X-Absent"), Vec::<String>::new());
    let body = p.body_text();
    assert!(body.contains("Café au lait soon"), "{body}");
    assert!(body.contains("inner text"), "{body}");
    assert!(!body.contains("AAECAw"), "{body}");
}

#[test]
fn unparseable_input_is_one_text_part() {
    for raw in [&b""[..], b"\r\n\r\n", b"no header at all", b"\xff\xfe\0"] {
        let p = Parsed::parse(raw);
        assert_eq!(
            p.section(Some(&Section::Part(part(&[1])))).len(),
            p.section(Some(&Section::Text(None))).len()
        );
        let _ = p.body_structure(true);
        let _ = p.envelope();
    }
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut raw = String::new();
    for i in 0..500 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
        ));
    }
    raw.push_str("\nleaf\n");
    let raw = crlf(&raw);
    let p = Parsed::parse(&raw);
    let _ = wire(MessageDataItem::BodyStructure(p.body_structure(true)));
    let deep: Vec<u32> = vec![1; 400];
    let _ = p.section(Some(&Section::Part(part(&deep))));
    let mut raw = String::new();
    for _ in 0..500 {
        raw.push_str("Content-Type: message/rfc822\n\n");
    }
    let raw = crlf(&raw);
    let _ = Parsed::parse(&raw).body_structure(true);
}

#[test]
fn mail_parser_samples_parse_with_sane_sizes() {
    let Some(home) = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
    else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(home.join("registry/src")) else {
        return;
    };
    let mut files = Vec::new();
    for registry in registries.flatten() {
        let eml = registry.path().join("mail-parser-0.11.1/resources/eml");
        for dir in std::fs::read_dir(eml).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if file.path().extension().is_some_and(|e| e == "eml") {
                    files.push(file.path());
                }
            }
        }
    }
    let shipped = files.len();
    for path in &files {
        let Ok(raw) = std::fs::read(path) else {
            continue;
        };
        let p = Parsed::parse(&raw);
        let _ = p.envelope();
        let _ = wire(MessageDataItem::BodyStructure(p.body_structure(true)));
        let header = p.section(Some(&Section::Header(None))).len();
        let text = p.section(Some(&Section::Text(None))).len();
        assert!(header + text <= raw.len(), "{}", path.display());
        for n in 1..4 {
            let numbers = [NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)];
            assert!(p.section(Some(&Section::Part(part(&[n])))).len() <= raw.len());
            let _ = p.binary(&numbers);
        }
    }
    eprintln!("{shipped} mail-parser sample messages checked");
}

fn arb_section() -> impl Strategy<Value = Option<Section<'static>>> {
    let numbers = proptest::collection::vec(1u32..5, 1..4);
    let names = proptest::sample::select(vec!["subject", "FROM", "content-type", "x"]);
    prop_oneof![
        Just(None),
        numbers.clone().prop_map(|n| Some(Section::Part(part(&n)))),
        numbers.clone().prop_map(|n| Some(Section::Mime(part(&n)))),
        numbers
            .clone()
            .prop_map(|n| Some(Section::Header(Some(part(&n))))),
        numbers
            .clone()
            .prop_map(|n| Some(Section::Text(Some(part(&n))))),
        (numbers, names).prop_map(|(n, name)| Some(Section::HeaderFields(
            Some(part(&n)),
            Vec1::from(AString::try_from(name).unwrap_or_else(|_| unreachable!())),
        ))),
    ]
}

/// Arbitrary bytes mixed with MIME-looking lines, so that the parser's
/// multipart and nested-message paths are exercised too.
fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: quoted-printable\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"From: a <b@c>, g: d@e;\r\nSubject: =?utf-8?q?x?=\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(line, 0..30).prop_map(|lines| lines.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn nothing_panics_on_arbitrary_messages(raw in arb_message(), section in arb_section(), bin in proptest::collection::vec(1u32..4, 0..3)) {
        let p = Parsed::parse(&raw);
        let _ = p.envelope();
        let _ = wire(MessageDataItem::BodyStructure(p.body_structure(true)));
        let _ = p.body_structure(false);
        prop_assert!(p.section(section.as_ref()).len() <= raw.len().max(2) + 2 || matches!(section, Some(Section::HeaderFields(..))));
        let bin: Vec<NonZeroU32> = bin.into_iter().filter_map(NonZeroU32::new).collect();
        let _ = p.binary(&bin);
        let _ = p.header_values("subject");
        let _ = p.body_text();
    }

    #[test]
    fn matches_never_panics(raw in arb_message(), needle in proptest::collection::vec(1u8..=255, 0..8), seq in 0u32..20, date in any::<i64>()) {
        use imap_types::search::SearchKey;
        let p = Parsed::parse(&raw);
        let text = MessageText::new(p.bytes(p.root().header.clone()), Some(&p.body_text()));
        let flags = cairn_storage::mailbox::Flags::default();
        let c = Candidate { seq, uid: seq, modseq: 1, flags: &flags, recent: false, internal_date: date, size: 0, text: Some(&text) };
        let ctx = SearchContext { largest_seq: 0, largest_uid: 0 };
        let text = || AString::try_from(needle.clone()).unwrap_or_else(|_| AString::try_from("x").unwrap_or_else(|_| unreachable!()));
        let day = imap_types::datetime::NaiveDate::unvalidated(chrono::NaiveDate::from_ymd_opt(2022, 3, 1).unwrap_or_default());
        let keys = [
            SearchKey::Text(text()),
            SearchKey::Header(text(), text()),
            SearchKey::From(text()),
            SearchKey::SentOn(day.clone()),
            SearchKey::Since(day),
            SearchKey::SequenceSet(imap_types::sequence::SequenceSet::try_from("*:3,5").unwrap_or_else(|_| unreachable!())),
        ];
        for key in &keys {
            let _ = matches(key, &c, &ctx);
        }
    }

    /// SEARCH reads a message's text from its kept tree (the header's
    /// range, each text part decoded alone): the same text as a parse of
    /// the whole message, up to whitespace (a part whose boundary
    /// follows on the same line as its last text, which mail-parser
    /// accepts, ends in whitespace that quoted-printable drops when
    /// the part is decoded alone).
    #[test]
    fn kept_text_is_the_parsed_text(raw in arb_message()) {
        let p = Parsed::parse(&raw);
        if let Some(shape) = Shape::of(&p) {
            let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
            let parts: String = shape.text_parts().map(|(r, m)| part_text(&raw[r], m)).collect();
            prop_assert_eq!(words(&parts), words(&p.body_text()));
            let header = Parsed::parse(&raw[shape.header()]);
            for name in ["subject", "from", "to", "date", "message-id", "references"] {
                prop_assert_eq!(header.header_values(name), p.header_values(name));
            }
            prop_assert_eq!(header.header_text(), p.header_text());
        }
    }

    #[test]
    fn nothing_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let p = Parsed::parse(&raw);
        let _ = p.envelope();
        let _ = p.body_structure(true);
        let _ = p.section(Some(&Section::Part(part(&[1, 2]))));
    }
}

#[test]
fn unparsed_nested_messages_and_broken_multiparts_keep_the_grammar() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=o

--o
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

U3ViamVjdDogeAoKeQo=
--o
Content-Type: multipart/related

no boundary here
--o--
",
    );
    let p = Parsed::parse(&raw);
    assert_eq!(
        wire(MessageDataItem::Body(p.body_structure(false))),
        r#"BODY (("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 20)("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 16 1) "MIXED")"#
    );
}

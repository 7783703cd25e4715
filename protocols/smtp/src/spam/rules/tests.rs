//! The rules, family by family; arbitrary input; the mail-parser corpus;
//! and what a 100 KB message costs.

use std::net::IpAddr;
use std::time::Instant;

use base64::Engine;
use proptest::prelude::*;

use super::*;

/// Thu, 15 Jan 2026 12:00:00 +0000.
const NOW: i64 = 1_768_478_400;
const DATE: &str = "Thu, 15 Jan 2026 12:00:00 +0000";

fn facts() -> Facts<'static> {
    Facts {
        client_ip: "192.0.2.1".parse().expect("ip"),
        helo: "mail.example.org",
        mail_from: "alice@example.org",
        authenticated: false,
    }
}

/// A well-formed message with `extra` headers (replacing the standard
/// ones of the same name) and a text body.
fn message(extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut headers = vec![
        ("From", "Alice <alice@example.org>".to_string()),
        ("To", "Bob <bob@example.net>".to_string()),
        ("Subject", "Lunch on Friday".to_string()),
        ("Date", DATE.to_string()),
        ("Message-ID", "<1234.5678@mail.example.org>".to_string()),
        ("MIME-Version", "1.0".to_string()),
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
    ];
    for (name, value) in extra {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name, value.to_string()));
        }
    }
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

const BODY: &str = "Hi Bob,\r\n\r\nShall we meet at noon at the usual place? I will book a table.\r\n\r\nAlice\r\n";

fn names_with(facts: &Facts<'_>, raw: &[u8]) -> Vec<&'static str> {
    check(facts, raw, NOW)
        .into_iter()
        .map(|h| match h.name {
            Cow::Borrowed(name) => name,
            Cow::Owned(_) => unreachable!("rules have static names"),
        })
        .collect()
}

fn names(raw: &[u8]) -> Vec<&'static str> {
    names_with(&facts(), raw)
}

#[track_caller]
fn assert_hit(raw: &[u8], rule: &str) {
    let got = names(raw);
    assert!(got.contains(&rule), "{rule} missing from {got:?}");
}

#[track_caller]
fn assert_no_hit(raw: &[u8], rule: &str) {
    let got = names(raw);
    assert!(!got.contains(&rule), "{rule} unexpected in {got:?}");
}

fn b64(bytes: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn multipart(kind: &str, parts: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (headers, content) in parts {
        body.push_str(&format!("--BOUNDARY\r\n{headers}\r\n\r\n{content}\r\n"));
    }
    body.push_str("--BOUNDARY--\r\n");
    let _ = kind;
    body
}

fn multipart_message(kind: &str, parts: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<u8> {
    let content_type = format!("multipart/{kind}; boundary=\"BOUNDARY\"");
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", content_type.as_str())];
    headers.extend_from_slice(extra);
    message(&headers, &multipart(kind, parts))
}

#[test]
fn the_rule_table_is_sane() {
    assert!(RULES.len() >= 20, "{}", RULES.len());
    let mut seen = std::collections::HashSet::new();
    for rule in RULES {
        assert!(seen.insert(rule.name), "{} twice", rule.name);
        assert!(
            rule.name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            rule.name
        );
        assert!(
            rule.weight.is_finite() && rule.weight > 0.0,
            "{}",
            rule.name
        );
        assert!(!rule.description.is_empty());
        // Each rule alone stays under the tag threshold.
        assert!(rule.weight < 5.0, "{}", rule.name);
    }
    assert!(PHRASE_MATCHER.is_some());
}

#[test]
fn a_normal_message_hits_nothing() {
    assert_eq!(names(&message(&[], BODY)), Vec::<&str>::new());
    // A multipart/alternative newsletter-style message with a few links.
    let raw = multipart_message(
        "alternative",
        &[
            ("Content-Type: text/plain; charset=utf-8", "News of the week. Read it at https://news.example.org/week/3 ."),
            (
                "Content-Type: text/html; charset=utf-8",
                "<html><body><h1>News of the week</h1><p>Our garden club met on Tuesday to plan the \
                 spring planting; the minutes are <a href=\"https://news.example.org/minutes\">on \
                 the site</a>.</p><p>Visit <a href=\"https://www.example.org/\">www.example.org</a> \
                 for the calendar.</p></body></html>",
            ),
        ],
        &[],
    );
    assert_eq!(names(&raw), Vec::<&str>::new());
}

#[test]
fn missing_headers() {
    let raw = message(
        &[
            ("Date", ""),
            ("Message-ID", ""),
            ("Subject", ""),
            ("To", ""),
        ],
        BODY,
    );
    let got = names(&raw);
    for rule in [
        "MISSING_DATE",
        "MISSING_MID",
        "MISSING_SUBJECT",
        "MISSING_TO",
    ] {
        assert!(got.contains(&rule), "{rule} in {got:?}");
    }
    assert_hit(&message(&[("From", "")], BODY), "MISSING_FROM");
    assert_hit(&message(&[("From", "undisclosed")], BODY), "MISSING_FROM");
    // Cc alone is enough.
    assert_no_hit(
        &message(&[("To", ""), ("Cc", "bob@example.net")], BODY),
        "MISSING_TO",
    );
    // No headers at all.
    let got = names(b"");
    assert!(got.contains(&"NO_HEADERS"), "{got:?}");
    assert!(got.contains(&"MISSING_FROM"), "{got:?}");
}

#[test]
fn dates() {
    assert_hit(
        &message(&[("Date", "yesterday at noon")], BODY),
        "INVALID_DATE",
    );
    assert_hit(
        &message(&[("Date", "Fri, 31 Feb 2026 99:00:00 +0000")], BODY),
        "INVALID_DATE",
    );
    assert_hit(
        &message(&[("Date", "Sat, 17 Jan 2026 12:00:00 +0000")], BODY),
        "DATE_IN_FUTURE",
    );
    assert_no_hit(
        &message(&[("Date", "Thu, 15 Jan 2026 23:00:00 +0000")], BODY),
        "DATE_IN_FUTURE",
    );
    // The zone counts: 03:00 at -1000 is 13:00 UTC, 25 hours ahead.
    let ahead = "Fri, 16 Jan 2026 03:00:00 -1000";
    assert_hit(&message(&[("Date", ahead)], BODY), "DATE_IN_FUTURE");
    let ahead = "Fri, 16 Jan 2026 03:00:00 +0000";
    assert_no_hit(&message(&[("Date", ahead)], BODY), "DATE_IN_FUTURE");
    assert_hit(
        &message(&[("Date", "Sun, 11 Jan 2026 11:00:00 +0000")], BODY),
        "DATE_IN_PAST",
    );
    assert_no_hit(
        &message(&[("Date", "Mon, 12 Jan 2026 13:00:00 +0000")], BODY),
        "DATE_IN_PAST",
    );
}

#[test]
fn message_ids() {
    assert_hit(
        &message(&[("Message-ID", "<no-at-sign>")], BODY),
        "INVALID_MSGID",
    );
    assert_no_hit(
        &message(&[("Message-ID", "<no-at-sign>")], BODY),
        "MISSING_MID",
    );
    assert_no_hit(&message(&[], BODY), "INVALID_MSGID");
}

#[test]
fn from_display_names() {
    assert_hit(
        &message(
            &[("From", "\"service@bank.example\" <x1@spam.example>")],
            BODY,
        ),
        "FROM_NAME_OTHER_ADDR",
    );
    // Encoded words are decoded first.
    assert_hit(
        &message(
            &[(
                "From",
                "=?utf-8?q?service=40bank=2Eexample?= <x1@spam.example>",
            )],
            BODY,
        ),
        "FROM_NAME_OTHER_ADDR",
    );
    // The same address in the name is fine; so is a name without one.
    assert_no_hit(
        &message(
            &[("From", "\"alice@example.org\" <Alice@Example.org>")],
            BODY,
        ),
        "FROM_NAME_OTHER_ADDR",
    );
    assert_no_hit(
        &message(&[("From", "Alice @ Work <alice@example.org>")], BODY),
        "FROM_NAME_OTHER_ADDR",
    );
}

#[test]
fn reply_to_and_envelope() {
    assert_hit(
        &message(&[("Reply-To", "claims@gmail.com")], BODY),
        "REPLYTO_FREEMAIL",
    );
    assert_hit(
        &message(&[("Reply-To", "claims@yahoo.co.uk")], BODY),
        "REPLYTO_FREEMAIL",
    );
    assert_no_hit(
        &message(&[("Reply-To", "list@example.org")], BODY),
        "REPLYTO_FREEMAIL",
    );
    // From a freemail address, Reply-To the same domain.
    assert_no_hit(
        &message(
            &[("From", "a@gmail.com"), ("Reply-To", "b@gmail.com")],
            BODY,
        ),
        "REPLYTO_FREEMAIL",
    );

    let raw = message(&[], BODY);
    let mut other = facts();
    other.mail_from = "bounces+123@mailer.example.com";
    assert!(names_with(&other, &raw).contains(&"ENVFROM_NOT_FROM"));
    other.mail_from = "bounce-42@lists.example.org";
    assert!(!names_with(&other, &raw).contains(&"ENVFROM_NOT_FROM"));
    other.mail_from = "";
    assert!(!names_with(&other, &raw).contains(&"ENVFROM_NOT_FROM"));
}

#[test]
fn many_recipients() {
    let to: Vec<String> = (0..10).map(|i| format!("user{i}@example.net")).collect();
    let cc: Vec<String> = (0..5).map(|i| format!("cc{i}@example.net")).collect();
    assert_hit(
        &message(&[("To", &to.join(", ")), ("Cc", &cc.join(", "))], BODY),
        "MANY_RECIPIENTS",
    );
    assert_no_hit(&message(&[("To", &to.join(", "))], BODY), "MANY_RECIPIENTS");
}

#[test]
fn eight_bit_without_mime() {
    let body = "Caf\u{e9} au lait\r\n";
    assert_hit(
        &message(&[("MIME-Version", ""), ("Content-Type", "")], body),
        "MIME_MISSING_8BIT",
    );
    assert_no_hit(&message(&[], body), "MIME_MISSING_8BIT");
    assert_no_hit(
        &message(&[("MIME-Version", ""), ("Content-Type", "")], BODY),
        "MIME_MISSING_8BIT",
    );
}

#[test]
fn subjects() {
    assert_hit(
        &message(&[("Subject", "CHEAP WATCHES FOR YOU")], BODY),
        "SUBJ_ALL_CAPS",
    );
    assert_no_hit(&message(&[("Subject", "RE: FYI")], BODY), "SUBJ_ALL_CAPS");
    assert_no_hit(
        &message(&[("Subject", "Meeting NOTES for Q3")], BODY),
        "SUBJ_ALL_CAPS",
    );
    assert_hit(
        &message(&[("Subject", "Great news!!")], BODY),
        "SUBJ_EXCLAIM",
    );
    assert_hit(
        &message(&[("Subject", "Yes! Yes! Yes!")], BODY),
        "SUBJ_EXCLAIM",
    );
    assert_no_hit(
        &message(&[("Subject", "Congratulations!")], BODY),
        "SUBJ_EXCLAIM",
    );
    assert_hit(
        &message(&[("Subject", "Buy VIAGRA today")], BODY),
        "SUBJ_SPAM_PHRASE",
    );
    // Encoded words are decoded.
    assert_hit(
        &message(&[("Subject", "=?utf-8?b?TG90dGVyeSB3aW5uZXI=?=")], BODY),
        "SUBJ_SPAM_PHRASE",
    );
}

#[test]
fn body_phrases_decoded_and_whole_words() {
    assert_hit(
        &message(&[], "Dear friend, you are a LOTTERY   WINNER.\r\n"),
        "BODY_SPAM_PHRASE",
    );
    // Across a line break.
    assert_hit(
        &message(&[], "please click\r\nhere to continue\r\n"),
        "BODY_SPAM_PHRASE",
    );
    // Not inside other words: "contact now", "Cialisbury".
    assert_no_hit(
        &message(&[], "Please contact now-retired staff in Cialisbury.\r\n"),
        "BODY_SPAM_PHRASE",
    );
    // Quoted-printable and base64 are decoded.
    assert_hit(
        &message(
            &[("Content-Transfer-Encoding", "quoted-printable")],
            "100% fr=\r\nee, ac=74 now\r\n",
        ),
        "BODY_SPAM_PHRASE",
    );
    let raw = message(
        &[("Content-Transfer-Encoding", "base64")],
        &b64(b"Get viagra here.\r\n"),
    );
    assert_hit(&raw, "BODY_SPAM_PHRASE");
    // A charset other than UTF-8.
    let mut raw = message(&[("Content-Type", "text/plain; charset=iso-8859-1")], "");
    raw.extend_from_slice(b"Caf\xe9: VIAGRA \xe0 prix r\xe9duit\r\n");
    assert_hit(&raw, "BODY_SPAM_PHRASE");
    // Three different ones.
    let raw = message(&[], "Act now: 100% free, no credit check, risk free!\r\n");
    assert_hit(&raw, "BODY_SPAM_PHRASES_MANY");
    assert_no_hit(
        &message(&[], "click here, click here, click here\r\n"),
        "BODY_SPAM_PHRASES_MANY",
    );
}

#[test]
fn body_exclamations() {
    assert_hit(
        &message(&[], "Buy now!!! Cheap!!! Today only.\r\n"),
        "BODY_EXCLAIM",
    );
    assert_hit(
        &message(&[], "Wow! Yes! Now! Go! Hey! Ho! Up! On! In! Out!\r\n"),
        "BODY_EXCLAIM",
    );
    assert_no_hit(&message(&[], BODY), "BODY_EXCLAIM");
    let long = format!("{}Great! Thanks! And another one!\r\n", BODY.repeat(20));
    assert_no_hit(&message(&[], &long), "BODY_EXCLAIM");
}

#[test]
fn empty_bodies() {
    assert_hit(&message(&[], ""), "EMPTY_BODY");
    assert_hit(&message(&[], "   \r\n\r\n"), "EMPTY_BODY");
    assert_no_hit(&message(&[], BODY), "EMPTY_BODY");
    // An attachment alone is not empty.
    let raw = multipart_message(
        "mixed",
        &[(
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64",
            &b64(b"%PDF-1.4 ..."),
        )],
        &[],
    );
    assert_no_hit(&raw, "EMPTY_BODY");
}

#[test]
fn base64_plain_text() {
    let raw = message(
        &[("Content-Transfer-Encoding", "base64")],
        &b64(BODY.as_bytes()),
    );
    assert_hit(&raw, "BASE64_TEXT");
    // Non-ASCII text has a reason to be encoded.
    let raw = message(
        &[("Content-Transfer-Encoding", "base64")],
        &b64("Gr\u{fc}\u{df}e aus M\u{fc}nchen, bis bald.".as_bytes()),
    );
    assert_no_hit(&raw, "BASE64_TEXT");
    assert_no_hit(&message(&[], BODY), "BASE64_TEXT");
}

#[test]
fn numeric_urls() {
    assert_hit(
        &message(&[], "Log in at http://192.0.2.55/login now.\r\n"),
        "URL_NUMERIC_HOST",
    );
    let raw = message(
        &[("Content-Type", "text/html")],
        "<p>Log in <a href=\"http://3221225985/x\">here</a> to keep your account open today.</p>",
    );
    assert_hit(&raw, "URL_NUMERIC_HOST");
    assert_no_hit(
        &message(&[], "See https://example.org/2.0.1/ for 1.2.3.4 notes.\r\n"),
        "URL_NUMERIC_HOST",
    );
}

#[test]
fn html_rules() {
    let html_only = message(
        &[("Content-Type", "text/html; charset=utf-8")],
        "<html><body><p>Hello Bob, shall we meet at noon at the usual place? I will book a table \
         for two and bring the papers we talked about last week.</p></body></html>",
    );
    let got = names(&html_only);
    assert_eq!(got, ["HTML_ONLY"]);
    // With a text alternative: nothing.
    let raw = multipart_message(
        "alternative",
        &[
            ("Content-Type: text/plain", "Hello Bob"),
            ("Content-Type: text/html", "<p>Hello Bob</p>"),
        ],
        &[],
    );
    assert_no_hit(&raw, "HTML_ONLY");

    let links = message(
        &[("Content-Type", "text/html")],
        "<a href=\"http://a.example/1\">Deals</a> <a href=\"http://a.example/2\">More</a> \
         <a href=\"http://a.example/3\">Even more</a>",
    );
    let got = names(&links);
    assert!(got.contains(&"HTML_MOSTLY_LINKS"), "{got:?}");
    assert!(got.contains(&"HTML_LITTLE_TEXT"), "{got:?}");

    let image = message(
        &[("Content-Type", "text/html")],
        "<html><body><img src=\"http://img.example/offer.png\"></body></html>",
    );
    assert_hit(&image, "HTML_LITTLE_TEXT");
    assert_no_hit(&image, "EMPTY_BODY");

    let phish = message(
        &[("Content-Type", "text/html")],
        "<p>Your account needs attention. Please sign in to confirm your details within two \
         days or it will be closed: <a href=\"http://login.evil.example/bank\">https://www.bank.example/login</a></p>",
    );
    assert_hit(&phish, "HTML_LINK_MISMATCH");
    // Phrases in HTML are read from the visible text, entities decoded.
    let raw = message(
        &[("Content-Type", "text/html")],
        "<p>v&#105;a<b></b>gra</p>",
    );
    assert_hit(&raw, "BODY_SPAM_PHRASE");
}

#[test]
fn attachments() {
    let with = |name: &str| {
        multipart_message(
            "mixed",
            &[
                ("Content-Type: text/plain", "See the attached file."),
                (
                    &format!(
                        "Content-Type: application/octet-stream; name=\"{name}\"\r\n\
                         Content-Disposition: attachment; filename=\"{name}\"\r\n\
                         Content-Transfer-Encoding: base64"
                    ),
                    &b64(b"MZ\x90\x00 not really a program"),
                ),
            ],
            &[],
        )
    };
    assert_hit(&with("setup.EXE"), "EXECUTABLE_ATTACHMENT");
    assert_hit(&with("invoice.js"), "EXECUTABLE_ATTACHMENT");
    assert_hit(&with("photo.scr. . "), "EXECUTABLE_ATTACHMENT");
    assert_no_hit(&with("report.pdf"), "EXECUTABLE_ATTACHMENT");
    assert_no_hit(&with("notes.json"), "EXECUTABLE_ATTACHMENT");
    assert_no_hit(&with("setup.exe"), "DOUBLE_EXTENSION");
    assert_hit(&with("invoice.pdf.exe"), "DOUBLE_EXTENSION");
    assert_hit(&with("invoice.pdf      .vbs"), "DOUBLE_EXTENSION");
    // An RFC 2231 name.
    let raw = multipart_message(
        "mixed",
        &[
            ("Content-Type: text/plain", "See the attached file."),
            (
                "Content-Type: application/octet-stream\r\n\
                 Content-Disposition: attachment; filename*=utf-8''rechnung%2Ebat",
                "x",
            ),
        ],
        &[],
    );
    assert_hit(&raw, "EXECUTABLE_ATTACHMENT");
    // Inside a forwarded message.
    let inner = String::from_utf8(with("payload.hta")).expect("utf-8");
    let raw = multipart_message(
        "mixed",
        &[
            ("Content-Type: text/plain", "Forwarded."),
            ("Content-Type: message/rfc822", &inner),
        ],
        &[],
    );
    assert_hit(&raw, "EXECUTABLE_ATTACHMENT");
}

#[test]
fn helo_names() {
    let raw = message(&[], BODY);
    let with = |helo: &'static str| {
        let mut f = facts();
        f.helo = helo;
        names_with(&f, &raw)
    };
    assert_eq!(with("192.0.2.1"), ["HELO_BARE_IP"]);
    assert_eq!(with("2001:db8::1"), ["HELO_BARE_IP"]);
    assert_eq!(with("[192.0.2.1]"), Vec::<&str>::new());
    assert_eq!(with("localhost"), ["HELO_LOCALHOST"]);
    assert_eq!(with("LOCALHOST.localdomain"), ["HELO_LOCALHOST"]);
    assert_eq!(with("desktop-pc"), ["HELO_NOT_FQDN"]);
    assert_eq!(with(""), ["HELO_NOT_FQDN"]);
    assert_eq!(with("mx.example.org"), Vec::<&str>::new());
}

#[test]
fn a_spammy_message_scores_high() {
    let raw = multipart_message(
        "mixed",
        &[
            (
                "Content-Type: text/html; charset=utf-8",
                "<html><body><p>CONGRATULATIONS!!! You are a winner!!! Claim your prize: \
                 100% free, act now!</p><a href=\"http://198.51.100.7/claim\">www.paypal.com</a>\
                 <img src=\"http://198.51.100.7/x.png\"></body></html>",
            ),
            (
                "Content-Type: application/octet-stream\r\n\
                 Content-Disposition: attachment; filename=\"prize.pdf.exe\"",
                "x",
            ),
        ],
        &[
            ("Subject", "YOU ARE A WINNER!!!"),
            ("Message-ID", ""),
            ("From", "\"security@paypal.com\" <x9@spam.example>"),
            ("Reply-To", "claims@gmail.com"),
        ],
    );
    let mut f = facts();
    f.helo = "localhost";
    f.mail_from = "x9@spam.example";
    let hits = check(&f, &raw, NOW);
    let score: f32 = hits.iter().map(|h| h.weight).sum();
    let names: Vec<&str> = hits.iter().map(|h| h.name.as_ref()).collect();
    assert!(score >= 12.0, "{score} from {names:?}");
}

#[test]
fn only_the_head_of_a_huge_message_is_read() {
    // Spam phrases past the parse cap are not seen.
    let mut body =
        "Nothing to see here, just a long report line.\r\n".repeat(MAX_PARSED_BYTES / 40);
    body.push_str("viagra\r\n");
    let raw = message(&[], &body);
    assert!(raw.len() > MAX_PARSED_BYTES);
    assert_no_hit(&raw, "BODY_SPAM_PHRASE");
    // Nor past the scanned-text cap (inside the parse cap).
    let mut body = "word ".repeat(MAX_SCANNED_TEXT / 5 + 10);
    body.push_str("viagra\r\n");
    let raw = message(&[], &body);
    assert!(raw.len() < MAX_PARSED_BYTES);
    assert_no_hit(&raw, "BODY_SPAM_PHRASE");
    // Before it, it is.
    let mut body = "viagra\r\n".to_string();
    body.push_str(&"word ".repeat(MAX_SCANNED_TEXT / 5 + 10));
    assert_hit(&message(&[], &body), "BODY_SPAM_PHRASE");
    assert_eq!(head(b"abc\ndef", 5), b"abc\n");
    assert_eq!(head(b"abcdefgh", 5), b"abcde");
    assert_eq!(head(b"abc", 5), b"abc");
}

#[test]
fn text_prefixes_end_on_char_boundaries() {
    assert_eq!(prefix("héllo", 2), "h");
    assert_eq!(prefix("héllo", 3), "hé");
    assert_eq!(prefix("héllo", 100), "héllo");
    assert_eq!(prefix("é", 0), "");
}

/// The test messages of mail-parser 0.11.1 (copied for the anti-virus
/// tests): no panic; the spread of scores printed.
#[test]
fn the_mail_parser_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut scores: Vec<(f32, String, Vec<&'static str>)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "eml") {
            let raw = std::fs::read(&path).expect("a message");
            let hits = check(&facts(), &raw, NOW);
            let score: f32 = hits.iter().map(|h| h.weight).sum();
            assert!(score.is_finite());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            scores.push((
                score,
                name,
                hits.iter()
                    .map(|h| match h.name {
                        Cow::Borrowed(n) => n,
                        Cow::Owned(_) => "?",
                    })
                    .collect(),
            ));
        }
    }
    assert!(scores.len() >= 90, "{} messages", scores.len());
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut buckets = [0usize; 4];
    for (score, _, _) in &scores {
        let bucket = match *score {
            s if s < 2.0 => 0,
            s if s < 5.0 => 1,
            s if s < 12.0 => 2,
            _ => 3,
        };
        buckets[bucket] += 1;
    }
    println!(
        "corpus: {} messages; score <2: {}, 2-5: {}, 5-12: {}, >=12: {}; median {:.1}, max {:.1}",
        scores.len(),
        buckets[0],
        buckets[1],
        buckets[2],
        buckets[3],
        scores[scores.len() / 2].0,
        scores[scores.len() - 1].0
    );
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, _, hits) in &scores {
        for hit in hits {
            *counts.entry(hit).or_default() += 1;
        }
    }
    println!("corpus hits per rule: {counts:?}");
    for (score, name, hits) in scores.iter().rev().take(5) {
        println!("  {score:.1} {name}: {hits:?}");
    }
}

/// What the rules cost on a 100 KB message (printed, not asserted: a
/// timing is never asserted in a unit test).
#[test]
fn cost() {
    let text: String = (0..900)
        .map(|i| format!("Line {i} of the quarterly report: figures are up, see the appendix.\r\n"))
        .collect();
    let html: String = (0..420)
        .map(|i| format!("<p>Paragraph {i} with <a href=\"https://example.org/{i}\">a link</a> and <b>bold</b> text.</p>\r\n"))
        .collect();
    let raw = multipart_message(
        "alternative",
        &[
            ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable", &text),
            ("Content-Type: text/html; charset=utf-8", &html),
        ],
        &[],
    );
    let kb = raw.len() as f64 / 1024.0;
    assert!((90.0..200.0).contains(&kb), "{kb} KB");
    let rounds = 50;
    let _ = check(&facts(), &raw, NOW);
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(check(&facts(), std::hint::black_box(&raw), NOW));
    }
    let each = started.elapsed() / rounds;
    println!(
        "cost: {kb:.0} KB message in {each:?} ({:.1} µs per KB, {} build)",
        each.as_secs_f64() * 1e6 / kb,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    // A 13 MB message costs what its capped head does.
    let big_html: String = (0..200_000)
        .map(|i| format!("<p><a href=\"https://example.org/{i}\">link {i}</a> text</p>\r\n"))
        .collect();
    let big = message(&[("Content-Type", "text/html; charset=utf-8")], &big_html);
    let started = Instant::now();
    std::hint::black_box(check(&facts(), std::hint::black_box(&big), NOW));
    println!(
        "cost: {:.1} MB HTML message (capped at {} KiB parsed, {} KiB scanned) in {:?}",
        big.len() as f64 / 1e6,
        MAX_PARSED_BYTES / 1024,
        MAX_SCANNED_TEXT / 1024,
        started.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let hits = check(&facts(), &raw, NOW);
        let score: f32 = hits.iter().map(|h| h.weight).sum();
        prop_assert!(score.is_finite());
    }

    #[test]
    fn arbitrary_messages_never_panic(
        subject in ".{0,80}",
        from in "[ -~]{0,60}",
        ctype in prop::sample::select(vec![
            "text/plain", "text/html", "multipart/mixed; boundary=B", "multipart/alternative; boundary=B",
            "message/rfc822", "application/octet-stream; name=x.exe",
        ]),
        cte in prop::sample::select(vec!["7bit", "base64", "quoted-printable", "8bit"]),
        body in ".{0,600}",
        html_bits in proptest::collection::vec(prop::sample::select(vec![
            "<a href=\"http://", "\">", "</a>", "<img", "<!--", "-->", "&#", ";", "<script>", "--B\r\n",
            "--B--\r\n", "\r\n\r\n", "Content-Type: text/html\r\n", "!!!", "viagra", "www.x.example",
        ]), 0..30),
        helo in "[ -~]{0,30}",
        now in any::<i64>(),
    ) {
        let raw = format!(
            "From: {from}\r\nSubject: {subject}\r\nDate: {DATE}\r\nContent-Type: {ctype}\r\n\
             Content-Transfer-Encoding: {cte}\r\n\r\n{body}{}",
            html_bits.concat()
        );
        let f = Facts { helo: &helo, ..facts() };
        let hits = check(&f, raw.as_bytes(), now);
        let score: f32 = hits.iter().map(|h| h.weight).sum();
        prop_assert!(score.is_finite());
    }
}

#[test]
fn facts_are_used_as_given() {
    // The client address does not matter to the rules (the blocklists
    // look at it).
    let raw = message(&[], BODY);
    let mut f = facts();
    f.client_ip = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(names_with(&f, &raw), Vec::<&str>::new());
}

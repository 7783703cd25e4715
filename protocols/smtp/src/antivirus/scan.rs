//! Scanning one message: the raw bytes, then every decoded MIME part.
//!
//! The raw message is matched first (a plain-text EICAR, or bytes that
//! are not MIME at all). Then mail-parser splits it into parts and decodes
//! their transfer encodings (base64, quoted-printable) and nested
//! `message/rfc822` messages (also when those are themselves encoded); each
//! decoded part is matched against the body signatures and hashed for the
//! MD5 ones. A part whose bytes are an unchanged slice of the raw message
//! is not matched again (the raw pass saw them), only hashed.
//!
//! Limits: nested messages are followed [`ScanLimits::max_depth`] deep and
//! at most [`ScanLimits::max_decoded_bytes`] of decoded parts are matched;
//! past them the rest goes unscanned (the raw pass still covered it).

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::signatures::Signatures;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Infected {
        /// The signature's name.
        name: String,
        /// Where: `message` (the raw bytes) or `part 2/1 "file.exe"` (the
        /// first part of the message in the second part).
        part: String,
    },
}

impl Verdict {
    pub fn is_infected(&self) -> bool {
        matches!(self, Verdict::Infected { .. })
    }
}

/// Bounds on the work one scan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// How deep nested messages are followed.
    pub max_depth: usize,
    /// The most decoded bytes matched, all parts together.
    pub max_decoded_bytes: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_decoded_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Scans `message` with the default limits.
pub fn scan(message: &[u8], sigs: &Signatures) -> Verdict {
    scan_with(message, sigs, ScanLimits::default())
}

/// Scans `message` within `limits`.
pub fn scan_with(message: &[u8], sigs: &Signatures, limits: ScanLimits) -> Verdict {
    if let Some(name) = sigs.match_body(message) {
        return infected(name, "message".to_string());
    }
    let parser = MessageParser::new()
        .with_mime_headers()
        .default_header_ignore();
    let Some(parsed) = parser.parse(message) else {
        return Verdict::Clean;
    };
    let mut walk = Walk {
        sigs,
        limits,
        budget: limits.max_decoded_bytes,
    };
    walk.message(&parsed, 0, "")
}

fn infected(name: &str, part: String) -> Verdict {
    Verdict::Infected {
        name: name.to_string(),
        part,
    }
}

struct Walk<'s> {
    sigs: &'s Signatures,
    limits: ScanLimits,
    budget: usize,
}

impl Walk<'_> {
    fn message(&mut self, message: &Message<'_>, depth: usize, prefix: &str) -> Verdict {
        for (i, part) in message.parts.iter().enumerate() {
            let label = || {
                let mut label = format!("part {prefix}{}", i + 1);
                if let Some(file) = part.attachment_name() {
                    label.push_str(&format!(" {file:?}"));
                }
                label
            };
            let (bytes, decoded): (&[u8], bool) = match &part.body {
                PartType::Text(t) | PartType::Html(t) => (t.as_bytes(), matches!(t, Cow::Owned(_))),
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    (b.as_ref(), matches!(b, Cow::Owned(_)))
                }
                PartType::Message(nested) => {
                    if depth < self.limits.max_depth {
                        let verdict =
                            self.message(nested, depth + 1, &format!("{prefix}{}/", i + 1));
                        if verdict.is_infected() {
                            return verdict;
                        }
                    }
                    continue;
                }
                PartType::Multipart(_) => continue,
            };
            if let Some(name) = self.sigs.match_hash(bytes) {
                return infected(name, label());
            }
            if decoded && self.budget >= bytes.len() {
                self.budget -= bytes.len();
                if let Some(name) = self.sigs.match_body(bytes) {
                    return infected(name, label());
                }
            }
        }
        Verdict::Clean
    }
}

#[cfg(test)]
mod tests {
    use super::super::signatures::{EICAR, EICAR_NAME};
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn eicar_name(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Infected { name, .. } => Some(name),
            Verdict::Clean => None,
        }
    }

    fn with_attachment(content_headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
             --XYZ\r\nContent-Type: text/plain\r\n\r\nHello.\r\n\
             --XYZ\r\n{content_headers}\r\n\r\n{body}\r\n--XYZ--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn eicar_in_plain_text() {
        let mut m = b"Subject: t\r\n\r\n".to_vec();
        m.extend_from_slice(EICAR);
        m.extend_from_slice(b"\r\n");
        let v = scan(&m, &Signatures::builtin());
        assert_eq!(eicar_name(&v), Some(EICAR_NAME));
    }

    #[test]
    fn eicar_in_a_base64_attachment() {
        let m = with_attachment(
            "Content-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"eicar.com\"\r\n\
             Content-Transfer-Encoding: base64",
            &b64(EICAR),
        );
        assert!(memchr::memmem::find(&m, b"EICAR").is_none());
        let v = scan(&m, &Signatures::builtin());
        match v {
            Verdict::Infected { name, part } => {
                assert_eq!(name, EICAR_NAME);
                assert!(part.contains("eicar.com"), "{part}");
            }
            Verdict::Clean => panic!("missed a base64 EICAR"),
        }
    }

    #[test]
    fn eicar_in_quoted_printable() {
        // Every byte encoded, so the raw text never holds the string.
        let qp: String = EICAR.iter().map(|b| format!("={b:02X}")).collect();
        let qp = qp
            .as_bytes()
            .chunks(72)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("=\r\n");
        let m = with_attachment(
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable",
            &qp,
        );
        let v = scan(&m, &Signatures::builtin());
        assert_eq!(eicar_name(&v), Some(EICAR_NAME));
    }

    #[test]
    fn eicar_in_a_nested_encoded_message() {
        let inner = with_attachment(
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
            &b64(EICAR),
        );
        let m = with_attachment(
            "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64",
            &b64(&inner),
        );
        let v = scan(&m, &Signatures::builtin());
        assert_eq!(eicar_name(&v), Some(EICAR_NAME), "{v:?}");
        let inline = with_attachment(
            "Content-Type: message/rfc822",
            &String::from_utf8_lossy(&inner),
        );
        let v = scan(&inline, &Signatures::builtin());
        assert_eq!(eicar_name(&v), Some(EICAR_NAME), "{v:?}");
    }

    #[test]
    fn a_hash_signature_matches_a_decoded_part() {
        use md5::{Digest, Md5};
        let payload = b"\x00\x01binary evil\xff";
        let md5: String = Md5::digest(payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let db = format!("{md5}:{}:Test.Hash\n", payload.len());
        let sigs = Signatures::parse(db.as_bytes(), "t").expect("parse");
        let m = with_attachment(
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
            &b64(payload),
        );
        assert_eq!(eicar_name(&scan(&m, &sigs)), Some("Test.Hash"));
    }

    #[test]
    fn the_decoded_budget_bounds_the_work() {
        let m = with_attachment(
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
            &b64(EICAR),
        );
        let limits = ScanLimits {
            max_depth: 8,
            max_decoded_bytes: 10,
        };
        assert_eq!(
            scan_with(&m, &Signatures::builtin(), limits),
            Verdict::Clean
        );
    }

    #[test]
    fn the_mail_parser_corpus_is_clean() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut corpus: Vec<Vec<u8>> = vec![
            with_attachment("Content-Type: text/plain", "nothing to see"),
            with_attachment(
                "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64",
                &b64(&(0..=255u8).cycle().take(10_000).collect::<Vec<u8>>()),
            ),
        ];
        // The mail-parser test messages (tests/corpus/README.md).
        let dir = std::fs::read_dir(root.join("tests/corpus")).expect("tests/corpus");
        for entry in dir.flatten() {
            if entry.path().extension().is_some_and(|e| e == "eml") {
                corpus.push(std::fs::read(entry.path()).expect("read a corpus message"));
            }
        }
        assert!(corpus.len() > 50, "the corpus is there");
        let sigs = Signatures::builtin();
        for m in corpus {
            assert_eq!(
                scan(&m, &sigs),
                Verdict::Clean,
                "{}",
                String::from_utf8_lossy(&m)
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = scan(&bytes, &Signatures::builtin());
        }

        #[test]
        fn mime_shaped_noise_never_panics(
            body in "[ -~\r\n=]{0,600}",
            cte in prop_oneof![Just("base64"), Just("quoted-printable"), Just("7bit")],
            ct in prop_oneof![Just("text/plain"), Just("message/rfc822"), Just("multipart/mixed; boundary=XYZ"), Just("application/x")],
        ) {
            let m = with_attachment(&format!("Content-Type: {ct}\r\nContent-Transfer-Encoding: {cte}"), &body);
            let _ = scan(&m, &Signatures::builtin());
        }

        #[test]
        fn eicar_anywhere_in_noise_is_found(pre in "[a-z \r\n]{0,200}", post in "[a-z \r\n]{0,200}") {
            let mut m = b"Subject: x\r\n\r\n".to_vec();
            m.extend_from_slice(pre.as_bytes());
            m.extend_from_slice(EICAR);
            m.extend_from_slice(post.as_bytes());
            prop_assert!(scan(&m, &Signatures::builtin()).is_infected());
        }
    }
}

//! The tokens of a message for the Bayes classifier, sans-IO: the words of
//! its `Subject:`, the display names of `From:` and `To:`, the domain of
//! `From:`, and the words of its text body parts, decoded (transfer
//! encodings, charsets, RFC 2047 words; HTML read as text) by mail-parser.
//!
//! A word is a run of letters, digits, `$` and `'` (apostrophes trimmed at
//! its ends) of [`MIN_WORD_CHARS`] to [`MAX_WORD_CHARS`] characters,
//! lowercased; a header's words carry its name (`subject:cheap` is not
//! `cheap`). Each distinct token counts once per message, as in Graham's
//! and Robinson's classifiers, and is kept as a 64-bit FNV-1a hash of its
//! text ([`token`]): the hash is persisted in the per-account counts, so it
//! must never change.
//!
//! Bounded work, whatever the message: only its first
//! [`MAX_PARSED_BYTES`] are parsed, at most [`MAX_TEXT_BYTES`] of decoded
//! body text are read, and at most [`MAX_TOKENS`] distinct tokens kept.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use mail_parser::{Address, HeaderName, MessageParser};

/// One token: the FNV-1a hash of its text.
pub type Token = u64;

/// The most bytes of a message parsed (its head).
pub const MAX_PARSED_BYTES: usize = 256 * 1024;
/// The most bytes of decoded body text read.
pub const MAX_TEXT_BYTES: usize = 128 * 1024;
/// The most distinct tokens taken from one message.
pub const MAX_TOKENS: usize = 2_000;
/// The shortest word kept, in characters.
pub const MIN_WORD_CHARS: usize = 3;
/// The longest word kept, in characters.
pub const MAX_WORD_CHARS: usize = 40;
/// The most body parts read.
const MAX_PARTS: usize = 16;
/// The most addresses of one header field read.
const MAX_ADDRESSES: usize = 32;

static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::To)
        .default_header_ignore()
});

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The token of `word` (lowercased) under `prefix` (`"subject:"`, `""` for
/// the body …).
pub fn token(prefix: &str, word: &str) -> Token {
    let mut hash = fnv(FNV_OFFSET, prefix.as_bytes());
    let mut buf = [0u8; 4];
    for c in word.chars().flat_map(char::to_lowercase) {
        hash = fnv(hash, c.encode_utf8(&mut buf).as_bytes());
    }
    hash
}

/// The distinct tokens of one message, up to [`MAX_TOKENS`].
#[derive(Default)]
struct Collector {
    tokens: BTreeSet<Token>,
}

impl Collector {
    fn full(&self) -> bool {
        self.tokens.len() >= MAX_TOKENS
    }

    fn add(&mut self, token: Token) {
        if !self.full() {
            self.tokens.insert(token);
        }
    }

    /// Adds the words of `text` under `prefix`, reading at most `budget`
    /// bytes of it; returns the bytes read.
    fn words(&mut self, prefix: &str, text: &str, budget: usize) -> usize {
        let mut read = 0;
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '\'')) {
            if read >= budget || self.full() {
                break;
            }
            read += word.len() + 1;
            let word = word.trim_matches('\'');
            let chars = word.chars().take(MAX_WORD_CHARS + 1).count();
            if (MIN_WORD_CHARS..=MAX_WORD_CHARS).contains(&chars) {
                self.add(token(prefix, word));
            }
        }
        read.min(text.len())
    }

    /// Adds the display names of `field`'s addresses under `prefix`, and
    /// their domains under `domains` when given.
    fn addresses(&mut self, field: Option<&Address<'_>>, prefix: &str, domains: Option<&str>) {
        for addr in field
            .into_iter()
            .flat_map(Address::iter)
            .take(MAX_ADDRESSES)
        {
            if let Some(name) = addr.name() {
                self.words(prefix, name, MAX_TEXT_BYTES);
            }
            let domain = addr.address().and_then(|a| a.rsplit_once('@'));
            if let (Some(under), Some((_, domain))) = (domains, domain) {
                if !domain.is_empty() && domain.len() <= 255 {
                    self.add(token(under, domain));
                }
            }
        }
    }
}

/// The tokens of `message` (the bytes as stored), distinct and in
/// ascending order; none for bytes that are not a message.
pub fn tokenize(message: &[u8]) -> Vec<Token> {
    let raw = message.get(..MAX_PARSED_BYTES).unwrap_or(message);
    let Some(parsed) = PARSER.parse(raw) else {
        return Vec::new();
    };
    let mut collector = Collector::default();
    if let Some(subject) = parsed.subject() {
        collector.words("subject:", subject, MAX_TEXT_BYTES);
    }
    collector.addresses(parsed.from(), "from:", Some("from@"));
    collector.addresses(parsed.to(), "to:", None);
    let mut budget = MAX_TEXT_BYTES;
    for pos in 0..parsed.text_body_count().min(MAX_PARTS) {
        if budget == 0 || collector.full() {
            break;
        }
        if let Some(text) = parsed.body_text(pos) {
            budget -= collector.words("", &text, budget).min(budget);
        }
    }
    collector.tokens.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(subject: &str, body: &str) -> Vec<u8> {
        format!(
            "From: \"Lucky Winner\" <prize@lottery.example>\r\nTo: Alice Smith <alice@example.org>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn headers_and_body_words_are_told_apart() {
        let tokens = tokenize(&message("Claim your PRIZE now", "Dear friend, claim it."));
        for (prefix, word) in [
            ("subject:", "claim"),
            ("subject:", "prize"),
            ("subject:", "your"),
            ("from:", "lucky"),
            ("from:", "winner"),
            ("from@", "lottery.example"),
            ("to:", "alice"),
            ("", "dear"),
            ("", "friend"),
            ("", "claim"),
        ] {
            assert!(tokens.contains(&token(prefix, word)), "{prefix}{word}");
        }
        // Too short, and a header word is not a body word.
        assert!(tokens.contains(&token("subject:", "now")));
        assert!(!tokens.contains(&token("", "it")));
        assert!(!tokens.contains(&token("", "prize")));
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    }

    #[test]
    fn case_apostrophes_and_lengths() {
        assert_eq!(token("", "Viagra"), token("", "viagra"));
        assert_ne!(token("", "viagra"), token("subject:", "viagra"));
        let long = "x".repeat(MAX_WORD_CHARS + 1);
        let edge = "y".repeat(MAX_WORD_CHARS);
        let tokens = tokenize(&message("hi", &format!("'don't' {long} {edge} $100")));
        assert!(tokens.contains(&token("", "don't")));
        assert!(tokens.contains(&token("", &edge)));
        assert!(tokens.contains(&token("", "$100")));
        assert!(!tokens.contains(&token("", &long)));
    }

    #[test]
    fn encoded_and_html_parts_are_read_decoded() {
        let encoded = "Content-Type: multipart/alternative; boundary=\"b\"\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nQ2hlYXAgcGlsbHMgb25saW5l\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Cheap <b>pills</b></p>\r\n--b--\r\n";
        let tokens = tokenize(encoded.as_bytes());
        assert!(tokens.contains(&token("subject:", "grüße")));
        for word in ["cheap", "pills", "online"] {
            assert!(tokens.contains(&token("", word)), "{word}");
        }
        let html = "Content-Type: text/html\r\n\r\n<html><body><a href=\"x\">Pharmacy discount</a></body></html>\r\n";
        let tokens = tokenize(html.as_bytes());
        assert!(tokens.contains(&token("", "pharmacy")));
        assert!(!tokens.contains(&token("", "href")));
    }

    #[test]
    fn distinct_tokens_are_capped() {
        let body: Vec<String> = (0..5 * MAX_TOKENS).map(|i| format!("word{i}")).collect();
        let tokens = tokenize(&message("many", &body.join(" ")));
        assert_eq!(tokens.len(), MAX_TOKENS);
        assert!(tokenize(b"").is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let tokens = tokenize(&bytes);
            prop_assert!(tokens.len() <= MAX_TOKENS);
            prop_assert!(tokens.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn messages_of_words_are_tokenized_the_same_each_time(
            subject in "[A-Za-z ]{0,60}",
            words in proptest::collection::vec("[a-zA-Z0-9'$éü]{1,50}", 0..400),
        ) {
            let bytes = message(&subject, &words.join(" "));
            let tokens = tokenize(&bytes);
            prop_assert_eq!(&tokens, &tokenize(&bytes));
            prop_assert!(tokens.len() <= MAX_TOKENS);
            for word in &words {
                let trimmed = word.trim_matches('\'');
                let chars = trimmed.chars().count();
                if (MIN_WORD_CHARS..=MAX_WORD_CHARS).contains(&chars) {
                    prop_assert!(tokens.contains(&token("", trimmed)), "{}", word);
                }
            }
        }
    }
}

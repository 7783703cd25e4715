//! The built-in rules, sans-IO: each a name, a weight and a test over the
//! parsed message and the envelope and connection facts, in the spirit of
//! SpamAssassin's common header, body, HTML, attachment and HELO rules.
//! [`RULES`] lists them; [`check`] runs them all over one message.
//!
//! The message is parsed with mail-parser, which decodes the transfer
//! encodings (quoted-printable, base64), the charsets and the RFC 2047
//! words of the headers, so the body rules read decoded text.
//!
//! Bounded work, whatever the message: only its first
//! [`MAX_PARSED_BYTES`] are parsed (cut at a line end; a longer message is
//! judged by that part), and at most [`MAX_SCANNED_TEXT`] bytes of decoded
//! text (`text/plain` and `text/html` body parts together, in message
//! order) are scanned. With these caps one message costs a few
//! milliseconds at most on one core (see the `cost` test for a measure).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use mail_parser::{Encoding, HeaderName, Message, MessageParser, MimeHeaders, PartType};

use super::html::{self, HtmlSummary};
use super::{Facts, Hit};

/// The most bytes of a message parsed (its head: headers and the first
/// parts). 1 MiB.
pub const MAX_PARSED_BYTES: usize = 1024 * 1024;
/// The most bytes of decoded body text scanned. 256 KiB.
pub const MAX_SCANNED_TEXT: usize = 256 * 1024;

/// How far a `Date:` may be ahead of our clock: 24 hours.
const MAX_FUTURE_SECS: i64 = 24 * 3600;
/// How far a `Date:` may be behind our clock: 96 hours (mail queued for
/// days happens; older is a resent spam run).
const MAX_PAST_SECS: i64 = 96 * 3600;
/// Addresses in To and Cc that make a message a bulk one.
const MANY_RECIPIENTS: usize = 15;
/// Attachment names kept per message.
const MAX_ATTACHMENT_NAMES: usize = 100;
/// How deep nested `message/rfc822` parts are searched for attachments.
const MAX_NESTING: usize = 3;

/// One rule: what it is called, what it adds to the score, what it
/// means, and its test.
pub struct Rule {
    /// The name in `X-Spam-Status: … tests=NAME,…`.
    pub name: &'static str,
    /// What a hit adds to the score.
    pub weight: f32,
    /// What a hit means.
    pub description: &'static str,
    test: fn(&Context<'_>) -> bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

/// Every built-in rule, in the order hits are reported.
pub static RULES: &[Rule] = &[
    // Headers.
    Rule {
        name: "NO_HEADERS",
        weight: 2.0,
        description: "no header could be read: not a message",
        test: |c| c.message.is_none(),
    },
    Rule {
        name: "MISSING_FROM",
        weight: 2.0,
        description: "no From address",
        test: |c| c.sender_address().is_none(),
    },
    Rule {
        name: "MISSING_DATE",
        weight: 1.0,
        description: "no Date header",
        test: |c| !c.has_header(HeaderName::Date),
    },
    Rule {
        name: "INVALID_DATE",
        weight: 1.0,
        description: "a Date header that is not a valid date",
        test: |c| c.has_header(HeaderName::Date) && c.date().is_none(),
    },
    Rule {
        name: "DATE_IN_FUTURE",
        weight: 2.0,
        description: "Date more than 24 hours ahead of our clock",
        test: |c| {
            c.date()
                .is_some_and(|d| d > c.now.saturating_add(MAX_FUTURE_SECS))
        },
    },
    Rule {
        name: "DATE_IN_PAST",
        weight: 1.0,
        description: "Date more than 96 hours behind our clock",
        test: |c| {
            c.date()
                .is_some_and(|d| d < c.now.saturating_sub(MAX_PAST_SECS))
        },
    },
    Rule {
        name: "MISSING_MID",
        weight: 1.0,
        description: "no Message-ID header",
        test: |c| !c.has_header(HeaderName::MessageId),
    },
    Rule {
        name: "INVALID_MSGID",
        weight: 1.0,
        description: "a Message-ID without `@`",
        test: |c| {
            c.has_header(HeaderName::MessageId)
                && !c
                    .message
                    .and_then(|m| m.message_id())
                    .is_some_and(|id| id.contains('@'))
        },
    },
    Rule {
        name: "MISSING_SUBJECT",
        weight: 0.5,
        description: "no Subject header",
        test: |c| !c.has_header(HeaderName::Subject),
    },
    Rule {
        name: "MISSING_TO",
        weight: 0.5,
        description: "neither To nor Cc",
        test: |c| !c.has_header(HeaderName::To) && !c.has_header(HeaderName::Cc),
    },
    Rule {
        name: "MANY_RECIPIENTS",
        weight: 1.0,
        description: "15 or more addresses in To and Cc",
        test: |c| c.recipients() >= MANY_RECIPIENTS,
    },
    Rule {
        name: "FROM_NAME_OTHER_ADDR",
        weight: 2.0,
        description: "the From display name shows an address other than the sender's",
        test: from_name_shows_other_address,
    },
    Rule {
        name: "REPLYTO_FREEMAIL",
        weight: 1.5,
        description: "Reply-To at a freemail domain other than the From domain",
        test: reply_to_freemail,
    },
    Rule {
        name: "ENVFROM_NOT_FROM",
        weight: 0.3,
        description: "the reverse-path domain differs from the From domain",
        test: envelope_from_differs,
    },
    Rule {
        name: "MIME_MISSING_8BIT",
        weight: 1.0,
        description: "8-bit content without a MIME-Version header",
        test: |c| {
            c.message.is_some()
                && !c.has_header(HeaderName::MimeVersion)
                && c.raw.iter().any(|b| *b >= 0x80)
        },
    },
    // Subject.
    Rule {
        name: "SUBJ_ALL_CAPS",
        weight: 1.0,
        description: "a Subject of 8 or more letters, all capitals",
        test: |c| c.subject.is_some_and(all_caps),
    },
    Rule {
        name: "SUBJ_EXCLAIM",
        weight: 1.0,
        description: "a Subject with `!!` or three or more `!`",
        test: |c| {
            c.subject
                .is_some_and(|s| s.contains("!!") || s.matches('!').count() >= 3)
        },
    },
    Rule {
        name: "SUBJ_SPAM_PHRASE",
        weight: 2.0,
        description: "a spam phrase in the Subject",
        test: |c| c.subject_phrases > 0,
    },
    // Body.
    Rule {
        name: "BODY_SPAM_PHRASE",
        weight: 1.5,
        description: "a spam phrase in the body",
        test: |c| c.body_phrases > 0,
    },
    Rule {
        name: "BODY_SPAM_PHRASES_MANY",
        weight: 2.5,
        description: "three or more different spam phrases in the body",
        test: |c| c.body_phrases >= 3,
    },
    Rule {
        name: "BODY_EXCLAIM",
        weight: 1.0,
        description: "runs of `!!!`, or `!` as 2% or more of the body",
        test: |c| {
            c.exclamation_runs >= 2 || (c.exclamations >= 10 && c.exclamations * 50 >= c.nonspace)
        },
    },
    Rule {
        name: "EMPTY_BODY",
        weight: 1.5,
        description: "no text, no images, no attachments",
        test: |c| {
            c.message.is_some_and(|m| m.attachment_count() == 0)
                && c.text.trim().is_empty()
                && c.html.visible_chars == 0
                && c.html.images == 0
        },
    },
    Rule {
        name: "BASE64_TEXT",
        weight: 1.5,
        description: "plain ASCII text hidden in base64",
        test: |c| c.base64_ascii_text,
    },
    Rule {
        name: "URL_NUMERIC_HOST",
        weight: 1.5,
        description: "a link to a numeric address instead of a name",
        test: |c| c.numeric_urls > 0,
    },
    // HTML.
    Rule {
        name: "HTML_ONLY",
        weight: 1.0,
        description: "HTML without a text/plain alternative",
        test: |c| c.has_html && !c.has_plain,
    },
    Rule {
        name: "HTML_MOSTLY_LINKS",
        weight: 1.5,
        description: "HTML with three or more links and under 40 characters of text per link",
        test: |c| c.html.links >= 3 && c.html.visible_chars < 40 * c.html.links,
    },
    Rule {
        name: "HTML_LITTLE_TEXT",
        weight: 1.0,
        description: "HTML with images or links and under 150 characters of text",
        test: |c| {
            c.has_html
                && (c.html.images > 0 || c.html.links > 0)
                && c.html.visible_chars + c.text.len() < 150
        },
    },
    Rule {
        name: "HTML_LINK_MISMATCH",
        weight: 2.5,
        description: "a link whose text shows another domain than where it goes",
        test: |c| c.html.mismatched_links > 0,
    },
    // Attachments.
    Rule {
        name: "EXECUTABLE_ATTACHMENT",
        weight: 3.5,
        description: "an attachment named like a program or script (.exe, .scr, .js …)",
        test: |c| c.attachments.iter().any(|n| is_executable(n)),
    },
    Rule {
        name: "DOUBLE_EXTENSION",
        weight: 1.5,
        description: "an executable attachment posing as a document (invoice.pdf.exe)",
        test: |c| c.attachments.iter().any(|n| is_double_extension(n)),
    },
    // The connection.
    Rule {
        name: "HELO_BARE_IP",
        weight: 1.5,
        description: "HELO with a bare IP address (not an [address literal])",
        test: |c| c.helo().parse::<IpAddr>().is_ok(),
    },
    Rule {
        name: "HELO_LOCALHOST",
        weight: 2.0,
        description: "HELO localhost",
        test: |c| is_localhost(c.helo()),
    },
    Rule {
        name: "HELO_NOT_FQDN",
        weight: 0.5,
        description: "HELO with a name that has no dot",
        test: |c| {
            let helo = c.helo();
            !helo.contains('.')
                && !helo.starts_with('[')
                && helo.parse::<IpAddr>().is_err()
                && !is_localhost(helo)
        },
    },
];

/// Phrases of spam, matched on decoded text ignoring ASCII case, as whole
/// words (runs of whitespace in the text count as one space).
const PHRASES: &[&str] = &[
    "viagra",
    "cialis",
    "levitra",
    "lottery winner",
    "won the lottery",
    "you have won",
    "you are a winner",
    "you have been selected",
    "claim your prize",
    "100% free",
    "free gift",
    "free money",
    "cash bonus",
    "click here",
    "act now",
    "limited time offer",
    "risk free",
    "risk-free",
    "100% guaranteed",
    "guaranteed income",
    "no credit check",
    "unsecured loan",
    "debt relief",
    "online pharmacy",
    "cheap meds",
    "no prescription",
    "million dollars",
    "next of kin",
    "dear beneficiary",
    "inheritance fund",
    "western union",
    "moneygram",
    "make money fast",
    "earn money from home",
    "work from home",
    "double your income",
    "lose weight fast",
    "weight loss",
    "replica watches",
    "hot singles",
    "casino bonus",
    "free bitcoin",
    "crypto investment",
    "verify your account",
    "account has been suspended",
    "urgent reply",
    "enlargement",
];
const _: () = assert!(PHRASES.len() <= 64, "phrase hits are kept in a u64");

static PHRASE_MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(PHRASES)
        .ok()
});

/// Domains of free mail services (Reply-To there, From elsewhere: the
/// classic advance-fee set-up).
const FREEMAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "ymail.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "mail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "protonmail.com",
    "proton.me",
    "icloud.com",
    "me.com",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "zoho.com",
    "rediffmail.com",
    "libero.it",
    "laposte.net",
    "tutanota.com",
    "hushmail.com",
];

/// Extensions of programs and scripts that run when opened (Windows
/// mostly), and of disk images used to carry them past filters.
const EXECUTABLE: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta",
    "cpl", "msi", "msp", "jar", "lnk", "ps1", "reg", "scf", "iso", "vhd",
];

/// Extensions of documents an executable poses as.
const DOCUMENT: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "txt", "jpg", "jpeg", "png", "gif",
    "zip", "htm", "html", "mp3", "mp4",
];

static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_date(HeaderName::Date)
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::ReplyTo)
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .header_id(HeaderName::MessageId)
        .header_raw(HeaderName::MimeVersion)
        .default_header_ignore()
});

/// Runs every rule over `message` (the DATA/BDAT bytes as received) and
/// the connection `facts`, with `now` our clock in seconds since the Unix
/// epoch; the hits in [`RULES`] order.
pub fn check(facts: &Facts<'_>, message: &[u8], now: i64) -> Vec<Hit> {
    let raw = head(message, MAX_PARSED_BYTES);
    let parsed = PARSER.parse(raw);
    let context = Context::new(facts, raw, parsed.as_ref(), now);
    RULES
        .iter()
        .filter(|rule| (rule.test)(&context))
        .map(|rule| Hit {
            name: Cow::Borrowed(rule.name),
            weight: rule.weight,
        })
        .collect()
}

/// The first `max` bytes of `message`, cut after the last line end in
/// them (or at `max` when there is none).
fn head(message: &[u8], max: usize) -> &[u8] {
    if message.len() <= max {
        return message;
    }
    let head = message.get(..max).unwrap_or(message);
    match memchr::memrchr(b'\n', head) {
        Some(end) => head.get(..end + 1).unwrap_or(head),
        None => head,
    }
}

/// What the rules look at, worked out once per message.
struct Context<'a> {
    facts: &'a Facts<'a>,
    now: i64,
    /// The parsed head of the message.
    raw: &'a [u8],
    message: Option<&'a Message<'a>>,
    subject: Option<&'a str>,
    /// Decoded text/plain body parts, whitespace collapsed.
    text: String,
    /// The text/html body parts together.
    html: HtmlSummary,
    has_plain: bool,
    has_html: bool,
    base64_ascii_text: bool,
    subject_phrases: usize,
    body_phrases: usize,
    exclamations: usize,
    exclamation_runs: usize,
    nonspace: usize,
    numeric_urls: usize,
    /// Attachment names, lower-case, trailing dots and spaces removed.
    attachments: Vec<String>,
}

impl<'a> Context<'a> {
    fn new(
        facts: &'a Facts<'a>,
        raw: &'a [u8],
        message: Option<&'a Message<'a>>,
        now: i64,
    ) -> Self {
        let mut context = Context {
            facts,
            now,
            raw,
            message,
            subject: message.and_then(|m| m.subject()),
            text: String::new(),
            html: HtmlSummary::default(),
            has_plain: false,
            has_html: false,
            base64_ascii_text: false,
            subject_phrases: 0,
            body_phrases: 0,
            exclamations: 0,
            exclamation_runs: 0,
            nonspace: 0,
            numeric_urls: 0,
            attachments: Vec::new(),
        };
        if let Some(message) = message {
            context.read_bodies(message);
            collect_attachments(message, 0, &mut context.attachments);
        }
        context.subject_phrases = context
            .subject
            .map_or(0, |s| phrases(&[s]).count_ones() as usize);
        context.body_phrases =
            phrases(&[context.text.as_str(), context.html.visible.as_str()]).count_ones() as usize;
        for text in [context.text.as_str(), context.html.visible.as_str()] {
            let (count, runs) = exclamations(text);
            context.exclamations += count;
            context.exclamation_runs += runs;
        }
        context.nonspace =
            context.text.bytes().filter(|b| *b != b' ').count() + context.html.visible_chars;
        context.numeric_urls = context.html.numeric_links
            + html::text_urls(&context.text)
                .filter(|host| html::is_numeric_host(host))
                .count();
        context
    }

    /// The text and HTML body parts (those a reader sees, not the
    /// attachments), decoded, within [`MAX_SCANNED_TEXT`].
    fn read_bodies(&mut self, message: &Message<'_>) {
        let mut ids: Vec<u32> = Vec::new();
        for &id in message.text_body.iter().chain(&message.html_body) {
            if !ids.contains(&id) && ids.len() < 64 {
                ids.push(id);
            }
        }
        let mut budget = MAX_SCANNED_TEXT;
        for id in ids {
            let Some(part) = message.parts.get(id as usize) else {
                continue;
            };
            match &part.body {
                PartType::Text(text) => {
                    self.has_plain = true;
                    let piece = prefix(text, budget);
                    budget -= piece.len();
                    if part.encoding == Encoding::Base64 && piece.len() >= 20 && piece.is_ascii() {
                        self.base64_ascii_text = true;
                    }
                    for word in piece.split_whitespace() {
                        if !self.text.is_empty() {
                            self.text.push(' ');
                        }
                        self.text.push_str(word);
                    }
                }
                PartType::Html(html) => {
                    self.has_html = true;
                    let piece = prefix(html, budget);
                    budget -= piece.len();
                    let summary = html::summarize(piece, piece.len());
                    if !self.html.visible.is_empty() && !summary.visible.is_empty() {
                        self.html.visible.push(' ');
                    }
                    self.html.visible.push_str(&summary.visible);
                    self.html.visible_chars += summary.visible_chars;
                    self.html.links += summary.links;
                    self.html.images += summary.images;
                    self.html.mismatched_links += summary.mismatched_links;
                    self.html.numeric_links += summary.numeric_links;
                }
                _ => {}
            }
        }
    }

    fn has_header(&self, name: HeaderName<'static>) -> bool {
        self.message.is_some_and(|m| {
            m.parts
                .first()
                .is_some_and(|root| root.headers.iter().any(|h| h.name == name))
        })
    }

    /// The Date header in seconds since the epoch, if valid.
    fn date(&self) -> Option<i64> {
        self.message
            .and_then(|m| m.date())
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp())
    }

    fn sender_address(&self) -> Option<&'a str> {
        self.message
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .filter(|a| a.contains('@'))
    }

    fn sender_domain(&self) -> Option<String> {
        self.sender_address().and_then(domain_of)
    }

    fn recipients(&self) -> usize {
        self.message.map_or(0, |m| {
            [m.to(), m.cc()]
                .into_iter()
                .flatten()
                .map(|a| a.iter().take(1000).count())
                .sum()
        })
    }

    fn helo(&self) -> &str {
        self.facts.helo.trim()
    }
}

/// The longest prefix of `text` of at most `max` bytes ending on a
/// character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Which [`PHRASES`] occur in `texts`, as whole words: bit `i` for
/// phrase `i`.
fn phrases(texts: &[&str]) -> u64 {
    let Some(matcher) = PHRASE_MATCHER.as_ref() else {
        return 0;
    };
    let mut found = 0u64;
    for text in texts {
        let bytes = text.as_bytes();
        for m in matcher.find_overlapping_iter(*text) {
            let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
            let after = bytes.get(m.end());
            let word_edge = |b: Option<&u8>| !b.is_some_and(|b| b.is_ascii_alphanumeric());
            if word_edge(before) && word_edge(after) {
                found |= 1 << m.pattern().as_usize();
            }
        }
    }
    found
}

/// `!` in `text`, and runs of three or more.
fn exclamations(text: &str) -> (usize, usize) {
    let (mut count, mut runs, mut run) = (0, 0, 0);
    for b in text.bytes() {
        if b == b'!' {
            count += 1;
            run += 1;
            if run == 3 {
                runs += 1;
            }
        } else {
            run = 0;
        }
    }
    (count, runs)
}

/// 8 or more cased letters and none of them lower-case.
fn all_caps(subject: &str) -> bool {
    let mut upper = 0;
    for c in subject.chars() {
        if c.is_lowercase() {
            return false;
        }
        if c.is_uppercase() {
            upper += 1;
        }
    }
    upper >= 8
}

/// The domain of an address, lower-case.
fn domain_of(address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

fn from_name_shows_other_address(c: &Context<'_>) -> bool {
    let Some(from) = c.message.and_then(|m| m.from()).and_then(|a| a.first()) else {
        return false;
    };
    let (Some(name), Some(address)) = (from.name(), from.address()) else {
        return false;
    };
    name.split(|ch: char| ch.is_whitespace() || "<>()\"',;[]".contains(ch))
        .filter_map(|token| {
            let (local, domain) = token.split_once('@')?;
            (!local.is_empty() && domain.contains('.') && !domain.ends_with('.')).then_some(token)
        })
        .any(|shown| !shown.eq_ignore_ascii_case(address.trim()))
}

fn is_freemail(domain: &str) -> bool {
    // Also the country domains: yahoo.fr, hotmail.co.uk …
    FREEMAIL.contains(&domain)
        || ["yahoo.", "hotmail.", "live.", "outlook."].iter().any(|p| {
            domain
                .strip_prefix(p)
                .is_some_and(|rest| !rest.is_empty() && rest.split('.').count() <= 2)
        })
}

fn reply_to_freemail(c: &Context<'_>) -> bool {
    let Some(reply_domain) = c
        .message
        .and_then(|m| m.reply_to())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(domain_of)
    else {
        return false;
    };
    is_freemail(&reply_domain)
        && c.sender_domain()
            .is_none_or(|from| !html::same_site(&from, &reply_domain))
}

fn envelope_from_differs(c: &Context<'_>) -> bool {
    let (Some(envelope), Some(from)) = (domain_of(c.facts.mail_from), c.sender_domain()) else {
        // The null reverse-path (bounces) or no From: nothing to compare.
        return false;
    };
    !html::same_site(&envelope, &from)
}

fn is_localhost(helo: &str) -> bool {
    let helo = helo.trim_end_matches('.').to_ascii_lowercase();
    helo == "localhost" || helo.starts_with("localhost.")
}

/// The last extension of a file name, if any.
fn extension(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(_, ext)| ext)
}

fn is_executable(name: &str) -> bool {
    extension(name).is_some_and(|ext| EXECUTABLE.contains(&ext))
}

fn is_double_extension(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    EXECUTABLE.contains(&ext)
        && extension(stem.trim_end()).is_some_and(|inner| DOCUMENT.contains(&inner))
}

/// Attachment names of `message` and the messages nested in it.
fn collect_attachments(message: &Message<'_>, depth: usize, names: &mut Vec<String>) {
    for part in &message.parts {
        if names.len() >= MAX_ATTACHMENT_NAMES {
            return;
        }
        if let Some(name) = part.attachment_name() {
            names.push(name.trim().trim_end_matches(['.', ' ']).to_lowercase());
        }
        if let PartType::Message(nested) = &part.body {
            if depth < MAX_NESTING {
                collect_attachments(nested, depth + 1, names);
            }
        }
    }
}

#[cfg(test)]
mod tests;

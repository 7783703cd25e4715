//! The spam score of inbound mail: built-in header, body, HTML,
//! attachment and HELO rules, DNS blocklists, and two thresholds — at
//! [`SpamOptions::tag_score`] the message is tagged (`X-Spam-*` headers,
//! delivered to Junk), at [`SpamOptions::reject_score`] it is refused
//! (`550 5.7.1`).
//!
//! - [`rules`]: the rule set, sans-IO, over the parsed message and the
//!   connection's facts ([`rules::RULES`] lists names and weights);
//! - [`dnsbl`]: the client's address in the configured blocklists,
//!   through the shard's resolver, bounded in time;
//! - [`html`]: the small HTML scanner the rules use.
//!
//! The score is the sum of the weights of the [`Hit`]s, whatever made
//! them: a further contribution is one more list of hits given to
//! [`Verdict::add`], which sums and decides again. Scores are kept to one
//! decimal, so what the headers show is what was compared with the
//! thresholds.
//!
//! The score is one per message and alone decides a refusal. Then each
//! recipient's own naive-Bayes classifier ([`SpamOptions::bayes`],
//! `cairn_storage::bayes`) may still send its copy of a message the score
//! accepted to its Junk, with `X-Spam-Bayes:` (see `delivery`).
//!
//! An authenticated submission is not scored (the caller skips it).

pub mod dnsbl;
pub mod html;
pub mod rules;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use cairn_storage::bayes::Policy as BayesPolicy;

/// The default tag threshold.
pub const DEFAULT_TAG_SCORE: f32 = 5.0;
/// The default reject threshold.
pub const DEFAULT_REJECT_SCORE: f32 = 12.0;
/// The default bound on the time all blocklist lookups together take.
pub const DEFAULT_DNSBL_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest score (either sign) a verdict holds: a bound that keeps
/// sums of configured weights finite.
pub const MAX_SCORE: f32 = 1000.0;

/// How messages are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamOptions {
    /// Off: every message is accepted with score 0 and no work is done.
    pub enabled: bool,
    /// From this score on the message is tagged (5.0).
    pub tag_score: f32,
    /// From this score on the message is refused (12.0).
    pub reject_score: f32,
    /// Blocklists to ask about the client's address (none).
    pub dnsbl: Vec<DnsblZone>,
    /// How long all blocklist lookups together may take (3 s); a zone
    /// that has not answered by then adds nothing.
    pub dnsbl_timeout: Duration,
    /// The recipients' Bayes classifiers, for messages the score accepts
    /// (on, with 20 messages of each class and 0.9); `None`: off.
    pub bayes: Option<BayesPolicy>,
}

impl Default for SpamOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            tag_score: DEFAULT_TAG_SCORE,
            reject_score: DEFAULT_REJECT_SCORE,
            dnsbl: Vec::new(),
            dnsbl_timeout: DEFAULT_DNSBL_TIMEOUT,
            bayes: Some(BayesPolicy::default()),
        }
    }
}

/// One DNS blocklist: its zone (`zen.spamhaus.org`) and what a listing
/// adds to the score.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblZone {
    pub zone: String,
    pub weight: f32,
}

/// What is known of the message besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The SMTP client's address.
    pub client_ip: IpAddr,
    /// What it said in HELO/EHLO.
    pub helo: &'a str,
    /// The reverse-path of MAIL FROM, without the brackets (`""` for the
    /// null reverse-path).
    pub mail_from: &'a str,
    /// Whether the client authenticated (such mail is not scored; the
    /// rules do not look at it).
    pub authenticated: bool,
}

/// One rule, list or classifier that fired and what it adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// `MISSING_DATE`, `RCVD_IN_ZEN_SPAMHAUS_ORG` …: letters, digits and
    /// `_` only.
    pub name: Cow<'static, str>,
    pub weight: f32,
}

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Under the tag threshold: deliver as it is.
    Accept,
    /// Tag it (headers, `X-Spam-Flag: YES`) and deliver to Junk.
    Tag,
    /// Refuse it with `550 5.7.1`.
    Reject,
}

/// A message's score, why, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The sum of the hits' weights, to one decimal.
    pub score: f32,
    /// What fired, in order: rules, then blocklists, then later additions.
    pub hits: Vec<Hit>,
    pub action: Action,
    /// The tag threshold it was compared with (`required=` in the
    /// headers).
    pub required: f32,
    /// What could not be checked (a blocklist that did not answer …),
    /// one line each; for logs, not for headers.
    pub notes: Vec<String>,
}

impl Verdict {
    /// The verdict of `hits` under `options`' thresholds.
    pub fn new(options: &SpamOptions, hits: Vec<Hit>) -> Verdict {
        let mut verdict = Verdict {
            score: 0.0,
            hits: Vec::new(),
            action: Action::Accept,
            required: options.tag_score,
            notes: Vec::new(),
        };
        verdict.add(options, hits);
        verdict
    }

    /// Adds `hits` (another contribution: a classifier's, say), then sums
    /// and decides again. Weights that are not finite count as 0.
    pub fn add(&mut self, options: &SpamOptions, hits: impl IntoIterator<Item = Hit>) {
        self.hits.extend(hits);
        let sum: f32 = self
            .hits
            .iter()
            .map(|h| if h.weight.is_finite() { h.weight } else { 0.0 })
            .sum();
        let sum = if sum.is_finite() { sum } else { 0.0 };
        let score = ((sum * 10.0).round() / 10.0).clamp(-MAX_SCORE, MAX_SCORE);
        // No "-0.0" in headers.
        self.score = if score == 0.0 { 0.0 } else { score };
        self.required = options.tag_score;
        self.action = if options.enabled && self.score >= options.reject_score {
            Action::Reject
        } else if options.enabled && self.score >= options.tag_score {
            Action::Tag
        } else {
            Action::Accept
        };
    }

    /// The hits' names, in order.
    pub fn tests(&self) -> impl Iterator<Item = &str> + '_ {
        self.hits.iter().map(|h| h.name.as_ref())
    }

    /// The headers to prepend to the stored message, CRLF-terminated
    /// (SpamAssassin's names and forms):
    ///
    /// ```text
    /// X-Spam-Checker-Version: Cairn on mx.example.org
    /// X-Spam-Score: 6.3
    /// X-Spam-Status: Yes, score=6.3 required=5.0 tests=A,B
    /// X-Spam-Flag: YES
    /// ```
    ///
    /// `X-Spam-Status` says `No` and there is no `X-Spam-Flag` under the
    /// tag threshold; `tests=none` when nothing fired; a long test list is
    /// folded. `hostname` is ours (characters other than letters, digits,
    /// `.`, `-`, `_`, `[`, `]` and `:` are dropped).
    pub fn headers(&self, hostname: &str) -> String {
        let tagged = self.action != Action::Accept;
        let host: String = hostname
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(*c))
            .collect();
        let mut out = String::with_capacity(256);
        let _ = write!(out, "X-Spam-Checker-Version: Cairn on {host}\r\n");
        let _ = write!(out, "X-Spam-Score: {:.1}\r\n", self.score);
        let mut line = format!(
            "X-Spam-Status: {}, score={:.1} required={:.1} tests=",
            if tagged { "Yes" } else { "No" },
            self.score,
            self.required
        );
        if self.hits.is_empty() {
            line.push_str("none");
        }
        for (i, name) in self.tests().enumerate() {
            let safe: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let piece = if i + 1 < self.hits.len() {
                format!("{safe},")
            } else {
                safe
            };
            // Fold before a name that would take the line past 78.
            if i > 0 && line.len() + piece.len() > 78 {
                out.push_str(&line);
                out.push_str("\r\n");
                line = String::from("\t");
            }
            line.push_str(&piece);
        }
        out.push_str(&line);
        out.push_str("\r\n");
        if tagged {
            out.push_str("X-Spam-Flag: YES\r\n");
        }
        out
    }
}

/// Whether a header field is one of ours ([`Verdict::headers`]): a
/// message arriving with them set by someone else should lose them before
/// ours are added.
pub fn is_spam_header(name: &str) -> bool {
    [
        "X-Spam-Checker-Version",
        "X-Spam-Score",
        "X-Spam-Status",
        "X-Spam-Flag",
        "X-Spam-Bayes",
    ]
    .iter()
    .any(|ours| ours.eq_ignore_ascii_case(name.trim()))
}

/// Scores `message` (the DATA/BDAT bytes) from a client described by
/// `facts`: the rules, and the blocklists through `resolver` (their
/// lookups run while the rules do, within [`SpamOptions::dnsbl_timeout`]).
/// Must run on a shard (the blocklist lookups use its ring and timers)
/// when `options.dnsbl` is not empty.
pub async fn score(
    options: &SpamOptions,
    resolver: &cairn_dns::Resolver,
    facts: &Facts<'_>,
    message: &[u8],
) -> Verdict {
    if !options.enabled {
        return Verdict::new(options, Vec::new());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // The lookups are polled first, so their queries are on the wire while
    // the rules run.
    let (listed, hits) = futures_lite::future::zip(
        dnsbl::check(
            resolver,
            facts.client_ip,
            &options.dnsbl,
            options.dnsbl_timeout,
        ),
        async { rules::check(facts, message, now) },
    )
    .await;
    let mut verdict = Verdict::new(options, hits);
    verdict.add(options, listed.hits);
    verdict.notes = listed.notes;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(name: &'static str, weight: f32) -> Hit {
        Hit {
            name: Cow::Borrowed(name),
            weight,
        }
    }

    #[test]
    fn thresholds_decide() {
        let options = SpamOptions::default();
        let v = Verdict::new(&options, vec![hit("A", 2.0), hit("B", 2.9)]);
        assert_eq!((v.score, v.action), (4.9, Action::Accept));
        let v = Verdict::new(&options, vec![hit("A", 2.0), hit("B", 3.0)]);
        assert_eq!((v.score, v.action), (5.0, Action::Tag));
        let v = Verdict::new(&options, vec![hit("A", 12.0)]);
        assert_eq!(v.action, Action::Reject);
        // Kept to one decimal: 4.96 shows and counts as 5.0.
        let v = Verdict::new(&options, vec![hit("A", 4.96)]);
        assert_eq!((v.score, v.action), (5.0, Action::Tag));
        // Disabled: never tagged.
        let off = SpamOptions {
            enabled: false,
            ..SpamOptions::default()
        };
        assert_eq!(
            Verdict::new(&off, vec![hit("A", 50.0)]).action,
            Action::Accept
        );
    }

    #[test]
    fn another_contribution_adds_and_decides_again() {
        let options = SpamOptions::default();
        let mut v = Verdict::new(&options, vec![hit("A", 3.0)]);
        assert_eq!(v.action, Action::Accept);
        v.add(&options, [hit("BAYES_99", 3.5)]);
        assert_eq!((v.score, v.action), (6.5, Action::Tag));
        v.add(&options, [hit("BAYES_HAM", -2.0)]);
        assert_eq!((v.score, v.action), (4.5, Action::Accept));
        assert_eq!(
            v.tests().collect::<Vec<_>>(),
            ["A", "BAYES_99", "BAYES_HAM"]
        );
    }

    #[test]
    fn odd_weights_stay_finite() {
        let options = SpamOptions::default();
        let v = Verdict::new(
            &options,
            vec![
                hit("NAN", f32::NAN),
                hit("INF", f32::INFINITY),
                hit("BIG", f32::MAX),
                hit("BIG2", f32::MAX),
            ],
        );
        assert!(v.score.is_finite());
        assert!(v.score.abs() <= MAX_SCORE);
        let v = Verdict::new(&options, vec![hit("A", 1.0), hit("B", -1.0)]);
        assert_eq!(v.headers("h").lines().nth(1), Some("X-Spam-Score: 0.0"));
    }

    #[test]
    fn headers_when_tagged_and_not() {
        let options = SpamOptions::default();
        let v = Verdict::new(&options, vec![hit("A", 4.0), hit("B", 2.3)]);
        assert_eq!(
            v.headers("mx.example.org"),
            "X-Spam-Checker-Version: Cairn on mx.example.org\r\n\
             X-Spam-Score: 6.3\r\n\
             X-Spam-Status: Yes, score=6.3 required=5.0 tests=A,B\r\n\
             X-Spam-Flag: YES\r\n"
        );
        let v = Verdict::new(&options, vec![]);
        assert_eq!(
            v.headers("mx.example.org\r\nX-Evil: 1"),
            "X-Spam-Checker-Version: Cairn on mx.example.orgX-Evil:1\r\n\
             X-Spam-Score: 0.0\r\n\
             X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n"
        );
    }

    #[test]
    fn long_test_lists_are_folded() {
        let options = SpamOptions::default();
        let hits = rules::RULES.iter().map(|r| hit(r.name, 0.1)).collect();
        let headers = Verdict::new(&options, hits).headers("mx.example.org");
        for line in headers.split("\r\n") {
            assert!(line.len() <= 78, "{line:?}");
        }
        // Unfolded, the list is every rule in order.
        let unfolded = headers.replace("\r\n\t", "");
        let tests = unfolded
            .lines()
            .find_map(|l| l.split_once("tests=").map(|(_, t)| t.to_string()))
            .expect("a tests= list");
        let names: Vec<&str> = rules::RULES.iter().map(|r| r.name).collect();
        assert_eq!(tests, names.join(","));
    }

    #[test]
    fn our_headers_are_recognised() {
        assert!(is_spam_header("x-spam-flag"));
        assert!(is_spam_header("X-Spam-Status "));
        assert!(is_spam_header("x-spam-bayes"));
        assert!(!is_spam_header("X-Spam-Report"));
        assert!(!is_spam_header("Subject"));
    }
}

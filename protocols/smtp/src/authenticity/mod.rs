//! Authenticity of inbound mail: SPF (RFC 7208), DKIM (RFC 6376), DMARC
//! (RFC 7489) and ARC (RFC 8617) with mail-auth, its results in one
//! `Authentication-Results:` header field (RFC 8601), and what a failing
//! domain's DMARC policy asks for.
//!
//! # DNS without tokio
//!
//! mail-auth's own resolver is hickory on tokio, which must never run on
//! a shard. Every mail-auth lookup first reads the caches it is given
//! ([`mail_auth::Parameters`]); built with mail-auth's `test` feature, a
//! miss is answered at once with NXDOMAIN instead of going to hickory, so
//! mail-auth does no I/O at all and its futures finish in one poll. A
//! check therefore runs in rounds: evaluate over the answers known so far,
//! recording every question that missed; resolve those with the shard's
//! [`cairn_dns::Resolver`] (in parallel); evaluate again. A round without
//! misses saw exactly what DNS said, and its result stands.
//!
//! - SPF's rounds are cheap (a few small records) and run on the shard;
//!   an `include:` chain takes one round per level, an MX or PTR answer
//!   brings its hosts' addresses along in the same round.
//! - DKIM, ARC and DMARC need the parsed message, its body hashes and the
//!   signature checks: CPU work, done on the [`BlockingPool`]. A glance at
//!   the header section on the shard names the DKIM/ARC keys and the DMARC
//!   policy to fetch beforehand (beside SPF's lookups), so that the
//!   message is normally parsed and verified once.
//!
//! A temporary DNS failure gives `temperror` for what needed the answer;
//! nothing here fails the SMTP transaction. Limits: [`DNS_DEADLINE`] for
//! all lookups of a check, [`MAX_SPF_LOOKUPS`] and [`MAX_MESSAGE_LOOKUPS`]
//! questions, [`MAX_SPF_ROUNDS`] and [`MAX_MESSAGE_ROUNDS`] rounds, and
//! messages over [`MAX_MESSAGE_BYTES`] are not parsed.

mod render;
mod scan;
mod store;
mod verify;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_dns::{DnsError, Record, RecordType, Resolver};
use cairn_shards::BlockingPool;
use mail_auth::{SpfOutput, SpfResult};

use render::{Report, SpfIdentity};
use store::{fqdn, Answers, Lookup, Question};
use verify::{MessageOutcome, Verdict};

/// The longest all DNS lookups of one check may take together (RFC 7208
/// §4.6.4 suggests at least 20 seconds for SPF). Past it, what is still
/// unanswered is a temporary failure.
pub const DNS_DEADLINE: Duration = Duration::from_secs(20);
/// Evaluation rounds for SPF: its 10 DNS-querying terms, plus the first
/// record and a last round.
pub const MAX_SPF_ROUNDS: usize = 12;
/// DNS questions asked for SPF (its terms, MX hosts and PTR names).
pub const MAX_SPF_LOOKUPS: usize = 48;
/// Evaluation rounds over the message (normally one).
pub const MAX_MESSAGE_ROUNDS: usize = 3;
/// DNS questions asked for DKIM and ARC keys and DMARC policies.
pub const MAX_MESSAGE_LOOKUPS: usize = 24;
/// Larger messages are not parsed (DKIM, ARC, DMARC say `none`).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Addresses looked up per MX or PTR answer (RFC 7208 §4.6.4).
const MAX_HOSTS_PER_ANSWER: usize = 10;

/// What DMARC's policy asks for a message that fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmarcAction {
    /// Deliver as usual: DMARC passed, there is no policy, it is `p=none`,
    /// or it could not be evaluated (temperror, permerror).
    None,
    /// Deliver as suspicious (the Junk folder).
    Quarantine,
    /// Refuse the message (`550 5.7.1`).
    Reject,
}

/// SPF's result (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfOutcome {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl SpfOutcome {
    /// The name RFC 8601 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfOutcome::Pass => "pass",
            SpfOutcome::Fail => "fail",
            SpfOutcome::SoftFail => "softfail",
            SpfOutcome::Neutral => "neutral",
            SpfOutcome::None => "none",
            SpfOutcome::TempError => "temperror",
            SpfOutcome::PermError => "permerror",
        }
    }
}

/// The results of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The `Authentication-Results:` header field (RFC 8601), folded,
    /// ending in CRLF, for `hostname`: `spf=`, `dkim=` (one per
    /// signature), `dmarc=` and `arc=` with their properties
    /// (`smtp.mailfrom` or `smtp.helo`, `header.d`, `header.s`,
    /// `header.b`, `header.from`, `policy.dmarc`).
    pub header: String,
    /// What DMARC's policy asks for a failing message (`None` when DMARC
    /// passed, there is no policy, or it is `p=none`).
    pub dmarc: DmarcAction,
    pub spf: SpfOutcome,
}

/// Verifies a message received from `client_ip`, which said `helo`, with
/// reverse path `mail_from` (`""` or `"<>"`: the null reverse path, and
/// SPF checks the HELO name). `message` is the whole message as received;
/// `hostname` names us in the header. Never fails: DNS trouble is a
/// `temperror` in the header.
pub async fn check(
    resolver: &Resolver,
    blocking: &BlockingPool,
    hostname: &str,
    client_ip: IpAddr,
    helo: &str,
    mail_from: &str,
    message: Arc<[u8]>,
) -> Checked {
    let started = Instant::now();
    let deadline = started + DNS_DEADLINE;
    let client_ip = client_ip.to_canonical();
    let helo = helo.trim();
    let mail_from = reverse_path(mail_from);

    // The parsers see outside bytes on the shard: a bug there must cost
    // the hints, not the shard.
    let hints = std::panic::catch_unwind(|| scan::hints(&message)).unwrap_or_default();
    let (spf, (answers, budget)) = futures_lite::future::zip(
        spf_phase(resolver, client_ip, helo, hostname, mail_from, deadline),
        prefetch(resolver, &hints, client_ip, deadline),
    )
    .await;
    let spf_done = started.elapsed();

    // The domain SPF checked (mail-auth's choice): MAIL FROM's, else
    // HELO's; DMARC aligns it with the From domain.
    let mail_from_domain = mail_from
        .rsplit_once('@')
        .map_or(helo, |(_, domain)| domain)
        .to_lowercase();
    let outcome = message_phase(
        resolver,
        blocking,
        message,
        answers,
        budget,
        spf.output.clone(),
        mail_from_domain,
        client_ip,
        deadline,
    )
    .await;

    let header = render::header(&Report {
        hostname,
        client_ip,
        spf: spf.outcome,
        spf_reason: spf.reason,
        identity: if mail_from.is_empty() {
            SpfIdentity::Helo(helo)
        } else {
            SpfIdentity::MailFrom(mail_from)
        },
        message: &outcome,
    });
    tracing::debug!(
        spf = spf.outcome.as_str(),
        spf_rounds = spf.rounds,
        dmarc = outcome.dmarc.verdict.as_str(),
        action = ?outcome.dmarc.action,
        spf_ms = spf_done.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "authenticity checked"
    );
    Checked {
        header,
        dmarc: outcome.dmarc.action,
        spf: spf.outcome,
    }
}

/// The address of a reverse path, without its angle brackets.
fn reverse_path(mail_from: &str) -> &str {
    let trimmed = mail_from.trim();
    trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed)
        .trim()
}

/// SPF's conclusion.
struct SpfDone {
    outcome: SpfOutcome,
    reason: Option<&'static str>,
    /// mail-auth's output, for DMARC.
    output: SpfOutput,
    rounds: usize,
}

impl SpfDone {
    fn temperror(domain: &str, reason: &'static str, rounds: usize) -> Self {
        SpfDone {
            outcome: SpfOutcome::TempError,
            reason: Some(reason),
            output: SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError),
            rounds,
        }
    }
}

/// SPF in rounds (see the module's documentation).
async fn spf_phase(
    resolver: &Resolver,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
    mail_from: &str,
    deadline: Instant,
) -> SpfDone {
    let mut answers = Answers::default();
    let mut budget = MAX_SPF_LOOKUPS;
    let domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
    // Past MAX_SPF_ROUNDS nothing more is asked (misses become failures),
    // which ends the evaluation within a few more rounds; the bound below
    // only guards against a loop.
    for round in 1..=2 * MAX_SPF_ROUNDS {
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            verify::spf(&answers, ip, helo, hostname, mail_from)
        }));
        let Ok(evaluated) = evaluated else {
            tracing::error!("SPF evaluation panicked");
            return SpfDone::temperror(domain, "internal error", round);
        };
        let Some(r) = evaluated else {
            return SpfDone::temperror(domain, "verifier unavailable", round);
        };
        if r.failed {
            // A DNS error on the way ends check_host() (RFC 7208 §5).
            return SpfDone::temperror(r.output.domain(), "dns lookup failed", round);
        }
        if r.unreadable {
            return SpfDone::temperror(r.output.domain(), "internal error", round);
        }
        if r.misses.is_empty() {
            let outcome = verify::spf_outcome(r.output.result());
            let reason = match outcome {
                SpfOutcome::TempError => Some("dns lookup failed"),
                SpfOutcome::PermError => Some("invalid record or too many lookups"),
                _ => None,
            };
            return SpfDone {
                outcome,
                reason,
                output: r.output,
                rounds: round,
            };
        }
        let ask = round < MAX_SPF_ROUNDS;
        let follow = ask_batch(
            resolver,
            &mut answers,
            r.misses,
            ip,
            &mut budget,
            deadline,
            ask,
        )
        .await;
        ask_batch(
            resolver,
            &mut answers,
            follow,
            ip,
            &mut budget,
            deadline,
            ask,
        )
        .await;
    }
    SpfDone::temperror(domain, "too many lookups", 2 * MAX_SPF_ROUNDS)
}

/// The names DMARC's tree walk asks, in order (mail-auth's walk: the From
/// domain, then at most four labels, down to the top-level domain).
fn dmarc_names(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let mut names = Vec::new();
    let mut x = labels.len();
    if x <= 1 {
        return names;
    }
    while x != 0 {
        let tail = labels.get(labels.len() - x..).unwrap_or_default();
        names.push(fqdn(&format!("_dmarc.{}", tail.join("."))));
        x = if x < 5 { x - 1 } else { 4 };
    }
    names
}

/// Fetches what the header glance named: the keys and the first DMARC
/// name together, then the walk's further names while they do not exist.
/// Returns the answers and what is left of the message phase's budget.
async fn prefetch(
    resolver: &Resolver,
    hints: &scan::Hints,
    client: IpAddr,
    deadline: Instant,
) -> (Answers, usize) {
    let mut answers = Answers::default();
    let mut budget = MAX_MESSAGE_LOOKUPS;
    let mut first: BTreeSet<Question> = hints.keys.iter().cloned().map(Question::Txt).collect();
    let walk = hints
        .from_domain
        .as_deref()
        .map(dmarc_names)
        .unwrap_or_default();
    let mut walk = walk.into_iter();
    let mut previous = walk.next();
    if let Some(name) = &previous {
        first.insert(Question::Txt(name.clone()));
    }
    ask_batch(
        resolver,
        &mut answers,
        first,
        client,
        &mut budget,
        deadline,
        true,
    )
    .await;
    for name in walk {
        let missing = previous
            .as_ref()
            .is_some_and(|p| answers.txt.get(p) == Some(&Lookup::Missing));
        if !missing {
            break;
        }
        let question = BTreeSet::from([Question::Txt(name.clone())]);
        ask_batch(
            resolver,
            &mut answers,
            question,
            client,
            &mut budget,
            deadline,
            true,
        )
        .await;
        previous = Some(name);
    }
    (answers, budget)
}

/// DKIM, ARC and DMARC in rounds on the blocking pool.
#[allow(clippy::too_many_arguments)]
async fn message_phase(
    resolver: &Resolver,
    blocking: &BlockingPool,
    message: Arc<[u8]>,
    answers: Answers,
    mut budget: usize,
    spf: SpfOutput,
    mail_from_domain: String,
    client: IpAddr,
    deadline: Instant,
) -> MessageOutcome {
    if message.len() > MAX_MESSAGE_BYTES {
        return MessageOutcome::unevaluated(Verdict::None, "message too large to verify");
    }
    let spf = Arc::new(spf);
    let mail_from_domain: Arc<str> = mail_from_domain.into();
    let mut answers = Arc::new(answers);
    for round in 1..=MAX_MESSAGE_ROUNDS + 1 {
        let job = {
            let message = message.clone();
            let answers = answers.clone();
            let spf = spf.clone();
            let mail_from_domain = mail_from_domain.clone();
            blocking.run(move || verify::message(&message, &answers, &spf, &mail_from_domain))
        };
        let outcome = match job.await {
            Ok(outcome) => outcome,
            Err(lost) => {
                tracing::warn!(error = %lost, "message verification did not complete");
                return MessageOutcome::unevaluated(Verdict::TempError, "verifier failed");
            }
        };
        if outcome.misses.is_empty() {
            return outcome;
        }
        let ask = round < MAX_MESSAGE_ROUNDS;
        ask_batch(
            resolver,
            Arc::make_mut(&mut answers),
            outcome.misses,
            client,
            &mut budget,
            deadline,
            ask,
        )
        .await;
    }
    MessageOutcome::unevaluated(Verdict::TempError, "too many lookups")
}

/// Resolves `questions` not yet answered, in parallel, into `answers`;
/// with `ask` false, or past the budget or the deadline, they are recorded
/// as failed without a query. Returns the address questions that the MX
/// and PTR answers bring (their hosts, for SPF).
async fn ask_batch(
    resolver: &Resolver,
    answers: &mut Answers,
    questions: BTreeSet<Question>,
    client: IpAddr,
    budget: &mut usize,
    deadline: Instant,
    ask: bool,
) -> BTreeSet<Question> {
    let mut asked = Vec::new();
    for question in questions {
        if answers.knows(&question, client) {
            continue;
        }
        if !ask || *budget == 0 || Instant::now() >= deadline {
            answers.fail(&question, client);
            continue;
        }
        *budget -= 1;
        asked.push(question);
    }
    let replies = futures_util::future::join_all(
        asked
            .into_iter()
            .map(|q| async move { (lookup(resolver, &q, client, deadline).await, q) }),
    )
    .await;

    let host = |name: &str| {
        let name = fqdn(name);
        if client.is_ipv4() {
            Question::A(name)
        } else {
            Question::Aaaa(name)
        }
    };
    let mut follow = BTreeSet::new();
    for (reply, question) in replies {
        match question {
            Question::Txt(name) => {
                let texts = reply.map(|records| {
                    records
                        .into_iter()
                        .filter_map(|r| match r {
                            Record::Txt(text) => Some(text),
                            _ => None,
                        })
                        .collect()
                });
                answers.txt.insert(name, Lookup::from_dns(texts));
            }
            Question::A(name) => {
                let ips = reply.map(|records| {
                    records
                        .into_iter()
                        .filter_map(|r| match r {
                            Record::A(ip) => Some(ip),
                            _ => None,
                        })
                        .collect()
                });
                answers.a.insert(name, Lookup::from_dns(ips));
            }
            Question::Aaaa(name) => {
                let ips = reply.map(|records| {
                    records
                        .into_iter()
                        .filter_map(|r| match r {
                            Record::Aaaa(ip) => Some(ip),
                            _ => None,
                        })
                        .collect()
                });
                answers.aaaa.insert(name, Lookup::from_dns(ips));
            }
            Question::Mx(name) => {
                let mxs: Result<Vec<(u16, String)>, DnsError> = reply.map(|records| {
                    let mut mxs: Vec<(u16, String)> = records
                        .into_iter()
                        .filter_map(|r| match r {
                            Record::Mx(mx) => Some((mx.preference, mx.exchange)),
                            _ => None,
                        })
                        .collect();
                    mxs.sort_by_key(|(preference, _)| *preference);
                    mxs
                });
                if let Ok(mxs) = &mxs {
                    follow.extend(
                        mxs.iter()
                            .filter(|(_, exchange)| !exchange.is_empty())
                            .take(MAX_HOSTS_PER_ANSWER)
                            .map(|(_, exchange)| host(exchange)),
                    );
                }
                answers.mx.insert(name, Lookup::from_dns(mxs));
            }
            Question::Ptr => {
                let names: Result<Vec<String>, DnsError> = reply.map(|records| {
                    records
                        .into_iter()
                        .filter_map(|r| match r {
                            Record::Ptr(name) => Some(name),
                            _ => None,
                        })
                        .collect()
                });
                if let Ok(names) = &names {
                    for name in names.iter().take(MAX_HOSTS_PER_ANSWER) {
                        answers.ptr_names.insert(fqdn(name));
                        follow.insert(host(name));
                    }
                }
                answers.ptr.insert(client, Lookup::from_dns(names));
            }
        }
    }
    follow.retain(|q| !answers.knows(q, client));
    follow
}

/// One question to `cairn-dns`, within the deadline.
async fn lookup(
    resolver: &Resolver,
    question: &Question,
    client: IpAddr,
    deadline: Instant,
) -> Result<Vec<Record>, DnsError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let name = |n: &str| n.trim_end_matches('.').to_string();
    let query = async {
        match question {
            Question::Txt(n) => resolver.lookup(&name(n), RecordType::Txt).await,
            Question::A(n) => resolver.lookup(&name(n), RecordType::A).await,
            Question::Aaaa(n) => resolver.lookup(&name(n), RecordType::Aaaa).await,
            Question::Mx(n) => resolver.lookup(&name(n), RecordType::Mx).await,
            Question::Ptr => resolver
                .ptr(client)
                .await
                .map(|names| names.into_iter().map(Record::Ptr).collect()),
        }
    };
    match cairn_shards::time::timeout(left, query).await {
        Ok(reply) => reply,
        Err(_) => Err(DnsError::Temporary(
            "the check's DNS deadline passed".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmarc_walk_names_follow_mail_auth() {
        assert_eq!(
            dmarc_names("good.test"),
            vec!["_dmarc.good.test.", "_dmarc.test."]
        );
        assert_eq!(
            dmarc_names("a.b.c.d.e.f"),
            vec![
                "_dmarc.a.b.c.d.e.f.",
                "_dmarc.c.d.e.f.",
                "_dmarc.d.e.f.",
                "_dmarc.e.f.",
                "_dmarc.f."
            ]
        );
        assert!(dmarc_names("localhost").is_empty());
    }

    #[test]
    fn reverse_paths_lose_their_brackets() {
        assert_eq!(reverse_path("<a@b.test>"), "a@b.test");
        assert_eq!(reverse_path("a@b.test"), "a@b.test");
        assert_eq!(reverse_path("<>"), "");
        assert_eq!(reverse_path(" "), "");
    }
}

//! One evaluation round: mail-auth's verifiers run over the answers known
//! so far, synchronously (its lookups are cache reads: see [`super::store`]).
//! SPF is cheap and runs on the shard; [`message`] (parsing, body hashes,
//! RSA/Ed25519 verification, DMARC) is CPU work for the blocking pool.
//! Results come back as owned summaries.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, Error,
    MessageAuthenticator, Parameters, SpfOutput, SpfResult,
};

use super::store::{
    fqdn, AView, AaaaView, Answers, HostView, MxView, PtrView, Question, Trace, TxtKind, TxtView,
};
use super::{DmarcAction, SpfOutcome};

/// The result of one method, as RFC 8601 §2.7 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Fail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Neutral => "neutral",
            Verdict::None => "none",
            Verdict::TempError => "temperror",
            Verdict::PermError => "permerror",
        }
    }
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DkimSummary {
    pub(crate) verdict: Verdict,
    /// Why, in words of ours (a comment in the header).
    pub(crate) reason: Option<&'static str>,
    /// Signing domain (`d=`), selector (`s=`), the first characters of
    /// the signature (`b=`, RFC 6008); empty when the signature did not
    /// parse.
    pub(crate) domain: String,
    pub(crate) selector: String,
    pub(crate) b: String,
}

/// The ARC chain's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArcSummary {
    pub(crate) verdict: Verdict,
    pub(crate) reason: Option<&'static str>,
}

/// DMARC's result and what its policy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DmarcSummary {
    pub(crate) verdict: Verdict,
    /// The RFC 5322.From domain ("" when there was none to check).
    pub(crate) from_domain: String,
    /// The policy that applies to this From domain (`p=`, or `sp=` when
    /// the record was found at a parent), when there is a record.
    pub(crate) policy: Option<Policy>,
    pub(crate) action: DmarcAction,
}

/// What one round over the message found.
#[derive(Debug, Clone)]
pub(crate) struct MessageOutcome {
    pub(crate) dkim: Vec<DkimSummary>,
    pub(crate) arc: ArcSummary,
    pub(crate) dmarc: DmarcSummary,
    /// TXT questions without an answer: the round was a draft.
    pub(crate) misses: BTreeSet<Question>,
}

impl MessageOutcome {
    /// Everything `verdict` with `reason` (nothing could be evaluated).
    pub(crate) fn unevaluated(verdict: Verdict, reason: &'static str) -> Self {
        MessageOutcome {
            dkim: vec![DkimSummary {
                verdict,
                reason: Some(reason),
                domain: String::new(),
                selector: String::new(),
                b: String::new(),
            }],
            arc: ArcSummary {
                verdict,
                reason: Some(reason),
            },
            dmarc: DmarcSummary {
                verdict,
                from_domain: String::new(),
                policy: None,
                action: DmarcAction::None,
            },
            misses: BTreeSet::new(),
        }
    }
}

/// The one authenticator of the process. Its hickory resolver has no name
/// server and is never asked: with mail-auth's `test` feature a cache miss
/// is answered inside mail-auth. Building it spawns nothing and needs no
/// tokio runtime.
pub(crate) fn authenticator() -> Option<&'static MessageAuthenticator> {
    static AUTH: OnceLock<Option<MessageAuthenticator>> = OnceLock::new();
    AUTH.get_or_init(|| {
        let config =
            ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::with_capacity(0));
        let mut options = ResolverOpts::default();
        options.attempts = 0;
        options.timeout = std::time::Duration::from_millis(1);
        match MessageAuthenticator::new(config, options) {
            Ok(auth) => Some(auth),
            Err(e) => {
                tracing::error!(error = %e, "mail-auth's authenticator cannot be built");
                None
            }
        }
    })
    .as_ref()
}

/// Runs a mail-auth future that does no I/O to its end: one poll. `None`
/// if it would have waited (it never does: every lookup is a cache read
/// or the `test` feature's immediate NXDOMAIN).
pub(crate) fn complete<F: Future>(future: F) -> Option<F::Output> {
    futures_lite::future::block_on(futures_lite::future::poll_once(future))
}

/// What an SPF round says.
pub(crate) struct SpfRound {
    pub(crate) output: SpfOutput,
    pub(crate) misses: BTreeSet<Question>,
    /// A consulted A/AAAA/MX answer had failed: the result is temperror.
    pub(crate) failed: bool,
    pub(crate) unreadable: bool,
}

/// SPF for the MAIL FROM identity, or HELO's when the reverse path is
/// null (RFC 7208 §2.4), over `answers`. Cheap: a few parsed records.
pub(crate) fn spf(
    answers: &Answers,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
    mail_from: &str,
) -> Option<SpfRound> {
    let auth = authenticator()?;
    let trace = Trace::default();
    let txt = TxtView::new(answers, &trace, TxtKind::Spf);
    let a = AView(HostView::new(answers, &trace));
    let aaaa = AaaaView(HostView::new(answers, &trace));
    let mx = MxView(HostView::new(answers, &trace));
    let ptr = PtrView::new(answers, &trace);
    let identity = if mail_from.is_empty() {
        SpfParameters::verify_ehlo(ip, helo, hostname)
    } else {
        SpfParameters::verify_mail_from(ip, helo, hostname, mail_from)
    };
    let params = Parameters::new(identity)
        .with_txt_cache(&txt)
        .with_ipv4_cache(&a)
        .with_ipv6_cache(&aaaa)
        .with_mx_cache(&mx)
        .with_ptr_cache(&ptr);
    let output = complete(auth.verify_spf(params))?;
    Some(SpfRound {
        output,
        misses: trace.misses(),
        failed: trace.failed_consulted(),
        unreadable: trace.unreadable(),
    })
}

pub(crate) fn spf_outcome(result: SpfResult) -> SpfOutcome {
    match result {
        SpfResult::Pass => SpfOutcome::Pass,
        SpfResult::Fail => SpfOutcome::Fail,
        SpfResult::SoftFail => SpfOutcome::SoftFail,
        SpfResult::Neutral => SpfOutcome::Neutral,
        SpfResult::TempError => SpfOutcome::TempError,
        SpfResult::PermError => SpfOutcome::PermError,
        SpfResult::None => SpfOutcome::None,
    }
}

/// The organizational domain of `domain` (the Public Suffix List's
/// registrable domain), for DMARC's relaxed alignment.
fn organizational(domain: &str) -> &str {
    psl::domain_str(domain).unwrap_or(domain)
}

/// DKIM, ARC and DMARC over `raw`, with SPF's `spf` (for the identity of
/// `mail_from_domain`, the MAIL FROM domain or else the HELO name).
/// CPU-heavy (body hashes, signatures): run it on the blocking pool.
pub(crate) fn message(
    raw: &[u8],
    answers: &Answers,
    spf: &SpfOutput,
    mail_from_domain: &str,
) -> MessageOutcome {
    let Some(auth) = authenticator() else {
        return MessageOutcome::unevaluated(Verdict::TempError, "verifier unavailable");
    };
    let Some(parsed) = AuthenticatedMessage::parse(raw) else {
        return MessageOutcome::unevaluated(Verdict::None, "no header fields");
    };
    let keys_trace = Trace::default();
    let keys = TxtView::new(answers, &keys_trace, TxtKind::Key);

    let dkim: Vec<DkimOutput<'_>> =
        complete(auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(&keys)))
            .unwrap_or_default();
    let arc: Option<ArcOutput<'_>> =
        complete(auth.verify_arc(Parameters::new(&parsed).with_txt_cache(&keys)));

    let dmarc_trace = Trace::default();
    let policies = TxtView::new(answers, &dmarc_trace, TxtKind::Dmarc);
    let dmarc_params = DmarcParameters::new(&parsed, &dkim, mail_from_domain, spf)
        .with_domain_suffix_fn(organizational);
    let dmarc: Option<DmarcOutput> =
        complete(auth.verify_dmarc(Parameters::new(dmarc_params).with_txt_cache(&policies)));

    let mut misses = keys_trace.misses();
    misses.extend(dmarc_trace.misses());
    let dkim = if dkim.is_empty() {
        vec![DkimSummary {
            verdict: Verdict::None,
            reason: None,
            domain: String::new(),
            selector: String::new(),
            b: String::new(),
        }]
    } else {
        dkim.iter().map(dkim_summary).collect()
    };
    let arc = match &arc {
        Some(arc) => {
            let (verdict, reason) = verdict_of(arc.result());
            ArcSummary { verdict, reason }
        }
        None => ArcSummary {
            verdict: Verdict::TempError,
            reason: Some("not evaluated"),
        },
    };
    let dmarc = match &dmarc {
        Some(dmarc) => dmarc_summary(dmarc, dmarc_trace.last_txt().as_deref()),
        None => DmarcSummary {
            verdict: Verdict::TempError,
            from_domain: String::new(),
            policy: None,
            action: DmarcAction::None,
        },
    };
    MessageOutcome {
        dkim,
        arc,
        dmarc,
        misses,
    }
}

/// A DKIM (or ARC) result in RFC 8601 terms. A body hash that does not
/// match is a failed verification (RFC 6376 §6.1.3), though mail-auth
/// calls it neutral.
fn verdict_of(result: &DkimResult) -> (Verdict, Option<&'static str>) {
    match result {
        DkimResult::Pass => (Verdict::Pass, None),
        DkimResult::Neutral(Error::FailedBodyHashMatch) => {
            (Verdict::Fail, Some(reason(&Error::FailedBodyHashMatch)))
        }
        DkimResult::Neutral(e) => (Verdict::Neutral, Some(reason(e))),
        DkimResult::Fail(e) => (Verdict::Fail, Some(reason(e))),
        DkimResult::PermError(e) => (Verdict::PermError, Some(reason(e))),
        DkimResult::TempError(e) => (Verdict::TempError, Some(reason(e))),
        DkimResult::None => (Verdict::None, None),
    }
}

/// Our words for mail-auth's errors (never text from outside).
fn reason(e: &Error) -> &'static str {
    match e {
        Error::ParseError => "record or header does not parse",
        Error::MissingParameters => "missing tags",
        Error::NoHeadersFound => "no header fields",
        Error::CryptoError(_) | Error::FailedVerification => "signature did not verify",
        Error::Io(_) => "internal error",
        Error::Base64 => "bad base64",
        Error::UnsupportedVersion => "unsupported version",
        Error::UnsupportedAlgorithm => "unsupported algorithm",
        Error::UnsupportedCanonicalization => "unsupported canonicalization",
        Error::UnsupportedKeyType => "unsupported key type",
        Error::FailedBodyHashMatch => "body hash did not verify",
        Error::FailedAuidMatch => "identity does not match the domain",
        Error::RevokedPublicKey => "key revoked",
        Error::IncompatibleAlgorithms => "key and signature algorithms differ",
        Error::SignatureExpired => "signature expired",
        Error::SignatureLength => "l= not accepted",
        Error::DnsError(_) => "dns lookup failed",
        Error::DnsRecordNotFound(_) => "no key published",
        Error::ArcChainTooLong => "arc chain too long",
        Error::ArcInvalidInstance(_) => "bad arc instance",
        Error::ArcInvalidCV => "bad arc cv",
        Error::ArcHasHeaderTag => "h= in arc seal",
        Error::ArcBrokenChain => "broken arc chain",
        Error::NotAligned => "not aligned",
        Error::InvalidRecordType => "no valid record",
    }
}

/// How many characters of `b=` are shown (RFC 6008 asks for at least 8).
const B_PREFIX: usize = 12;

fn dkim_summary(output: &DkimOutput<'_>) -> DkimSummary {
    let (verdict, reason) = verdict_of(output.result());
    let (domain, selector, b) = match output.signature() {
        Some(s) => {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(&s.b);
            (s.d.clone(), s.s.clone(), b.chars().take(B_PREFIX).collect())
        }
        None => (String::new(), String::new(), String::new()),
    };
    DkimSummary {
        verdict,
        reason,
        domain,
        selector,
        b,
    }
}

/// DMARC's result (RFC 7489 §6.6.2; pass when SPF or DKIM passed aligned)
/// and, on failure, the disposition the domain asks for: `p=` when the
/// record is the From domain's own, `sp=` when it was found at a parent;
/// one step milder (reject → quarantine → none) when `pct=` does not
/// select this message or the record is in testing (`t=y`).
fn dmarc_summary(output: &DmarcOutput, last_asked: Option<&str>) -> DmarcSummary {
    let from_domain = output.domain().to_string();
    let record = output.dmarc_record();
    let verdict = if output.spf_result() == &DmarcResult::Pass
        || output.dkim_result() == &DmarcResult::Pass
    {
        Verdict::Pass
    } else if matches!(output.spf_result(), DmarcResult::TempError(_))
        || matches!(output.dkim_result(), DmarcResult::TempError(_))
    {
        Verdict::TempError
    } else if matches!(output.spf_result(), DmarcResult::PermError(_))
        || matches!(output.dkim_result(), DmarcResult::PermError(_))
    {
        Verdict::PermError
    } else if record.is_some() {
        Verdict::Fail
    } else {
        Verdict::None
    };
    let policy = record.map(|r| {
        let own = format!("_dmarc.{}", fqdn(&from_domain));
        if last_asked == Some(own.as_str()) {
            r.p
        } else {
            r.sp
        }
    });
    let action = match (verdict, record, policy) {
        (Verdict::Fail, Some(r), Some(policy)) => {
            let policy = if r.t || !sampled(r.pct) {
                milder(policy)
            } else {
                policy
            };
            match policy {
                Policy::Reject => DmarcAction::Reject,
                Policy::Quarantine => DmarcAction::Quarantine,
                Policy::None | Policy::Unspecified => DmarcAction::None,
            }
        }
        _ => DmarcAction::None,
    };
    DmarcSummary {
        verdict,
        from_domain,
        policy,
        action,
    }
}

fn milder(policy: Policy) -> Policy {
    match policy {
        Policy::Reject => Policy::Quarantine,
        _ => Policy::None,
    }
}

/// Whether this message is among the `pct` percent a policy applies to.
fn sampled(pct: u8) -> bool {
    if pct >= 100 {
        return true;
    }
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    random % 100 < u64::from(pct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticity::store::Lookup;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn txt(answers: &mut Answers, name: &str, value: &str) {
        answers
            .txt
            .insert(fqdn(name), Lookup::Found(vec![value.to_string()]));
    }

    #[test]
    fn the_authenticator_builds_without_a_tokio_runtime() {
        assert!(authenticator().is_some());
    }

    #[test]
    fn spf_rounds_ask_for_what_they_miss_then_conclude() {
        let mut answers = Answers::default();
        let round = spf(
            &answers,
            IP,
            "mta.good.test",
            "mx.cairn.test",
            "a@good.test",
        )
        .expect("round");
        assert_eq!(
            round.misses.into_iter().collect::<Vec<_>>(),
            vec![Question::Txt("good.test.".into())]
        );
        txt(
            &mut answers,
            "good.test",
            "v=spf1 a:mta.good.test include:_spf.other.test -all",
        );
        let round = spf(
            &answers,
            IP,
            "mta.good.test",
            "mx.cairn.test",
            "a@good.test",
        )
        .expect("round");
        // The A lookup and the include are both asked in this round.
        assert_eq!(
            round.misses.into_iter().collect::<Vec<_>>(),
            vec![
                Question::Txt("_spf.other.test.".into()),
                Question::A("mta.good.test.".into())
            ]
        );
        answers.a.insert("mta.good.test.".into(), Lookup::Missing);
        txt(
            &mut answers,
            "_spf.other.test",
            "v=spf1 ip4:192.0.2.0/24 -all",
        );
        let round = spf(
            &answers,
            IP,
            "mta.good.test",
            "mx.cairn.test",
            "a@good.test",
        )
        .expect("round");
        assert!(round.misses.is_empty());
        assert_eq!(round.output.result(), SpfResult::Pass);
        assert!(!round.failed);

        // A failed A lookup on the way: temperror, whatever came after.
        answers.a.insert("mta.good.test.".into(), Lookup::Failed);
        let round = spf(
            &answers,
            IP,
            "mta.good.test",
            "mx.cairn.test",
            "a@good.test",
        )
        .expect("round");
        assert!(round.failed);
    }

    #[test]
    fn a_null_reverse_path_checks_the_helo_name() {
        let mut answers = Answers::default();
        txt(&mut answers, "mta.good.test", "v=spf1 ip4:192.0.2.1 -all");
        let round = spf(&answers, IP, "mta.good.test", "mx.cairn.test", "").expect("round");
        assert!(round.misses.is_empty());
        assert_eq!(round.output.result(), SpfResult::Pass);
        assert_eq!(round.output.domain(), "mta.good.test");
    }

    #[test]
    fn a_message_without_headers_is_not_evaluated() {
        let outcome = message(b"", &Answers::default(), &SpfOutput::default(), "x.test");
        assert_eq!(outcome.dmarc.action, DmarcAction::None);
        assert_eq!(outcome.dkim[0].verdict, Verdict::None);
    }

    #[test]
    fn dmarc_fails_and_asks_for_reject_without_aligned_passes() {
        let mut answers = Answers::default();
        txt(&mut answers, "_dmarc.bad.test", "v=DMARC1; p=reject");
        let message_text = b"From: x@bad.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let failing = SpfOutput::new("bad.test".into()).with_result(SpfResult::Fail);
        let outcome = message(message_text, &answers, &failing, "bad.test");
        assert!(outcome.misses.is_empty(), "{:?}", outcome.misses);
        assert_eq!(outcome.dmarc.verdict, Verdict::Fail);
        assert_eq!(outcome.dmarc.policy, Some(Policy::Reject));
        assert_eq!(outcome.dmarc.action, DmarcAction::Reject);
        assert_eq!(outcome.dkim[0].verdict, Verdict::None);
        assert_eq!(outcome.arc.verdict, Verdict::None);

        // SPF passing for a subdomain of the same organization aligns
        // (relaxed, through the Public Suffix List).
        let passing = SpfOutput::new("bounce.bad.test".into()).with_result(SpfResult::Pass);
        let outcome = message(message_text, &answers, &passing, "bounce.bad.test");
        assert_eq!(outcome.dmarc.verdict, Verdict::Pass);
        assert_eq!(outcome.dmarc.action, DmarcAction::None);

        // The record of a parent: sp= applies.
        let mut answers = Answers::default();
        txt(
            &mut answers,
            "_dmarc.bad.test",
            "v=DMARC1; p=reject; sp=quarantine",
        );
        answers
            .txt
            .insert(fqdn("_dmarc.sub.bad.test"), Lookup::Missing);
        let sub = b"From: x@sub.bad.test\r\n\r\nbody\r\n";
        let outcome = message(sub, &answers, &failing, "bad.test");
        assert!(outcome.misses.is_empty(), "{:?}", outcome.misses);
        assert_eq!(outcome.dmarc.policy, Some(Policy::Quarantine));
        assert_eq!(outcome.dmarc.action, DmarcAction::Quarantine);

        // No answer yet: the walk's names are all asked for.
        let outcome = message(sub, &Answers::default(), &failing, "bad.test");
        assert_eq!(
            outcome.misses.into_iter().collect::<Vec<_>>(),
            vec![
                Question::Txt("_dmarc.bad.test.".into()),
                Question::Txt("_dmarc.sub.bad.test.".into()),
                Question::Txt("_dmarc.test.".into()),
            ]
        );
    }

    #[test]
    fn pct_zero_or_testing_makes_the_disposition_milder() {
        for record in ["v=DMARC1; p=reject; pct=0", "v=DMARC1; p=reject; t=y"] {
            let mut answers = Answers::default();
            txt(&mut answers, "_dmarc.bad.test", record);
            let failing = SpfOutput::new("bad.test".into()).with_result(SpfResult::Fail);
            let outcome = message(b"From: x@bad.test\r\n\r\n", &answers, &failing, "bad.test");
            assert_eq!(outcome.dmarc.verdict, Verdict::Fail, "{record}");
            assert_eq!(outcome.dmarc.action, DmarcAction::Quarantine, "{record}");
        }
    }
}

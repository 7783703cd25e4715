//! What a check knows of DNS: the answers `cairn-dns` gave, handed to
//! mail-auth as its resolver caches, and what mail-auth asked that had no
//! answer yet (the misses of one evaluation round).
//!
//! mail-auth (built with its `test` feature) answers a cache miss at once
//! with NXDOMAIN and never touches its own (tokio) resolver; a round that
//! missed is therefore only a draft: its misses are resolved on the shard
//! and the round is run again. A round without misses saw exactly the
//! answers DNS gave.
//!
//! Keys are names as mail-auth asks for them: lower-case, with the
//! trailing dot ([`fqdn`]).

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use cairn_dns::DnsError;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Atps, DomainKeyReport};
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{Error, ResolverCache, Txt, MX};

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup<T> {
    /// Records (never empty).
    Found(T),
    /// NXDOMAIN, NODATA, or a name DNS cannot carry.
    Missing,
    /// A temporary failure (timeout, SERVFAIL …), or a question left
    /// unasked because a limit was reached.
    Failed,
}

impl<T> Lookup<Vec<T>> {
    /// What `cairn-dns` said, sorted into the three outcomes.
    pub(crate) fn from_dns(result: Result<Vec<T>, DnsError>) -> Self {
        match result {
            Ok(records) if records.is_empty() => Lookup::Missing,
            Ok(records) => Lookup::Found(records),
            Err(DnsError::Temporary(_)) => Lookup::Failed,
            Err(DnsError::NxDomain | DnsError::Permanent(_)) => Lookup::Missing,
        }
    }
}

/// A question mail-auth asked that had no answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Question {
    Txt(String),
    A(String),
    Aaaa(String),
    Mx(String),
    /// The client's address (the only one SPF asks PTR for).
    Ptr,
}

/// The answers of one check, by record type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answers {
    pub(crate) txt: HashMap<String, Lookup<Vec<String>>>,
    pub(crate) a: HashMap<String, Lookup<Vec<Ipv4Addr>>>,
    pub(crate) aaaa: HashMap<String, Lookup<Vec<Ipv6Addr>>>,
    /// (preference, exchange without the trailing dot; "" for a null MX).
    pub(crate) mx: HashMap<String, Lookup<Vec<(u16, String)>>>,
    pub(crate) ptr: HashMap<IpAddr, Lookup<Vec<String>>>,
    /// The names of the PTR answers (fqdn): SPF's `ptr` ignores failures
    /// of their address lookups (RFC 7208 §5.5).
    pub(crate) ptr_names: BTreeSet<String>,
}

impl Answers {
    /// Whether `question` has an answer (of any outcome).
    pub(crate) fn knows(&self, question: &Question, client: IpAddr) -> bool {
        match question {
            Question::Txt(name) => self.txt.contains_key(name),
            Question::A(name) => self.a.contains_key(name),
            Question::Aaaa(name) => self.aaaa.contains_key(name),
            Question::Mx(name) => self.mx.contains_key(name),
            Question::Ptr => self.ptr.contains_key(&client),
        }
    }

    /// Records `question` as failed (not asked: a limit was reached).
    pub(crate) fn fail(&mut self, question: &Question, client: IpAddr) {
        match question {
            Question::Txt(name) => {
                self.txt.insert(name.clone(), Lookup::Failed);
            }
            Question::A(name) => {
                self.a.insert(name.clone(), Lookup::Failed);
            }
            Question::Aaaa(name) => {
                self.aaaa.insert(name.clone(), Lookup::Failed);
            }
            Question::Mx(name) => {
                self.mx.insert(name.clone(), Lookup::Failed);
            }
            Question::Ptr => {
                self.ptr.insert(client, Lookup::Failed);
            }
        }
    }
}

/// `name` the way mail-auth keys its caches: lower-case, trailing dot.
pub(crate) fn fqdn(name: &str) -> String {
    let mut name = name.to_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// What one evaluation round asked and could not be told.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    misses: RefCell<BTreeSet<Question>>,
    /// A name was asked whose text could not be recovered (never seen:
    /// mail-auth asks by `str`).
    unreadable: Cell<bool>,
    /// An A, AAAA or MX answer that had failed temporarily was consulted:
    /// SPF's result is then `temperror` (RFC 7208 §5), whatever mail-auth
    /// made of the NXDOMAIN it was given instead.
    failed_consulted: Cell<bool>,
    /// The TXT names asked, in order.
    txt_asked: RefCell<Vec<String>>,
}

impl Trace {
    fn miss(&self, question: Question) {
        self.misses.borrow_mut().insert(question);
    }

    /// The questions without an answer, in a stable order.
    pub(crate) fn misses(&self) -> BTreeSet<Question> {
        self.misses.borrow().clone()
    }

    pub(crate) fn unreadable(&self) -> bool {
        self.unreadable.get()
    }

    pub(crate) fn failed_consulted(&self) -> bool {
        self.failed_consulted.get()
    }

    /// The last TXT name asked (for DMARC: where its tree walk stopped).
    pub(crate) fn last_txt(&self) -> Option<String> {
        self.txt_asked.borrow().last().cloned()
    }
}

/// A `Hasher` that keeps the bytes written to it.
///
/// mail-auth's caches are asked with a generic `Q` where `String:
/// Borrow<Q>`; it is always `str`, whose `Hash` writes the bytes and then
/// `0xff` (`Hasher::write_str`). Hashing the key into this recovers its
/// text without `unsafe` and without guessing its type.
struct Capture {
    bytes: Vec<u8>,
    overflow: bool,
}

/// Longer than any domain name (255): nothing real is cut.
const CAPTURE_MAX: usize = 1024;

impl Hasher for Capture {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.bytes.len() + bytes.len() > CAPTURE_MAX {
            self.overflow = true;
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }
}

/// The text of a cache key `q` (see [`Capture`]); `None` when it is not a
/// string.
pub(crate) fn key_text<Q: Hash + ?Sized>(q: &Q) -> Option<String> {
    let mut capture = Capture {
        bytes: Vec::new(),
        overflow: false,
    };
    q.hash(&mut capture);
    if capture.overflow {
        return None;
    }
    let text = capture.bytes.strip_suffix(&[0xff])?;
    String::from_utf8(text.to_vec()).ok()
}

/// What the TXT records of a name are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxtKind {
    /// SPF records (`include:`, `redirect=` targets; an `exp=` text read
    /// as SPF fails to parse and the explanation is left out).
    Spf,
    /// DKIM and ARC keys (and DKIM's report and ATPS records by name).
    Key,
    /// DMARC policies.
    Dmarc,
}

/// The first of `records` that parses as `T`, else the last error (what
/// mail-auth does with an answer).
fn parse_first<T: TxtRecordParser + Into<Txt>>(records: &[String]) -> Txt {
    let mut result: mail_auth::Result<T> = Err(Error::InvalidRecordType);
    for record in records {
        result = T::parse(record.as_bytes());
        if result.is_ok() {
            break;
        }
    }
    result.into()
}

fn txt_value(kind: TxtKind, name: &str, records: &[String]) -> Txt {
    match kind {
        TxtKind::Spf => parse_first::<Spf>(records),
        TxtKind::Dmarc => parse_first::<Dmarc>(records),
        TxtKind::Key if name.starts_with("_report._domainkey.") => {
            parse_first::<DomainKeyReport>(records)
        }
        TxtKind::Key if name.contains("._atps.") => parse_first::<Atps>(records),
        TxtKind::Key => parse_first::<DomainKey>(records),
    }
}

/// TXT names whose absence changes no result: DKIM failure-report
/// addresses (RFC 6651), which Cairn does not send.
fn ignorable(name: &str) -> bool {
    name.starts_with("_report._domainkey.")
}

/// The TXT cache one mail-auth call sees.
pub(crate) struct TxtView<'a> {
    answers: &'a Answers,
    trace: &'a Trace,
    kind: TxtKind,
}

impl<'a> TxtView<'a> {
    pub(crate) fn new(answers: &'a Answers, trace: &'a Trace, kind: TxtKind) -> Self {
        Self {
            answers,
            trace,
            kind,
        }
    }
}

impl ResolverCache<String, Txt> for TxtView<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let text = key_text(name);
        if let Some(text) = &text {
            self.trace.txt_asked.borrow_mut().push(text.clone());
        }
        match self.answers.txt.get(name) {
            Some(Lookup::Found(records)) => Some(txt_value(
                self.kind,
                text.as_deref().unwrap_or_default(),
                records,
            )),
            Some(Lookup::Missing) => {
                Some(Txt::Error(Error::DnsRecordNotFound(ResponseCode::NXDomain)))
            }
            Some(Lookup::Failed) => {
                Some(Txt::Error(Error::DnsError("temporary DNS failure".into())))
            }
            None => {
                match text {
                    Some(text) if ignorable(&text) => {}
                    Some(text) => self.trace.miss(Question::Txt(text)),
                    None => self.trace.unreadable.set(true),
                }
                None
            }
        }
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: String, _value: Txt, _valid_until: Instant) {}
}

/// The address and MX caches SPF sees.
pub(crate) struct HostView<'a> {
    answers: &'a Answers,
    trace: &'a Trace,
}

impl<'a> HostView<'a> {
    pub(crate) fn new(answers: &'a Answers, trace: &'a Trace) -> Self {
        Self { answers, trace }
    }

    /// A miss or a failure of an address or MX lookup of `name`.
    fn absent<Q: Hash + ?Sized>(&self, name: &Q, failed: bool, question: fn(String) -> Question) {
        let text = key_text(name);
        if failed {
            let in_ptr = text
                .as_ref()
                .is_some_and(|t| self.answers.ptr_names.contains(t));
            if !in_ptr {
                self.trace.failed_consulted.set(true);
            }
        } else {
            match text {
                Some(text) => self.trace.miss(question(text)),
                None => self.trace.unreadable.set(true),
            }
        }
    }
}

/// The A cache (an `Arc<Vec<Ipv4Addr>>` per name).
pub(crate) struct AView<'a>(pub(crate) HostView<'a>);
/// The AAAA cache.
pub(crate) struct AaaaView<'a>(pub(crate) HostView<'a>);
/// The MX cache.
pub(crate) struct MxView<'a>(pub(crate) HostView<'a>);

impl ResolverCache<String, Arc<Vec<Ipv4Addr>>> for AView<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Arc<Vec<Ipv4Addr>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Missing: no entry, so mail-auth's own answer is NXDOMAIN (an
        // empty list would make `exists:` true).
        match self.0.answers.a.get(name) {
            Some(Lookup::Found(ips)) => Some(Arc::new(ips.clone())),
            Some(Lookup::Missing) => None,
            Some(Lookup::Failed) => {
                self.0.absent(name, true, Question::A);
                None
            }
            None => {
                self.0.absent(name, false, Question::A);
                None
            }
        }
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Arc<Vec<Ipv4Addr>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: String, _value: Arc<Vec<Ipv4Addr>>, _valid_until: Instant) {}
}

impl ResolverCache<String, Arc<Vec<Ipv6Addr>>> for AaaaView<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Arc<Vec<Ipv6Addr>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.0.answers.aaaa.get(name) {
            Some(Lookup::Found(ips)) => Some(Arc::new(ips.clone())),
            Some(Lookup::Missing) => None,
            Some(Lookup::Failed) => {
                self.0.absent(name, true, Question::Aaaa);
                None
            }
            None => {
                self.0.absent(name, false, Question::Aaaa);
                None
            }
        }
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Arc<Vec<Ipv6Addr>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: String, _value: Arc<Vec<Ipv6Addr>>, _valid_until: Instant) {}
}

impl ResolverCache<String, Arc<Vec<MX>>> for MxView<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Arc<Vec<MX>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.0.answers.mx.get(name) {
            Some(Lookup::Found(records)) => Some(Arc::new(group_mx(records))),
            Some(Lookup::Missing) => None,
            Some(Lookup::Failed) => {
                self.0.absent(name, true, Question::Mx);
                None
            }
            None => {
                self.0.absent(name, false, Question::Mx);
                None
            }
        }
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Arc<Vec<MX>>>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: String, _value: Arc<Vec<MX>>, _valid_until: Instant) {}
}

/// MX records in mail-auth's shape: exchanges grouped by preference,
/// lowest first; a null MX (RFC 7505) names no host and is left out.
pub(crate) fn group_mx(records: &[(u16, String)]) -> Vec<MX> {
    let mut grouped: Vec<MX> = Vec::new();
    for (preference, exchange) in records {
        if exchange.is_empty() {
            continue;
        }
        let exchange = fqdn(exchange);
        match grouped.iter_mut().find(|m| m.preference == *preference) {
            Some(mx) => mx.exchanges.push(exchange),
            None => grouped.push(MX {
                exchanges: vec![exchange],
                preference: *preference,
            }),
        }
    }
    grouped.sort_by_key(|m| m.preference);
    grouped
}

/// The PTR cache (keyed by address: SPF asks only for the client's).
pub(crate) struct PtrView<'a> {
    answers: &'a Answers,
    trace: &'a Trace,
}

impl<'a> PtrView<'a> {
    pub(crate) fn new(answers: &'a Answers, trace: &'a Trace) -> Self {
        Self { answers, trace }
    }
}

impl ResolverCache<IpAddr, Arc<Vec<String>>> for PtrView<'_> {
    fn get<Q>(&self, ip: &Q) -> Option<Arc<Vec<String>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.answers.ptr.get(ip) {
            // Without the trailing dot: SPF's `ptr` compares them to a
            // domain as written (`ptr:example.org`).
            Some(Lookup::Found(names)) => Some(Arc::new(names.clone())),
            // SPF ignores PTR failures (RFC 7208 §5.5).
            Some(Lookup::Missing | Lookup::Failed) => None,
            None => {
                self.trace.miss(Question::Ptr);
                None
            }
        }
    }

    fn remove<Q>(&self, _ip: &Q) -> Option<Arc<Vec<String>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: IpAddr, _value: Arc<Vec<String>>, _valid_until: Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_str_key_is_recovered_from_its_hash() {
        assert_eq!(key_text("good.test.").as_deref(), Some("good.test."));
        assert_eq!(
            key_text(&String::from("_dmarc.Ünï.test.")).as_deref(),
            Some("_dmarc.Ünï.test.")
        );
        assert_eq!(key_text("").as_deref(), Some(""));
        // Not a string: no text.
        assert_eq!(key_text(&7u32), None);
        assert_eq!(key_text(&"x".repeat(2000)), None);
    }

    #[test]
    fn dns_outcomes_sort_into_found_missing_failed() {
        assert_eq!(Lookup::from_dns(Ok(vec![1])), Lookup::Found(vec![1]));
        assert_eq!(Lookup::<Vec<u8>>::from_dns(Ok(vec![])), Lookup::Missing);
        assert_eq!(
            Lookup::<Vec<u8>>::from_dns(Err(DnsError::NxDomain)),
            Lookup::Missing
        );
        assert_eq!(
            Lookup::<Vec<u8>>::from_dns(Err(DnsError::Permanent("bad name".into()))),
            Lookup::Missing
        );
        assert_eq!(
            Lookup::<Vec<u8>>::from_dns(Err(DnsError::Temporary("timeout".into()))),
            Lookup::Failed
        );
    }

    #[test]
    fn views_answer_hits_and_record_misses() {
        let mut answers = Answers::default();
        answers.txt.insert(
            "good.test.".into(),
            Lookup::Found(vec!["not spf".into(), "v=spf1 -all".into()]),
        );
        answers.txt.insert("gone.test.".into(), Lookup::Missing);
        answers.txt.insert("down.test.".into(), Lookup::Failed);
        answers.a.insert(
            "mx.good.test.".into(),
            Lookup::Found(vec![Ipv4Addr::LOCALHOST]),
        );
        answers.a.insert("down.test.".into(), Lookup::Failed);
        answers.mx.insert(
            "good.test.".into(),
            Lookup::Found(vec![
                (20, "b.test".into()),
                (10, "a.test".into()),
                (20, "c.test".into()),
                (0, String::new()),
            ]),
        );
        let trace = Trace::default();
        let txt = TxtView::new(&answers, &trace, TxtKind::Spf);
        assert!(matches!(txt.get("good.test."), Some(Txt::Spf(_))));
        assert!(matches!(
            txt.get("gone.test."),
            Some(Txt::Error(Error::DnsRecordNotFound(_)))
        ));
        assert!(matches!(
            txt.get("down.test."),
            Some(Txt::Error(Error::DnsError(_)))
        ));
        assert!(txt.get("new.test.").is_none());
        assert!(txt.get("_report._domainkey.good.test.").is_none());
        let a = AView(HostView::new(&answers, &trace));
        assert_eq!(
            a.get("mx.good.test.").map(|v| v.to_vec()),
            Some(vec![Ipv4Addr::LOCALHOST])
        );
        assert!(a.get("other.test.").is_none());
        assert!(!trace.failed_consulted());
        assert!(a.get("down.test.").is_none());
        assert!(trace.failed_consulted());
        let mx = MxView(HostView::new(&answers, &trace));
        let grouped = mx.get("good.test.").expect("mx");
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].exchanges, vec!["a.test.".to_string()]);
        assert_eq!(
            grouped[1].exchanges,
            vec!["b.test.".to_string(), "c.test.".to_string()]
        );
        let ptr = PtrView::new(&answers, &trace);
        assert!(ptr.get(&IpAddr::V4(Ipv4Addr::LOCALHOST)).is_none());
        assert_eq!(
            trace.misses().into_iter().collect::<Vec<_>>(),
            vec![
                Question::Txt("new.test.".into()),
                Question::A("other.test.".into()),
                Question::Ptr
            ]
        );
        assert_eq!(
            trace.last_txt().as_deref(),
            Some("_report._domainkey.good.test.")
        );
        assert!(!trace.unreadable());
    }

    #[test]
    fn key_records_are_typed_by_name() {
        let records =
            vec!["v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".to_string()];
        assert!(matches!(
            txt_value(TxtKind::Key, "sel._domainkey.good.test.", &records),
            Txt::DomainKey(_)
        ));
        assert!(matches!(
            txt_value(
                TxtKind::Dmarc,
                "_dmarc.good.test.",
                &["v=DMARC1; p=reject".to_string()]
            ),
            Txt::Dmarc(_)
        ));
        assert!(matches!(
            txt_value(
                TxtKind::Dmarc,
                "_dmarc.good.test.",
                &["v=spf1 -all".to_string()]
            ),
            Txt::Error(_)
        ));
    }
}

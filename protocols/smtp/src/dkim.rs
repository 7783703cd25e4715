//! DKIM (RFC 6376; Ed25519 per RFC 8463) for mail from the domains we
//! serve: making a domain's key pair, the DNS TXT record that publishes
//! it, and signing a message with it. Pure functions: no DNS, no I/O.
//!
//! Keys are RSA-2048 (`rsa-sha256`) or Ed25519 (`ed25519-sha256`). RSA key
//! generation takes 100 ms or more and an RSA signature about a
//! millisecond: call [`generate`] on the blocking pool, never on a shard.
//!
//! Signatures are `c=relaxed/relaxed` over the whole body, on the headers
//! of [`SIGNED_HEADERS`] that the message has (every instance of each),
//! with `From` signed once more than it occurs ("oversigned"), so that a
//! `From` added later breaks the signature.
//!
//! The RSA record publishes the public key as a `SubjectPublicKeyInfo`
//! (what OpenSSL's `-pubout`, OpenDKIM and the big receivers use), made
//! from the PKCS#1 key that `mail-auth` generates and that is stored.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

pub use cairn_storage::directory::dkim::{DkimAlgorithm, DkimKey};

/// The bits of a new RSA key.
pub const RSA_BITS: usize = 2048;

/// The headers signed when present, in this order of preference.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The longest character-string of a TXT record (RFC 1035 §3.3).
pub const TXT_STRING_MAX: usize = 255;

/// Why a key could not be made or a message not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkimError {
    /// The selector is not a valid DNS label sequence.
    Selector(String),
    /// The signing domain is not a valid domain name.
    Domain(String),
    /// Key generation failed.
    Generate(String),
    /// The stored private key does not load.
    Key(String),
    /// The message has no `From` header (RFC 6376 §5.4 requires it signed).
    NoFrom,
    /// Signing failed.
    Sign(String),
}

impl fmt::Display for DkimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DkimError::Selector(why) => write!(f, "invalid DKIM selector: {why}"),
            DkimError::Domain(why) => write!(f, "invalid DKIM signing domain: {why}"),
            DkimError::Generate(why) => write!(f, "cannot generate a DKIM key: {why}"),
            DkimError::Key(why) => write!(f, "unusable DKIM private key: {why}"),
            DkimError::NoFrom => f.write_str("the message has no From header to sign"),
            DkimError::Sign(why) => write!(f, "cannot DKIM-sign: {why}"),
        }
    }
}

impl std::error::Error for DkimError {}

/// Makes a new key pair of `algorithm` published under `selector`, made
/// at `now` (seconds since the Unix epoch). CPU-heavy for RSA: run it on
/// the blocking pool.
pub fn generate(algorithm: DkimAlgorithm, selector: &str, now: i64) -> Result<DkimKey, DkimError> {
    let selector = cairn_storage::directory::dkim::selector(selector)
        .map_err(|e| DkimError::Selector(e.to_string()))?;
    let pair = match algorithm {
        DkimAlgorithm::Rsa2048 => DkimKeyPair::generate_rsa(RSA_BITS),
        DkimAlgorithm::Ed25519 => DkimKeyPair::generate_ed25519(),
    }
    .map_err(|e| DkimError::Generate(e.to_string()))?;
    let (private_key, public_key) = pair.into_inner();
    Ok(DkimKey {
        selector,
        algorithm,
        private_key,
        public_key,
        created: now,
    })
}

/// The selector of a key made at `now`: `cairn` and the year and month
/// (`cairn202611`), so that a rotated key gets a new name.
pub fn default_selector(now: i64) -> String {
    let (year, month) = year_month(now);
    format!("cairn{year:04}{month:02}")
}

/// The UTC year and month of a Unix time (Howard Hinnant's civil date).
fn year_month(secs: i64) -> (i64, i64) {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// Where the key is published: `<selector>._domainkey.<domain>`.
pub fn record_name(domain: &str, selector: &str) -> String {
    format!(
        "{}._domainkey.{}",
        selector.to_ascii_lowercase(),
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// The TXT record's value: `v=DKIM1; k=rsa; p=…` or `v=DKIM1; k=ed25519; p=…`.
pub fn dns_record(key: &DkimKey) -> String {
    let (k, public) = match key.algorithm {
        DkimAlgorithm::Rsa2048 => ("rsa", rsa_spki(&key.public_key)),
        DkimAlgorithm::Ed25519 => ("ed25519", key.public_key.clone()),
    };
    format!("v=DKIM1; k={k}; p={}", BASE64.encode(public))
}

/// `record` cut into the character-strings of one TXT record, each at
/// most [`TXT_STRING_MAX`] bytes (a record is ASCII).
pub fn txt_strings(record: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = record;
    while !rest.is_empty() {
        let mut cut = rest.len().min(TXT_STRING_MAX);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// The zone-file line that publishes `key` for `domain`:
/// `sel._domainkey.example.org. IN TXT "v=DKIM1; …" "…"`.
pub fn zone_line(domain: &str, key: &DkimKey) -> String {
    zone_line_of(&record_name(domain, &key.selector), &dns_record(key))
}

/// The zone-file line of the TXT record `record` at `name`.
pub fn zone_line_of(name: &str, record: &str) -> String {
    let strings: Vec<String> = txt_strings(record)
        .into_iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!(
        "{}. IN TXT {}",
        name.trim_end_matches('.'),
        strings.join(" ")
    )
}

/// A PKCS#1 `RSAPublicKey` wrapped in a `SubjectPublicKeyInfo`
/// (rsaEncryption); a key that is one already is returned as it is.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    if pkcs1
        .windows(ALGORITHM.len())
        .take(8)
        .any(|w| w == ALGORITHM)
    {
        return pkcs1.to_vec();
    }
    let mut bits = vec![0x00];
    bits.extend_from_slice(pkcs1);
    let mut inner = ALGORITHM.to_vec();
    der(&mut inner, 0x03, &bits);
    let mut out = Vec::with_capacity(inner.len() + 4);
    der(&mut out, 0x30, &inner);
    out
}

/// Appends a DER tag-length-value.
fn der(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(value);
}

/// The private key, loaded.
enum Loaded {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// A domain's key loaded once for signing many messages.
pub struct Signer {
    domain: String,
    selector: String,
    key: Loaded,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads `key` to sign for `domain` (the `d=` tag).
    pub fn new(domain: &str, key: &DkimKey) -> Result<Self, DkimError> {
        let domain = cairn_storage::directory::names::domain(domain)
            .map_err(|e| DkimError::Domain(e.to_string()))?;
        let selector = cairn_storage::directory::dkim::selector(&key.selector)
            .map_err(|e| DkimError::Selector(e.to_string()))?;
        let loaded = match key.algorithm {
            DkimAlgorithm::Rsa2048 => {
                let der =
                    PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.private_key.as_slice()));
                Loaded::Rsa(
                    RsaKey::<Sha256>::from_key_der(der)
                        .map_err(|e| DkimError::Key(e.to_string()))?,
                )
            }
            DkimAlgorithm::Ed25519 => Loaded::Ed25519(
                Ed25519Key::from_pkcs8_der(&key.private_key)
                    .map_err(|e| DkimError::Key(e.to_string()))?,
            ),
        };
        Ok(Self {
            domain,
            selector,
            key: loaded,
        })
    }

    /// The `DKIM-Signature:` header field for `message` (headers, blank
    /// line, body; CRLF line ends), folded, ending in CRLF: prepend it.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let headers = headers_to_sign(message)?;
        match &self.key {
            Loaded::Rsa(key) => self.sign_with(key, headers, message),
            Loaded::Ed25519(key) => self.sign_with(key, headers, message),
        }
    }

    fn sign_with<K: SigningKey>(
        &self,
        key: &K,
        headers: Vec<&'static str>,
        message: &[u8],
    ) -> Result<String, DkimError> {
        // The builder takes the key by value; the key types are not Clone,
        // so the signer borrows it through a thin wrapper.
        let signature = DkimSigner::from_key(ByRef(key))
            .domain(self.domain.as_str())
            .selector(self.selector.as_str())
            .headers(headers)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }
}

/// A borrowed signing key.
struct ByRef<'a, K>(&'a K);

impl<K: SigningKey> SigningKey for ByRef<'_, K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// Signs `message` for `domain` with `key`: the `DKIM-Signature:` header
/// field (folded, ending in CRLF) to prepend to it. The time (`t=`) is
/// the clock's. To sign many messages, load the key once with [`Signer`].
pub fn sign(domain: &str, key: &DkimKey, message: &[u8]) -> Result<String, DkimError> {
    Signer::new(domain, key)?.sign(message)
}

/// The names of [`SIGNED_HEADERS`] that `message` has, and `From` once
/// more (the oversigning); the signer signs every instance of each.
fn headers_to_sign(message: &[u8]) -> Result<Vec<&'static str>, DkimError> {
    let mut present = vec![false; SIGNED_HEADERS.len()];
    for name in header_names(message) {
        if let Some(i) = SIGNED_HEADERS
            .iter()
            .position(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            if let Some(p) = present.get_mut(i) {
                *p = true;
            }
        }
    }
    if present.first() != Some(&true) {
        return Err(DkimError::NoFrom);
    }
    let mut names: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .zip(present)
        .filter(|(_, p)| *p)
        .map(|(h, _)| *h)
        .collect();
    names.push("From");
    Ok(names)
}

/// The names of the header fields of `message` (up to the blank line),
/// as written before their colon.
fn header_names(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .filter(|line| !matches!(line.first(), Some(b' ' | b'\t')))
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            line.get(..colon)
        })
}

#[cfg(test)]
mod tests {
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;

    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };

    use super::*;

    const NOW: i64 = 1_793_000_000; // 2026-10-25

    const MESSAGE: &str = concat!(
        "Received: from client.example.org by mx.example.org\r\n",
        "From: Alice Example <alice@example.org>\r\n",
        "To: bob@example.net\r\n",
        "Subject: Quarterly  report\r\n",
        "Date: Sun, 25 Oct 2026 10:00:00 +0000\r\n",
        "Message-ID: <q3@example.org>\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "\r\n",
        "Here are the numbers.  \r\n",
        "\r\n",
        "-- \r\n",
        "Alice\r\n",
        "\r\n",
        "\r\n",
    );

    /// RSA generation is slow in a debug build: one key for every test.
    fn rsa_key() -> &'static DkimKey {
        static KEY: OnceLock<DkimKey> = OnceLock::new();
        KEY.get_or_init(|| generate(DkimAlgorithm::Rsa2048, "rsa1", NOW).expect("rsa key"))
    }

    fn ed_key() -> DkimKey {
        generate(DkimAlgorithm::Ed25519, "Ed1", NOW).expect("ed25519 key")
    }

    /// A TXT cache holding the records under test: no DNS is asked.
    #[derive(Default)]
    struct Records(Mutex<HashMap<String, Txt>>);

    impl ResolverCache<String, Txt> for Records {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            String: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().ok()?.get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            String: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().ok()?.remove(name)
        }
        fn insert(&self, key: String, value: Txt, _valid_until: Instant) {
            if let Ok(mut m) = self.0.lock() {
                m.insert(key, value);
            }
        }
    }

    /// mail-auth's verifier's result for `signed` with `key` published
    /// for example.org.
    fn verify(signed: &str, key: &DkimKey) -> Vec<DkimResult> {
        let records = Records::default();
        let parsed = DomainKey::parse(dns_record(key).as_bytes()).expect("record parses");
        records.insert(
            format!("{}.", record_name("example.org", &key.selector)),
            parsed.into(),
            Instant::now(),
        );
        let auth = MessageAuthenticator::new(ResolverConfig::default(), ResolverOpts::default())
            .expect("authenticator");
        let message = AuthenticatedMessage::parse(signed.as_bytes()).expect("parse");
        let params = Parameters::new(&message).with_txt_cache(&records);
        futures_lite::future::block_on(auth.verify_dkim(params))
            .into_iter()
            .map(|o| o.result().clone())
            .collect()
    }

    /// The value of tag `name` of a DKIM-Signature header, unfolded and
    /// without whitespace.
    fn tag(header: &str, name: &str) -> Option<String> {
        let value = header.strip_prefix("DKIM-Signature:")?.replace("\r\n", "");
        value
            .split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix(&format!("{name}=")))
            .map(|v| v.chars().filter(|c| !c.is_whitespace()).collect())
    }

    #[test]
    fn signatures_verify_with_mail_auth_and_tampering_fails() {
        for key in [rsa_key().clone(), ed_key()] {
            let header = sign("Example.org", &key, MESSAGE.as_bytes()).expect("sign");
            let signed = format!("{header}{MESSAGE}");
            assert_eq!(verify(&signed, &key), vec![DkimResult::Pass], "{key:?}");

            // Relaxed canonicalization: whitespace changes still pass.
            let respaced =
                signed.replace("Subject: Quarterly  report", "Subject:  Quarterly report");
            assert_eq!(verify(&respaced, &key), vec![DkimResult::Pass]);

            // A changed body: the body hash no longer matches (mail-auth
            // calls that neutral, RFC 6376 §6.1.3 a failure).
            let changed = signed.replace("Here are the numbers.", "Here are other numbers.");
            assert!(matches!(
                verify(&changed, &key)[..],
                [DkimResult::Neutral(mail_auth::Error::FailedBodyHashMatch)]
            ));
            let resubjected = signed.replace("Quarterly  report", "Quarterly results");
            assert!(matches!(
                verify(&resubjected, &key)[..],
                [DkimResult::Fail(_)]
            ));
            // From is oversigned: a second From breaks the signature.
            let two_froms = signed.replace(
                "To: bob@example.net\r\n",
                "To: bob@example.net\r\nFrom: mallory@example.com\r\n",
            );
            assert!(matches!(
                verify(&two_froms, &key)[..],
                [DkimResult::Fail(_)]
            ));
            // Another key for the same selector does not verify it.
            let other = generate(DkimAlgorithm::Ed25519, &key.selector, NOW).expect("other");
            if key.algorithm == DkimAlgorithm::Ed25519 {
                assert!(matches!(verify(&signed, &other)[..], [DkimResult::Fail(_)]));
            }
        }
    }

    #[test]
    fn the_header_is_well_formed() {
        for key in [rsa_key().clone(), ed_key()] {
            let header = sign("example.org", &key, MESSAGE.as_bytes()).expect("sign");
            assert!(header.starts_with("DKIM-Signature: v=1; "), "{header}");
            assert!(header.ends_with(";\r\n"), "{header}");
            let lines: Vec<&str> = header.trim_end_matches("\r\n").split("\r\n").collect();
            // Folded (RFC 5322 §2.2.3): the first line holds the short
            // tags, every other starts with WSP and keeps to 78 characters.
            for (i, line) in lines.iter().enumerate() {
                assert!(!line.contains('\n') && !line.contains('\r'));
                assert!(line.len() <= 80 + "example.org".len(), "{line:?}");
                if i > 0 {
                    assert!(line.len() <= 78, "line too long: {line:?}");
                    assert!(
                        line.starts_with('\t'),
                        "a folded line starts with WSP: {line:?}"
                    );
                }
            }
            assert!(lines.len() >= 3, "{header}");
            let a = match key.algorithm {
                DkimAlgorithm::Rsa2048 => "rsa-sha256",
                DkimAlgorithm::Ed25519 => "ed25519-sha256",
            };
            assert_eq!(tag(&header, "v").as_deref(), Some("1"));
            assert_eq!(tag(&header, "a").as_deref(), Some(a));
            assert_eq!(tag(&header, "c").as_deref(), Some("relaxed/relaxed"));
            assert_eq!(tag(&header, "d").as_deref(), Some("example.org"));
            assert_eq!(tag(&header, "s"), Some(key.selector.clone()));
            assert!(tag(&header, "l").is_none(), "the whole body is signed");
            let t: i64 = tag(&header, "t").expect("t=").parse().expect("t= number");
            assert!(t > 1_700_000_000);
            let h = tag(&header, "h").expect("h=").to_ascii_lowercase();
            let names: Vec<&str> = h.split(':').collect();
            assert_eq!(names.iter().filter(|n| **n == "from").count(), 2, "{h}");
            for n in [
                "to",
                "subject",
                "date",
                "message-id",
                "mime-version",
                "content-type",
            ] {
                assert!(names.contains(&n), "{n} in {h}");
            }
            for n in ["cc", "received", "reply-to", "references"] {
                assert!(!names.contains(&n), "{n} not in {h}");
            }
            let bh = BASE64
                .decode(tag(&header, "bh").expect("bh="))
                .expect("bh base64");
            assert_eq!(bh.len(), 32);
            let b = BASE64
                .decode(tag(&header, "b").expect("b="))
                .expect("b base64");
            let len = match key.algorithm {
                DkimAlgorithm::Rsa2048 => 256,
                DkimAlgorithm::Ed25519 => 64,
            };
            assert_eq!(b.len(), len);
        }
    }

    #[test]
    fn records_parse_and_publish_the_right_keys() {
        let ed = ed_key();
        assert_eq!(ed.selector, "ed1");
        assert_eq!(ed.created, NOW);
        assert_eq!(ed.public_key.len(), 32);
        let record = dns_record(&ed);
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
        assert!(DomainKey::parse(record.as_bytes()).is_ok());
        let p = record.rsplit_once("p=").expect("p=").1;
        assert_eq!(BASE64.decode(p).expect("base64"), ed.public_key);

        let rsa = rsa_key();
        let record = dns_record(rsa);
        assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
        assert!(DomainKey::parse(record.as_bytes()).is_ok());
        let spki = BASE64
            .decode(record.rsplit_once("p=").expect("p=").1)
            .expect("base64");
        // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { 0, RSAPublicKey } }
        assert_eq!(&spki[..2], &[0x30, 0x82]);
        assert_eq!(
            (usize::from(spki[2]) << 8) | usize::from(spki[3]),
            spki.len() - 4
        );
        assert_eq!(
            &spki[4..19],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00
            ]
        );
        assert_eq!(&spki[19..21], &[0x03, 0x82]);
        assert!(spki.ends_with(&rsa.public_key));
        // A key stored as SPKI already is published as it is.
        let mut spki_key = rsa.clone();
        spki_key.public_key = spki.clone();
        assert_eq!(dns_record(&spki_key), record);
        // A 2048-bit key's record needs two TXT strings.
        assert!(record.len() > TXT_STRING_MAX);
        assert_eq!(txt_strings(&record).len(), 2);
    }

    #[test]
    fn names_zone_lines_and_selectors() {
        assert_eq!(
            record_name("Example.ORG.", "Sel"),
            "sel._domainkey.example.org"
        );
        assert_eq!(default_selector(NOW), "cairn202610");
        assert_eq!(default_selector(0), "cairn197001");
        assert_eq!(default_selector(951_782_400), "cairn200002"); // 2000-02-29
        let record = "x".repeat(600);
        let parts = txt_strings(&record);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(parts.concat(), record);
        assert!(txt_strings("").is_empty());
        assert_eq!(
            zone_line_of("s._domainkey.example.org", "v=DKIM1; k=ed25519; p=AB"),
            "s._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p=AB\""
        );
        let line = zone_line("example.org", rsa_key());
        assert!(line.starts_with("rsa1._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p="));
        assert_eq!(line.matches('"').count(), 4, "{line}");
    }

    #[test]
    fn refusals() {
        let ed = ed_key();
        assert!(matches!(
            generate(DkimAlgorithm::Ed25519, "bad selector", NOW),
            Err(DkimError::Selector(_))
        ));
        assert!(matches!(
            sign("not a domain;", &ed, MESSAGE.as_bytes()),
            Err(DkimError::Domain(_))
        ));
        assert_eq!(
            sign(
                "example.org",
                &ed,
                b"To: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"
            ),
            Err(DkimError::NoFrom)
        );
        let mut broken = ed.clone();
        broken.private_key = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert!(matches!(
            sign("example.org", &broken, MESSAGE.as_bytes()),
            Err(DkimError::Key(_))
        ));
        let mut broken = rsa_key().clone();
        broken.private_key.truncate(100);
        assert!(matches!(
            sign("example.org", &broken, MESSAGE.as_bytes()),
            Err(DkimError::Key(_))
        ));
        // Junk in place of a message: an error or a signature, never a panic.
        for junk in [
            &b""[..],
            b"\r\n\r\n",
            b"From",
            b"From:\r\n",
            b"\xff\xfe: x\r\n\r\n",
        ] {
            let _ = sign("example.org", &ed, junk);
        }
    }
}

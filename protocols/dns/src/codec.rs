//! Sans-IO DNS messages: [`query`] builds the bytes of a question and
//! [`answer`] checks and reads the bytes of a reply, with hickory-proto
//! doing the wire format. No socket, no clock: the resolver (or a test, or
//! a fuzzer) moves the bytes. hickory's types stay inside this module; the
//! public vocabulary is [`RecordType`], [`Record`], [`Mx`] and [`Answer`].
//!
//! Replies come from outside, so every count and length in them is checked
//! against a limit before anything is allocated for it, and nothing here
//! indexes into the received bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType as WireType};

use crate::DnsError;

/// Longest domain name in text form, without the trailing dot (255 bytes
/// on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest name on the wire, length octets and the root label included.
const MAX_WIRE_NAME_LEN: usize = 255;
/// CNAMEs followed inside one answer before giving up.
pub const MAX_CNAME_CHAIN: usize = 8;
/// Most resource records a reply may carry in all its sections.
pub const MAX_RECORDS: usize = 2048;
/// Most bytes of TXT data (all records of an answer together).
pub const MAX_TXT_BYTES: usize = 64 * 1024;
/// The EDNS0 UDP payload size we announce (the DNS flag day 2020 value).
pub const UDP_PAYLOAD: u16 = 1232;
/// A DNS header is 12 bytes.
const HEADER_LEN: usize = 12;
/// The smallest question: root name (1), type (2), class (2).
const MIN_QUESTION_LEN: usize = 5;
/// The smallest record: root name (1), type, class, TTL, RDLENGTH (10).
const MIN_RECORD_LEN: usize = 11;

/// The record types Cairn asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Text (SPF, DKIM keys, DMARC policies).
    Txt,
    /// Reverse name of an address.
    Ptr,
}

impl RecordType {
    fn wire(self) -> WireType {
        match self {
            RecordType::A => WireType::A,
            RecordType::Aaaa => WireType::AAAA,
            RecordType::Mx => WireType::MX,
            RecordType::Txt => WireType::TXT,
            RecordType::Ptr => WireType::PTR,
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Ptr => "PTR",
        })
    }
}

/// A mail exchanger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mx {
    /// Lower is tried first.
    pub preference: u16,
    /// Host name, lower-case, without the trailing dot; `""` for a null MX
    /// (RFC 7505: the domain accepts no mail).
    pub exchange: String,
}

/// One record of the asked type, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger.
    Mx(Mx),
    /// A TXT record: its character-strings concatenated, as lossy UTF-8.
    Txt(String),
    /// A PTR target: lower-case, without the trailing dot.
    Ptr(String),
}

/// What a well-formed reply to our question says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records of the asked type (after following CNAMEs), in the
    /// server's order. Empty: the name exists but has no such records
    /// (NODATA). `ttl` is the smallest TTL among those records and the
    /// CNAMEs followed to them, in seconds; 0 when there are no records.
    Records { records: Vec<Record>, ttl: u32 },
    /// The server set TC: the reply did not fit, ask again over TCP.
    Truncated,
}

/// The canonical text form of a domain name: lower-case, A-labels
/// (punycode) for internationalised names, no trailing dot. This is the
/// cache key and the form [`query`] and [`answer`] accept.
///
/// Rejects (as [`DnsError::Permanent`]) an empty name, a name over
/// [`MAX_NAME_LEN`], an empty or over-long label, and ASCII characters
/// other than letters, digits, `-`, `_` and `.`.
pub fn normalize(name: &str) -> Result<String, DnsError> {
    let wire = wire_name(name)?;
    Ok(text_name(&wire))
}

/// Builds a query for `name` and `rtype` with message id `id`: one
/// question, recursion desired, EDNS0 announcing a
/// [`UDP_PAYLOAD`]-byte UDP payload.
pub fn query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let name = wire_name(name)?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.set_recursion_desired(true);
    message.add_query(Query::query(name, rtype.wire()));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    message.set_edns(edns);
    message
        .to_vec()
        .map_err(|e| DnsError::Permanent(format!("cannot encode a query: {e}")))
}

/// Reads the reply `bytes` to the query [`query`] built from `id`, `name`
/// and `rtype`.
///
/// A reply with another id, without the QR bit, with another opcode or
/// with another question (or none, unless it reports an error) is
/// rejected as [`DnsError::Temporary`], and so is anything malformed.
/// RCODE NXDOMAIN gives [`DnsError::NxDomain`]; SERVFAIL, REFUSED and
/// every other error code give [`DnsError::Temporary`]. A truncated
/// reply gives [`Answer::Truncated`]. Otherwise the records of the asked
/// type are collected, following a CNAME chain of at most
/// [`MAX_CNAME_CHAIN`] links inside the answer section.
pub fn answer(bytes: &[u8], id: u16, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
    answer_within(bytes, id, name, rtype, MAX_TXT_BYTES)
}

/// [`answer`] with another TXT limit. (A 64 KiB reply cannot carry 64 KiB
/// of TXT data, so tests need a smaller one to reach it.)
fn answer_within(
    bytes: &[u8],
    id: u16,
    name: &str,
    rtype: RecordType,
    max_txt: usize,
) -> Result<Answer, DnsError> {
    let qname = wire_name(name)?;
    check_header(bytes, id)?;
    let message = Message::from_vec(bytes)
        .map_err(|e| DnsError::Temporary(format!("malformed reply: {e}")))?;
    if message.id() != id || message.message_type() != MessageType::Response {
        return Err(DnsError::Temporary("the reply is not for our query".into()));
    }
    if message.op_code() != OpCode::Query {
        return Err(DnsError::Temporary(format!(
            "the reply has opcode {:?}",
            message.op_code()
        )));
    }
    let code = message.response_code();
    match message.queries() {
        [q] if q.name() == &qname
            && q.query_type() == rtype.wire()
            && q.query_class() == DNSClass::IN => {}
        // Some servers leave the question out of an error reply.
        [] if code != ResponseCode::NoError => {}
        _ => {
            return Err(DnsError::Temporary(
                "the reply does not echo our question".into(),
            ))
        }
    }
    match code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err(DnsError::NxDomain),
        ResponseCode::ServFail => {
            return Err(DnsError::Temporary("the server failed (SERVFAIL)".into()))
        }
        ResponseCode::Refused => {
            return Err(DnsError::Temporary("the server refused (REFUSED)".into()))
        }
        other => {
            return Err(DnsError::Temporary(format!(
                "the server answered {other} ({})",
                u16::from(other)
            )))
        }
    }
    if message.truncated() {
        return Ok(Answer::Truncated);
    }
    collect(&message, qname, rtype, max_txt)
}

/// The message id of a reply, if it is long enough to have one.
pub fn reply_id(bytes: &[u8]) -> Option<u16> {
    be16(bytes, 0)
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(pair))
}

/// Checks the fixed header before hickory decodes the rest: the id, the
/// QR bit, and section counts that the message's length can hold (so
/// that no count makes the decoder reserve memory the bytes do not back).
fn check_header(bytes: &[u8], id: u16) -> Result<(), DnsError> {
    let malformed = |why: &str| DnsError::Temporary(format!("malformed reply: {why}"));
    if bytes.len() > usize::from(u16::MAX) {
        return Err(malformed("longer than 65535 bytes"));
    }
    let field = |at: usize| be16(bytes, at).ok_or_else(|| malformed("shorter than its header"));
    if field(0)? != id {
        return Err(DnsError::Temporary("the reply is not for our query".into()));
    }
    let flags = field(2)?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Temporary("the reply is not a response".into()));
    }
    let questions = usize::from(field(4)?);
    let records = usize::from(field(6)?) + usize::from(field(8)?) + usize::from(field(10)?);
    if questions > 1 {
        return Err(malformed("more than one question"));
    }
    if records > MAX_RECORDS {
        return Err(malformed("too many records"));
    }
    let body = bytes.len().saturating_sub(HEADER_LEN);
    if questions * MIN_QUESTION_LEN + records * MIN_RECORD_LEN > body {
        return Err(malformed("section counts larger than the message"));
    }
    Ok(())
}

fn collect(
    message: &Message,
    qname: Name,
    rtype: RecordType,
    max_txt: usize,
) -> Result<Answer, DnsError> {
    let answers = message.answers();
    let mut current = qname;
    let mut ttl = u32::MAX;
    let mut txt_bytes = 0usize;
    for _ in 0..=MAX_CNAME_CHAIN {
        let mut records = Vec::new();
        let mut least = ttl;
        for record in answers.iter().filter(|r| {
            r.dns_class() == DNSClass::IN && r.record_type() == rtype.wire() && r.name() == &current
        }) {
            if let Some(found) = convert(record.data(), &mut txt_bytes, max_txt)? {
                least = least.min(record.ttl());
                records.push(found);
            }
        }
        if !records.is_empty() {
            return Ok(Answer::Records {
                records,
                ttl: least,
            });
        }
        let alias = answers.iter().find_map(|r| match r.data() {
            RData::CNAME(target) if r.dns_class() == DNSClass::IN && r.name() == &current => {
                Some((target.0.clone(), r.ttl()))
            }
            _ => None,
        });
        match alias {
            Some((target, alias_ttl)) => {
                ttl = ttl.min(alias_ttl);
                current = target;
            }
            None => {
                return Ok(Answer::Records {
                    records: Vec::new(),
                    ttl: 0,
                })
            }
        }
    }
    Err(DnsError::Temporary(format!(
        "CNAME chain longer than {MAX_CNAME_CHAIN}"
    )))
}

fn convert(
    data: &RData,
    txt_bytes: &mut usize,
    max_txt: usize,
) -> Result<Option<Record>, DnsError> {
    Ok(match data {
        RData::A(a) => Some(Record::A(a.0)),
        RData::AAAA(aaaa) => Some(Record::Aaaa(aaaa.0)),
        RData::MX(mx) => Some(Record::Mx(Mx {
            preference: mx.preference(),
            exchange: text_name(mx.exchange()),
        })),
        RData::PTR(ptr) => Some(Record::Ptr(text_name(&ptr.0))),
        RData::TXT(txt) => {
            let mut joined = Vec::new();
            for part in txt.txt_data() {
                *txt_bytes = txt_bytes.saturating_add(part.len());
                if *txt_bytes > max_txt {
                    return Err(DnsError::Permanent(format!(
                        "TXT records longer than {max_txt} bytes"
                    )));
                }
                joined.extend_from_slice(part);
            }
            Some(Record::Txt(String::from_utf8_lossy(&joined).into_owned()))
        }
        _ => None,
    })
}

/// A domain name in our text form: lower-case ASCII (odd bytes escaped
/// the master-file way), no trailing dot, `""` for the root.
fn text_name(name: &Name) -> String {
    let mut text = name.to_lowercase().to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// Parses a name given by the caller into a fully-qualified, lower-case
/// wire name, with the limits of [`normalize`].
fn wire_name(name: &str) -> Result<Name, DnsError> {
    let invalid = |why: String| DnsError::Permanent(format!("invalid domain name {name:?}: {why}"));
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(invalid("empty".into()));
    }
    if trimmed.len() > MAX_NAME_LEN {
        return Err(invalid(format!("longer than {MAX_NAME_LEN} characters")));
    }
    let parsed = if trimmed.is_ascii() {
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(invalid(format!("character {bad:?}")));
        }
        Name::from_ascii(trimmed)
    } else {
        Name::from_utf8(trimmed)
    };
    let mut parsed = parsed.map_err(|e| invalid(e.to_string()))?.to_lowercase();
    parsed.set_fqdn(true);
    let mut wire_len = 1usize;
    for label in parsed.iter() {
        if label.is_empty() {
            return Err(invalid("empty label".into()));
        }
        wire_len += 1 + label.len();
    }
    if parsed.is_root() {
        return Err(invalid("the root".into()));
    }
    if wire_len > MAX_WIRE_NAME_LEN {
        return Err(invalid(format!("longer than {MAX_WIRE_NAME_LEN} bytes")));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
    use hickory_proto::rr::Record as WireRecord;
    use proptest::prelude::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    /// A reply to `query(id, qname, rtype)` built the way a server would.
    fn reply(id: u16, qname: &str, rtype: RecordType) -> Message {
        let mut m = Message::response(id, OpCode::Query);
        m.set_recursion_desired(true);
        m.set_recursion_available(true);
        m.add_query(Query::query(name(qname), rtype.wire()));
        m
    }

    fn bytes(m: &Message) -> Vec<u8> {
        m.to_vec().expect("encode")
    }

    #[test]
    fn a_query_asks_one_question_with_recursion_and_edns() {
        let q = query(0xbeef, "Example.COM.", RecordType::Mx).expect("query");
        let m = Message::from_vec(&q).expect("decodes");
        assert_eq!(m.id(), 0xbeef);
        assert_eq!(m.message_type(), MessageType::Query);
        assert!(m.recursion_desired());
        assert_eq!(m.queries().len(), 1);
        let question = m.queries().first().expect("question");
        assert_eq!(question.name().to_ascii(), "example.com.");
        assert_eq!(question.query_type(), WireType::MX);
        assert_eq!(question.query_class(), DNSClass::IN);
        assert_eq!(m.max_payload(), UDP_PAYLOAD);
    }

    #[test]
    fn names_are_normalised_and_bad_ones_refused() {
        assert_eq!(
            normalize("Mail.Example.COM.").as_deref(),
            Ok("mail.example.com")
        );
        assert_eq!(
            normalize("_dmarc.Example.com").as_deref(),
            Ok("_dmarc.example.com")
        );
        assert_eq!(
            normalize("bücher.example").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        for bad in [
            "",
            ".",
            "a..b",
            "has space.example",
            "semi;colon.example",
            "back\\slash.example",
            &"a".repeat(64),
            &format!("{}.example", "a".repeat(64)),
            &["abcdefghi"; 26].join("."),
        ] {
            let got = normalize(bad);
            assert!(
                matches!(got, Err(DnsError::Permanent(_))),
                "{bad:?} gave {got:?}"
            );
        }
        // 253 characters is the limit, without the trailing dot.
        let longest = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(normalize(&longest).is_ok());
        assert!(normalize(&format!("a{longest}")).is_err());
    }

    #[test]
    fn mx_records_are_read_and_a_null_mx_is_the_empty_name() {
        let mut m = reply(7, "example.com.", RecordType::Mx);
        m.add_answer(WireRecord::from_rdata(
            name("example.com."),
            300,
            RData::MX(MX::new(10, name("MX1.Example.com."))),
        ));
        m.add_answer(WireRecord::from_rdata(
            name("example.com."),
            120,
            RData::MX(MX::new(0, Name::root())),
        ));
        let got = answer(&bytes(&m), 7, "example.com", RecordType::Mx);
        assert_eq!(
            got,
            Ok(Answer::Records {
                records: vec![
                    Record::Mx(Mx {
                        preference: 10,
                        exchange: "mx1.example.com".into()
                    }),
                    Record::Mx(Mx {
                        preference: 0,
                        exchange: String::new()
                    }),
                ],
                ttl: 120
            })
        );
    }

    #[test]
    fn cname_chains_are_followed_and_bounded() {
        let mut m = reply(9, "www.example.com.", RecordType::A);
        m.add_answer(WireRecord::from_rdata(
            name("www.example.com."),
            50,
            RData::CNAME(CNAME(name("web.example.net."))),
        ));
        m.add_answer(WireRecord::from_rdata(
            name("web.example.net."),
            600,
            RData::CNAME(CNAME(name("host.example.org."))),
        ));
        m.add_answer(WireRecord::from_rdata(
            name("host.example.org."),
            900,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        // A record for another name is not ours.
        m.add_answer(WireRecord::from_rdata(
            name("other.example.org."),
            900,
            RData::A(A::new(192, 0, 2, 99)),
        ));
        assert_eq!(
            answer(&bytes(&m), 9, "WWW.example.com", RecordType::A),
            Ok(Answer::Records {
                records: vec![Record::A(Ipv4Addr::new(192, 0, 2, 1))],
                ttl: 50
            })
        );

        // A loop never ends in records.
        let mut looped = reply(9, "a.example.", RecordType::A);
        looped.add_answer(WireRecord::from_rdata(
            name("a.example."),
            50,
            RData::CNAME(CNAME(name("b.example."))),
        ));
        looped.add_answer(WireRecord::from_rdata(
            name("b.example."),
            50,
            RData::CNAME(CNAME(name("a.example."))),
        ));
        assert!(matches!(
            answer(&bytes(&looped), 9, "a.example", RecordType::A),
            Err(DnsError::Temporary(_))
        ));

        // A chain of exactly MAX_CNAME_CHAIN links is fine.
        let mut long = reply(9, "n0.example.", RecordType::A);
        for i in 0..MAX_CNAME_CHAIN {
            long.add_answer(WireRecord::from_rdata(
                name(&format!("n{i}.example.")),
                50,
                RData::CNAME(CNAME(name(&format!("n{}.example.", i + 1)))),
            ));
        }
        long.add_answer(WireRecord::from_rdata(
            name(&format!("n{MAX_CNAME_CHAIN}.example.")),
            50,
            RData::A(A::new(192, 0, 2, 3)),
        ));
        assert!(matches!(
            answer(&bytes(&long), 9, "n0.example", RecordType::A),
            Ok(Answer::Records { records, .. }) if records.len() == 1
        ));
    }

    #[test]
    fn nodata_is_an_empty_answer() {
        let mut m = reply(1, "example.com.", RecordType::Aaaa);
        m.add_name_server(WireRecord::from_rdata(
            name("example.com."),
            3600,
            RData::SOA(SOA::new(
                name("ns.example.com."),
                name("hostmaster.example.com."),
                1,
                3600,
                600,
                86400,
                300,
            )),
        ));
        assert_eq!(
            answer(&bytes(&m), 1, "example.com", RecordType::Aaaa),
            Ok(Answer::Records {
                records: vec![],
                ttl: 0
            })
        );
    }

    #[test]
    fn response_codes_and_truncation() {
        let with_code = |code: ResponseCode| {
            let mut m = reply(3, "example.com.", RecordType::Mx);
            m.set_response_code(code);
            answer(&bytes(&m), 3, "example.com", RecordType::Mx)
        };
        assert_eq!(with_code(ResponseCode::NXDomain), Err(DnsError::NxDomain));
        for code in [
            ResponseCode::ServFail,
            ResponseCode::Refused,
            ResponseCode::FormErr,
            ResponseCode::NotImp,
        ] {
            assert!(
                matches!(with_code(code), Err(DnsError::Temporary(_))),
                "{code:?}"
            );
        }
        let mut truncated = reply(3, "example.com.", RecordType::Txt);
        truncated.set_truncated(true);
        assert_eq!(
            answer(&bytes(&truncated), 3, "example.com", RecordType::Txt),
            Ok(Answer::Truncated)
        );
        // An error reply without the question is still understood.
        let mut bare = Message::response(4, OpCode::Query);
        bare.set_response_code(ResponseCode::ServFail);
        assert!(matches!(
            answer(&bytes(&bare), 4, "example.com", RecordType::Mx),
            Err(DnsError::Temporary(_))
        ));
    }

    #[test]
    fn replies_to_other_questions_are_refused() {
        let mut m = reply(5, "example.com.", RecordType::Mx);
        m.add_answer(WireRecord::from_rdata(
            name("example.com."),
            300,
            RData::MX(MX::new(10, name("mx.example.com."))),
        ));
        let wire = bytes(&m);
        assert!(answer(&wire, 5, "example.com", RecordType::Mx).is_ok());
        for (id, qname, rtype) in [
            (6, "example.com", RecordType::Mx),
            (5, "example.org", RecordType::Mx),
            (5, "example.com", RecordType::Txt),
        ] {
            assert!(
                matches!(answer(&wire, id, qname, rtype), Err(DnsError::Temporary(_))),
                "{id} {qname} {rtype}"
            );
        }
        // Our own query is not a reply.
        let q = query(5, "example.com", RecordType::Mx).expect("query");
        assert!(matches!(
            answer(&q, 5, "example.com", RecordType::Mx),
            Err(DnsError::Temporary(_))
        ));
        // No question in a NOERROR reply.
        let empty = Message::response(5, OpCode::Query);
        assert!(answer(&bytes(&empty), 5, "example.com", RecordType::Mx).is_err());
    }

    #[test]
    fn counts_the_bytes_cannot_hold_are_refused_before_decoding() {
        // id 1, QR, one question, 65535 answers, in 17 bytes.
        let mut forged = vec![0, 1, 0x80, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0];
        forged.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(matches!(
            answer(&forged, 1, "example.com", RecordType::A),
            Err(DnsError::Temporary(e)) if e.contains("too many")
        ));
        let short = [0u8, 1, 0x80];
        assert!(answer(&short, 1, "example.com", RecordType::A).is_err());
        assert_eq!(reply_id(&short), Some(1));
        assert_eq!(reply_id(&[7]), None);
    }

    #[test]
    fn txt_strings_are_joined_and_limited() {
        let mut m = reply(2, "example.com.", RecordType::Txt);
        m.add_answer(WireRecord::from_rdata(
            name("example.com."),
            60,
            RData::TXT(TXT::new(vec!["v=spf1 ".into(), "-all".into()])),
        ));
        m.add_answer(WireRecord::from_rdata(
            name("example.com."),
            60,
            RData::TXT(TXT::from_bytes(vec![b"bad \xff byte"])),
        ));
        assert_eq!(
            answer(&bytes(&m), 2, "example.com", RecordType::Txt),
            Ok(Answer::Records {
                records: vec![
                    Record::Txt("v=spf1 -all".into()),
                    Record::Txt("bad \u{fffd} byte".into())
                ],
                ttl: 60
            })
        );
        // 5 records of 250 bytes: over a limit of 1000.
        let mut big = reply(2, "example.com.", RecordType::Txt);
        for _ in 0..5 {
            big.add_answer(WireRecord::from_rdata(
                name("example.com."),
                60,
                RData::TXT(TXT::new(vec!["x".repeat(250)])),
            ));
        }
        let big = bytes(&big);
        assert!(matches!(
            answer_within(&big, 2, "example.com", RecordType::Txt, 1000),
            Err(DnsError::Permanent(_))
        ));
        assert!(answer_within(&big, 2, "example.com", RecordType::Txt, 1250).is_ok());
        assert!(answer(&big, 2, "example.com", RecordType::Txt).is_ok());
    }

    fn any_rtype() -> impl Strategy<Value = RecordType> {
        prop_oneof![
            Just(RecordType::A),
            Just(RecordType::Aaaa),
            Just(RecordType::Mx),
            Just(RecordType::Txt),
            Just(RecordType::Ptr),
        ]
    }

    /// Host names the way they appear in MX records.
    fn any_host() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", 1..5)
            .prop_map(|labels| labels.join("."))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            id in any::<u16>(),
            rtype in any_rtype(),
        ) {
            let _ = answer(&data, id, "example.com", rtype);
            let _ = reply_id(&data);
        }

        #[test]
        fn a_valid_header_then_arbitrary_bytes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            counts in proptest::array::uniform4(0u16..6),
            id in any::<u16>(),
            rtype in any_rtype(),
        ) {
            let mut data = id.to_be_bytes().to_vec();
            data.extend_from_slice(&[0x81, 0x80]);
            for c in counts {
                data.extend_from_slice(&c.to_be_bytes());
            }
            data.extend_from_slice(&tail);
            let _ = answer(&data, id, "example.com", rtype);
        }

        #[test]
        fn mangled_replies_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            id in any::<u16>(),
        ) {
            let mut m = reply(id, "example.com.", RecordType::Mx);
            m.add_answer(WireRecord::from_rdata(
                name("example.com."),
                300,
                RData::MX(MX::new(10, name("mx.example.com."))),
            ));
            m.add_answer(WireRecord::from_rdata(
                name("example.com."),
                300,
                RData::CNAME(CNAME(name("mx.example.com."))),
            ));
            let mut data = bytes(&m);
            for (at, byte) in edits {
                let len = data.len();
                if let Some(b) = data.get_mut(at % len) {
                    *b = byte;
                }
            }
            let _ = answer(&data, id, "example.com", RecordType::Mx);
        }

        #[test]
        fn mx_round_trip(
            id in any::<u16>(),
            domain in any_host(),
            mxs in proptest::collection::vec((any::<u16>(), any_host(), 0u32..1_000_000), 0..20),
        ) {
            let mut m = reply(id, &format!("{domain}."), RecordType::Mx);
            for (preference, exchange, ttl) in &mxs {
                m.add_answer(WireRecord::from_rdata(
                    name(&format!("{domain}.")),
                    *ttl,
                    RData::MX(MX::new(*preference, name(&format!("{exchange}.")))),
                ));
            }
            let want = mxs
                .iter()
                .map(|(preference, exchange, _)| Record::Mx(Mx {
                    preference: *preference,
                    exchange: exchange.clone(),
                }))
                .collect::<Vec<_>>();
            let ttl = if mxs.is_empty() { 0 } else { mxs.iter().map(|m| m.2).min().unwrap_or(0) };
            prop_assert_eq!(
                answer(&bytes(&m), id, &domain.to_uppercase(), RecordType::Mx),
                Ok(Answer::Records { records: want, ttl })
            );
        }

        #[test]
        fn address_round_trip(
            id in any::<u16>(),
            host in any_host(),
            v4 in proptest::collection::vec(any::<[u8; 4]>(), 1..20),
            v6 in proptest::collection::vec(any::<[u8; 16]>(), 1..20),
        ) {
            let mut a = reply(id, &format!("{host}."), RecordType::A);
            for ip in &v4 {
                a.add_answer(WireRecord::from_rdata(
                    name(&format!("{host}.")), 60, RData::A(A::from(Ipv4Addr::from(*ip)))));
            }
            // The AAAA records in an A answer are ignored.
            for ip in &v6 {
                a.add_answer(WireRecord::from_rdata(
                    name(&format!("{host}.")), 60, RData::AAAA(AAAA::from(Ipv6Addr::from(*ip)))));
            }
            let want = v4.iter().map(|ip| Record::A(Ipv4Addr::from(*ip))).collect::<Vec<_>>();
            prop_assert_eq!(
                answer(&bytes(&a), id, &host, RecordType::A),
                Ok(Answer::Records { records: want, ttl: 60 })
            );
            let mut aaaa = reply(id, &format!("{host}."), RecordType::Aaaa);
            for ip in &v6 {
                aaaa.add_answer(WireRecord::from_rdata(
                    name(&format!("{host}.")), 30, RData::AAAA(AAAA::from(Ipv6Addr::from(*ip)))));
            }
            let want = v6.iter().map(|ip| Record::Aaaa(Ipv6Addr::from(*ip))).collect::<Vec<_>>();
            prop_assert_eq!(
                answer(&bytes(&aaaa), id, &host, RecordType::Aaaa),
                Ok(Answer::Records { records: want, ttl: 30 })
            );
        }

        #[test]
        fn txt_round_trip(
            id in any::<u16>(),
            host in any_host(),
            txts in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..255), 1..4),
                1..6,
            ),
        ) {
            let mut m = reply(id, &format!("{host}."), RecordType::Txt);
            for strings in &txts {
                m.add_answer(WireRecord::from_rdata(
                    name(&format!("{host}.")),
                    3600,
                    RData::TXT(TXT::from_bytes(strings.iter().map(|s| s.as_slice()).collect())),
                ));
            }
            let want = txts
                .iter()
                .map(|strings| Record::Txt(String::from_utf8_lossy(&strings.concat()).into_owned()))
                .collect::<Vec<_>>();
            prop_assert_eq!(
                answer(&bytes(&m), id, &host, RecordType::Txt),
                Ok(Answer::Records { records: want, ttl: 3600 })
            );
        }
    }
}

//! The `Authentication-Results:` header field (RFC 8601): one result per
//! line, folded with a tab. Values that came from outside (addresses,
//! domains, selectors) are written as a token when they are one, else as
//! a quoted-string, without control characters and at most 255 characters
//! long; comments hold only our own words.

use std::net::IpAddr;

use super::verify::{MessageOutcome, Verdict};
use super::{DmarcAction, SpfOutcome};

/// Whose SPF identity was checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpfIdentity<'a> {
    /// The MAIL FROM address.
    MailFrom(&'a str),
    /// The HELO name (null reverse path).
    Helo(&'a str),
}

/// Everything the header says.
pub(crate) struct Report<'a> {
    pub(crate) hostname: &'a str,
    pub(crate) client_ip: IpAddr,
    pub(crate) spf: SpfOutcome,
    pub(crate) spf_reason: Option<&'static str>,
    pub(crate) identity: SpfIdentity<'a>,
    pub(crate) message: &'a MessageOutcome,
}

/// Longest value written (longer ones are cut).
const VALUE_MAX: usize = 255;

/// The header field, ending in CRLF.
pub(crate) fn header(r: &Report<'_>) -> String {
    let mut h = String::with_capacity(256);
    h.push_str("Authentication-Results: ");
    h.push_str(&value(r.hostname));

    h.push_str(";\r\n\tspf=");
    h.push_str(r.spf.as_str());
    comment(&mut h, r.spf_reason);
    match r.identity {
        SpfIdentity::MailFrom(address) => property(&mut h, "smtp.mailfrom", address),
        SpfIdentity::Helo(name) => property(&mut h, "smtp.helo", name),
    }

    for dkim in &r.message.dkim {
        h.push_str(";\r\n\tdkim=");
        h.push_str(dkim.verdict.as_str());
        comment(&mut h, dkim.reason);
        if !dkim.domain.is_empty() {
            property(&mut h, "header.d", &dkim.domain);
            property(&mut h, "header.s", &dkim.selector);
            if !dkim.b.is_empty() {
                property(&mut h, "header.b", &dkim.b);
            }
        }
    }

    let dmarc = &r.message.dmarc;
    h.push_str(";\r\n\tdmarc=");
    h.push_str(dmarc.verdict.as_str());
    if let Some(policy) = dmarc.policy {
        h.push_str(&format!(
            " (p={policy} dis={})",
            match dmarc.action {
                DmarcAction::None => "none",
                DmarcAction::Quarantine => "quarantine",
                DmarcAction::Reject => "reject",
            }
        ));
    }
    if !dmarc.from_domain.is_empty() {
        property(&mut h, "header.from", &dmarc.from_domain);
    }
    if let Some(policy) = dmarc.policy {
        property(&mut h, "policy.dmarc", &policy.to_string());
    }

    let arc = &r.message.arc;
    h.push_str(";\r\n\tarc=");
    h.push_str(arc.verdict.as_str());
    comment(&mut h, arc.reason);
    if arc.verdict != Verdict::None {
        property(&mut h, "smtp.remote-ip", &r.client_ip.to_string());
    }
    h.push_str("\r\n");
    h
}

fn comment(h: &mut String, reason: Option<&'static str>) {
    if let Some(reason) = reason {
        h.push_str(" (");
        h.push_str(reason);
        h.push(')');
    }
}

fn property(h: &mut String, name: &str, v: &str) {
    h.push(' ');
    h.push_str(name);
    h.push('=');
    h.push_str(&pvalue(v));
}

/// `s` without control characters, cut to [`VALUE_MAX`] characters.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(VALUE_MAX)
        .collect()
}

/// An RFC 2045 token character.
fn token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// A dot-atom character (RFC 5322 atext and ".").
fn atom_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// RFC 8601 `value`: a token or a quoted-string.
pub(crate) fn value(s: &str) -> String {
    let s = clean(s);
    if !s.is_empty() && s.chars().all(token_char) {
        s
    } else {
        quoted(&s)
    }
}

/// RFC 8601 `pvalue`: a value, or `[local-part] "@" domain-name` as is.
pub(crate) fn pvalue(s: &str) -> String {
    let s = clean(s);
    if let Some((local, domain)) = s.rsplit_once('@') {
        if local.chars().all(atom_char) && !domain.is_empty() && domain.chars().all(token_char) {
            return s;
        }
    }
    value(&s)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use mail_auth::dmarc::Policy;

    use super::*;
    use crate::authenticity::verify::{ArcSummary, DkimSummary, DmarcSummary};

    #[test]
    fn values_are_tokens_or_quoted() {
        assert_eq!(value("mx.cairn.test"), "mx.cairn.test");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value("x\r\nInjected: yes"), "\"xInjected: yes\"");
        assert_eq!(value("q\"\\"), "\"q\\\"\\\\\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(pvalue("alice@good.test"), "alice@good.test");
        assert_eq!(pvalue("@good.test"), "@good.test");
        assert_eq!(pvalue("a+b=c@good.test"), "a+b=c@good.test");
        assert_eq!(pvalue("x;y@good.test"), "\"x;y@good.test\"");
        assert_eq!(pvalue("AbC/+x=="), "\"AbC/+x==\"");
        assert_eq!(pvalue("2001:db8::1"), "\"2001:db8::1\"");
        assert_eq!(pvalue(&"a".repeat(400)).len(), 255);
    }

    #[test]
    fn the_header_lists_every_method() {
        let message = MessageOutcome {
            dkim: vec![
                DkimSummary {
                    verdict: Verdict::Pass,
                    reason: None,
                    domain: "good.test".into(),
                    selector: "sel".into(),
                    b: "AbCdEf+/0123".into(),
                },
                DkimSummary {
                    verdict: Verdict::Fail,
                    reason: Some("body hash did not verify"),
                    domain: "other.test".into(),
                    selector: "s2".into(),
                    b: "xyz".into(),
                },
            ],
            arc: ArcSummary {
                verdict: Verdict::None,
                reason: None,
            },
            dmarc: DmarcSummary {
                verdict: Verdict::Pass,
                from_domain: "good.test".into(),
                policy: Some(Policy::Reject),
                action: DmarcAction::None,
            },
            misses: BTreeSet::new(),
        };
        let h = header(&Report {
            hostname: "mx.cairn.test",
            client_ip: "127.0.0.1".parse().expect("ip"),
            spf: SpfOutcome::Pass,
            spf_reason: None,
            identity: SpfIdentity::MailFrom("alice@good.test"),
            message: &message,
        });
        assert_eq!(
            h,
            "Authentication-Results: mx.cairn.test;\r\n\
             \tspf=pass smtp.mailfrom=alice@good.test;\r\n\
             \tdkim=pass header.d=good.test header.s=sel header.b=\"AbCdEf+/0123\";\r\n\
             \tdkim=fail (body hash did not verify) header.d=other.test header.s=s2 header.b=xyz;\r\n\
             \tdmarc=pass (p=reject dis=none) header.from=good.test policy.dmarc=reject;\r\n\
             \tarc=none\r\n"
        );
    }
}

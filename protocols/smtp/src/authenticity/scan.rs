//! A quick look at the start of the header section, on the shard, before
//! the blocking pool parses the whole message: the DKIM and ARC key names
//! and the From domain, so that their DNS lookups start at once, beside
//! SPF's. Only hints: whatever this misses, the verification rounds ask
//! for (see [`super::store`]).

use mail_auth::common::verify::VerifySignature;
use mail_parser::{Address, HeaderValue};

use super::store::fqdn;

/// How much of the message is looked at.
pub(crate) const SCAN_LIMIT: usize = 64 * 1024;
/// Key names collected at most.
pub(crate) const MAX_KEYS: usize = 8;

/// What the header section says is worth resolving early.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    /// `selector._domainkey.domain.` of DKIM signatures, ARC message
    /// signatures and seals, in order, without repeats.
    pub(crate) keys: Vec<String>,
    /// The domain of the From address(es), when there is exactly one.
    pub(crate) from_domain: Option<String>,
}

/// The hints of `message`'s first [`SCAN_LIMIT`] bytes.
pub(crate) fn hints(message: &[u8]) -> Hints {
    let head = message
        .get(..message.len().min(SCAN_LIMIT))
        .unwrap_or_default();
    let mut hints = Hints::default();
    let mut from_domains: Vec<String> = Vec::new();
    for (name, value) in fields(head) {
        let key = if name.eq_ignore_ascii_case(b"DKIM-Signature") {
            mail_auth::dkim::Signature::parse(value)
                .ok()
                .map(|s| s.domain_key())
        } else if name.eq_ignore_ascii_case(b"ARC-Message-Signature") {
            mail_auth::arc::Signature::parse(value)
                .ok()
                .map(|s| s.domain_key())
        } else if name.eq_ignore_ascii_case(b"ARC-Seal") {
            mail_auth::arc::Seal::parse(value)
                .ok()
                .map(|s| s.domain_key())
        } else {
            if name.eq_ignore_ascii_case(b"From") {
                from_domains.extend(address_domains(value));
            }
            None
        };
        if let Some(key) = key {
            let key = fqdn(&key);
            if hints.keys.len() < MAX_KEYS && !hints.keys.contains(&key) {
                hints.keys.push(key);
            }
        }
    }
    from_domains.sort();
    from_domains.dedup();
    if from_domains.len() == 1 {
        hints.from_domain = from_domains.pop();
    }
    hints
}

/// The domains of the addresses in a From field's value, lower-case.
fn address_domains(value: &[u8]) -> Vec<String> {
    let parsed = mail_parser::parsers::MessageStream::new(value).parse_address();
    let addresses: Vec<String> = match &parsed {
        HeaderValue::Address(Address::List(list)) => list
            .iter()
            .filter_map(|a| a.address.as_ref().map(|a| a.to_lowercase()))
            .collect(),
        HeaderValue::Address(Address::Group(groups)) => groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .filter_map(|a| a.address.as_ref().map(|a| a.to_lowercase()))
            .collect(),
        _ => Vec::new(),
    };
    addresses
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_string()))
        .filter(|d| !d.is_empty())
        .collect()
}

/// The header fields of `head` as (name, raw value with its folds and
/// line end), up to the empty line; a field cut off by the end of `head`
/// is left out.
fn fields(head: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    // (start of the field, position of its colon) of the field being read.
    let mut current: Option<(usize, usize)> = None;
    let mut pos = 0;
    while let Some(rest) = head.get(pos..) {
        let Some(newline) = memchr::memchr(b'\n', rest) else {
            // A line cut off: the field before it is whole if this one
            // does not continue it.
            if !matches!(rest.first(), None | Some(b' ' | b'\t')) {
                push(&mut out, head, current.take(), pos);
            }
            break;
        };
        let end = pos + newline + 1;
        let line = head.get(pos..end).unwrap_or_default();
        let folded = matches!(line.first(), Some(b' ' | b'\t'));
        if !folded {
            push(&mut out, head, current.take(), pos);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            current = memchr::memchr(b':', line).map(|colon| (pos, pos + colon));
        }
        pos = end;
    }
    out
}

/// Adds the field at `field` (its start and colon) that ends at `end`.
fn push<'a>(
    out: &mut Vec<(&'a [u8], &'a [u8])>,
    head: &'a [u8],
    field: Option<(usize, usize)>,
    end: usize,
) {
    if let Some((start, colon)) = field {
        if let (Some(name), Some(value)) = (head.get(start..colon), head.get(colon + 1..end)) {
            out.push((trim(name), value));
        }
    }
}

fn trim(name: &[u8]) -> &[u8] {
    let end = name
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    name.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_split_unfolded_and_end_at_the_body() {
        let head = b"From: a@b.test\r\nDKIM-Signature: v=1;\r\n\t d=b.test\r\nX : y\r\n\r\nNot: a header\r\n";
        let f = fields(head);
        assert_eq!(
            f,
            vec![
                (&b"From"[..], &b" a@b.test\r\n"[..]),
                (&b"DKIM-Signature"[..], &b" v=1;\r\n\t d=b.test\r\n"[..]),
                (&b"X"[..], &b" y\r\n"[..]),
            ]
        );
        // Cut off: the last field is left out; no colon: skipped.
        assert_eq!(fields(b"A: 1\nB: 2"), vec![(&b"A"[..], &b" 1\n"[..])]);
        assert_eq!(
            fields(b"garbage\nA: 1\n\n"),
            vec![(&b"A"[..], &b" 1\n"[..])]
        );
        assert!(fields(b"").is_empty());
    }

    #[test]
    fn hints_name_the_keys_and_the_from_domain() {
        let message = concat!(
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=Good.Test;\r\n",
            " s=Sel; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n",
            " b=dGVzdA==\r\n",
            "From: \"Alice\" <Alice@Good.Test>\r\n",
            "Subject: hi\r\n",
            "\r\n",
            "DKIM-Signature: v=1; d=body.test; s=x\r\n",
        );
        let found = hints(message.as_bytes());
        assert_eq!(found.keys, vec!["sel._domainkey.good.test.".to_string()]);
        assert_eq!(found.from_domain.as_deref(), Some("good.test"));

        let two = hints(b"From: a@one.test, b@two.test\r\n\r\n");
        assert_eq!(two.from_domain, None);
        assert_eq!(hints(b"\xff\xfe: \x00\r\n").keys.len(), 0);
    }
}

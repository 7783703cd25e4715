//! A lenient RFC 5322 address-list parser over raw (unfolded) header
//! values, keeping display names as written (encoded-words intact), as
//! the IMAP ENVELOPE wants. Groups come out as RFC 9051 §7.5.2 says: a
//! start marker (name = NIL, mailbox = group name, host = NIL), the
//! members, an end marker (all NIL).

/// One entry of an address list, raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawAddress {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

/// The host written for an address without a domain (as Dovecot does).
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom or a quoted string's content.
    Word(Vec<u8>),
    /// One of `< > @ , ; : .`
    Special(u8),
}

/// Parses an unfolded address-list value.
pub(crate) fn parse_list(value: &[u8]) -> Vec<RawAddress> {
    let tokens = tokenize(value);
    let mut out = Vec::new();
    let mut item: Vec<Token> = Vec::new();
    let mut in_group = false;
    let mut in_angle = false;
    for token in tokens {
        match token {
            Token::Special(b'<') => in_angle = true,
            Token::Special(b'>') => in_angle = false,
            Token::Special(b':') if !in_angle && !in_group => {
                out.push(RawAddress {
                    mailbox: Some(phrase(&item).unwrap_or_default()),
                    ..RawAddress::default()
                });
                item.clear();
                in_group = true;
                continue;
            }
            Token::Special(b',') if !in_angle => {
                out.extend(address(&std::mem::take(&mut item)));
                continue;
            }
            Token::Special(b';') if !in_angle && in_group => {
                out.extend(address(&std::mem::take(&mut item)));
                out.push(RawAddress::default());
                in_group = false;
                continue;
            }
            _ => {}
        }
        item.push(token);
    }
    out.extend(address(&item));
    if in_group {
        out.push(RawAddress::default());
    }
    out
}

/// One mailbox (`phrase <route:local@domain>` or `local@domain`).
fn address(tokens: &[Token]) -> Option<RawAddress> {
    let open = tokens.iter().position(|t| *t == Token::Special(b'<'));
    let (name, spec) = match open {
        Some(at) => {
            let inner = tokens.get(at + 1..).unwrap_or_default();
            let close = inner
                .iter()
                .position(|t| *t == Token::Special(b'>'))
                .unwrap_or(inner.len());
            (
                phrase(tokens.get(..at).unwrap_or_default()),
                inner.get(..close).unwrap_or_default(),
            )
        }
        None => (None, tokens),
    };
    let (adl, spec) = route(spec);
    if spec.is_empty() && name.is_none() {
        return None;
    }
    let at = spec.iter().rposition(|t| *t == Token::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (
            spec.get(..at).unwrap_or_default(),
            Some(spec.get(at + 1..).unwrap_or_default()),
        ),
        None => (spec, None),
    };
    let host = match domain.map(concat) {
        Some(host) if !host.is_empty() => host,
        _ => MISSING_DOMAIN.to_vec(),
    };
    Some(RawAddress {
        name,
        adl,
        mailbox: Some(concat(local)),
        host: Some(host),
    })
}

/// Splits an obsolete source route (`@a,@b:`) off an angle address.
fn route(spec: &[Token]) -> (Option<Vec<u8>>, &[Token]) {
    if spec.first() != Some(&Token::Special(b'@')) {
        return (None, spec);
    }
    match spec.iter().position(|t| *t == Token::Special(b':')) {
        Some(colon) => (
            Some(concat(spec.get(..colon).unwrap_or_default())),
            spec.get(colon + 1..).unwrap_or_default(),
        ),
        None => (None, spec),
    }
}

/// Words joined by single spaces (a display name or group name).
fn phrase(tokens: &[Token]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for token in tokens {
        let text = match token {
            Token::Word(text) => text.as_slice(),
            Token::Special(b) => std::slice::from_ref(b),
        };
        if !out.is_empty() && !matches!(token, Token::Special(b'.')) {
            out.push(b' ');
        }
        out.extend_from_slice(text);
    }
    (!out.is_empty()).then_some(out)
}

/// Tokens joined without spaces (a local part, domain or route).
fn concat(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in tokens {
        match token {
            Token::Word(text) => out.extend_from_slice(text),
            Token::Special(b) => out.push(*b),
        }
    }
    out
}

fn tokenize(value: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&b) = value.get(at) {
        at = match b {
            b' ' | b'\t' | b'\r' | b'\n' => at + 1,
            b'(' => skip_comment(value, at),
            b'"' => {
                let (text, next) = quoted(value, at + 1);
                tokens.push(Token::Word(text));
                next
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                tokens.push(Token::Special(b));
                at + 1
            }
            _ => {
                let len = value
                    .get(at..)
                    .unwrap_or_default()
                    .iter()
                    .position(|c| b" \t\r\n()\"<>@,;:.".contains(c))
                    .unwrap_or(value.len() - at);
                tokens.push(Token::Word(
                    value.get(at..at + len).unwrap_or_default().to_vec(),
                ));
                at + len
            }
        };
    }
    tokens
}

/// The content of a quoted string starting after its opening quote, and
/// the position after its closing quote.
fn quoted(value: &[u8], mut at: usize) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    while let Some(&b) = value.get(at) {
        match b {
            b'"' => return (text, at + 1),
            b'\\' => {
                if let Some(&next) = value.get(at + 1) {
                    text.push(next);
                }
                at += 2;
            }
            _ => {
                text.push(b);
                at += 1;
            }
        }
    }
    (text, at)
}

/// The position after the (nested) comment starting at `at`.
fn skip_comment(value: &[u8], mut at: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&b) = value.get(at) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            b'\\' => at += 1,
            _ => {}
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: Option<&str>, mailbox: &str, host: &str) -> RawAddress {
        RawAddress {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: Some(mailbox.as_bytes().to_vec()),
            host: Some(host.as_bytes().to_vec()),
        }
    }

    #[test]
    fn plain_named_and_quoted_addresses() {
        let list = parse_list(
            br#"Terry Gray <gray@cac.washington.edu>, "Doe, John" (x) <j.doe@Example.COM>, bare@host"#,
        );
        assert_eq!(
            list,
            vec![
                addr(Some("Terry Gray"), "gray", "cac.washington.edu"),
                addr(Some("Doe, John"), "j.doe", "Example.COM"),
                addr(None, "bare", "host"),
            ]
        );
    }

    #[test]
    fn groups_have_start_and_end_markers() {
        let list = parse_list(b"Team: a@x, B <b@y>; c@z, undisclosed-recipients:;");
        let start = |n: &str| RawAddress {
            mailbox: Some(n.as_bytes().to_vec()),
            ..RawAddress::default()
        };
        assert_eq!(
            list,
            vec![
                start("Team"),
                addr(None, "a", "x"),
                addr(Some("B"), "b", "y"),
                RawAddress::default(),
                addr(None, "c", "z"),
                start("undisclosed-recipients"),
                RawAddress::default(),
            ]
        );
    }

    #[test]
    fn encoded_words_routes_and_missing_domains() {
        let list = parse_list(b"=?utf-8?q?J=C3=B6rg?= <@relay.example:jorg@example.org>, root");
        assert_eq!(list[0].name.as_deref(), Some(&b"=?utf-8?q?J=C3=B6rg?="[..]));
        assert_eq!(list[0].adl.as_deref(), Some(&b"@relay.example"[..]));
        assert_eq!(list[0].mailbox.as_deref(), Some(&b"jorg"[..]));
        assert_eq!(list[1], addr(None, "root", "MISSING_DOMAIN"));
        assert!(parse_list(b"").is_empty());
        assert!(parse_list(b" , ;:<>(unclosed").len() < 4);
    }
}

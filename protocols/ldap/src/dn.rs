//! Distinguished names (RFC 4514), by hand: parsing a client's DN into its
//! normalized RDNs (attribute types and values lowercased, escapes undone,
//! multi-valued RDNs sorted) for comparison, and escaping values when the
//! server writes DNs. Bounded: at most [`MAX_RDNS`] RDNs.

/// The most RDNs a DN may have.
pub const MAX_RDNS: usize = 64;

/// Why a DN does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(pub &'static str);

impl std::fmt::Display for DnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One attribute-value assertion of an RDN, as written (type lowercased,
/// value unescaped, case kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// A parsed DN: RDNs leaf first, each a list of AVAs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dn {
    pub rdns: Vec<Vec<Ava>>,
}

impl Dn {
    /// Parses `s`; the empty string is the root (no RDNs).
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let mut rdns = Vec::new();
        if s.trim().is_empty() {
            return Ok(Dn { rdns });
        }
        let mut chars = s.chars().peekable();
        let mut rdn = Vec::new();
        loop {
            // attribute type
            let mut attr = String::new();
            let mut found = false;
            for c in chars.by_ref() {
                if c == '=' {
                    found = true;
                    break;
                }
                attr.push(c);
            }
            if !found {
                return Err(DnError("an RDN is attr=value"));
            }
            let attr = attr.trim().to_ascii_lowercase();
            if attr.is_empty()
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(DnError("bad attribute type"));
            }
            // value
            let mut value = String::new();
            let mut trailing_space = 0usize;
            let mut leading = true;
            let mut end = None;
            while let Some(c) = chars.next() {
                match c {
                    ',' | ';' | '+' => {
                        end = Some(c);
                        break;
                    }
                    '\\' => {
                        let Some(n) = chars.next() else {
                            return Err(DnError("dangling escape"));
                        };
                        if n.is_ascii_hexdigit() {
                            let Some(m) = chars.next().filter(char::is_ascii_hexdigit) else {
                                return Err(DnError("bad hex escape"));
                            };
                            let mut bytes = vec![hex_pair(n, m)];
                            // A multi-byte UTF-8 character escaped byte by byte.
                            while bytes.len() < 4 && std::str::from_utf8(&bytes).is_err() {
                                if chars.next_if_eq(&'\\').is_none() {
                                    break;
                                }
                                let (Some(a), Some(b)) = (
                                    chars.next().filter(char::is_ascii_hexdigit),
                                    chars.next().filter(char::is_ascii_hexdigit),
                                ) else {
                                    return Err(DnError("bad hex escape"));
                                };
                                bytes.push(hex_pair(a, b));
                            }
                            let Ok(decoded) = std::str::from_utf8(&bytes) else {
                                return Err(DnError("escaped bytes are not UTF-8"));
                            };
                            value.push_str(decoded);
                        } else {
                            value.push(n);
                        }
                        trailing_space = 0;
                        leading = false;
                    }
                    '"' => return Err(DnError("quoted values are not supported")),
                    ' ' if leading => {}
                    ' ' => {
                        value.push(' ');
                        trailing_space += 1;
                    }
                    c => {
                        value.push(c);
                        trailing_space = 0;
                        leading = false;
                    }
                }
            }
            value.truncate(value.len() - trailing_space);
            rdn.push(Ava { attr, value });
            match end {
                Some('+') => continue,
                Some(_) => {
                    rdns.push(std::mem::take(&mut rdn));
                    if rdns.len() > MAX_RDNS {
                        return Err(DnError("too many RDNs"));
                    }
                }
                None => {
                    rdns.push(rdn);
                    break;
                }
            }
        }
        if rdns.len() > MAX_RDNS {
            return Err(DnError("too many RDNs"));
        }
        Ok(Dn { rdns })
    }

    /// The RDNs in normalized form (`attr=value`, lowercased, AVAs of a
    /// multi-valued RDN sorted and joined by `+`), leaf first.
    pub fn normalized(&self) -> Vec<String> {
        self.rdns.iter().map(|rdn| normalize_rdn(rdn)).collect()
    }
}

fn hex_pair(a: char, b: char) -> u8 {
    let v = |c: char| c.to_digit(16).unwrap_or(0) as u8;
    (v(a) << 4) | v(b)
}

/// One RDN in normalized form.
pub fn normalize_rdn(rdn: &[Ava]) -> String {
    let mut parts: Vec<String> = rdn
        .iter()
        .map(|a| format!("{}={}", a.attr, a.value.to_lowercase()))
        .collect();
    parts.sort();
    parts.join("+")
}

/// Normalizes a DN string for comparison; `None` if it does not parse.
pub fn normalize(s: &str) -> Option<Vec<String>> {
    Dn::parse(s).ok().map(|d| d.normalized())
}

/// Escapes an attribute value for use in a DN (RFC 4514 §2.4).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalizes() {
        let dn = Dn::parse("UID=Alice , ou=People,DC=example,dc=org").expect("parses");
        assert_eq!(
            dn.normalized(),
            vec!["uid=alice", "ou=people", "dc=example", "dc=org"]
        );
        assert_eq!(Dn::parse("").expect("root").rdns.len(), 0);
        let dn = Dn::parse(r"cn=a\,b\2Bc+uid=x,dc=org").expect("parses");
        assert_eq!(dn.normalized(), vec!["cn=a,b+c+uid=x", "dc=org"]);
        let dn = Dn::parse(r"cn=J\C3\BCrgen,dc=org").expect("utf-8 escape");
        assert_eq!(dn.rdns[0][0].value, "Jürgen");
        assert!(Dn::parse("nonsense").is_err());
        assert!(Dn::parse("=x").is_err());
        assert!(Dn::parse(r"cn=x\").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_value(" a,b#"), r"\ a\,b#");
        assert_eq!(escape_value("#x "), r"\#x\ ");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,64}") {
            let _ = Dn::parse(&s);
        }

        #[test]
        fn never_panics_on_dn_like(s in "([a-zA-Z]{1,3}=[a-z\\\\,+# =0-9A-F\"]{0,6}[,+;]?){0,6}") {
            let _ = Dn::parse(&s);
        }

        #[test]
        fn escaped_values_round_trip(v in "\\PC{1,24}") {
            let dn = format!("cn={},dc=org", escape_value(&v));
            let parsed = Dn::parse(&dn).expect("an escaped value parses");
            prop_assert_eq!(parsed.rdns.len(), 2);
            prop_assert_eq!(&parsed.rdns[0][0].value, &v);
        }
    }
}

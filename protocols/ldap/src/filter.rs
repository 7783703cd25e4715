//! Search filters (RFC 4511 §4.5.1.7, RFC 4515): checking a client's
//! filter against the limits, and evaluating it on an [`Entry`] with
//! three-valued logic. Attribute names match case-insensitively (with the
//! usual long names); values match case-insensitively (caseIgnoreMatch
//! for every attribute: they are all directory strings, addresses or DNs).
//! An attribute type this server does not know, or one with options,
//! makes its assertion Undefined, so neither it nor its negation matches.

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};

use crate::dit::{canonical, squash, Attr, Entry};

/// Whether a filter holds for an entry (RFC 4511 §4.5.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    Undefined,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

/// Why a filter is refused before it is evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    TooDeep { limit: usize },
    TooLarge { limit: usize },
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::TooDeep { limit } => {
                write!(f, "the filter is nested deeper than {limit} levels")
            }
            FilterError::TooLarge { limit } => {
                write!(f, "the filter has more than {limit} elements")
            }
        }
    }
}

/// The most elements (assertions and operators) a filter may have.
pub const MAX_FILTER_ELEMENTS: usize = 1024;

/// Refuses a filter nested deeper than `max_depth` or with more than
/// [`MAX_FILTER_ELEMENTS`] elements. Evaluation recurses, so this runs
/// first (the BER decoder already bounds the nesting it builds).
pub fn check(filter: &LdapFilter, max_depth: usize) -> Result<(), FilterError> {
    let mut elements = 0usize;
    // Iterative, so that the check itself cannot overflow the stack.
    let mut stack = vec![(filter, 1usize)];
    while let Some((f, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(FilterError::TooDeep { limit: max_depth });
        }
        elements += 1;
        if elements > MAX_FILTER_ELEMENTS {
            return Err(FilterError::TooLarge {
                limit: MAX_FILTER_ELEMENTS,
            });
        }
        match f {
            LdapFilter::And(v) | LdapFilter::Or(v) => {
                stack.extend(v.iter().map(|c| (c, depth + 1)));
            }
            LdapFilter::Not(inner) => stack.push((inner, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// A filter prepared for evaluation on many entries: attribute types
/// resolved to their canonical names and assertion values normalized the
/// way the entries' values are ([`Attr::lower`], [`Attr::squashed`]), once
/// per search, so that evaluating it on an entry never allocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiled {
    And(Vec<Compiled>),
    Or(Vec<Compiled>),
    Not(Box<Compiled>),
    /// Presence of a known attribute type.
    Present(&'static str),
    /// The value lowercased.
    Equality(&'static str, String),
    /// The value squashed.
    Approx(&'static str, String),
    /// The value lowercased.
    GreaterOrEqual(&'static str, String),
    /// The value lowercased.
    LessOrEqual(&'static str, String),
    /// The components lowercased.
    Substring(&'static str, LdapSubstringFilter),
    /// False on every entry (presence of an unknown attribute type).
    False,
    /// Undefined on every entry (an unknown attribute type in a value
    /// assertion, an extensible match).
    Undefined,
}

/// Prepares `filter` for evaluation. Run [`check`] first: this recurses.
pub fn compile(filter: &LdapFilter) -> Compiled {
    let assertion = |a: &str, make: &dyn Fn(&'static str) -> Compiled| match canonical(a) {
        Some(name) => make(name),
        None => Compiled::Undefined,
    };
    match filter {
        LdapFilter::And(v) => Compiled::And(v.iter().map(compile).collect()),
        LdapFilter::Or(v) => Compiled::Or(v.iter().map(compile).collect()),
        LdapFilter::Not(inner) => Compiled::Not(Box::new(compile(inner))),
        LdapFilter::Present(a) => match canonical(a) {
            Some(name) => Compiled::Present(name),
            None => Compiled::False,
        },
        LdapFilter::Equality(a, v) => assertion(a, &|n| Compiled::Equality(n, v.to_lowercase())),
        LdapFilter::Approx(a, v) => assertion(a, &|n| Compiled::Approx(n, squash(v))),
        LdapFilter::GreaterOrEqual(a, v) => {
            assertion(a, &|n| Compiled::GreaterOrEqual(n, v.to_lowercase()))
        }
        LdapFilter::LessOrEqual(a, v) => {
            assertion(a, &|n| Compiled::LessOrEqual(n, v.to_lowercase()))
        }
        LdapFilter::Substring(a, sub) => {
            assertion(a, &|n| Compiled::Substring(n, lower_substring(sub)))
        }
        LdapFilter::Extensible(_) => Compiled::Undefined,
    }
}

/// Evaluates `filter` on `entry`. Run [`check`] first. For many entries,
/// [`compile`] once and use [`Compiled::eval`].
pub fn eval(filter: &LdapFilter, entry: &Entry) -> Tri {
    compile(filter).eval(entry)
}

impl Compiled {
    /// Whether this filter holds for `entry` (RFC 4511 §4.5.1.7).
    pub fn eval(&self, entry: &Entry) -> Tri {
        match self {
            Compiled::And(v) => {
                let mut out = Tri::True;
                for f in v {
                    match f.eval(entry) {
                        Tri::False => return Tri::False,
                        Tri::Undefined => out = Tri::Undefined,
                        Tri::True => {}
                    }
                }
                out
            }
            Compiled::Or(v) => {
                let mut out = Tri::False;
                for f in v {
                    match f.eval(entry) {
                        Tri::True => return Tri::True,
                        Tri::Undefined => out = Tri::Undefined,
                        Tri::False => {}
                    }
                }
                out
            }
            Compiled::Not(inner) => match inner.eval(entry) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Undefined => Tri::Undefined,
            },
            Compiled::Present(name) => entry.attr(name).is_some().into(),
            Compiled::Equality(name, v) => values(entry, name, |a| a.lower.iter().any(|x| x == v)),
            Compiled::Approx(name, v) => values(entry, name, |a| a.squashed.iter().any(|x| x == v)),
            Compiled::GreaterOrEqual(name, v) => values(entry, name, |a| {
                a.lower.iter().any(|x| x.as_str() >= v.as_str())
            }),
            Compiled::LessOrEqual(name, v) => values(entry, name, |a| {
                a.lower.iter().any(|x| x.as_str() <= v.as_str())
            }),
            Compiled::Substring(name, sub) => values(entry, name, |a| {
                a.lower.iter().any(|x| substring_matches(x, sub))
            }),
            Compiled::False => Tri::False,
            Compiled::Undefined => Tri::Undefined,
        }
    }
}

/// Applies `test` to attribute `name` (canonical) of `entry`: False if the
/// entry lacks it.
fn values(entry: &Entry, name: &str, test: impl Fn(&Attr) -> bool) -> Tri {
    match entry.attr(name) {
        Some(attr) => test(attr).into(),
        None => Tri::False,
    }
}

fn lower_substring(s: &LdapSubstringFilter) -> LdapSubstringFilter {
    LdapSubstringFilter {
        initial: s.initial.as_ref().map(|v| v.to_lowercase()),
        any: s.any.iter().map(|v| v.to_lowercase()).collect(),
        final_: s.final_.as_ref().map(|v| v.to_lowercase()),
    }
}

/// Whether `value` (lowercased) matches the substring assertion `sub`
/// (lowercased): initial, then each `any` in order, then final, none of
/// them overlapping.
pub fn substring_matches(value: &str, sub: &LdapSubstringFilter) -> bool {
    let mut rest = value;
    if let Some(initial) = &sub.initial {
        match rest.strip_prefix(initial.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    let mut tail_limit = rest.len();
    if let Some(fin) = &sub.final_ {
        if fin.len() > rest.len() || !rest.ends_with(fin.as_str()) {
            return false;
        }
        tail_limit = rest.len() - fin.len();
    }
    let Some(mut middle) = rest.get(..tail_limit) else {
        return false;
    };
    for any in &sub.any {
        match middle.find(any.as_str()) {
            Some(at) => match middle.get(at + any.len()..) {
                Some(r) => middle = r,
                None => return false,
            },
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dit::Dit;
    use cairn_storage::directory::{Account, AddressBook, Domain, Status};
    use proptest::prelude::*;

    fn alice() -> Entry {
        let book = AddressBook {
            generation: 1,
            domains: vec![Domain {
                name: "example.org".into(),
                alias_of: None,
                catch_all: None,
            }],
            accounts: vec![Account {
                address: "alice@example.org".into(),
                display_name: "Alice Liddell".into(),
                given_name: "Alice".into(),
                surname: "Liddell".into(),
                phone: "+1 555 0100".into(),
                password_hash: String::new(),
                status: Status::Active,
                quota_bytes: 0,
                class_of_service: None,
                shard: 0,
                aliases: vec!["al@example.org".into()],
            }],
            lists: vec![],
        };
        Dit::build(&book)
            .entries
            .into_iter()
            .find(|e| e.dn.starts_with("uid="))
            .expect("alice")
    }

    fn parse(s: &str) -> LdapFilter {
        ldap3_proto::parse_ldap_filter_str(s).expect("filter parses")
    }

    fn yes(f: &str) -> bool {
        eval(&parse(f), &alice()) == Tri::True
    }

    #[test]
    fn semantics() {
        assert!(yes("(objectClass=*)"));
        assert!(yes("(objectclass=INETORGPERSON)"));
        assert!(yes("(MAIL=Alice@Example.org)"));
        assert!(yes("(mail=al@example.org)"));
        assert!(yes("(cn=*lid*)"));
        assert!(yes("(commonName=alice*)"));
        assert!(yes("(sn=*dell)"));
        assert!(yes("(cn=a*e*l)"));
        assert!(!yes("(cn=a*z*l)"));
        let spaced = LdapFilter::Substring(
            "cn".into(),
            LdapSubstringFilter {
                initial: Some("alice liddellx".into()),
                any: vec![],
                final_: None,
            },
        );
        assert_eq!(eval(&spaced, &alice()), Tri::False);
        let spaced = LdapFilter::Equality("cn".into(), "ALICE LIDDELL".into());
        assert_eq!(eval(&spaced, &alice()), Tri::True);
        assert!(yes("(|(cn=*lid*)(mail=*lid*)(sn=*lid*)(givenName=*lid*))"));
        assert!(yes("(&(uid=alice)(!(uid=bob)))"));
        assert!(!yes("(&(uid=alice)(uid=bob))"));
        assert!(yes("(uid>=alex)"));
        assert!(!yes("(uid<=alex)"));
        assert!(yes("(cn~=aliceliddell)"));
        assert!(yes("(telephoneNumber=*)"));
        assert!(!yes("(member=*)"));
        // Unknown attribute types are Undefined: neither they nor their
        // negation match.
        assert!(!yes("(foo=bar)"));
        assert!(!yes("(!(foo=bar))"));
        assert!(yes("(|(foo=bar)(uid=alice))"));
        // Substrings must not overlap.
        let sub = LdapSubstringFilter {
            initial: Some("ab".into()),
            any: vec![],
            final_: Some("bc".into()),
        };
        assert!(!substring_matches("abc", &sub));
        assert!(substring_matches("abbc", &sub));
    }

    #[test]
    fn limits() {
        let mut f = parse("(uid=a)");
        for _ in 0..40 {
            f = LdapFilter::Not(Box::new(f));
        }
        assert_eq!(check(&f, 32), Err(FilterError::TooDeep { limit: 32 }));
        assert_eq!(check(&f, 64), Ok(()));
        let wide = LdapFilter::Or(vec![parse("(uid=a)"); 2000]);
        assert!(matches!(
            check(&wide, 32),
            Err(FilterError::TooLarge { .. })
        ));
    }

    fn arb_filter() -> impl Strategy<Value = LdapFilter> {
        let attr = prop_oneof![
            Just("cn".to_string()),
            Just("mail".to_string()),
            Just("objectClass".to_string()),
            "[a-zA-Z;]{0,8}"
        ];
        let leaf = prop_oneof![
            (attr.clone(), "\\PC{0,8}").prop_map(|(a, v)| LdapFilter::Equality(a, v)),
            (attr.clone(), "\\PC{0,8}").prop_map(|(a, v)| LdapFilter::GreaterOrEqual(a, v)),
            (attr.clone(), "\\PC{0,8}").prop_map(|(a, v)| LdapFilter::Approx(a, v)),
            attr.clone().prop_map(LdapFilter::Present),
            (
                attr,
                proptest::option::of("\\PC{0,4}"),
                proptest::collection::vec("\\PC{0,4}", 0..3),
                proptest::option::of("\\PC{0,4}")
            )
                .prop_map(|(a, initial, any, final_)| LdapFilter::Substring(
                    a,
                    LdapSubstringFilter {
                        initial,
                        any,
                        final_
                    }
                )),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(LdapFilter::And),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(LdapFilter::Or),
                inner.prop_map(|f| LdapFilter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #[test]
        fn eval_never_panics(f in arb_filter()) {
            let entry = alice();
            if check(&f, 32).is_ok() {
                let r = eval(&f, &entry);
                // Negation flips True and False and keeps Undefined.
                let n = eval(&LdapFilter::Not(Box::new(f)), &entry);
                prop_assert_eq!(n, match r { Tri::True => Tri::False, Tri::False => Tri::True, Tri::Undefined => Tri::Undefined });
            }
        }

        #[test]
        fn substrings_never_panic(v in "\\PC{0,16}", i in proptest::option::of("\\PC{0,4}"), a in proptest::collection::vec("\\PC{0,3}", 0..3), fin in proptest::option::of("\\PC{0,4}")) {
            let sub = LdapSubstringFilter { initial: i.clone(), any: a.clone(), final_: fin.clone() };
            let m = substring_matches(&v, &sub);
            if m {
                if let Some(i) = i { prop_assert!(v.starts_with(&i)); }
                if let Some(f) = fin { prop_assert!(v.ends_with(&f)); }
            }
        }

        #[test]
        fn parsed_filters_never_panic(s in "\\PC{0,64}") {
            if let Ok(f) = ldap3_proto::parse_ldap_filter_str(&s) {
                if check(&f, 32).is_ok() {
                    let _ = eval(&f, &alice());
                }
            }
        }
    }
}

//! Search, minus the I/O: which entries a base and scope cover, which
//! attributes a request selects (none = all user attributes, `*`, `+`,
//! `1.1`), the result entries themselves, the root DSE, and the opaque
//! paged-results cookie (RFC 2696). The session drives the loop.

use ldap3_proto::proto::{LdapPartialAttribute, LdapSearchResultEntry, LdapSearchScope};

use crate::dit::{
    canonical, Dit, Entry, OPERATIONAL_ATTRIBUTES, PAGED_RESULTS_OID, STARTTLS_OID, WHOAMI_OID,
};

/// Whether an entry with normalized RDNs `entry` is in a search of `base`
/// with `scope` (RFC 4511 §4.5.1.2; `children` is subtree minus the base).
pub fn in_scope(entry: &[String], base: &[String], scope: &LdapSearchScope) -> bool {
    let Some(extra) = entry.len().checked_sub(base.len()) else {
        return false;
    };
    let under = entry.get(extra..) == Some(base);
    under
        && match scope {
            LdapSearchScope::Base => extra == 0,
            LdapSearchScope::OneLevel => extra == 1,
            LdapSearchScope::Subtree => true,
            LdapSearchScope::Children => extra > 0,
        }
}

/// The attributes a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub all_user: bool,
    pub all_operational: bool,
    /// Named ones, canonical; unknown names are dropped.
    pub named: Vec<&'static str>,
}

impl Selection {
    /// From the request's attribute list.
    pub fn new(attrs: &[String]) -> Self {
        let mut sel = Selection::default();
        if attrs.is_empty() {
            sel.all_user = true;
            return sel;
        }
        for a in attrs {
            match a.trim() {
                "*" => sel.all_user = true,
                "+" => sel.all_operational = true,
                "1.1" => {}
                other => {
                    if let Some(c) = canonical(other) {
                        if !sel.named.contains(&c) {
                            sel.named.push(c);
                        }
                    }
                }
            }
        }
        sel
    }

    fn wants(&self, name: &str, operational: bool) -> bool {
        (if operational {
            self.all_operational
        } else {
            self.all_user
        }) || self.named.contains(&name)
    }
}

fn partial(name: &str, values: &[String], types_only: bool) -> LdapPartialAttribute {
    LdapPartialAttribute {
        atype: name.to_string(),
        vals: if types_only {
            Vec::new()
        } else {
            values.iter().map(|v| v.as_bytes().to_vec()).collect()
        },
    }
}

/// The search result entry for `entry`.
pub fn result_entry(entry: &Entry, sel: &Selection, types_only: bool) -> LdapSearchResultEntry {
    let user = entry.attrs.iter().map(|a| (a, false));
    let oper = entry
        .operational
        .iter()
        .filter(|a| OPERATIONAL_ATTRIBUTES.contains(&a.name))
        .map(|a| (a, true));
    LdapSearchResultEntry {
        dn: entry.dn.clone(),
        attributes: user
            .chain(oper)
            .filter(|(a, op)| sel.wants(a.name, *op))
            .map(|(a, _)| partial(a.name, &a.values, types_only))
            .collect(),
    }
}

/// The root DSE (RFC 4512 §5.1). Its attributes are all returned when
/// none, `*` or `+` is asked for, else the named ones.
pub fn root_dse(
    dit: &Dit,
    starttls: bool,
    sel: &Selection,
    types_only: bool,
) -> LdapSearchResultEntry {
    let mut extensions = vec![WHOAMI_OID.to_string()];
    if starttls {
        extensions.push(STARTTLS_OID.to_string());
    }
    let attrs: Vec<(&str, Vec<String>)> = vec![
        ("objectClass", vec!["top".into(), "extensibleObject".into()]),
        ("namingContexts", dit.naming_contexts.clone()),
        ("supportedLDAPVersion", vec!["3".into()]),
        ("supportedControl", vec![PAGED_RESULTS_OID.into()]),
        ("supportedExtension", extensions),
        ("vendorName", vec!["Cairn".into()]),
        ("vendorVersion", vec![env!("CARGO_PKG_VERSION").into()]),
    ];
    let all = sel.all_user || sel.all_operational || sel.named.is_empty();
    LdapSearchResultEntry {
        dn: String::new(),
        attributes: attrs
            .into_iter()
            .filter(|(n, v)| !v.is_empty() && (all || sel.named.contains(n)))
            .map(|(n, v)| partial(n, &v, types_only))
            .collect(),
    }
}

/// A paged-results cookie: which paged search of the connection, and
/// where in the tree the next page starts. Opaque to the client; the
/// session checks it against the one it handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    pub search: u64,
    pub next: u64,
}

impl Cookie {
    pub const LEN: usize = 16;

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.search.to_be_bytes());
        v.extend_from_slice(&self.next.to_be_bytes());
        v
    }

    /// `None` unless `bytes` is a cookie this server could have made.
    pub fn decode(bytes: &[u8]) -> Option<Cookie> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let search = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let next = u64::from_be_bytes(bytes.get(8..)?.try_into().ok()?);
        Some(Cookie { search, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rdns(s: &str) -> Vec<String> {
        crate::dn::normalize(s).expect("dn")
    }

    #[test]
    fn scopes() {
        let base = rdns("dc=example,dc=org");
        let ou = rdns("ou=people,dc=example,dc=org");
        let uid = rdns("uid=a,ou=people,dc=example,dc=org");
        let other = rdns("dc=other,dc=org");
        use LdapSearchScope::*;
        assert!(in_scope(&base, &base, &Base));
        assert!(!in_scope(&ou, &base, &Base));
        assert!(in_scope(&ou, &base, &OneLevel));
        assert!(!in_scope(&uid, &base, &OneLevel));
        assert!(in_scope(&uid, &base, &Subtree));
        assert!(!in_scope(&other, &base, &Subtree));
        assert!(!in_scope(&base, &base, &Children));
        assert!(in_scope(&uid, &[], &Subtree));
    }

    #[test]
    fn selections() {
        assert!(Selection::new(&[]).all_user);
        let none = Selection::new(&["1.1".into()]);
        assert!(!none.all_user && none.named.is_empty());
        let some = Selection::new(&["CN".into(), "mail".into(), "bogus".into()]);
        assert_eq!(some.named, vec!["cn", "mail"]);
        let plus = Selection::new(&["+".into()]);
        assert!(plus.all_operational && !plus.all_user);
    }

    proptest! {
        #[test]
        fn cookies_round_trip(search: u64, next: u64) {
            let c = Cookie { search, next };
            prop_assert_eq!(Cookie::decode(&c.encode()), Some(c));
        }

        #[test]
        fn cookie_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Cookie::decode(&bytes);
        }
    }
}

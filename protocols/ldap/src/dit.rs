//! The directory information tree served over LDAP, built from one
//! generation of the [`AddressBook`]: its entries (DNs, object classes,
//! attributes), the schema's attribute names, and the root DSE.
//!
//! The tree, per served domain `example.org` (alias domains have no
//! entries of their own):
//!
//! - `dc=example,dc=org`: objectClass `top`, `domain`, `dcObject`; `dc`.
//! - `ou=people,dc=example,dc=org` and `ou=groups,dc=example,dc=org`:
//!   `organizationalUnit`.
//! - `uid=<local part>,ou=people,…` per account: `inetOrgPerson` with
//!   `uid`, `mail` (primary address first, then aliases), `cn` (display
//!   name, else the address), `sn` (surname, else `cn`), `givenName`,
//!   `displayName`, `telephoneNumber`; empty attributes are left out.
//!   Active and locked accounts are listed (a locked colleague is still a
//!   colleague); closed accounts are not.
//! - `cn=<local part>,ou=groups,…` per list that is not hidden:
//!   `groupOfNames` with `cn`, `mail`, `member` (the DNs of members that
//!   are entries here: accounts, by primary address or alias, and visible
//!   lists) and `rfc822MailMember` (every member address as stored,
//!   external ones included, since those have no DN).

use std::collections::HashMap;

use cairn_storage::directory::{Account, AddressBook, List, Status};

use crate::dn::escape_value;
use crate::index::SearchIndex;

/// The attribute types this server knows, by canonical name.
pub const USER_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "dc",
    "ou",
    "uid",
    "mail",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "telephoneNumber",
    "member",
    "rfc822MailMember",
];

/// Operational attributes, returned only when asked for (by name or `+`).
pub const OPERATIONAL_ATTRIBUTES: &[&str] =
    &["entryDN", "hasSubordinates", "structuralObjectClass"];

/// The root DSE's attributes.
pub const ROOT_DSE_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "namingContexts",
    "supportedLDAPVersion",
    "supportedControl",
    "supportedExtension",
    "supportedSASLMechanisms",
    "vendorName",
    "vendorVersion",
];

/// The paged results control (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// The StartTLS extended operation (RFC 4511 §4.14).
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// The "Who am I?" extended operation (RFC 4532).
pub const WHOAMI_OID: &str = "1.3.6.1.4.1.4203.1.11.3";

/// The canonical name of attribute type `name` (case-insensitive, with the
/// usual long names), if this server knows it.
pub fn canonical(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "commonname" | "2.5.4.3" => "cn",
        "surname" | "2.5.4.4" => "sn",
        "gn" | "2.5.4.42" => "givenname",
        "rfc822mailbox" | "0.9.2342.19200300.100.1.3" => "mail",
        "userid" | "0.9.2342.19200300.100.1.1" => "uid",
        "domaincomponent" => "dc",
        "organizationalunitname" => "ou",
        "2.5.4.0" => "objectclass",
        other => other,
    };
    USER_ATTRIBUTES
        .iter()
        .chain(OPERATIONAL_ATTRIBUTES)
        .chain(ROOT_DSE_ATTRIBUTES)
        .find(|a| a.eq_ignore_ascii_case(alias))
        .copied()
}

/// One attribute of an entry, with its values normalized once, when the
/// tree is built, for the matching rules: lowercased (equality, ordering,
/// substrings) and squashed (approximate matching), so that evaluating a
/// filter never allocates.
#[derive(Debug, Clone)]
pub struct Attr {
    pub name: &'static str,
    pub values: Vec<String>,
    /// `values`, lowercased.
    pub lower: Vec<String>,
    /// `lower`, without whitespace (see [`squash`]).
    pub squashed: Vec<String>,
}

impl Attr {
    fn new(name: &'static str, values: Vec<String>) -> Self {
        let lower: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
        // Of the lowercased values, as the scan always did (they differ
        // from the values' own squash for a final sigma).
        let squashed = lower.iter().map(|v| squash(v)).collect();
        Self {
            name,
            values,
            lower,
            squashed,
        }
    }
}

/// Approximate matching's normal form: case and whitespace ignored.
pub fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// One entry of the tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As presented to clients.
    pub dn: String,
    /// Normalized RDNs, leaf first (see [`crate::dn::Dn::normalized`]).
    pub rdns: Vec<String>,
    /// User attributes, none of them empty.
    pub attrs: Vec<Attr>,
    /// Operational attributes.
    pub operational: Vec<Attr>,
}

impl Entry {
    fn new(rdns: Vec<(&'static str, String)>, attrs: Vec<(&'static str, Vec<String>)>) -> Self {
        let dn = rdns
            .iter()
            .map(|(a, v)| format!("{a}={}", escape_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        let norm = rdns
            .iter()
            .map(|(a, v)| format!("{}={}", a.to_ascii_lowercase(), v.to_lowercase()))
            .collect();
        let attrs: Vec<Attr> = attrs
            .into_iter()
            .map(|(n, vals)| {
                Attr::new(
                    n,
                    vals.into_iter()
                        .filter(|v| !v.is_empty())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|a| !a.values.is_empty())
            .collect();
        let structural = attrs
            .iter()
            .find(|a| a.name == "objectClass")
            .and_then(|a| a.values.get(1).cloned())
            .unwrap_or_default();
        let leaf = matches!(rdns.first(), Some(("uid", _)) | Some(("cn", _)));
        let operational = vec![
            Attr::new("entryDN", vec![dn.clone()]),
            Attr::new(
                "hasSubordinates",
                vec![if leaf { "FALSE" } else { "TRUE" }.to_string()],
            ),
            Attr::new("structuralObjectClass", vec![structural]),
        ];
        Self {
            dn,
            rdns: norm,
            attrs,
            operational,
        }
    }

    /// The user or operational attribute named (canonically) `name`.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .chain(&self.operational)
            .find(|a| a.name == name)
    }
}

/// The tree at one generation of the directory.
#[derive(Debug, Default)]
pub struct Dit {
    pub generation: u64,
    pub entries: Vec<Entry>,
    /// One per served domain.
    pub naming_contexts: Vec<String>,
    /// Normalized DN (RDNs joined by NUL) → index in `entries`.
    index: HashMap<String, usize>,
    /// The search index over `entries` (see [`crate::index`]).
    pub search: SearchIndex,
    /// Primary address → account DN.
    accounts: HashMap<String, String>,
}

fn key(rdns: &[String]) -> String {
    rdns.join("\0")
}

fn split(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

fn domain_rdns(domain: &str) -> Vec<(&'static str, String)> {
    domain.split('.').map(|l| ("dc", l.to_string())).collect()
}

fn under(
    mut head: Vec<(&'static str, String)>,
    base: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    head.extend_from_slice(base);
    head
}

/// Entries built between chances for other tasks of the shard to run.
const BUILD_YIELD_EVERY: usize = 512;

impl Dit {
    /// Builds the tree and its search index from `book`, in one go (for
    /// tests and tools; a shard uses [`Dit::build_async`]).
    pub fn build(book: &AddressBook) -> Dit {
        // Without a yield hook the future never waits: it completes on
        // its first poll.
        futures_lite::future::block_on(Self::build_inner(book, false))
    }

    /// Builds the tree and its search index from `book`, yielding to the
    /// shard's other tasks every few hundred entries so that a big
    /// directory does not stall it.
    pub async fn build_async(book: &AddressBook) -> Dit {
        Self::build_inner(book, true).await
    }

    async fn build_inner(book: &AddressBook, yielding: bool) -> Dit {
        let mut since_yield = 0usize;
        let mut tick = async move || {
            since_yield += 1;
            if yielding && since_yield >= BUILD_YIELD_EVERY {
                since_yield = 0;
                cairn_shards::yield_if_needed().await;
            }
        };
        let mut dit = Dit {
            generation: book.generation,
            ..Dit::default()
        };
        let mut domains: Vec<&str> = book
            .domains
            .iter()
            .filter(|d| d.alias_of.is_none())
            .map(|d| d.name.as_str())
            .collect();
        domains.sort_unstable();
        let mut accounts: HashMap<&str, Vec<&Account>> = HashMap::new();
        let mut alias_of: HashMap<&str, &str> = HashMap::new();
        for a in book.accounts.iter().filter(|a| a.status != Status::Closed) {
            if let Some((_, d)) = split(&a.address) {
                accounts.entry(d).or_default().push(a);
            }
            for alias in &a.aliases {
                alias_of.insert(alias.as_str(), a.address.as_str());
            }
        }
        let mut lists: HashMap<&str, Vec<&List>> = HashMap::new();
        for l in book.lists.iter().filter(|l| !l.hidden) {
            if let Some((_, d)) = split(&l.address) {
                lists.entry(d).or_default().push(l);
            }
        }
        // Account and group DNs first, so that lists can name their members.
        let mut group_dns: HashMap<&str, String> = HashMap::new();
        for domain in &domains {
            let base = domain_rdns(domain);
            for a in accounts.get(domain).into_iter().flatten() {
                if let Some((local, _)) = split(&a.address) {
                    let rdns = under(
                        vec![("uid", local.to_string()), ("ou", "people".to_string())],
                        &base,
                    );
                    dit.accounts.insert(a.address.clone(), dn_of(&rdns));
                }
            }
            for l in lists.get(domain).into_iter().flatten() {
                if let Some((local, _)) = split(&l.address) {
                    let rdns = under(
                        vec![("cn", local.to_string()), ("ou", "groups".to_string())],
                        &base,
                    );
                    group_dns.insert(l.address.as_str(), dn_of(&rdns));
                }
            }
        }
        for domain in &domains {
            let base = domain_rdns(domain);
            let first = base.first().map(|(_, v)| v.clone()).unwrap_or_default();
            let domain_entry = Entry::new(
                base.clone(),
                vec![
                    ("objectClass", strings(&["top", "domain", "dcObject"])),
                    ("dc", vec![first]),
                ],
            );
            dit.naming_contexts.push(domain_entry.dn.clone());
            dit.push(domain_entry);
            for ou in ["people", "groups"] {
                dit.push(Entry::new(
                    under(vec![("ou", ou.to_string())], &base),
                    vec![
                        ("objectClass", strings(&["top", "organizationalUnit"])),
                        ("ou", vec![ou.to_string()]),
                    ],
                ));
            }
            for a in accounts.get(domain).into_iter().flatten() {
                tick().await;
                let Some((local, _)) = split(&a.address) else {
                    continue;
                };
                let cn = if a.display_name.is_empty() {
                    a.address.clone()
                } else {
                    a.display_name.clone()
                };
                let sn = if a.surname.is_empty() {
                    cn.clone()
                } else {
                    a.surname.clone()
                };
                let mut mail = vec![a.address.clone()];
                mail.extend(a.aliases.iter().cloned());
                dit.push(Entry::new(
                    under(
                        vec![("uid", local.to_string()), ("ou", "people".to_string())],
                        &base,
                    ),
                    vec![
                        (
                            "objectClass",
                            strings(&["top", "inetOrgPerson", "organizationalPerson", "person"]),
                        ),
                        ("uid", vec![local.to_string()]),
                        ("mail", mail),
                        ("cn", vec![cn]),
                        ("sn", vec![sn]),
                        ("givenName", vec![a.given_name.clone()]),
                        ("displayName", vec![a.display_name.clone()]),
                        ("telephoneNumber", vec![a.phone.clone()]),
                    ],
                ));
            }
            for l in lists.get(domain).into_iter().flatten() {
                tick().await;
                let Some((local, _)) = split(&l.address) else {
                    continue;
                };
                let members: Vec<String> = l
                    .members
                    .iter()
                    .filter_map(|m| {
                        let m = m.to_lowercase();
                        let primary = alias_of.get(m.as_str()).copied().unwrap_or(m.as_str());
                        dit.accounts
                            .get(primary)
                            .or_else(|| group_dns.get(primary))
                            .cloned()
                    })
                    .collect();
                dit.push(Entry::new(
                    under(
                        vec![("cn", local.to_string()), ("ou", "groups".to_string())],
                        &base,
                    ),
                    vec![
                        ("objectClass", strings(&["top", "groupOfNames"])),
                        ("cn", vec![local.to_string()]),
                        ("mail", vec![l.address.clone()]),
                        ("member", members),
                        ("rfc822MailMember", l.members.clone()),
                    ],
                ));
            }
        }
        dit
    }

    fn push(&mut self, entry: Entry) {
        let id = self.entries.len();
        self.index.insert(key(&entry.rdns), id);
        self.search.add(id, &entry);
        self.entries.push(entry);
    }

    /// The entry whose normalized DN is `rdns`.
    pub fn find(&self, rdns: &[String]) -> Option<&Entry> {
        self.index
            .get(&key(rdns))
            .and_then(|i| self.entries.get(*i))
    }

    /// The DN of the longest existing ancestor of `rdns` (for matchedDN).
    pub fn matched(&self, rdns: &[String]) -> String {
        (1..rdns.len())
            .filter_map(|skip| rdns.get(skip..))
            .find_map(|suffix| self.find(suffix))
            .map(|e| e.dn.clone())
            .unwrap_or_default()
    }

    /// The DN of the account whose primary address is `address`.
    pub fn account_dn(&self, address: &str) -> Option<&str> {
        self.accounts.get(address).map(String::as_str)
    }
}

fn dn_of(rdns: &[(&'static str, String)]) -> String {
    rdns.iter()
        .map(|(a, v)| format!("{a}={}", escape_value(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// The service account a bind DN names, with the domain whose base it is
/// under: `cn=<name>,ou=services,dc=example,dc=org` → (name, example.org).
pub fn bind_service(name: &str) -> Option<(String, String)> {
    let dn = crate::dn::Dn::parse(name.trim()).ok()?;
    let mut rdns = dn.rdns.iter();
    let cn = rdns.next().filter(|r| r.len() == 1)?.first()?;
    let ou = rdns.next().filter(|r| r.len() == 1)?.first()?;
    if cn.attr != "cn" || ou.attr != "ou" || !ou.value.eq_ignore_ascii_case("services") {
        return None;
    }
    let mut labels = Vec::new();
    for rdn in rdns {
        match rdn.as_slice() {
            [ava] if ava.attr == "dc" && !ava.value.is_empty() => {
                labels.push(ava.value.to_lowercase())
            }
            _ => return None,
        }
    }
    (!labels.is_empty()).then(|| (cn.value.to_lowercase(), labels.join(".")))
}

/// The account address a bind DN names: `uid=alice,ou=people,dc=example,
/// dc=org`, `mail=alice@example.org,…`, or a bare `alice@example.org`.
pub fn bind_address(name: &str) -> Option<String> {
    let name = name.trim();
    if !name.contains('=') {
        return name.contains('@').then(|| name.to_lowercase());
    }
    let dn = crate::dn::Dn::parse(name).ok()?;
    let first = dn.rdns.first()?.first()?;
    match first.attr.as_str() {
        "mail" => Some(first.value.to_lowercase()),
        "uid" if first.value.contains('@') => Some(first.value.to_lowercase()),
        "uid" => {
            let labels: Vec<String> = dn
                .rdns
                .iter()
                .skip(1)
                .flatten()
                .filter(|a| a.attr == "dc")
                .map(|a| a.value.to_lowercase())
                .collect();
            (!labels.is_empty())
                .then(|| format!("{}@{}", first.value.to_lowercase(), labels.join(".")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::directory::Domain;

    fn account(address: &str, name: &str) -> Account {
        Account {
            address: address.into(),
            display_name: name.into(),
            given_name: String::new(),
            surname: String::new(),
            phone: String::new(),
            password_hash: String::new(),
            status: Status::Active,
            quota_bytes: 0,
            class_of_service: None,
            shard: 0,
            aliases: vec![],
        }
    }

    #[test]
    fn builds_the_tree() {
        let mut closed = account("gone@example.org", "");
        closed.status = Status::Closed;
        let book = AddressBook {
            generation: 3,
            domains: vec![Domain {
                name: "example.org".into(),
                alias_of: None,
                catch_all: None,
            }],
            accounts: vec![account("alice@example.org", "Alice A"), closed],
            lists: vec![List {
                address: "team@example.org".into(),
                members: vec!["alice@example.org".into(), "bob@other.net".into()],
                senders: vec![],
                hidden: false,
            }],
        };
        let dit = Dit::build(&book);
        assert_eq!(dit.naming_contexts, vec!["dc=example,dc=org"]);
        let dns: Vec<&str> = dit.entries.iter().map(|e| e.dn.as_str()).collect();
        assert_eq!(
            dns,
            vec![
                "dc=example,dc=org",
                "ou=people,dc=example,dc=org",
                "ou=groups,dc=example,dc=org",
                "uid=alice,ou=people,dc=example,dc=org",
                "cn=team,ou=groups,dc=example,dc=org",
            ]
        );
        let team = dit.entries.last().expect("team");
        assert_eq!(
            team.attr("member").map(|a| a.values.clone()),
            Some(vec!["uid=alice,ou=people,dc=example,dc=org".to_string()])
        );
        let alice = dit
            .find(&crate::dn::normalize("UID=ALICE,ou=people,dc=example,dc=org").expect("dn"))
            .expect("found");
        assert_eq!(
            alice.attr("sn").map(|a| a.values.clone()),
            Some(vec!["Alice A".into()])
        );
        assert!(alice.attr("telephoneNumber").is_none());
        assert_eq!(
            dit.matched(
                &crate::dn::normalize("uid=nobody,ou=people,dc=example,dc=org").expect("dn")
            ),
            "ou=people,dc=example,dc=org"
        );
    }

    #[test]
    fn bind_names() {
        assert_eq!(
            bind_address("uid=Alice,ou=people,dc=example,dc=org").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            bind_address("mail=alice@example.org,ou=people,dc=example,dc=org").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            bind_address("alice@example.org").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(bind_address("cn=admin,dc=example,dc=org"), None);
        assert_eq!(bind_address("alice"), None);
    }

    #[test]
    fn service_bind_dns_name_a_service_account_and_a_domain() {
        assert_eq!(
            bind_service("CN=Book-Reader,OU=Services,dc=Example,dc=org"),
            Some(("book-reader".into(), "example.org".into()))
        );
        for other in [
            "cn=reader,ou=people,dc=example,dc=org",
            "cn=reader,ou=services",
            "uid=reader,ou=services,dc=example,dc=org",
            "cn=reader,ou=services,o=x,dc=org",
            "not a dn",
        ] {
            assert_eq!(bind_service(other), None, "{other}");
        }
    }
}

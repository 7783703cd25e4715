//! The search index of one [`crate::dit::Dit`], built with it (per shard,
//! once per directory generation), and the planner that uses it.
//!
//! Per attribute type (canonical name), over the values as the matching
//! rules see them ([`crate::dit::Attr::lower`]):
//!
//! - a presence list: the entries that have the attribute;
//! - an equality map: lowercased value → entries;
//! - for the attributes address books search by substring
//!   ([`SUBSTRING_ATTRIBUTES`]), trigram posting lists: every 3-byte window
//!   of the UTF-8 of a lowercased value → entries.
//!
//! Every list holds entry ids (positions in `Dit::entries`), sorted and
//! without duplicates. [`SearchIndex::candidates`] maps a compiled filter
//! to a superset of the entries on which it is True: AND intersects, OR
//! unites, an equality looks its value up, a substring intersects the
//! posting lists of its components' trigrams, and whatever the index
//! cannot narrow (NOT, ordering, approximate matching, substrings with no
//! component of 3 bytes or more) falls back to the attribute's presence
//! list, or to every entry. The search then evaluates the real filter on
//! the candidates only, in entry order, so its results are exactly those
//! of a full scan and a paged search's position (an entry id) stays valid.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::dit::Entry;
use crate::filter::Compiled;

/// The attribute types with trigram posting lists, by canonical name.
pub const SUBSTRING_ATTRIBUTES: &[&str] = &[
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
];

/// The index of one attribute type.
#[derive(Debug, Default)]
struct AttrIndex {
    present: Vec<u32>,
    equal: HashMap<Box<str>, Vec<u32>>,
    /// Trigram (three bytes, big-endian in a `u32`) → entries; `None` for
    /// attributes not in [`SUBSTRING_ATTRIBUTES`].
    grams: Option<HashMap<u32, Vec<u32>>>,
}

/// The search index over a tree's entries.
#[derive(Debug, Default)]
pub struct SearchIndex {
    /// Entries indexed so far (ids `0..entries`).
    entries: usize,
    /// Set when an entry id did not fit a `u32`: the index then narrows
    /// nothing.
    overflow: bool,
    attrs: HashMap<&'static str, AttrIndex>,
}

/// Appends `id` unless it is already the last element (a value repeated
/// in one entry, or a trigram repeated in one value).
fn push_once(list: &mut Vec<u32>, id: u32) {
    if list.last() != Some(&id) {
        list.push(id);
    }
}

fn trigrams(value: &str) -> impl Iterator<Item = u32> + '_ {
    value
        .as_bytes()
        .windows(3)
        .map(|w| w.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Which entries a filter may be True on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates<'a> {
    /// The index cannot narrow the filter: every entry.
    All,
    /// These entry ids, sorted, without duplicates.
    Some(Cow<'a, [u32]>),
}

const NONE: Candidates<'static> = Candidates::Some(Cow::Borrowed(&[]));

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.len().saturating_mul(16) < large.len() {
        // Much smaller: binary search into the larger one.
        let mut rest = large;
        for x in small {
            let at = rest.partition_point(|y| y < x);
            rest = rest.get(at..).unwrap_or_default();
            if rest.first() == Some(x) {
                out.push(*x);
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (small.get(i), large.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn unite(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    out.push(*x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(*y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(*x);
                    i += 1;
                    j += 1;
                }
            },
            (Some(_), None) => {
                out.extend_from_slice(a.get(i..).unwrap_or_default());
                break;
            }
            (None, Some(_)) => {
                out.extend_from_slice(b.get(j..).unwrap_or_default());
                break;
            }
            (None, None) => break,
        }
    }
    out
}

impl<'a> Candidates<'a> {
    fn and(self, other: Candidates<'a>) -> Candidates<'a> {
        match (self, other) {
            (Candidates::All, c) | (c, Candidates::All) => c,
            (Candidates::Some(a), Candidates::Some(b)) => {
                Candidates::Some(Cow::Owned(intersect(&a, &b)))
            }
        }
    }

    fn or(self, other: Candidates<'a>) -> Candidates<'a> {
        match (self, other) {
            (Candidates::All, _) | (_, Candidates::All) => Candidates::All,
            (Candidates::Some(a), Candidates::Some(b)) if a.is_empty() => Candidates::Some(b),
            (Candidates::Some(a), Candidates::Some(b)) if b.is_empty() => Candidates::Some(a),
            (Candidates::Some(a), Candidates::Some(b)) => {
                Candidates::Some(Cow::Owned(unite(&a, &b)))
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Candidates::Some(c) if c.is_empty())
    }

    /// The candidate entry ids from `start` on, in order, among `len`
    /// entries.
    pub fn iter_from(&self, start: usize, len: usize) -> CandidateIter<'_> {
        match self {
            Candidates::All => CandidateIter::Range(start..len),
            Candidates::Some(ids) => {
                let at = ids.partition_point(|id| (*id as usize) < start);
                CandidateIter::List(ids.get(at..).unwrap_or_default().iter())
            }
        }
    }
}

/// See [`Candidates::iter_from`].
#[derive(Debug, Clone)]
pub enum CandidateIter<'a> {
    Range(std::ops::Range<usize>),
    List(std::slice::Iter<'a, u32>),
}

impl Iterator for CandidateIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            CandidateIter::Range(r) => r.next(),
            CandidateIter::List(l) => l.next().map(|id| *id as usize),
        }
    }
}

impl SearchIndex {
    /// Indexes `entry` as entry `id`; ids come in order, from 0.
    pub fn add(&mut self, id: usize, entry: &Entry) {
        self.entries = id.saturating_add(1);
        let Ok(id) = u32::try_from(id) else {
            self.overflow = true;
            return;
        };
        if self.overflow {
            return;
        }
        for attr in entry.attrs.iter().chain(&entry.operational) {
            let index = self.attrs.entry(attr.name).or_insert_with(|| AttrIndex {
                grams: SUBSTRING_ATTRIBUTES.contains(&attr.name).then(HashMap::new),
                ..AttrIndex::default()
            });
            push_once(&mut index.present, id);
            for value in &attr.lower {
                match index.equal.get_mut(value.as_str()) {
                    Some(list) => push_once(list, id),
                    None => {
                        index.equal.insert(value.as_str().into(), vec![id]);
                    }
                }
                if let Some(grams) = &mut index.grams {
                    for gram in trigrams(value) {
                        push_once(grams.entry(gram).or_default(), id);
                    }
                }
            }
        }
    }

    /// A superset of the entries on which `filter` is True (see the
    /// module documentation).
    pub fn candidates(&self, filter: &Compiled) -> Candidates<'_> {
        if self.overflow {
            return Candidates::All;
        }
        self.plan(filter)
    }

    fn present(&self, name: &str) -> Candidates<'_> {
        match self.attrs.get(name) {
            Some(index) => Candidates::Some(Cow::Borrowed(&index.present)),
            // No entry has it: the assertion is False everywhere.
            None => NONE,
        }
    }

    fn plan(&self, filter: &Compiled) -> Candidates<'_> {
        match filter {
            Compiled::And(v) => {
                let mut out = Candidates::All;
                for f in v {
                    out = out.and(self.plan(f));
                    if out.is_empty() {
                        break;
                    }
                }
                out
            }
            Compiled::Or(v) => {
                let mut out = NONE;
                for f in v {
                    out = out.or(self.plan(f));
                    if out == Candidates::All {
                        break;
                    }
                }
                out
            }
            Compiled::Not(_) => Candidates::All,
            Compiled::False | Compiled::Undefined => NONE,
            Compiled::Present(name) => self.present(name),
            Compiled::Equality(name, value) => match self.attrs.get(name) {
                Some(index) => match index.equal.get(value.as_str()) {
                    Some(list) => Candidates::Some(Cow::Borrowed(list)),
                    None => NONE,
                },
                None => NONE,
            },
            Compiled::Substring(name, sub) => {
                let Some(index) = self.attrs.get(name) else {
                    return NONE;
                };
                let Some(grams) = &index.grams else {
                    return self.present(name);
                };
                let components = sub.initial.iter().chain(&sub.any).chain(&sub.final_);
                let mut lists: Vec<&[u32]> = Vec::new();
                for component in components {
                    for gram in trigrams(component) {
                        match grams.get(&gram) {
                            Some(list) => lists.push(list),
                            None => return NONE,
                        }
                    }
                }
                if lists.is_empty() {
                    return self.present(name);
                }
                // Shortest first; the same list twice side by side.
                lists.sort_unstable_by_key(|l| (l.len(), l.as_ptr() as usize));
                lists.dedup_by(|a, b| std::ptr::eq(*a, *b));
                let mut lists = lists.into_iter();
                let mut out = match lists.next() {
                    Some(first) => Candidates::Some(Cow::Borrowed(first)),
                    None => return self.present(name),
                };
                for list in lists {
                    out = out.and(Candidates::Some(Cow::Borrowed(list)));
                    if out.is_empty() {
                        break;
                    }
                }
                out
            }
            // True only where the attribute is present.
            Compiled::Approx(name, _)
            | Compiled::GreaterOrEqual(name, _)
            | Compiled::LessOrEqual(name, _) => self.present(name),
        }
    }

    /// How many entries are indexed.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dit::Dit;
    use crate::filter::{check, compile, Tri};
    use cairn_storage::directory::{Account, AddressBook, Domain, List, Status};
    use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};
    use proptest::prelude::*;

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 7, 9]), vec![3, 7]);
        let big: Vec<u32> = (0..1000).collect();
        assert_eq!(intersect(&[5, 999, 2000], &big), vec![5, 999]);
        assert_eq!(unite(&[1, 3, 5], &[2, 3, 9, 10]), vec![1, 2, 3, 5, 9, 10]);
        assert_eq!(unite(&[], &[4]), vec![4]);
    }

    /// A small alphabet, so that random assertions often match.
    fn word() -> impl Strategy<Value = String> {
        "[abAB1 ]{0,5}"
    }

    fn arb_account() -> impl Strategy<Value = Account> {
        (
            "[ab1]{1,3}",
            word(),
            word(),
            word(),
            "[0-9 +]{0,5}",
            proptest::collection::vec("[ab1]{1,3}", 0..2),
            any::<bool>(),
        )
            .prop_map(
                |(local, display, given, sur, phone, aliases, locked)| Account {
                    address: format!("{local}@example.org"),
                    display_name: display,
                    given_name: given,
                    surname: sur,
                    phone,
                    password_hash: String::new(),
                    status: if locked {
                        Status::Locked
                    } else {
                        Status::Active
                    },
                    quota_bytes: 0,
                    class_of_service: None,
                    shard: 0,
                    aliases: aliases
                        .into_iter()
                        .map(|a| format!("{a}x@example.org"))
                        .collect(),
                },
            )
    }

    fn arb_book() -> impl Strategy<Value = AddressBook> {
        (
            proptest::collection::vec(arb_account(), 0..24),
            proptest::collection::vec(
                ("[abc]{1,3}", proptest::collection::vec("[abc1]{1,4}", 0..3)),
                0..3,
            ),
        )
            .prop_map(|(mut accounts, lists)| {
                accounts.sort_by(|a, b| a.address.cmp(&b.address));
                accounts.dedup_by(|a, b| a.address == b.address);
                AddressBook {
                    generation: 1,
                    domains: vec![Domain {
                        name: "example.org".into(),
                        alias_of: None,
                        catch_all: None,
                    }],
                    accounts,
                    lists: lists
                        .into_iter()
                        .map(|(name, members)| List {
                            address: format!("{name}-list@example.org"),
                            members: members
                                .into_iter()
                                .map(|m| format!("{m}@example.org"))
                                .collect(),
                            senders: vec![],
                            hidden: false,
                        })
                        .collect(),
                }
            })
    }

    /// An attribute type and a value, often one the entries hold.
    fn arb_assertion() -> impl Strategy<Value = (String, String)> {
        let attr = prop_oneof![
            Just("cn".to_string()),
            Just("CN".to_string()),
            Just("mail".to_string()),
            Just("uid".to_string()),
            Just("sn".to_string()),
            Just("givenName".to_string()),
            Just("displayName".to_string()),
            Just("telephoneNumber".to_string()),
            Just("objectClass".to_string()),
            Just("member".to_string()),
            Just("hasSubordinates".to_string()),
            Just("namingContexts".to_string()),
            "[a-zA-Z;]{0,6}"
        ];
        let s = |v: &str| v.to_string();
        prop_oneof![
            (attr, word()),
            (
                Just(s("objectClass")),
                "top|person|groupOfNames|domain|inetOrgPerson"
            ),
            (Just(s("mail")), "[ab1]{1,3}x?@example\\.org"),
            (Just(s("uid")), "[ab1]{1,3}"),
            (Just(s("cn")), "[abAB1 ]{1,4}|[abc]{1,3}-list"),
            (
                Just(s("member")),
                "uid=[ab1]{1,2},ou=people,dc=example,dc=org"
            ),
            (Just(s("rfc822MailMember")), "[ab1]{1,3}@example\\.org"),
            (Just(s("hasSubordinates")), "TRUE|FALSE"),
            (Just(s("entryDN")), "ou=(people|groups),dc=example,dc=org"),
        ]
    }

    /// A substring assertion cut out of `value` at random places.
    fn cut(value: &str, cuts: [usize; 4], shape: u8) -> LdapSubstringFilter {
        let chars: Vec<char> = value.chars().collect();
        let mut at = cuts.map(|c| c % (chars.len() + 1));
        at.sort_unstable();
        let piece = |from: usize, to: usize| -> String {
            chars.get(from..to).unwrap_or_default().iter().collect()
        };
        let [a, b, c, d] = at;
        LdapSubstringFilter {
            initial: (shape & 1 != 0).then(|| piece(0, a)),
            any: if shape & 2 != 0 {
                vec![piece(b, c)]
            } else {
                vec![]
            },
            final_: (shape & 4 != 0).then(|| piece(d, chars.len())),
        }
    }

    fn arb_filter() -> impl Strategy<Value = LdapFilter> {
        let part = "[abAB1 .@]{0,4}";
        let leaf = prop_oneof![
            arb_assertion().prop_map(|(a, v)| LdapFilter::Equality(a, v)),
            arb_assertion().prop_map(|(a, v)| LdapFilter::GreaterOrEqual(a, v)),
            arb_assertion().prop_map(|(a, v)| LdapFilter::LessOrEqual(a, v)),
            arb_assertion().prop_map(|(a, v)| LdapFilter::Approx(a, v)),
            arb_assertion().prop_map(|(a, _)| LdapFilter::Present(a)),
            (arb_assertion(), any::<[usize; 4]>(), any::<u8>())
                .prop_map(|((a, v), cuts, shape)| LdapFilter::Substring(a, cut(&v, cuts, shape))),
            (
                arb_assertion(),
                proptest::option::of(part),
                proptest::collection::vec(part, 0..3),
                proptest::option::of(part)
            )
                .prop_map(|((a, _), initial, any, final_)| LdapFilter::Substring(
                    a,
                    LdapSubstringFilter {
                        initial,
                        any,
                        final_
                    }
                )),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(LdapFilter::And),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(LdapFilter::Or),
                inner.prop_map(|f| LdapFilter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// The indexed search returns exactly the entries of a full scan,
        /// in the same order, from any starting position (paging).
        #[test]
        fn indexed_equals_scan(book in arb_book(), f in arb_filter(), start in 0usize..8) {
            prop_assume!(check(&f, 32).is_ok());
            let dit = Dit::build(&book);
            let compiled = compile(&f);
            let scan: Vec<usize> = (start..dit.entries.len())
                .filter(|i| dit.entries.get(*i).is_some_and(|e| crate::filter::eval(&f, e) == Tri::True))
                .collect();
            let candidates = dit.search.candidates(&compiled);
            let indexed: Vec<usize> = candidates
                .iter_from(start, dit.entries.len())
                .filter(|i| dit.entries.get(*i).is_some_and(|e| compiled.eval(e) == Tri::True))
                .collect();
            prop_assert_eq!(&scan, &indexed);
            // Candidates are sorted, unique, in range.
            if let Candidates::Some(ids) = &candidates {
                prop_assert!(ids.windows(2).all(|w| w.first() < w.get(1)));
                prop_assert!(ids.iter().all(|id| (*id as usize) < dit.entries.len()));
            }
        }
    }

    #[test]
    fn narrows_address_book_searches() {
        let accounts = (0..2000)
            .map(|i| Account {
                address: format!("user{i}@example.org"),
                display_name: format!("Given{i} Surname{i}"),
                given_name: format!("Given{i}"),
                surname: format!("Surname{i}"),
                phone: String::new(),
                password_hash: String::new(),
                status: Status::Active,
                quota_bytes: 0,
                class_of_service: None,
                shard: 0,
                aliases: vec![],
            })
            .collect();
        let book = AddressBook {
            generation: 1,
            domains: vec![Domain {
                name: "example.org".into(),
                alias_of: None,
                catch_all: None,
            }],
            accounts,
            lists: vec![],
        };
        let dit = Dit::build(&book);
        assert_eq!(dit.search.len(), dit.entries.len());
        let f = ldap3_proto::parse_ldap_filter_str(
            "(|(cn=*1234*)(mail=*1234*)(sn=*1234*)(givenName=*1234*))",
        )
        .expect("parses");
        let c = dit.search.candidates(&compile(&f));
        let hits: Vec<&str> = c
            .iter_from(0, dit.entries.len())
            .filter_map(|i| dit.entries.get(i))
            .filter(|e| compile(&f).eval(e) == Tri::True)
            .map(|e| e.dn.as_str())
            .collect();
        assert_eq!(hits, vec!["uid=user1234,ou=people,dc=example,dc=org"]);
        match c {
            Candidates::Some(ids) => assert!(ids.len() < 20, "{}", ids.len()),
            Candidates::All => panic!("not narrowed"),
        }
        let f = ldap3_proto::parse_ldap_filter_str("(&(objectClass=person)(uid=user7))")
            .expect("parses");
        assert_eq!(
            dit.search
                .candidates(&compile(&f))
                .iter_from(0, usize::MAX)
                .count(),
            1
        );
        let f = ldap3_proto::parse_ldap_filter_str("(!(uid=user7))").expect("parses");
        assert_eq!(dit.search.candidates(&compile(&f)), Candidates::All);
    }
}

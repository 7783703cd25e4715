//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, over an arena of
//! containers (a container holds a message or is a dummy), producing
//! imap-types' [`Thread`] values. Messages whose `id` is 0 cannot be
//! named in a thread and are left out.

use std::{collections::HashMap, num::NonZeroU32};

use imap_types::{
    core::{Vec1, Vec2},
    extensions::thread::{Thread, ThreadingAlgorithm},
};

use super::{header::fields, sort::SortItem, subject::base_subject, Parsed};

/// Deepest branching followed when writing a thread out; deeper replies
/// are listed flat under the last branch.
const MAX_THREAD_DEPTH: usize = 100;

/// THREAD: the threads of `items` (given in sequence order) by
/// `algorithm`; an algorithm other than ORDEREDSUBJECT or REFERENCES gives
/// no threads (the session refuses it before).
pub fn thread(algorithm: &ThreadingAlgorithm<'_>, items: &[SortItem<'_>]) -> Vec<Thread> {
    let infos: Vec<Info> = items.iter().filter_map(Info::of).collect();
    let mut arena = Arena::default();
    let roots = match algorithm {
        ThreadingAlgorithm::OrderedSubject => arena.ordered_subject(&infos),
        ThreadingAlgorithm::References => arena.references(&infos),
        ThreadingAlgorithm::Other(_) => return Vec::new(),
    };
    roots
        .iter()
        .filter_map(|&r| arena.to_thread(&infos, r, 0))
        .collect()
}

/// What threading needs of one message.
struct Info {
    id: NonZeroU32,
    /// Sent date, then sequence number: the sort order of siblings.
    date: (i64, u32),
    subject: String,
    reply: bool,
    message_id: Option<Vec<u8>>,
    /// References, or else the first In-Reply-To id.
    references: Vec<Vec<u8>>,
}

impl Info {
    fn of(item: &SortItem<'_>) -> Option<Info> {
        let (message_id, references) = ids(item.parsed);
        let base = base_subject(&item.subject());
        Some(Info {
            id: NonZeroU32::new(item.id)?,
            date: (item.sent_date(), item.seq),
            subject: base.text,
            reply: base.reply,
            message_id,
            references,
        })
    }
}

/// The ids threading reads of a message: its Message-ID, and its
/// References (or else the first In-Reply-To id).
fn ids(parsed: &Parsed<'_>) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
    let header = parsed.bytes(parsed.root().header.clone());
    let first_ids = |name: &[u8]| {
        fields(header)
            .find(|f| f.is(name))
            .map(|f| message_ids(&f.unfolded()))
            .unwrap_or_default()
    };
    let mut references = first_ids(b"References");
    if references.is_empty() {
        references = first_ids(b"In-Reply-To").into_iter().take(1).collect();
    }
    (first_ids(b"Message-ID").into_iter().next(), references)
}

/// The Message-ID (without its angle brackets) of the root of the
/// message's thread as its header tells: the first of References (RFC
/// 5322 §3.6.4 keeps the first when a list is trimmed), else the
/// In-Reply-To id, else its own; `None` when it names no id at all.
pub fn thread_root(parsed: &Parsed<'_>) -> Option<Vec<u8>> {
    let (own, references) = ids(parsed);
    references.into_iter().next().or(own)
}

/// The `<…>` message ids in a header value.
fn message_ids(value: &[u8]) -> Vec<Vec<u8>> {
    value
        .split(|b| *b == b'<')
        .skip(1)
        .filter_map(|rest| {
            let end = memchr::memchr(b'>', rest)?;
            rest.get(..end)
                .filter(|id| !id.is_empty())
                .map(<[u8]>::to_vec)
        })
        .collect()
}

#[derive(Default)]
struct Container {
    /// Index into the infos; `None` for a dummy.
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

#[derive(Default)]
struct Arena {
    nodes: Vec<Container>,
}

impl Arena {
    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Container {
            message,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    fn node(&self, c: usize) -> Option<&Container> {
        self.nodes.get(c)
    }

    fn children(&self, c: usize) -> &[usize] {
        self.node(c)
            .map(|n| n.children.as_slice())
            .unwrap_or_default()
    }

    fn message(&self, c: usize) -> Option<usize> {
        self.node(c).and_then(|n| n.message)
    }

    fn is_dummy(&self, c: usize) -> bool {
        self.message(c).is_none()
    }

    fn take_children(&mut self, c: usize) -> Vec<usize> {
        self.nodes
            .get_mut(c)
            .map(|n| std::mem::take(&mut n.children))
            .unwrap_or_default()
    }

    /// Makes `child` a child of `parent` (moving it from its old parent).
    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        if let Some(n) = self.nodes.get_mut(child) {
            n.parent = Some(parent);
        }
        if let Some(n) = self.nodes.get_mut(parent) {
            n.children.push(child);
        }
    }

    fn unlink(&mut self, child: usize) {
        let Some(old) = self.nodes.get_mut(child).and_then(|n| n.parent.take()) else {
            return;
        };
        if let Some(n) = self.nodes.get_mut(old) {
            n.children.retain(|&c| c != child);
        }
    }

    /// Whether linking `child` under `parent` would make a loop (`child`
    /// is `parent` or one of its ancestors).
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        let mut at = Some(parent);
        while let Some(c) = at {
            if c == child {
                return true;
            }
            at = self.node(c).and_then(|n| n.parent);
        }
        false
    }

    /// ORDEREDSUBJECT: one thread per base subject, the earliest message
    /// the parent of all the others.
    fn ordered_subject(&mut self, infos: &[Info]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..infos.len()).collect();
        order.sort_by_key(|&i| infos.get(i).map(|m| (&m.subject, m.date)));
        let mut roots: Vec<usize> = Vec::new();
        let mut last: Option<(&str, usize)> = None;
        for i in order {
            let Some(info) = infos.get(i) else { continue };
            let c = self.add(Some(i));
            match last {
                Some((subject, root)) if subject == info.subject => self.link(root, c),
                _ => {
                    roots.push(c);
                    last = Some((&info.subject, c));
                }
            }
        }
        roots.sort_by_key(|&r| self.date(infos, r));
        roots
    }

    /// REFERENCES (RFC 5256 §3 steps 1 to 7).
    fn references(&mut self, infos: &[Info]) -> Vec<usize> {
        let mut by_id: HashMap<&[u8], usize> = HashMap::new();
        for (i, info) in infos.iter().enumerate() {
            let own = self.own_container(&mut by_id, info.message_id.as_deref(), i);
            let mut parent: Option<usize> = None;
            for reference in &info.references {
                let c = self.container(&mut by_id, reference);
                if let Some(p) = parent {
                    let free = self.node(c).is_some_and(|n| n.parent.is_none());
                    if free && !self.would_loop(p, c) {
                        self.link(p, c);
                    }
                }
                parent = Some(c);
            }
            self.unlink(own);
            if let Some(p) = parent.filter(|&p| !self.would_loop(p, own)) {
                self.link(p, own);
            }
        }
        let roots: Vec<usize> = (0..self.nodes.len())
            .filter(|&c| self.node(c).is_some_and(|n| n.parent.is_none()))
            .collect();
        let mut roots = self.prune(roots);
        self.sort_all(infos, &mut roots);
        let mut roots = self.group_subjects(infos, roots);
        self.sort_all(infos, &mut roots);
        roots
    }

    /// The container of a message id, made (as a dummy) if new.
    fn container<'i>(&mut self, by_id: &mut HashMap<&'i [u8], usize>, id: &'i [u8]) -> usize {
        match by_id.get(id) {
            Some(&c) => c,
            None => {
                let c = self.add(None);
                by_id.insert(id, c);
                c
            }
        }
    }

    /// The container of message `i`: the dummy its id already has, or a
    /// new one (a fresh, unlisted one when the id is missing or taken).
    fn own_container<'i>(
        &mut self,
        by_id: &mut HashMap<&'i [u8], usize>,
        id: Option<&'i [u8]>,
        i: usize,
    ) -> usize {
        if let Some(id) = id {
            let c = self.container(by_id, id);
            if let Some(n) = self.nodes.get_mut(c).filter(|n| n.message.is_none()) {
                n.message = Some(i);
                return c;
            }
        }
        self.add(Some(i))
    }

    /// Step 4: removes empty dummies and splices dummies' children into
    /// their parent, except at the root, where a dummy keeps 2+ children.
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        for c in self.post_order(&roots) {
            let mut kept = Vec::new();
            for k in self.take_children(c) {
                if self.is_dummy(k) {
                    kept.extend(self.take_children(k));
                } else {
                    kept.push(k);
                }
            }
            for &k in &kept {
                if let Some(n) = self.nodes.get_mut(k) {
                    n.parent = Some(c);
                }
            }
            if let Some(n) = self.nodes.get_mut(c) {
                n.children = kept;
            }
        }
        let mut out = Vec::new();
        for r in roots {
            match (self.is_dummy(r), self.children(r)) {
                (true, []) => {}
                (true, [only]) => {
                    let only = *only;
                    self.unlink(only);
                    out.push(only);
                }
                _ => out.push(r),
            }
        }
        out
    }

    /// Step 6: gathers root threads with the same base subject.
    fn group_subjects(&mut self, infos: &[Info], mut roots: Vec<usize>) -> Vec<usize> {
        let mut table: HashMap<String, usize> = HashMap::new();
        for &r in &roots {
            let Some((subject, reply)) = self.subject(infos, r) else {
                continue;
            };
            let replace = table.get(&subject).is_none_or(|&t| {
                (self.is_dummy(r) && !self.is_dummy(t))
                    || (self.subject(infos, t).is_some_and(|(_, t_reply)| t_reply) && !reply)
            });
            if replace {
                table.insert(subject, r);
            }
        }
        let mut gone = vec![false; self.nodes.len()];
        let mut i = 0;
        while let Some(&r) = roots.get(i) {
            i += 1;
            if gone.get(r).copied().unwrap_or(true) {
                continue;
            }
            let Some((subject, _)) = self.subject(infos, r) else {
                continue;
            };
            let Some(&t) = table.get(&subject) else {
                continue;
            };
            if t == r {
                continue;
            }
            let (holder, dropped) = self.merge(infos, t, r);
            table.insert(subject, holder);
            for d in dropped {
                if let Some(g) = gone.get_mut(d) {
                    *g = true;
                }
            }
            if holder >= gone.len() {
                gone.resize(holder + 1, false);
                roots.push(holder);
            }
        }
        roots.retain(|&r| !gone.get(r).copied().unwrap_or(true));
        roots
    }

    /// Merges root `r` into the table's root `t` for the same subject:
    /// returns the container now holding the subject (possibly a new
    /// dummy) and the roots that stopped being roots.
    fn merge(&mut self, infos: &[Info], t: usize, r: usize) -> (usize, Vec<usize>) {
        let reply = |arena: &Self, c| arena.subject(infos, c).is_some_and(|(_, reply)| reply);
        match (self.is_dummy(t), self.is_dummy(r)) {
            (true, true) => {
                for k in self.take_children(r) {
                    self.link(t, k);
                }
                (t, vec![r])
            }
            (true, false) => {
                self.link(t, r);
                (t, vec![r])
            }
            (false, true) => {
                self.link(r, t);
                (r, vec![t])
            }
            (false, false) if !reply(self, t) && reply(self, r) => {
                self.link(t, r);
                (t, vec![r])
            }
            (false, false) if reply(self, t) && !reply(self, r) => {
                self.link(r, t);
                (r, vec![t])
            }
            (false, false) => {
                let d = self.add(None);
                self.link(d, t);
                self.link(d, r);
                (d, vec![t, r])
            }
        }
    }

    /// The base subject of a root (a dummy's: its first child's), `None`
    /// when empty.
    fn subject(&self, infos: &[Info], c: usize) -> Option<(String, bool)> {
        let message = match self.message(c) {
            Some(m) => m,
            None => self.children(c).first().and_then(|&k| self.message(k))?,
        };
        let info = infos.get(message)?;
        (!info.subject.is_empty()).then(|| (info.subject.clone(), info.reply))
    }

    /// The sort key of a container: its message's date, or a dummy's first
    /// child's (children sorted first).
    fn date(&self, infos: &[Info], c: usize) -> Option<(i64, u32)> {
        let message = match self.message(c) {
            Some(m) => m,
            None => self.children(c).first().and_then(|&k| self.message(k))?,
        };
        infos.get(message).map(|info| info.date)
    }

    /// Sorts every set of siblings by date, the deepest first, then the
    /// roots (steps 5 and 7).
    fn sort_all(&mut self, infos: &[Info], roots: &mut [usize]) {
        for c in self.post_order(roots) {
            let mut kids = self.take_children(c);
            kids.sort_by_key(|&k| self.date(infos, k));
            if let Some(n) = self.nodes.get_mut(c) {
                n.children = kids;
            }
        }
        roots.sort_by_key(|&r| self.date(infos, r));
    }

    /// Every container under `roots`, children before their parent.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((c, expanded)) = stack.pop() {
            if expanded {
                out.push(c);
                continue;
            }
            match seen.get_mut(c) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            stack.push((c, true));
            stack.extend(self.children(c).iter().rev().map(|&k| (k, false)));
        }
        out
    }

    /// The container `c` as a [`Thread`]: a message with its chain of
    /// only-children as the prefix and its branches as answers; a dummy as
    /// its children nested.
    fn to_thread(&self, infos: &[Info], c: usize, depth: usize) -> Option<Thread> {
        if depth >= MAX_THREAD_DEPTH {
            return self.flat(infos, c);
        }
        let id = |m: usize| infos.get(m).map(|info| info.id);
        let Some(first) = self.message(c) else {
            let mut answers: Vec<Thread> = self
                .children(c)
                .iter()
                .filter_map(|&k| self.to_thread(infos, k, depth + 1))
                .collect();
            return match answers.len() {
                0 | 1 => answers.pop(),
                _ => Vec2::try_from(answers)
                    .ok()
                    .map(|answers| Thread::Nested { answers }),
            };
        };
        let mut prefix = vec![id(first)?];
        let mut at = c;
        while let [only] = self.children(at) {
            let Some(next) = self.message(*only) else {
                break;
            };
            prefix.extend(id(next));
            at = *only;
        }
        let mut answers: Vec<Thread> = self
            .children(at)
            .iter()
            .filter_map(|&k| self.to_thread(infos, k, depth + 1))
            .collect();
        let answers = match answers.len() {
            0 => None,
            1 => match answers.pop()? {
                Thread::Members {
                    prefix: more,
                    answers,
                } => {
                    prefix.extend(more.into_inner());
                    answers
                }
                Thread::Nested { answers } => Some(answers),
            },
            _ => Vec2::try_from(answers).ok(),
        };
        Some(Thread::Members {
            prefix: Vec1::try_from(prefix).ok()?,
            answers,
        })
    }

    /// Every message under `c` as one flat prefix (past the depth limit).
    fn flat(&self, infos: &[Info], c: usize) -> Option<Thread> {
        let mut ids: Vec<NonZeroU32> = self
            .post_order(&[c])
            .into_iter()
            .filter_map(|k| infos.get(self.message(k)?).map(|info| info.id))
            .collect();
        ids.reverse();
        Some(Thread::Members {
            prefix: Vec1::try_from(ids).ok()?,
            answers: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{
        fixtures::{crlf, sort_items, thread_set},
        Parsed,
    };

    fn threads(algorithm: ThreadingAlgorithm<'static>, raws: &[Vec<u8>]) -> String {
        let parsed: Vec<Parsed<'_>> = raws.iter().map(|r| Parsed::parse(r)).collect();
        let items = sort_items(&parsed);
        thread(&algorithm, &items)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn thread_roots_come_from_the_header() {
        let root = |raw: &str| thread_root(&Parsed::parse(raw.as_bytes()));
        assert_eq!(
            root("Message-ID: <3@x>\r\nReferences: <1@x>\r\n <2@x>\r\nIn-Reply-To: <2@x>\r\n\r\nb\r\n"),
            Some(b"1@x".to_vec())
        );
        assert_eq!(
            root("Message-ID: <3@x>\r\nIn-Reply-To: <2@x> <9@x>\r\n\r\nb\r\n"),
            Some(b"2@x".to_vec())
        );
        assert_eq!(
            root("Message-ID: <3@x>\r\n\r\nb\r\n"),
            Some(b"3@x".to_vec())
        );
        assert_eq!(root("Subject: none\r\n\r\nb\r\n"), None);
        assert_eq!(root("References: <>\r\n\r\n"), None);
    }

    #[test]
    fn references_links_prunes_and_groups_subjects() {
        // 6 and 7 share a missing parent (a dummy kept at the root); 8 has
        // no references but "Fwd: Other" joins 3 by subject; 1 has the
        // replies 2 (with its reply 5) and 4; 9 has no Message-ID.
        assert_eq!(
            threads(ThreadingAlgorithm::References, &thread_set()),
            "((6)(7))(3 8)(1 (2 5)(4))(9)"
        );
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        assert_eq!(
            threads(ThreadingAlgorithm::OrderedSubject, &thread_set()),
            "(6 7)(3 8)(1 (2)(4)(5))(9)"
        );
    }

    #[test]
    fn loops_duplicates_and_self_references_are_harmless() {
        let msg = |id: &str, refs: &str, hour: u32| {
            crlf(&format!(
                "Message-ID: {id}\nReferences: {refs}\nSubject: s{hour}\nDate: Wed, 1 Jan 2020 {hour:02}:00:00 +0000\n\n"
            ))
        };
        let raws = vec![
            msg("<a@x>", "<b@x>", 1),
            msg("<b@x>", "<a@x>", 2),
            msg("<a@x>", "<a@x>", 3),
            msg("<c@x>", "<c@x> <d@x> <c@x>", 4),
        ];
        assert_eq!(threads(ThreadingAlgorithm::References, &raws), "(2 1 3)(4)");
    }

    #[test]
    fn other_algorithms_and_zero_ids_give_nothing() {
        let raws = thread_set();
        let parsed: Vec<Parsed<'_>> = raws.iter().map(|r| Parsed::parse(r)).collect();
        let mut items = sort_items(&parsed);
        for item in &mut items {
            item.id = 0;
        }
        assert!(thread(&ThreadingAlgorithm::References, &items).is_empty());
        let other = ThreadingAlgorithm::from(
            imap_types::core::Atom::try_from("X-NEW").unwrap_or_else(|_| unreachable!()),
        );
        assert!(thread(&other, &sort_items(&parsed)).is_empty());
    }

    #[test]
    fn long_reply_chains_and_deep_branches_are_written_without_overflow() {
        let mut raws = Vec::new();
        for i in 0..3000u32 {
            let refs = if i == 0 {
                String::new()
            } else {
                format!("<{}@x>", i - 1)
            };
            raws.push(crlf(&format!(
                "Message-ID: <{i}@x>\nReferences: {refs}\nSubject: chain\nDate: Wed, 1 Jan 2020 00:00:00 +0000\n\n"
            )));
            // A sibling at every level makes every level a branch.
            raws.push(crlf(&format!(
                "Message-ID: <s{i}@x>\nReferences: {refs}\nSubject: chain\nDate: Wed, 1 Jan 2020 00:00:01 +0000\n\n"
            )));
        }
        let out = threads(ThreadingAlgorithm::References, &raws);
        assert!(
            out.starts_with("((1 (3 (5 "),
            "{}",
            &out[..40.min(out.len())]
        );
    }
}

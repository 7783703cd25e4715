//! Mailbox management: CREATE (with USE, RFC 6154 CREATE-SPECIAL-USE;
//! its OK says the new MAILBOXID, RFC 8474), DELETE, RENAME,
//! SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB (with SPECIAL-USE and CHILDREN
//! attributes, RFC 5258 LIST-EXTENDED selection and return options, RFC
//! 5819 LIST-STATUS), STATUS (with MAILBOXID), and GETQUOTA/GETQUOTAROOT.
//! Names are modified UTF-7 on the wire, or UTF-8 once UTF8=ACCEPT or
//! IMAP4rev2 is enabled.

use std::fmt::Write as _;

use cairn_storage::mailbox::{Role, SEPARATOR};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::status::StatusDataItemName;

use super::{Reply, Session};
use crate::codec::extended::{ListReturn, ListSelection, StatusItems};
use crate::codec::objectid;
use crate::codec::response::{self, string};

/// The one quota root of an account.
const QUOTA_ROOT: &str = "";

fn role_attribute(role: Option<Role>) -> Option<&'static str> {
    match role? {
        Role::Inbox => None,
        Role::Sent => Some("\\Sent"),
        Role::Drafts => Some("\\Drafts"),
        Role::Trash => Some("\\Trash"),
        Role::Junk => Some("\\Junk"),
        Role::Archive => Some("\\Archive"),
    }
}

/// The role a CREATE USE attribute asks for (RFC 6154 §2).
fn use_role(attribute: &str) -> Option<Role> {
    match attribute.to_ascii_lowercase().as_str() {
        "\\sent" => Some(Role::Sent),
        "\\drafts" => Some(Role::Drafts),
        "\\trash" => Some(Role::Trash),
        "\\junk" => Some(Role::Junk),
        "\\archive" => Some(Role::Archive),
        _ => None,
    }
}

/// A mailbox as LIST sees it.
struct Listed<'a> {
    name: &'a str,
    role: Option<Role>,
    subscribed: bool,
    /// False for a parent that only its children's names imply.
    exists: bool,
}

/// Whether `name` matches the LIST `pattern` (`*` anything, `%` anything
/// but the separator), in O(pattern × name).
pub(crate) fn matches(pattern: &[char], name: &[char]) -> bool {
    // reach[j]: the pattern so far matches name[..j].
    let mut reach = vec![false; name.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            '*' | '%' => {
                let mut on = false;
                for (j, (r, n)) in reach.iter().zip(next.iter_mut()).enumerate() {
                    on |= *r;
                    *n = on;
                    if p == '%' && name.get(j) == Some(&SEPARATOR) {
                        on = false;
                    }
                }
            }
            c => {
                for ((r, ch), n) in reach.iter().zip(name).zip(next.iter_mut().skip(1)) {
                    *n = *r && *ch == c;
                }
            }
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

impl Session<'_> {
    /// CREATE, with the special uses of `uses` (`\Sent` …).
    pub(super) async fn create(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        uses: &[String],
    ) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let role = match uses {
            [] => None,
            [one] => match use_role(one) {
                Some(role) => Some(role),
                None => return Reply::no("USEATTR", format!("Special use {one} is not supported")),
            },
            _ => return Reply::no("USEATTR", "A mailbox has one special use at most"),
        };
        // A trailing separator only says the client wants children.
        let name = name.trim_end_matches(SEPARATOR).to_string();
        let store = &self.inner.services.mailstore;
        match store.create_mailbox(account, &name, role).await {
            Ok(()) => match store.status(account, &name) {
                Ok(st) => Reply::ok_code(
                    format!("MAILBOXID ({})", objectid::mailbox(st.uidvalidity)),
                    "CREATE completed",
                ),
                // Gone already (another session deleted it).
                Err(_) => Reply::ok("CREATE completed"),
            },
            Err(e) => Reply::mail(&e),
        }
    }

    pub(super) async fn delete(&mut self, account: &str, mailbox: &Mailbox<'_>) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        if self.selected.as_ref().is_some_and(|v| v.mailbox == name) {
            return Reply::no("INUSE", "Cannot delete the selected mailbox");
        }
        match self
            .inner
            .services
            .mailstore
            .delete_mailbox(account, &name)
            .await
        {
            Ok(()) => Reply::ok("DELETE completed"),
            Err(e) => Reply::mail(&e),
        }
    }

    pub(super) async fn rename(
        &mut self,
        account: &str,
        from: &Mailbox<'_>,
        to: &Mailbox<'_>,
    ) -> Reply {
        let (from, to) = match (self.mailbox_name(from), self.mailbox_name(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        match self
            .inner
            .services
            .mailstore
            .rename_mailbox(account, &from, &to)
            .await
        {
            Ok(()) => Reply::ok("RENAME completed"),
            Err(e) => Reply::mail(&e),
        }
    }

    pub(super) async fn subscribe(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        on: bool,
    ) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        match self
            .inner
            .services
            .mailstore
            .subscribe(account, &name, on)
            .await
        {
            Ok(()) if on => Reply::ok("SUBSCRIBE completed"),
            Ok(()) => Reply::ok("UNSUBSCRIBE completed"),
            Err(e) => Reply::mail(&e),
        }
    }

    /// LIST and LSUB (RFC 3501).
    pub(super) fn list(
        &mut self,
        account: &str,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Reply {
        let reference = match reference {
            Mailbox::Inbox => b"INBOX".as_slice(),
            Mailbox::Other(o) => o.inner().as_ref(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let ret = ListReturn {
            // A plain LIST has always said which are subscribed.
            subscribed: !lsub,
            ..ListReturn::default()
        };
        self.list_any(
            account,
            ListSelection::default(),
            reference,
            &[pattern],
            &ret,
            lsub,
        )
    }

    /// LIST with selection options, several patterns, return options
    /// (RFC 5258, RFC 5819 STATUS, RFC 6154 SPECIAL-USE).
    pub(super) fn list_extended(
        &mut self,
        account: &str,
        selection: ListSelection,
        reference: &[u8],
        patterns: &[Vec<u8>],
        ret: &ListReturn,
    ) -> Reply {
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        let ret = ListReturn {
            subscribed: ret.subscribed || selection.subscribed,
            ..ret.clone()
        };
        self.list_any(account, selection, reference, &patterns, &ret, false)
    }

    fn list_any(
        &mut self,
        account: &str,
        selection: ListSelection,
        reference: &[u8],
        patterns: &[&[u8]],
        ret: &ListReturn,
        lsub: bool,
    ) -> Reply {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match self.wire_name(reference) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let mut fulls: Vec<Vec<char>> = Vec::new();
        for pattern in patterns {
            match self.wire_name(pattern) {
                Ok(p) if p.is_empty() => {}
                Ok(p) => fulls.push(format!("{reference}{p}").chars().collect()),
                Err(r) => return r,
            }
        }
        if fulls.is_empty() {
            response::untagged(&mut self.out, &format!("{verb} (\\Noselect) \"/\" \"\""));
            return Reply::ok(format!("{verb} completed"));
        }
        let boxes = match self.inner.services.mailstore.mailboxes(account) {
            Ok(b) => b,
            Err(e) => return Reply::mail(&e),
        };
        let matched = |name: &str| {
            let chars: Vec<char> = name.chars().collect();
            fulls.iter().any(|full| {
                let inbox_match = name == "INBOX" && {
                    let upper: Vec<char> = full.iter().map(|c| c.to_ascii_uppercase()).collect();
                    matches(&upper, &chars)
                };
                inbox_match || matches(full, &chars)
            })
        };
        // The mailboxes, and the parents only their children imply.
        let mut all: Vec<Listed<'_>> = boxes
            .iter()
            .map(|(name, role, subscribed)| Listed {
                name,
                role: *role,
                subscribed: *subscribed,
                exists: true,
            })
            .collect();
        for (name, _, _) in &boxes {
            for (i, _) in name.match_indices(SEPARATOR) {
                let parent = name.get(..i).unwrap_or_default();
                if !parent.is_empty() && !all.iter().any(|l| l.name == parent) {
                    all.push(Listed {
                        name: parent,
                        role: None,
                        subscribed: false,
                        exists: false,
                    });
                }
            }
        }
        all.sort_by(|a, b| (a.name != "INBOX", a.name).cmp(&(b.name != "INBOX", b.name)));
        let mut lines = Vec::new();
        for item in &all {
            if !matched(item.name) {
                continue;
            }
            let prefix = format!("{}{SEPARATOR}", item.name);
            let below = || all.iter().filter(|l| l.name.starts_with(&prefix));
            let children = below().next().is_some();
            // RECURSIVEMATCH: a parent of a subscribed mailbox that the
            // patterns leave out is listed with CHILDINFO (RFC 5258 §3.5).
            let childinfo =
                selection.recursive_match && below().any(|l| l.subscribed && !matched(l.name));
            let special = role_attribute(item.role);
            let wanted = if lsub || selection.subscribed {
                item.subscribed || childinfo
            } else {
                item.exists || children
            };
            if !wanted || (selection.special_use && special.is_none()) {
                continue;
            }
            let mut attrs = Vec::new();
            if !item.exists {
                attrs.push(if selection.subscribed {
                    "\\NonExistent"
                } else {
                    "\\Noselect"
                });
            }
            attrs.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            attrs.extend(special);
            if item.subscribed && ret.subscribed {
                attrs.push("\\Subscribed");
            }
            let mut line = format!(
                "{verb} ({}) \"{SEPARATOR}\" {}",
                attrs.join(" "),
                self.name_string(item.name)
            );
            if childinfo {
                line.push_str(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            lines.push((line, item.exists.then_some(item.name)));
        }
        for (line, name) in lines {
            response::untagged(&mut self.out, &line);
            if let (Some(items), Some(name)) = (&ret.status, name) {
                // A mailbox gone since is left out (RFC 5819 §2).
                let _ = self.status_line(account, name, items);
            }
        }
        Reply::ok(format!("{verb} completed"))
    }

    pub(super) fn status(&mut self, account: &str, name: &str, items: &StatusItems) -> Reply {
        match self.status_line(account, name, items) {
            Ok(()) => Reply::ok("STATUS completed"),
            Err(e) => Reply::mail(&e),
        }
    }

    /// Writes `* STATUS name (items)`.
    fn status_line(
        &mut self,
        account: &str,
        name: &str,
        items: &StatusItems,
    ) -> Result<(), cairn_storage::mailbox::MailError> {
        let recent = &self.inner.recent;
        let read = self
            .inner
            .services
            .mailstore
            .read_mailbox(account, name, |mb| {
                let st = mb.status();
                let mut parts = Vec::new();
                for item in &items.names {
                    let part = match item {
                        StatusDataItemName::Messages => format!("MESSAGES {}", st.messages),
                        StatusDataItemName::Recent => format!(
                            "RECENT {}",
                            recent.unclaimed(account, name, mb.messages.keys().copied())
                        ),
                        StatusDataItemName::UidNext => format!("UIDNEXT {}", st.uidnext),
                        StatusDataItemName::UidValidity => {
                            format!("UIDVALIDITY {}", st.uidvalidity)
                        }
                        StatusDataItemName::Unseen => format!("UNSEEN {}", st.unseen),
                        StatusDataItemName::Deleted => format!(
                            "DELETED {}",
                            mb.messages.values().filter(|m| m.flags.deleted()).count()
                        ),
                        StatusDataItemName::Size => format!("SIZE {}", st.size),
                        StatusDataItemName::HighestModSeq => {
                            format!("HIGHESTMODSEQ {}", st.highest_modseq)
                        }
                        StatusDataItemName::DeletedStorage => format!(
                            "DELETED-STORAGE {}",
                            mb.messages
                                .values()
                                .filter(|m| m.flags.deleted())
                                .map(|m| m.size)
                                .sum::<u64>()
                        ),
                    };
                    parts.push(part);
                }
                if items.mailboxid {
                    parts.push(format!("MAILBOXID ({})", objectid::mailbox(mb.uidvalidity)));
                }
                parts.join(" ")
            });
        let line = format!("STATUS {} ({})", self.name_string(name), read?);
        response::untagged(&mut self.out, &line);
        Ok(())
    }

    fn quota_line(&mut self, account: &str) -> Result<(), Reply> {
        let (bytes, quota_bytes, messages, quota_messages) = self
            .inner
            .services
            .mailstore
            .quota(account)
            .map_err(|e| Reply::mail(&e))?;
        let mut line = format!("QUOTA {} (", string(QUOTA_ROOT));
        let mut parts = Vec::new();
        if quota_bytes > 0 {
            parts.push(format!(
                "STORAGE {} {}",
                bytes.div_ceil(1024),
                quota_bytes / 1024
            ));
        }
        if quota_messages > 0 {
            parts.push(format!("MESSAGE {messages} {quota_messages}"));
        }
        let _ = write!(line, "{})", parts.join(" "));
        response::untagged(&mut self.out, &line);
        Ok(())
    }

    pub(super) fn get_quota(&mut self, account: &str, root: &[u8]) -> Reply {
        if root != QUOTA_ROOT.as_bytes() {
            return Reply::no("NONEXISTENT", "No such quota root");
        }
        match self.quota_line(account) {
            Ok(()) => Reply::ok("GETQUOTA completed"),
            Err(r) => r,
        }
    }

    pub(super) fn get_quota_root(&mut self, account: &str, mailbox: &Mailbox<'_>) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        if let Err(e) = self.inner.services.mailstore.status(account, &name) {
            return Reply::mail(&e);
        }
        let line = format!(
            "QUOTAROOT {} {}",
            self.name_string(&name),
            string(QUOTA_ROOT)
        );
        response::untagged(&mut self.out, &line);
        match self.quota_line(account) {
            Ok(()) => Reply::ok("GETQUOTAROOT completed"),
            Err(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        let (p, n): (Vec<char>, Vec<char>) = (p.chars().collect(), n.chars().collect());
        matches(&p, &n)
    }

    #[test]
    fn patterns() {
        assert!(m("*", "a/b"));
        assert!(m("%", "a"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(m("a*", "a/b/c"));
        assert!(!m("b*", "a"));
    }
}

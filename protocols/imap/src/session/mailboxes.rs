//! Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE,
//! LIST/LSUB (with SPECIAL-USE and CHILDREN attributes), STATUS, and
//! GETQUOTA/GETQUOTAROOT.

use std::fmt::Write as _;

use cairn_storage::mailbox::{Role, SEPARATOR};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::status::StatusDataItemName;

use super::{Reply, Session};
use crate::codec::response::{self, string};
use crate::codec::utf7;

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
    pub(super) async fn create(&mut self, account: &str, mailbox: &Mailbox<'_>) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        // A trailing separator only says the client wants children.
        let name = name.trim_end_matches(SEPARATOR).to_string();
        match self
            .inner
            .services
            .mailstore
            .create_mailbox(account, &name, None)
            .await
        {
            Ok(()) => Reply::ok("CREATE completed"),
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

    pub(super) fn list(
        &mut self,
        account: &str,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Reply {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_string(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.inner().as_ref()).into_owned(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let (Ok(reference), Ok(pattern)) = (utf7::decode(&reference), utf7::decode(&pattern))
        else {
            return Reply::bad("Mailbox name is not valid modified UTF-7");
        };
        if pattern.is_empty() {
            response::untagged(&mut self.out, &format!("{verb} (\\Noselect) \"/\" \"\""));
            return Reply::ok(format!("{verb} completed"));
        }
        let full: Vec<char> = format!("{reference}{pattern}").chars().collect();
        let boxes = match self.inner.services.mailstore.mailboxes(account) {
            Ok(b) => b,
            Err(e) => return Reply::mail(&e),
        };
        for (name, role, subscribed) in &boxes {
            if lsub && !subscribed {
                continue;
            }
            let chars: Vec<char> = name.chars().collect();
            let inbox_match = name == "INBOX" && {
                let upper: Vec<char> = full.iter().map(|c| c.to_ascii_uppercase()).collect();
                matches(&upper, &chars)
            };
            if !inbox_match && !matches(&full, &chars) {
                continue;
            }
            let prefix = format!("{name}{SEPARATOR}");
            let children = boxes.iter().any(|(n, _, _)| n.starts_with(&prefix));
            let mut attrs = vec![if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if let Some(a) = role_attribute(*role) {
                attrs.push(a);
            }
            if *subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            let line = format!(
                "{verb} ({}) \"{SEPARATOR}\" {}",
                attrs.join(" "),
                string(&utf7::encode(name))
            );
            response::untagged(&mut self.out, &line);
        }
        Reply::ok(format!("{verb} completed"))
    }

    pub(super) fn status(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        items: &[StatusDataItemName],
    ) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let recent = &self.inner.recent;
        let read = self
            .inner
            .services
            .mailstore
            .read_mailbox(account, &name, |mb| {
                let st = mb.status();
                let mut parts = Vec::new();
                for item in items {
                    let part = match item {
                        StatusDataItemName::Messages => format!("MESSAGES {}", st.messages),
                        StatusDataItemName::Recent => format!(
                            "RECENT {}",
                            recent.unclaimed(account, &name, mb.messages.keys().copied())
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
                parts.join(" ")
            });
        match read {
            Ok(items) => {
                let line = format!("STATUS {} ({items})", string(&utf7::encode(&name)));
                response::untagged(&mut self.out, &line);
                Reply::ok("STATUS completed")
            }
            Err(e) => Reply::mail(&e),
        }
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
            string(&utf7::encode(&name)),
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

//! SELECT and EXAMINE (with CONDSTORE and QRESYNC parameters, RFC 7162;
//! the MAILBOXID, RFC 8474), CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE.

use std::fmt::Write as _;

use imap_types::command::SelectParameter;
use imap_types::mailbox::Mailbox;
use imap_types::sequence::SequenceSet;

use super::view::{flag_list, uid_set, View};
use super::{Reply, Session};
use crate::codec::{objectid, response};

const PERMANENT: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

impl Session<'_> {
    pub(super) fn select(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
    ) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let mut qresync = None;
        for p in parameters {
            match p {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.enabled.qresync {
                        return Reply::bad("QRESYNC is not enabled");
                    }
                    qresync = Some((
                        uid_validity.get(),
                        mod_sequence_value.get(),
                        known_uids.clone(),
                    ));
                }
            }
        }
        // A new SELECT deselects first, even if it fails; CLOSED says so
        // (RFC 7162 §3.2.11, RFC 9051 §7.1).
        let e = self.enabled;
        if self.selected.take().is_some() && (e.qresync || e.condstore || e.rev2) {
            response::status(
                &mut self.out,
                None,
                response::Kind::Ok,
                Some("CLOSED"),
                "Previous mailbox closed",
            );
        }
        let store = &self.inner.services.mailstore;
        let recent = &self.inner.recent;
        let out = &mut self.out;
        let condstore = self.enabled.condstore;
        let rev2 = self.enabled.rev2;
        let opened = store.read_mailbox(account, &name, |mb| {
            let mut view = View::open(name.clone(), mb, read_only, recent, account);
            view.rev2 = rev2;
            let mut keywords: Vec<&str> = mb
                .messages
                .values()
                .flat_map(|m| m.flags.keywords.iter().map(String::as_str))
                .collect();
            keywords.sort_unstable();
            keywords.dedup();
            let mut flags = PERMANENT.to_string();
            for k in &keywords {
                let _ = write!(flags, " {k}");
            }
            response::untagged(out, &format!("FLAGS ({flags})"));
            response::untagged(out, &format!("{} EXISTS", view.exists()));
            if !rev2 {
                response::untagged(out, &format!("{} RECENT", view.recent_count()));
            }
            let first_unseen = mb.messages.values().position(|m| !m.flags.seen());
            if let Some(first) = first_unseen.filter(|_| !rev2) {
                response::status(
                    out,
                    None,
                    response::Kind::Ok,
                    Some(&format!("UNSEEN {}", first + 1)),
                    "First unseen",
                );
            }
            let perm = if read_only {
                "PERMANENTFLAGS ()".to_string()
            } else {
                format!("PERMANENTFLAGS ({flags} \\*)")
            };
            response::status(
                out,
                None,
                response::Kind::Ok,
                Some(&perm),
                "Flags permitted",
            );
            response::status(
                out,
                None,
                response::Kind::Ok,
                Some(&format!("UIDVALIDITY {}", mb.uidvalidity)),
                "UIDs valid",
            );
            response::status(
                out,
                None,
                response::Kind::Ok,
                Some(&format!("UIDNEXT {}", mb.uidnext)),
                "Predicted next UID",
            );
            response::status(
                out,
                None,
                response::Kind::Ok,
                Some(&format!(
                    "MAILBOXID ({})",
                    objectid::mailbox(mb.uidvalidity)
                )),
                "Mailbox id",
            );
            if condstore {
                response::status(
                    out,
                    None,
                    response::Kind::Ok,
                    Some(&format!("HIGHESTMODSEQ {}", mb.highest_modseq)),
                    "Highest",
                );
            }
            if let Some((uidvalidity, modseq, known)) = &qresync {
                if *uidvalidity == mb.uidvalidity {
                    let known_uids: Option<Vec<u32>> =
                        known.as_ref().map(|set| view.resolve_known(set, mb));
                    let vanished: Vec<u32> = mb
                        .expunged
                        .iter()
                        .filter(|(uid, at)| {
                            *at > *modseq
                                && known_uids
                                    .as_ref()
                                    .is_none_or(|k| k.binary_search(uid).is_ok())
                        })
                        .map(|(uid, _)| *uid)
                        .collect::<std::collections::BTreeSet<u32>>()
                        .into_iter()
                        .collect();
                    if !vanished.is_empty() {
                        response::untagged(
                            out,
                            &format!("VANISHED (EARLIER) {}", uid_set(&vanished)),
                        );
                    }
                    for (uid, m) in &mb.messages {
                        if m.modseq > *modseq {
                            if let Some(seq) = view.seq_of(*uid) {
                                response::untagged(
                                    out,
                                    &format!(
                                        "{seq} FETCH (UID {uid} FLAGS {} MODSEQ ({}))",
                                        flag_list(&m.flags, view.is_recent(*uid)),
                                        m.modseq
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            view
        });
        match opened {
            Ok(view) => {
                self.selected = Some(view);
                if read_only {
                    Reply::ok_code("READ-ONLY", "EXAMINE completed")
                } else {
                    Reply::ok_code("READ-WRITE", "SELECT completed")
                }
            }
            Err(e) => Reply::mail(&e),
        }
    }

    /// CLOSE (expunging when writable) or UNSELECT.
    pub(super) async fn close(&mut self, account: &str, expunge: bool) -> Reply {
        let Some(view) = self.selected.take() else {
            return Reply::bad("No mailbox selected");
        };
        if expunge && !view.read_only {
            if let Err(e) = self
                .inner
                .services
                .mailstore
                .expunge(account, &view.mailbox, None)
                .await
            {
                return Reply::mail(&e);
            }
        }
        Reply::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }

    /// EXPUNGE, or UID EXPUNGE of `set`; the view's sync reports them.
    pub(super) async fn expunge(&mut self, account: &str, set: Option<&SequenceSet>) -> Reply {
        let Some(view) = &self.selected else {
            return Reply::bad("No mailbox selected");
        };
        if view.read_only {
            return Reply::no("READ-ONLY", "The mailbox is read-only");
        }
        let uids: Option<Vec<u32>> =
            set.map(|s| view.resolve(s, true).into_iter().map(|(_, u)| u).collect());
        let mailbox = view.mailbox.clone();
        match self
            .inner
            .services
            .mailstore
            .expunge(account, &mailbox, uids.as_deref())
            .await
        {
            Ok(_) => Reply::ok("EXPUNGE completed"),
            Err(e) => Reply::mail(&e),
        }
    }
}

//! COPY, MOVE and their UID forms, with `[COPYUID …]` (UIDPLUS); a move's
//! expunges are reported by the view's sync.

use imap_types::mailbox::Mailbox;
use imap_types::sequence::SequenceSet;

use super::view::uid_set;
use super::{Reply, Session};

impl Session<'_> {
    pub(super) async fn copy(
        &mut self,
        account: &str,
        set: &SequenceSet,
        to: &Mailbox<'_>,
        uid: bool,
        moving: bool,
    ) -> Reply {
        let Some(view) = &self.selected else {
            return Reply::bad("No mailbox selected");
        };
        if moving && view.read_only {
            return Reply::no("READ-ONLY", "The mailbox is read-only");
        }
        let target = match self.mailbox_name(to) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let uids: Vec<u32> = view.resolve(set, uid).into_iter().map(|(_, u)| u).collect();
        let verb = match (uid, moving) {
            (false, false) => "COPY",
            (true, false) => "UID COPY",
            (false, true) => "MOVE",
            (true, true) => "UID MOVE",
        };
        if uids.is_empty() {
            return Reply::ok(format!("{verb} completed (nothing to do)"));
        }
        let store = &self.inner.services.mailstore;
        let uidvalidity = match store.status(account, &target) {
            Ok(st) => st.uidvalidity,
            Err(e) => {
                let mut reply = Reply::mail(&e);
                if reply.code.as_deref() == Some("NONEXISTENT") {
                    reply.code = Some("TRYCREATE".into());
                }
                return reply;
            }
        };
        let mailbox = view.mailbox.clone();
        match store.copy(account, &mailbox, &target, &uids, moving).await {
            Ok(pairs) if pairs.is_empty() => Reply::ok(format!("{verb} completed")),
            Ok(mut pairs) => {
                pairs.sort_unstable();
                let from: Vec<u32> = pairs.iter().map(|(o, _)| *o).collect();
                let new: Vec<u32> = pairs.iter().map(|(_, n)| *n).collect();
                let code = format!("COPYUID {uidvalidity} {} {}", uid_set(&from), uid_set(&new));
                if moving {
                    // RFC 6851: COPYUID in an untagged OK before the expunges.
                    crate::codec::response::status(
                        &mut self.out,
                        None,
                        crate::codec::response::Kind::Ok,
                        Some(&code),
                        "Moved",
                    );
                    Reply::ok(format!("{verb} completed"))
                } else {
                    Reply::ok_code(code, format!("{verb} completed"))
                }
            }
            Err(e) => Reply::mail(&e),
        }
    }
}

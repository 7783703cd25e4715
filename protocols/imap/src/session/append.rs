//! APPEND: flags and internal date, `[APPENDUID …]` (UIDPLUS),
//! `NO [TRYCREATE]` for a missing mailbox, `NO [OVERQUOTA]`. The tagged
//! OK is sent only once the message is durable.

use imap_types::datetime::DateTime;
use imap_types::extensions::binary::LiteralOrLiteral8;
use imap_types::flag::Flag;
use imap_types::mailbox::Mailbox;

use super::store::to_flags;
use super::{Reply, Session};

impl Session<'_> {
    pub(super) async fn append(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        message: &LiteralOrLiteral8<'_>,
    ) -> Reply {
        let name = match self.mailbox_name(mailbox) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let flags = match to_flags(flags) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let body: &[u8] = match message {
            LiteralOrLiteral8::Literal(l) => l.as_ref(),
            LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
        };
        if body.is_empty() {
            return Reply::no("CANNOT", "Empty message");
        }
        let internal_date = date.map_or_else(
            || chrono::Utc::now().timestamp(),
            |d| d.as_ref().timestamp(),
        );
        let store = &self.inner.services.mailstore;
        match store
            .append(account, &name, body, flags, internal_date)
            .await
        {
            Ok(d) => Reply::ok_code(
                format!("APPENDUID {} {}", d.uidvalidity, d.uid),
                "APPEND completed",
            ),
            Err(e) => {
                let mut reply = Reply::mail(&e);
                if reply.code.as_deref() == Some("NONEXISTENT") {
                    reply.code = Some("TRYCREATE".into());
                }
                reply
            }
        }
    }
}

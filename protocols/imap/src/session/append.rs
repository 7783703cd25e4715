//! APPEND: flags and internal date, `[APPENDUID …]` (UIDPLUS),
//! `NO [TRYCREATE]` for a missing mailbox, `NO [OVERQUOTA]`. The tagged
//! OK is sent only once the message is durable.
//!
//! MULTIAPPEND (RFC 3502) is all or nothing: every message is checked
//! first, and the store appends them together as one durable operation
//! ([`cairn_storage::mailbox::MailStore::append_many`]) with consecutive
//! UIDs, so that a refusal (`NO [OVERQUOTA]` …) or a crash leaves none.
//!
//! A CATENATE message (RFC 4469) is put together first (see
//! [`super::catenate`]) and then appended as any other.

use std::borrow::Cow;

use cairn_storage::mailbox::{Flags, MailError};
use imap_types::command::{Command, CommandBody};
use imap_types::datetime::DateTime;
use imap_types::extensions::binary::LiteralOrLiteral8;
use imap_types::flag::Flag;
use imap_types::mailbox::Mailbox;

use super::store::to_flags;
use super::view::uid_set;
use super::{Reply, Session};
use crate::codec::command;
use crate::codec::extended::AppendMessage;

/// One message to append, checked.
struct Prepared<'b> {
    mailbox: String,
    flags: Flags,
    internal_date: i64,
    body: Cow<'b, [u8]>,
}

/// A message literal's bytes.
fn data<'b>(message: &'b LiteralOrLiteral8<'_>) -> &'b [u8] {
    match message {
        LiteralOrLiteral8::Literal(l) => l.as_ref(),
        LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
    }
}

/// The reply for a refused append: a missing mailbox is TRYCREATE.
fn refused(e: &MailError) -> Reply {
    let mut reply = Reply::mail(e);
    if reply.code.as_deref() == Some("NONEXISTENT") {
        reply.code = Some("TRYCREATE".into());
    }
    reply
}

impl Session<'_> {
    fn prepare<'b>(
        &self,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        body: Cow<'b, [u8]>,
    ) -> Result<Prepared<'b>, Reply> {
        let mailbox = self.mailbox_name(mailbox)?;
        let flags = to_flags(flags)?;
        if body.is_empty() {
            return Err(Reply::no("CANNOT", "Empty message"));
        }
        let internal_date = date.map_or_else(
            || chrono::Utc::now().timestamp(),
            |d| d.as_ref().timestamp(),
        );
        Ok(Prepared {
            mailbox,
            flags,
            internal_date,
            body,
        })
    }

    pub(super) async fn append(
        &mut self,
        account: &str,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        message: &LiteralOrLiteral8<'_>,
    ) -> Reply {
        let one = match self.prepare(mailbox, flags, date, Cow::Borrowed(data(message))) {
            Ok(one) => one,
            Err(r) => return r,
        };
        let store = &self.inner.services.mailstore;
        match store
            .append(
                account,
                &one.mailbox,
                &one.body,
                one.flags,
                one.internal_date,
            )
            .await
        {
            Ok(d) => Reply::ok_code(
                format!("APPENDUID {} {}", d.uidvalidity, d.uid),
                "APPEND completed",
            ),
            Err(e) => refused(&e),
        }
    }

    /// MULTIAPPEND, UTF8 data or CATENATE: one plain APPEND command per
    /// message, with the parts of a catenated one.
    pub(super) async fn multiappend(&mut self, account: &str, messages: &[AppendMessage]) -> Reply {
        let mut commands: Vec<Command<'_>> = Vec::with_capacity(messages.len());
        for one in messages {
            match command::decode(&one.plain) {
                Ok(c) => commands.push(c),
                Err(_) => return Reply::bad("Syntax error in APPEND"),
            }
        }
        // The catenated messages, all within one APPEND limit.
        let mut budget = self.inner.options.max_literal;
        let mut catenated = Vec::with_capacity(messages.len());
        for one in messages {
            catenated.push(match &one.catenate {
                Some(parts) => match self.catenate(account, parts, &mut budget).await {
                    Ok(body) => Some(body),
                    Err(r) => return r,
                },
                None => None,
            });
        }
        let mut prepared = Vec::with_capacity(commands.len());
        for (c, catenated) in commands.iter().zip(catenated) {
            let CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } = &c.body
            else {
                return Reply::bad("Syntax error in APPEND");
            };
            let body = catenated.map_or_else(|| Cow::Borrowed(data(message)), Cow::Owned);
            match self.prepare(mailbox, flags, date.as_ref(), body) {
                Ok(p) => prepared.push(p),
                Err(r) => return r,
            }
        }
        self.append_all(account, &prepared).await
    }

    /// Appends every message (one mailbox: the command names one), or
    /// none.
    async fn append_all(&mut self, account: &str, messages: &[Prepared<'_>]) -> Reply {
        let Some(mailbox) = messages.first().map(|m| m.mailbox.as_str()) else {
            return Reply::bad("Syntax error in APPEND");
        };
        let batch: Vec<(&[u8], Flags, i64)> = messages
            .iter()
            .map(|m| (&*m.body, m.flags.clone(), m.internal_date))
            .collect();
        let store = &self.inner.services.mailstore;
        match store.append_many(account, mailbox, &batch).await {
            Ok(done) => {
                let uidvalidity = done.first().map_or(0, |d| d.uidvalidity);
                let uids: Vec<u32> = done.iter().map(|d| d.uid).collect();
                Reply::ok_code(
                    format!("APPENDUID {uidvalidity} {}", uid_set(&uids)),
                    "APPEND completed",
                )
            }
            Err(e) => refused(&e),
        }
    }
}

//! Several messages appended to one mailbox at once (IMAP MULTIAPPEND,
//! RFC 3502): all of them or none. The bodies are staged first, each
//! distinct one once (its own record, referred to by every message of the
//! batch that carries it; one left without a message is garbage that
//! compaction reclaims), then the messages are planned together under the
//! account's lock — the quota for their total, counting the appends in
//! flight, consecutive UIDs, one MODSEQ — and committed as one
//! [`MailOp::AppendMany`] record. One record is whole or absent at
//! recovery, and it is applied to the state in one step, so that other
//! sessions (and their IDLE) see every message at once or none.

use std::collections::HashMap;
use std::rc::Rc;

use super::blobs::hash_of;
use super::flags::{self, Flags};
use super::ops::NewMessage;
use super::{canonical, Delivered, MailError, MailOp, MailStore, Pin, Staged};

impl MailStore {
    /// Appends `messages` (body, flags, internal date) to `mailbox`, in
    /// order, with consecutive UIDs, all or none. Refused whole when one of
    /// them has too many keywords or together they exceed the quota.
    pub async fn append_many(
        &self,
        account: &str,
        mailbox: &str,
        messages: &[(&[u8], Flags, i64)],
    ) -> Result<Vec<Delivered>, MailError> {
        if messages
            .iter()
            .any(|(_, f, _)| f.keywords.len() > flags::MAX_KEYWORDS)
        {
            return Err(MailError::TooManyKeywords(flags::MAX_KEYWORDS));
        }
        let count = u32::try_from(messages.len())
            .map_err(|_| MailError::Corrupt("too many messages in one append".into()))?;
        let size: u64 = messages.iter().map(|(b, ..)| b.len() as u64).sum();
        let mailbox = canonical(mailbox);
        // Refused before any body is written, where it can be.
        self.read(account, |a| {
            a.mailbox(&mailbox)?;
            a.check_quota(size, count.into())
        })?;
        if count == 0 {
            return Ok(Vec::new());
        }
        // Each distinct body staged once; `carried[i]`: message i's body.
        let mut staged = Vec::new();
        let mut first_of = HashMap::new();
        let carried: Vec<usize> = messages
            .iter()
            .map(|(body, ..)| {
                let hash = hash_of(body);
                *first_of.entry(hash).or_insert_with(|| {
                    staged.push(self.stage_hashed(hash, body));
                    staged.len() - 1
                })
            })
            .collect();
        let done = self
            .append_staged_many(
                account,
                &mailbox,
                (&staged, &carried),
                messages,
                (size, count),
            )
            .await;
        for (blob, _) in &staged {
            self.finish_blob(blob).await;
        }
        done
    }

    /// Plans and queues the batch: `staged` holds its distinct bodies,
    /// `carried` the index there of each message's body.
    async fn append_staged_many(
        &self,
        account: &str,
        mailbox: &str,
        (staged, carried): (&[(Staged, Rc<Pin>)], &[usize]),
        messages: &[(&[u8], Flags, i64)],
        (size, count): (u64, u32),
    ) -> Result<Vec<Delivered>, MailError> {
        let pipe = self.pipe_of(account);
        let guard = pipe.lock.lock().await;
        let (first, modseq, uidvalidity) =
            self.plan_appends(&pipe, account, mailbox, (size, count))?;
        let mut pending = Vec::new();
        let mut blobs = Vec::with_capacity(staged.len());
        for (blob, _) in staged {
            let (blob, in_flight) = self.reference(blob)?;
            pending.extend(in_flight);
            blobs.push(blob);
        }
        let mut planned = Vec::with_capacity(messages.len());
        for (((body, flags, internal_date), &carries), uid) in
            messages.iter().zip(carried).zip(first..)
        {
            planned.push(NewMessage {
                uid,
                flags: flags.clone(),
                internal_date: *internal_date,
                size: body.len() as u64,
                // Made above for every index `carried` holds.
                blob: blobs[carries],
            });
        }
        let op = MailOp::AppendMany {
            account: account.to_string(),
            mailbox: mailbox.to_string(),
            modseq,
            messages: planned,
        };
        let pins = staged.iter().map(|(_, pin)| pin.clone()).collect();
        let rx = self.launch(&pipe, op, (size, count.into()), pending, pins);
        pipe.flight
            .borrow_mut()
            .reserved
            .insert(mailbox.to_string(), (first + count, modseq + 1));
        drop(guard);
        rx.await
            .unwrap_or_else(|_| Err(MailError::Corrupt("a commit task was lost".into())))?;
        Ok((first..first + count)
            .map(|uid| Delivered { uidvalidity, uid })
            .collect())
    }
}

//! Carrying an account's mail (and its classifier) to another shard.
//!
//! The source holds the account still ([`MailStore::freeze`]: its lock,
//! taken once nothing is in flight, so every write to it waits) and hands
//! out a copy of its state. The target rebuilds it ([`MailStore::import`])
//! from ordinary, durable mail operations, keeping every id a client
//! relies on: the account and its mailboxes (names, roles, subscriptions,
//! UIDVALIDITY), then every body appended, through the same staging path
//! as deliveries, to a hidden staging mailbox, then each mailbox's history
//! replayed in MODSEQ order — the messages copied from staging under their
//! own UID at their own MODSEQ (flags and internal date come along), the
//! expunged UIDs born and expunged again at theirs (so UIDNEXT and the
//! QRESYNC history come out the same), HIGHESTMODSEQ raised last — then
//! the staging mailbox dropped and the quota set. The copy is compared
//! with the source's state (bodies by content hash) before it counts.
//! Once the placement points at the target, the source deletes its copy
//! while still holding the account ([`MailStore::thaw`]), so a write that
//! waited finds the account gone ([`MailError::NoSuchAccount`], which
//! SMTP answers with a 451 and IMAP with `NO [UNAVAILABLE]`: the client
//! retries and is routed to the target) and none lands on the old copy.
//! (Routed deliveries do not wait: the mail service refuses them at once
//! while the account is held.)

use std::collections::BTreeMap;
use std::future::Future;

use cairn_shards::sync::LocalGuard;

use super::{Account, BlobRef, MailError, MailOp, MailStore, DEFAULT_MAILBOXES};
use crate::bayes::BayesExport;
use crate::table::TableError;

/// The mailbox bodies are staged in while an account moves in: a name no
/// client can make (mailbox names never hold a NUL).
const STAGING: &str = "\0moving";

/// An account held still on its shard for a move: every write to it waits
/// until [`MailStore::thaw`].
pub struct Frozen {
    account: String,
    guard: LocalGuard,
}

/// What a move carries: the account's mail state (its bodies still on the
/// source, by reference) and what its classifier learned.
#[derive(Debug, Clone)]
pub struct Export {
    pub mail: Account,
    pub bayes: BayesExport,
}

fn table_error(e: TableError) -> MailError {
    MailError::Corrupt(format!("the account's classifier: {e}"))
}

/// `account` with every body reference reduced to its content hash: what
/// must match between a source and its copy.
fn by_content(mut account: Account) -> Account {
    for mailbox in account.mailboxes.values_mut() {
        for message in mailbox.messages.values_mut() {
            message.blob = BlobRef::pending(message.blob.hash);
        }
    }
    account
}

/// One step of a mailbox's history: messages copied in (staging UID →
/// UID) and UIDs expunged, at one MODSEQ.
#[derive(Default)]
struct Step {
    copied: Vec<(u32, u32)>,
    expunged: Vec<u32>,
}

impl MailStore {
    /// Holds `account` still (see [`Frozen`]) and returns a copy of what a
    /// move carries.
    pub async fn freeze(&self, account: &str) -> Result<(Frozen, Export), MailError> {
        let guard = self.lock_alone(account).await;
        let mail = self.read(account, |a| Ok(a.clone()))?;
        let learner = self.inner.learner.borrow().clone();
        let bayes = match learner {
            Some(bayes) => bayes.export(account).map_err(table_error)?,
            None => BayesExport::default(),
        };
        let frozen = Frozen {
            account: account.to_string(),
            guard,
        };
        Ok((frozen, Export { mail, bayes }))
    }

    /// Ends a hold. With `remove` (the account now lives elsewhere) the
    /// account and its classifier are deleted here first, before any write
    /// that waited goes on.
    pub async fn thaw(&self, frozen: Frozen, remove: bool) -> Result<(), MailError> {
        let Frozen { account, guard } = frozen;
        if !remove {
            return Ok(());
        }
        let op = MailOp::DeleteAccount {
            account: account.clone(),
        };
        let guard = self.commit(guard, op).await?;
        let learner = self.inner.learner.borrow().clone();
        let forgotten = match learner {
            Some(bayes) => bayes.forget(&account).await.map_err(table_error),
            None => Ok(()),
        };
        drop(guard);
        forgotten
    }

    /// Makes `account` here a copy of `from` (see the module's text),
    /// reading each body with `body`; a copy of it left here by an earlier
    /// attempt is deleted first. The caller makes sure the account does not
    /// live here. On failure nothing of it stays.
    pub async fn import<F, Fut>(
        &self,
        account: &str,
        from: &Export,
        body: F,
    ) -> Result<(), MailError>
    where
        F: FnMut(BlobRef) -> Fut,
        Fut: Future<Output = Result<Vec<u8>, MailError>>,
    {
        self.discard(account).await?;
        let done = self.rebuild(account, from, body).await;
        if done.is_err() {
            if let Err(error) = self.discard(account).await {
                tracing::error!(%account, %error, "a partial copy of a moving account stays");
            }
        }
        done
    }

    /// Deletes `account` (and its classifier) if it is here.
    pub async fn discard(&self, account: &str) -> Result<(), MailError> {
        match self.delete_account(account).await {
            Err(MailError::NoSuchAccount(_)) => Ok(()),
            other => other,
        }
    }

    async fn rebuild<F, Fut>(
        &self,
        account: &str,
        from: &Export,
        mut body: F,
    ) -> Result<(), MailError>
    where
        F: FnMut(BlobRef) -> Fut,
        Fut: Future<Output = Result<Vec<u8>, MailError>>,
    {
        let src = &from.mail;
        let op_account = account.to_string();
        // The account, holding exactly the source's mailboxes.
        let mut guard = self.lock_alone(account).await;
        if self.inner.state.borrow().accounts.contains_key(account) {
            return Err(MailError::AccountExists(account.to_string()));
        }
        let defaults = DEFAULT_MAILBOXES.len() as u32 - 1;
        let create = MailOp::CreateAccount {
            account: op_account.clone(),
            quota_bytes: 0,
            quota_messages: 0,
            uidvalidity: src.last_uidvalidity.saturating_sub(defaults),
        };
        guard = self.commit(guard, create).await?;
        for (name, _) in DEFAULT_MAILBOXES {
            let op = MailOp::DeleteMailbox {
                account: op_account.clone(),
                name: name.to_string(),
            };
            guard = self.commit(guard, op).await?;
        }
        let staging = (STAGING, None, src.last_uidvalidity, true);
        let made = src
            .mailboxes
            .iter()
            .map(|(name, mb)| (name.as_str(), mb.role, mb.uidvalidity, mb.subscribed))
            .chain([staging]);
        for (name, role, uidvalidity, subscribed) in made {
            let op = MailOp::CreateMailbox {
                account: op_account.clone(),
                name: name.to_string(),
                role,
                uidvalidity,
            };
            guard = self.commit(guard, op).await?;
            if !subscribed {
                let op = MailOp::Subscribe {
                    account: op_account.clone(),
                    name: name.to_string(),
                    subscribed,
                };
                guard = self.commit(guard, op).await?;
            }
        }
        drop(guard);
        // Every body, staged in order: the n-th message is staging UID n.
        let mut staged = 0u32;
        for message in src.mailboxes.values().flat_map(|mb| mb.messages.values()) {
            let bytes = body(message.blob).await?;
            let flags = message.flags.clone();
            let at = self
                .append(account, STAGING, &bytes, flags, message.internal_date)
                .await?;
            staged += 1;
            if at.uid != staged {
                return Err(MailError::MoveFailed(format!(
                    "body {staged} of a moving account staged as UID {}",
                    at.uid
                )));
            }
        }
        if staged == 0 && src.mailboxes.values().any(|mb| !mb.expunged.is_empty()) {
            // Expunged UIDs are born from a staged message: an empty one.
            self.append(account, STAGING, b"", Default::default(), 0)
                .await?;
        }
        // Each mailbox's history, in MODSEQ order.
        let mut guard = self.lock_alone(account).await;
        let mut next = 0u32;
        for (name, mb) in &src.mailboxes {
            let mut steps: BTreeMap<u64, Step> = BTreeMap::new();
            for message in mb.messages.values() {
                next += 1;
                let step = steps.entry(message.modseq).or_default();
                step.copied.push((next, message.uid));
            }
            for (uid, at) in &mb.expunged {
                steps.entry(*at).or_default().expunged.push(*uid);
            }
            if let Some((&first, step)) = steps.first_key_value() {
                // The expunged UIDs are born at or before the first step.
                let births = mb.expunged.iter().map(|(uid, _)| (1, *uid));
                let born_at = if step.expunged.is_empty() {
                    first
                } else {
                    first - 1
                };
                steps.entry(born_at).or_default().copied.extend(births);
            }
            let mut highest = 1;
            for (modseq, step) in steps {
                if !step.copied.is_empty() {
                    let op = MailOp::Copy {
                        account: op_account.clone(),
                        from: STAGING.to_string(),
                        to: name.clone(),
                        pairs: step.copied,
                        modseq,
                        expunge_at: None,
                    };
                    guard = self.commit(guard, op).await?;
                }
                if !step.expunged.is_empty() {
                    let op = MailOp::Expunge {
                        account: op_account.clone(),
                        mailbox: name.clone(),
                        modseq,
                        uids: step.expunged,
                    };
                    guard = self.commit(guard, op).await?;
                }
                highest = modseq;
            }
            if mb.highest_modseq > highest {
                let op = MailOp::Expunge {
                    account: op_account.clone(),
                    mailbox: name.clone(),
                    modseq: mb.highest_modseq,
                    uids: Vec::new(),
                };
                guard = self.commit(guard, op).await?;
            }
        }
        let finish = [
            MailOp::DeleteMailbox {
                account: op_account.clone(),
                name: STAGING.to_string(),
            },
            MailOp::SetQuota {
                account: op_account.clone(),
                quota_bytes: src.quota_bytes,
                quota_messages: src.quota_messages,
            },
        ];
        for op in finish {
            guard = self.commit(guard, op).await?;
        }
        let copy = self.read(account, |a| Ok(a.clone()))?;
        drop(guard);
        if by_content(copy) != by_content(src.clone()) {
            return Err(MailError::MoveFailed(format!(
                "the copy of {account} does not match its source"
            )));
        }
        let learner = self.inner.learner.borrow().clone();
        if let Some(bayes) = learner {
            bayes
                .import(account, &from.bayes)
                .await
                .map_err(table_error)?;
        }
        Ok(())
    }
}

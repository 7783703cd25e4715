//! The mailstore of one shard: accounts, mailboxes (UIDVALIDITY, UIDNEXT,
//! HIGHESTMODSEQ, SPECIAL-USE roles, subscriptions), messages (UID, MODSEQ,
//! flags and keywords, internal date, size, body) and per-account quotas,
//! persisted as operations in the shard's segment log.
//!
//! Every change is planned under the account's lock (names, quota, UIDs,
//! MODSEQs), appended to the log, and applied to the in-memory state only
//! once durable; so nothing is visible, and no caller is answered, before
//! it is on disk. Operations on different accounts proceed concurrently and
//! share group commits.
//!
//! Appends (deliveries, IMAP APPEND) to one account pipeline too: each is
//! planned against the state plus the appends already queued but not yet
//! durable (the account's reserved view: next UID and MODSEQ per mailbox,
//! bytes and messages pending for the quota), queued in the log, and the
//! lock is released before waiting for durability; so concurrent deliveries
//! to one account share group commits. The account's in-flight appends are
//! applied strictly in log order as their commits end (a failed one is
//! dropped: its UID is skipped, its quota released). A delivery queues its
//! body's record and its appends back to back and waits for the last one
//! only. Every other operation takes the lock, waits until the account has
//! nothing in flight, and commits alone, as before. A MULTIAPPEND batch is
//! one such append carrying all of its messages ([`MailStore::append_many`]).
//!
//! Sessions on the owning shard (IMAP, POP3) read a mailbox in place
//! ([`MailStore::read_mailbox`]) and learn of changes to an account (a
//! delivery, another session's STORE or EXPUNGE) through
//! [`MailStore::watch`], which wakes them as soon as a change is applied.
//!
//! A copy or move into or out of Junk teaches the account's Bayes
//! classifier once durable ([`learn`]).

mod batch;
mod blobs;
mod compaction;
mod digests;
pub mod flags;
pub mod learn;
mod model;
mod ops;
mod stream;
mod transfer;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use cairn_shards::sync::{LocalGuard, LocalMutex};
use cairn_shards::BlockingPool;
use event_listener::Event;

use crate::notify::Changed;
use futures_channel::oneshot;

use crate::bayes::BayesStore;
use crate::kinds;
use crate::log::{Location, SegmentLog};
use blobs::{Blobs, PendingBlob, Pin, Staged};
pub use blobs::{Reads, MAX_DIGESTS_IN_FLIGHT};
pub use compaction::Evacuated;
pub use digests::{DigestRef, Digester};
pub use flags::{FlagAction, Flags};
pub use model::{
    canonical, validate_name, Account, MailError, Mailbox, Message, State, Status,
    DEFAULT_MAILBOXES, SEPARATOR,
};
pub use ops::{BlobRef, MailOp, NewMessage, Role};
pub use stream::{BodyReader, BODY_CHUNK};
pub use transfer::{Export, Frozen};

/// Where a delivered or appended message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// What a flag change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The MODSEQ of the change (unchanged when nothing changed).
    pub modseq: u64,
    /// The messages whose flags changed, with their new flags.
    pub changed: Vec<(u32, Flags)>,
    /// The messages left alone because they changed after UNCHANGEDSINCE.
    pub modified_since: Vec<u32>,
}

/// Changes in a mailbox since a MODSEQ (CONDSTORE/QRESYNC, sync protocols).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub changed: Vec<Message>,
    pub vanished: Vec<u32>,
}

/// The mail state being rebuilt from the log while it opens; turns into
/// the [`MailStore`] once the log is open.
#[derive(Default)]
pub struct MailRecovery {
    state: State,
    blobs: Blobs,
}

impl MailRecovery {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state a checkpoint holds, to replay the rest of the log onto
    /// (the bodies' reference counts are rebuilt from it).
    pub fn from_checkpoint(state: State, blobs: Vec<BlobRef>, digests: Vec<DigestRef>) -> Self {
        let blobs = Blobs::from_refs(blobs, digests);
        state.each_reference(&mut |hash, n| blobs.count(hash, n));
        Self { state, blobs }
    }

    /// Takes one record found by recovery; records of other kinds are not
    /// the mailstore's and are ignored.
    pub fn replay(&mut self, kind: u8, at: Location, payload: &[u8]) -> Result<(), MailError> {
        match kind {
            kinds::BLOB => self.blobs.replay(at, payload),
            kinds::BLOB_DIGEST => self.blobs.replay_digest(at, payload),
            kinds::MAILBOX_OP => {
                let mut op = MailOp::decode(payload).map_err(MailError::Corrupt)?;
                for blob in op.blobs_mut() {
                    *blob = self.blobs.resolve(blob)?;
                }
                let blobs = &self.blobs;
                self.state
                    .apply_counting(&op, &mut |hash, n| blobs.count(hash, n))
            }
            _ => Ok(()),
        }
    }

    /// The mailstore, writing to `log` from now on. Every message is
    /// pointed at its body's place in the index (bodies moved by compaction
    /// after the message was written).
    pub fn finish(mut self, log: SegmentLog) -> MailStore {
        let blobs = &self.blobs;
        self.state.relink(&|hash| blobs.find(hash));
        // A digest may lie after its body's record: one whose body was
        // forgotten before it was written has none to go with.
        blobs.drop_orphan_digests();
        MailStore {
            inner: Rc::new(Inner {
                log,
                state: RefCell::new(self.state),
                blobs: self.blobs,
                accounts: RefCell::new(HashMap::new()),
                learner: RefCell::new(None),
            }),
        }
    }
}

/// Takes the outcome of the account's append `id` and applies, in log
/// order, every append whose outcome is in and has none before it pending.
fn settle(inner: &Inner, pipe: &Pipe, id: u64, outcome: Result<(), MailError>) {
    let mut flight = pipe.flight.borrow_mut();
    let Some(index) = id.checked_sub(flight.first) else {
        return;
    };
    if let Some(entry) = flight.queue.get_mut(index as usize) {
        entry.outcome = Some(outcome);
    }
    while flight.queue.front().is_some_and(|e| e.outcome.is_some()) {
        let Some(mut entry) = flight.queue.pop_front() else {
            break;
        };
        flight.first += 1;
        flight.bytes -= entry.size;
        flight.messages -= entry.count;
        let result = match entry.outcome.take() {
            Some(Ok(())) => apply_durable(inner, &mut entry),
            Some(Err(e)) => Err(e),
            None => Err(MailError::Corrupt("an append without outcome".into())),
        };
        if result.is_ok() {
            pipe.changed.notify(usize::MAX);
        }
        if let Some(reply) = entry.reply.take() {
            let _ = reply.send(result);
        }
    }
    if flight.queue.is_empty() {
        // Reservations of failed appends are given up (their UIDs stay
        // unused unless a later append was applied past them).
        flight.reserved.clear();
        drop(flight);
        pipe.drained.notify(usize::MAX);
    }
}

/// Applies a durable append, resolving its bodies' locations first.
fn apply_durable(inner: &Inner, entry: &mut InFlight) -> Result<(), MailError> {
    // The bodies' records lie before the op: their answers are in.
    for pending in &entry.blobs {
        if let Some(found) = pending.poll(&inner.blobs) {
            found?;
        }
    }
    for blob in entry.op.blobs_mut() {
        *blob = inner.blobs.resolve(blob)?;
    }
    inner.apply(&entry.op)
}

/// A body stored for a holder outside the mailboxes (see
/// [`MailStore::stage_body`]): kept from compaction while held.
pub(crate) struct HeldBody {
    /// The body's SHA-256.
    pub hash: [u8; 32],
    staged: Staged,
    _pin: Rc<Pin>,
}

/// One shard's mail. Cheap to clone.
#[derive(Clone)]
pub struct MailStore {
    inner: Rc<Inner>,
}

struct Inner {
    log: SegmentLog,
    state: RefCell<State>,
    blobs: Blobs,
    accounts: RefCell<HashMap<String, Rc<Pipe>>>,
    /// The accounts' classifiers, taught by copies ([`learn`]).
    learner: RefCell<Option<BayesStore>>,
}

impl Inner {
    /// Applies a durable operation to the state and the bodies' counts.
    fn apply(&self, op: &MailOp) -> Result<(), MailError> {
        let blobs = &self.blobs;
        self.state
            .borrow_mut()
            .apply_counting(op, &mut |hash, n| blobs.count(hash, n))
    }
}

/// One account's lock and its appends in flight.
#[derive(Default)]
struct Pipe {
    lock: LocalMutex,
    flight: RefCell<Flight>,
    /// Notified when nothing is in flight any more.
    drained: Event,
    /// Notified after each change applied to the account.
    changed: Event,
}

/// The appends of one account queued in the log and not yet applied, in
/// log order, and what they reserve.
#[derive(Default)]
struct Flight {
    /// The id of `queue[0]`.
    first: u64,
    queue: VecDeque<InFlight>,
    /// Per mailbox: the next UID and MODSEQ not taken by an append in flight.
    reserved: HashMap<String, (u32, u64)>,
    /// Bytes and messages of the appends in flight (for the quota check).
    bytes: u64,
    messages: u64,
}

struct InFlight {
    op: MailOp,
    /// The bytes and messages it adds.
    size: u64,
    count: u64,
    /// The bodies' records the op was queued behind (those in flight).
    blobs: Vec<Rc<PendingBlob>>,
    /// Keep the bodies from compaction until the op is applied or failed.
    _pins: Vec<Rc<Pin>>,
    /// Its commit's outcome once in.
    outcome: Option<Result<(), MailError>>,
    reply: Option<oneshot::Sender<Result<(), MailError>>>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl MailStore {
    fn pipe_of(&self, account: &str) -> Rc<Pipe> {
        self.inner
            .accounts
            .borrow_mut()
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    /// The account's lock, once nothing of it is in flight: for operations
    /// that commit alone.
    async fn lock_alone(&self, account: &str) -> LocalGuard {
        let pipe = self.pipe_of(account);
        let guard = pipe.lock.lock().await;
        loop {
            if pipe.flight.borrow().queue.is_empty() {
                return guard;
            }
            let listener = pipe.drained.listen();
            if pipe.flight.borrow().queue.is_empty() {
                return guard;
            }
            listener.await;
        }
    }

    /// Queues an append in the log (fixing its place) under the account's
    /// lock, and returns the wait for its outcome: it is applied once
    /// durable, after every earlier append of the account. Runs in its own
    /// task, so that a caller going away leaves nothing unapplied.
    fn launch(
        &self,
        pipe: &Rc<Pipe>,
        op: MailOp,
        (size, count): (u64, u64),
        blobs: Vec<Rc<PendingBlob>>,
        pins: Vec<Rc<Pin>>,
    ) -> oneshot::Receiver<Result<(), MailError>> {
        let (tx, rx) = oneshot::channel();
        let appending = self.inner.log.start_append(kinds::MAILBOX_OP, &op.encode());
        let id = {
            let mut flight = pipe.flight.borrow_mut();
            flight.bytes += size;
            flight.messages += count;
            flight.queue.push_back(InFlight {
                op,
                size,
                count,
                blobs,
                _pins: pins,
                outcome: None,
                reply: Some(tx),
            });
            flight.first + flight.queue.len() as u64 - 1
        };
        let (inner, pipe) = (self.inner.clone(), pipe.clone());
        cairn_shards::spawn_detached(async move {
            let outcome = appending.wait().await.map(drop).map_err(MailError::from);
            settle(&inner, &pipe, id, outcome);
        });
        rx
    }

    /// Plans `count` appends of `size` bytes in all to `mailbox` (canonical)
    /// against the state plus the account's appends in flight, under the
    /// account's lock: checks the quota and returns the first UID, the
    /// MODSEQ and the UIDVALIDITY. The caller reserves what it takes.
    fn plan_appends(
        &self,
        pipe: &Pipe,
        account: &str,
        mailbox: &str,
        (size, count): (u64, u32),
    ) -> Result<(u32, u64, u32), MailError> {
        let flight = pipe.flight.borrow();
        let (uid, modseq, uidvalidity) = self.read(account, |a| {
            let mb = a.mailbox(mailbox)?;
            a.check_quota(
                flight.bytes.saturating_add(size),
                flight.messages.saturating_add(count.into()),
            )?;
            let (uid, modseq) = flight.reserved.get(mailbox).copied().unwrap_or_default();
            Ok((
                uid.max(mb.uidnext),
                modseq.max(mb.highest_modseq + 1),
                mb.uidvalidity,
            ))
        })?;
        if uid.checked_add(count).is_none() {
            return Err(MailError::Corrupt(format!("{mailbox} has run out of UIDs")));
        }
        Ok((uid, modseq, uidvalidity))
    }

    /// Appends `op` and applies it once durable, holding the account's
    /// lock throughout. The work runs in its own task: a caller that goes
    /// away (a dropped connection) cannot leave a durable operation
    /// unapplied, nor release the lock while it is in flight. The lock comes
    /// back for the caller's next operation.
    async fn commit(&self, guard: LocalGuard, op: MailOp) -> Result<LocalGuard, MailError> {
        let (tx, rx) = oneshot::channel();
        let appended = self.inner.log.append(kinds::MAILBOX_OP, &op.encode());
        let (inner, pipe) = (self.inner.clone(), self.pipe_of(op.account()));
        cairn_shards::spawn_detached(async move {
            let result = match appended.await {
                Ok(_) => inner.apply(&op),
                Err(e) => Err(e.into()),
            };
            if result.is_ok() {
                pipe.changed.notify(usize::MAX);
            }
            let _ = tx.send(result.map(|()| guard));
        });
        rx.await
            .unwrap_or_else(|_| Err(MailError::Corrupt("a commit task was lost".into())))
    }

    fn read<T>(
        &self,
        account: &str,
        f: impl FnOnce(&Account) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        f(self.inner.state.borrow().account(account)?)
    }

    fn next_uidvalidity(&self, account: &str) -> Result<u32, MailError> {
        self.read(account, |a| {
            Ok((now_secs() as u32).max(a.last_uidvalidity.wrapping_add(1)))
        })
    }

    /// Teaches `bayes` from the copies and moves made from now on, and
    /// has it forget deleted accounts.
    pub(crate) fn learn_into(&self, bayes: BayesStore) {
        *self.inner.learner.borrow_mut() = Some(bayes);
    }

    /// Resolves at the next change applied to `account` (any of its
    /// mailboxes). Take the watch before reading the state it guards, so
    /// that a change between the read and the wait is not missed.
    pub fn watch(&self, account: &str) -> Changed {
        Changed::on(&self.pipe_of(account).changed)
    }

    /// Reads a mailbox in place (no copy of its messages), under no lock:
    /// what `f` sees is the durable state at this instant.
    pub fn read_mailbox<T>(
        &self,
        account: &str,
        mailbox: &str,
        f: impl FnOnce(&Mailbox) -> T,
    ) -> Result<T, MailError> {
        self.read(account, |a| Ok(f(a.mailbox(mailbox)?)))
    }

    /// A copy of the whole state (for checks and tests).
    pub fn snapshot(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// Copies of the state and of the blob and digest indexes, for a
    /// checkpoint.
    pub fn checkpoint_parts(&self) -> (State, Vec<BlobRef>, Vec<DigestRef>) {
        let (blobs, digests) = self.inner.blobs.refs();
        (self.snapshot(), blobs, digests)
    }

    /// Creates an account with the default mailboxes (quota 0 = unlimited).
    pub async fn create_account(
        &self,
        account: &str,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<(), MailError> {
        let guard = self.lock_alone(account).await;
        if self.inner.state.borrow().accounts.contains_key(account) {
            return Err(MailError::AccountExists(account.to_string()));
        }
        self.commit(
            guard,
            MailOp::CreateAccount {
                account: account.to_string(),
                quota_bytes,
                quota_messages,
                uidvalidity: now_secs() as u32,
            },
        )
        .await
        .map(drop)
    }

    /// Deletes an account and all of its mail (the bodies go at compaction).
    pub async fn delete_account(&self, account: &str) -> Result<(), MailError> {
        let guard = self.lock_alone(account).await;
        self.read(account, |_| Ok(()))?;
        self.commit(
            guard,
            MailOp::DeleteAccount {
                account: account.to_string(),
            },
        )
        .await?;
        let learner = self.inner.learner.borrow().clone();
        if let Some(bayes) = learner {
            if let Err(error) = bayes.forget(account).await {
                tracing::warn!(%account, %error, "bayes: a deleted account's counts stay");
            }
        }
        Ok(())
    }

    /// Changes an account's quota.
    pub async fn set_quota(
        &self,
        account: &str,
        bytes: u64,
        messages: u64,
    ) -> Result<(), MailError> {
        let guard = self.lock_alone(account).await;
        self.read(account, |_| Ok(()))?;
        self.commit(
            guard,
            MailOp::SetQuota {
                account: account.to_string(),
                quota_bytes: bytes,
                quota_messages: messages,
            },
        )
        .await
        .map(drop)
    }

    /// The account's mailboxes: name, role, subscribed.
    pub fn mailboxes(&self, account: &str) -> Result<Vec<(String, Option<Role>, bool)>, MailError> {
        self.read(account, |a| {
            Ok(a.mailboxes
                .iter()
                .map(|(n, m)| (n.clone(), m.role, m.subscribed))
                .collect())
        })
    }

    /// A mailbox's counters.
    pub fn status(&self, account: &str, mailbox: &str) -> Result<Status, MailError> {
        self.read(account, |a| Ok(a.mailbox(mailbox)?.status()))
    }

    /// Bytes and messages used, and the limits (0 = unlimited).
    pub fn quota(&self, account: &str) -> Result<(u64, u64, u64, u64), MailError> {
        self.read(account, |a| {
            Ok((
                a.used_bytes,
                a.quota_bytes,
                a.used_messages,
                a.quota_messages,
            ))
        })
    }

    /// The messages of a mailbox in UID order.
    pub fn messages(&self, account: &str, mailbox: &str) -> Result<Vec<Message>, MailError> {
        self.read(account, |a| {
            Ok(a.mailbox(mailbox)?.messages.values().cloned().collect())
        })
    }

    /// What changed after `modseq`: messages with a higher MODSEQ, and UIDs
    /// expunged after it.
    pub fn changes_since(
        &self,
        account: &str,
        mailbox: &str,
        modseq: u64,
    ) -> Result<Changes, MailError> {
        self.read(account, |a| {
            let mb = a.mailbox(mailbox)?;
            Ok(Changes {
                changed: mb
                    .messages
                    .values()
                    .filter(|m| m.modseq > modseq)
                    .cloned()
                    .collect(),
                vanished: mb
                    .expunged
                    .iter()
                    .filter(|(_, at)| *at > modseq)
                    .map(|(uid, _)| *uid)
                    .collect(),
            })
        })
    }

    /// Creates a mailbox, and any missing parent of it.
    pub async fn create_mailbox(
        &self,
        account: &str,
        name: &str,
        role: Option<Role>,
    ) -> Result<(), MailError> {
        validate_name(name)?;
        let name = canonical(name);
        let mut guard = self.lock_alone(account).await;
        if self.read(account, |a| Ok(a.mailboxes.contains_key(&name)))? {
            return Err(MailError::MailboxExists(name));
        }
        let levels: Vec<&str> = name.split(SEPARATOR).collect();
        for depth in 1..=levels.len() {
            let path = levels[..depth].join(&SEPARATOR.to_string());
            if self.read(account, |a| Ok(a.mailboxes.contains_key(&path)))? {
                continue;
            }
            let uidvalidity = self.next_uidvalidity(account)?;
            let role = if depth == levels.len() { role } else { None };
            let op = MailOp::CreateMailbox {
                account: account.to_string(),
                name: path,
                role,
                uidvalidity,
            };
            guard = self.commit(guard, op).await?;
        }
        Ok(())
    }

    /// Renames a mailbox and the mailboxes below it. INBOX cannot be renamed.
    pub async fn rename_mailbox(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<(), MailError> {
        validate_name(to)?;
        let (from, to) = (canonical(from), canonical(to));
        if from == "INBOX" || to == "INBOX" {
            return Err(MailError::Protected("INBOX".into()));
        }
        let mut guard = self.lock_alone(account).await;
        let prefix = format!("{from}{SEPARATOR}");
        let moves: Vec<(String, String)> = self.read(account, |a| {
            a.mailbox(&from)?;
            if a.mailboxes.contains_key(&to) {
                return Err(MailError::MailboxExists(to.clone()));
            }
            Ok(a.mailboxes
                .keys()
                .filter(|n| **n == from || n.starts_with(&prefix))
                .map(|n| (n.clone(), format!("{to}{}", &n[from.len()..])))
                .collect())
        })?;
        for (old, new) in moves {
            let op = MailOp::RenameMailbox {
                account: account.to_string(),
                from: old,
                to: new,
            };
            guard = self.commit(guard, op).await?;
        }
        Ok(())
    }

    /// Deletes a mailbox and its messages. INBOX cannot be deleted.
    pub async fn delete_mailbox(&self, account: &str, name: &str) -> Result<(), MailError> {
        let name = canonical(name);
        if name == "INBOX" {
            return Err(MailError::Protected(name));
        }
        let guard = self.lock_alone(account).await;
        self.read(account, |a| a.mailbox(&name).map(|_| ()))?;
        self.commit(
            guard,
            MailOp::DeleteMailbox {
                account: account.to_string(),
                name,
            },
        )
        .await
        .map(drop)
    }

    /// Subscribes to or unsubscribes from a mailbox.
    pub async fn subscribe(
        &self,
        account: &str,
        name: &str,
        subscribed: bool,
    ) -> Result<(), MailError> {
        let name = canonical(name);
        let guard = self.lock_alone(account).await;
        self.read(account, |a| a.mailbox(&name).map(|_| ()))?;
        self.commit(
            guard,
            MailOp::Subscribe {
                account: account.to_string(),
                name,
                subscribed,
            },
        )
        .await
        .map(drop)
    }

    /// Appends one message (IMAP APPEND).
    pub async fn append(
        &self,
        account: &str,
        mailbox: &str,
        body: &[u8],
        flags: Flags,
        internal_date: i64,
    ) -> Result<Delivered, MailError> {
        if flags.keywords.len() > flags::MAX_KEYWORDS {
            return Err(MailError::TooManyKeywords(flags::MAX_KEYWORDS));
        }
        self.read(account, |a| {
            a.mailbox(mailbox)?;
            a.check_quota(body.len() as u64, 1)
        })?;
        let (blob, pin) = self.stage(body);
        let done = self
            .append_staged(
                account,
                mailbox,
                (&blob, &pin),
                body.len() as u64,
                flags,
                internal_date,
            )
            .await;
        self.finish_blob(&blob).await;
        done
    }

    /// What an append queued now carries for a staged body, and the body's
    /// record while it is in flight.
    fn reference(&self, blob: &Staged) -> Result<(BlobRef, Option<Rc<PendingBlob>>), MailError> {
        Ok(match blob {
            Staged::Stored(b) => (*b, None),
            Staged::Pending(p) => {
                let b = p.reference(&self.inner.blobs, &self.inner.log)?;
                (b, b.is_pending().then(|| p.clone()))
            }
        })
    }

    /// Takes the outcome of a staged body once every append referring to it
    /// is queued (and records it in the index).
    async fn finish_blob(&self, blob: &Staged) {
        if let Staged::Pending(pending) = blob {
            let _ = pending.finish(&self.inner.blobs).await;
        }
    }

    async fn append_staged(
        &self,
        account: &str,
        mailbox: &str,
        (blob, pin): (&Staged, &Rc<Pin>),
        size: u64,
        flags: Flags,
        internal_date: i64,
    ) -> Result<Delivered, MailError> {
        if flags.keywords.len() > flags::MAX_KEYWORDS {
            return Err(MailError::TooManyKeywords(flags::MAX_KEYWORDS));
        }
        let mailbox = canonical(mailbox);
        let pipe = self.pipe_of(account);
        let guard = pipe.lock.lock().await;
        let (uid, uidvalidity, rx) = {
            let (uid, modseq, uidvalidity) =
                self.plan_appends(&pipe, account, &mailbox, (size, 1))?;
            let (blob, pending) = self.reference(blob)?;
            let op = MailOp::Append {
                account: account.to_string(),
                mailbox: mailbox.clone(),
                uid,
                modseq,
                flags,
                internal_date,
                size,
                blob,
            };
            let pending = pending.into_iter().collect();
            let rx = self.launch(&pipe, op, (size, 1), pending, vec![pin.clone()]);
            pipe.flight
                .borrow_mut()
                .reserved
                .insert(mailbox, (uid + 1, modseq + 1));
            (uid, uidvalidity, rx)
        };
        drop(guard);
        rx.await
            .unwrap_or_else(|_| Err(MailError::Corrupt("a commit task was lost".into())))?;
        Ok(Delivered { uidvalidity, uid })
    }

    /// Delivers one message to several local recipients (account, mailbox):
    /// the body is stored once, and each recipient's append is queued right
    /// behind it, concurrently with the others. One result per recipient,
    /// in order.
    pub async fn deliver(
        &self,
        recipients: &[(String, String)],
        body: &[u8],
        internal_date: i64,
    ) -> Vec<Result<Delivered, MailError>> {
        let (blob, pin) = self.stage(body);
        let size = body.len() as u64;
        let out = if let [(account, mailbox)] = recipients {
            vec![
                self.append_staged(
                    account,
                    mailbox,
                    (&blob, &pin),
                    size,
                    Flags::default(),
                    internal_date,
                )
                .await,
            ]
        } else {
            let tasks: Vec<_> = recipients
                .iter()
                .map(|(account, mailbox)| {
                    let (store, account, mailbox) =
                        (self.clone(), account.clone(), mailbox.clone());
                    let (blob, pin) = (blob.clone(), pin.clone());
                    cairn_shards::spawn(async move {
                        store
                            .append_staged(
                                &account,
                                &mailbox,
                                (&blob, &pin),
                                size,
                                Flags::default(),
                                internal_date,
                            )
                            .await
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        };
        self.finish_blob(&blob).await;
        out
    }

    /// Reads a message body.
    pub async fn body(&self, blob: &BlobRef) -> Result<Vec<u8>, MailError> {
        self.inner.blobs.get(&self.inner.log, blob).await
    }

    /// Opens a message body for reading in chunks (see [`BodyReader`]):
    /// all of it, checked against its hash at the end, or the bytes
    /// `range` of it.
    pub async fn body_reader(
        &self,
        blob: &BlobRef,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BodyReader, MailError> {
        BodyReader::open(&self.inner.blobs, &self.inner.log, blob, range).await
    }

    /// Digests the bodies stored from now on with `digester` (before that:
    /// none), on `pool` (the shard's blocking pool); only digests of its
    /// version are handed back by [`MailStore::digest`]. Set once, when
    /// the shard's services are built.
    pub fn digest_with(&self, digester: Digester, pool: BlockingPool) {
        self.inner.blobs.digest_with(digester, pool);
    }

    /// Stages `body` (see [`Blobs::stage`]) and, if it is new, starts
    /// making its digest.
    fn stage(&self, body: &[u8]) -> (Staged, Rc<Pin>) {
        self.stage_hashed(blobs::hash_of(body), body)
    }

    /// [`MailStore::stage`] of a body whose SHA-256 is `hash`.
    fn stage_hashed(&self, hash: [u8; 32], body: &[u8]) -> (Staged, Rc<Pin>) {
        let (staged, pin) = self.inner.blobs.stage(&self.inner.log, hash, body);
        if let Staged::Pending(pending) = &staged {
            self.digest_later(pending, body);
        }
        (staged, pin)
    }

    /// Makes the digest of a body being staged off the shard (on the
    /// blocking pool, from a copy of the body) and appends its record once
    /// made; it is indexed once durable, with its body. Nobody waits for
    /// it: a body without a digest (none made yet, or ever) is parsed when
    /// read.
    fn digest_later(&self, pending: &Rc<PendingBlob>, body: &[u8]) {
        let hash = pending.hash();
        let Some((digester, pool)) = self.inner.blobs.start_digest(hash) else {
            return;
        };
        let body = body.to_vec();
        let (inner, pending) = (self.inner.clone(), pending.clone());
        cairn_shards::spawn_detached(async move {
            if let Ok(digest) = pool.run(move || (digester.digest)(&body)).await {
                let payload = digests::encode(&hash, digester.version, &digest);
                let appended = inner.log.append(kinds::BLOB_DIGEST, &payload).await;
                if let Ok(at) = appended {
                    pending.digest_durable(&inner.blobs, digester.version, at);
                }
            }
            inner.blobs.end_digest(&hash);
        });
    }

    /// Digests being made (or their records appended) now.
    pub fn digests_in_flight(&self) -> usize {
        self.inner.blobs.digests_in_flight()
    }

    /// Resolves once no digest is being made or appended (every digest of
    /// a body staged so far is durable and indexed, or was given up).
    pub async fn digests_settled(&self) {
        self.inner.blobs.digests_settled().await;
    }

    /// The digest of a message body, reading only the digest from disk;
    /// `None` when the body has none of the digester's version (the caller
    /// reads the body instead).
    pub async fn digest(&self, blob: &BlobRef) -> Result<Option<Vec<u8>>, MailError> {
        self.inner.blobs.digest(&self.inner.log, &blob.hash).await
    }

    /// Counts a digest its reader could not decode (it read the body
    /// instead).
    pub fn digest_rejected(&self) {
        self.inner.blobs.count_read(|r| r.rejected_digests += 1);
    }

    /// Bodies and digests read since the store opened.
    pub fn reads(&self) -> Reads {
        self.inner.blobs.reads()
    }

    /// Queues `body`'s record (unless the same bytes are stored already)
    /// for a holder other than a mailbox message — the outbound queue —
    /// and keeps it from compaction until the returned [`HeldBody`] is
    /// dropped. A record the holder appends right after this (no await in
    /// between) lies behind the body's in the log, so it is durable only
    /// if the body is; [`MailStore::finish_body`] then records the body in
    /// the index. The holder counts its reference
    /// ([`MailStore::count_body`]) before it drops the hold.
    pub(crate) fn stage_body(&self, body: &[u8]) -> Result<HeldBody, MailError> {
        let (staged, pin) = self.stage(body);
        let hash = match &staged {
            Staged::Stored(b) => b.hash,
            Staged::Pending(p) => p.reference(&self.inner.blobs, &self.inner.log)?.hash,
        };
        Ok(HeldBody {
            hash,
            staged,
            _pin: pin,
        })
    }

    /// Waits until a staged body is durable and in the index.
    pub(crate) async fn finish_body(&self, held: &HeldBody) -> Result<(), MailError> {
        match &held.staged {
            Staged::Stored(_) => Ok(()),
            Staged::Pending(p) => p.finish(&self.inner.blobs).await.map(drop),
        }
    }

    /// Adds `delta` to the references to the body `hash` held outside the
    /// mailboxes (queued messages): counted at start from their holder,
    /// never logged.
    pub(crate) fn count_body(&self, hash: &[u8; 32], delta: i64) {
        self.inner.blobs.count(hash, delta);
    }

    /// Reads the body `hash` from wherever it lies now.
    pub(crate) async fn body_by_hash(&self, hash: &[u8; 32]) -> Result<Vec<u8>, MailError> {
        self.inner
            .blobs
            .get(&self.inner.log, &BlobRef::pending(*hash))
            .await
    }

    /// Distinct bodies stored on this shard (dead ones included until
    /// compaction forgets them).
    pub fn blob_count(&self) -> usize {
        self.inner.blobs.len()
    }

    /// How many messages (mailbox messages and queued outbound ones) refer
    /// to the body with `hash`.
    pub fn blob_references(&self, hash: &[u8; 32]) -> u64 {
        self.inner.blobs.references(hash)
    }

    /// Changes the flags of `uids` (IMAP STORE); with `unchanged_since`,
    /// messages modified after that MODSEQ are left alone and reported.
    pub async fn store_flags(
        &self,
        account: &str,
        mailbox: &str,
        uids: &[u32],
        action: FlagAction,
        with: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<Stored, MailError> {
        let mailbox = canonical(mailbox);
        let guard = self.lock_alone(account).await;
        let (modseq, changed, modified_since) = self.read(account, |a| {
            let mb = a.mailbox(&mailbox)?;
            let mut changed = Vec::new();
            let mut skipped = Vec::new();
            for uid in uids {
                let Some(m) = mb.messages.get(uid) else {
                    continue;
                };
                if unchanged_since.is_some_and(|since| m.modseq > since) {
                    skipped.push(*uid);
                    continue;
                }
                let next = m.flags.apply(action, with);
                if next.keywords.len() > flags::MAX_KEYWORDS {
                    return Err(MailError::TooManyKeywords(flags::MAX_KEYWORDS));
                }
                if next != m.flags {
                    changed.push((*uid, next));
                }
            }
            Ok((mb.highest_modseq + 1, changed, skipped))
        })?;
        if changed.is_empty() {
            let modseq = self.status(account, &mailbox)?.highest_modseq;
            return Ok(Stored {
                modseq,
                changed,
                modified_since,
            });
        }
        self.commit(
            guard,
            MailOp::SetFlags {
                account: account.to_string(),
                mailbox,
                modseq,
                changes: changed.clone(),
            },
        )
        .await?;
        Ok(Stored {
            modseq,
            changed,
            modified_since,
        })
    }

    /// Removes the messages flagged `\Deleted` (all of them, or those among
    /// `uids` for UID EXPUNGE); returns the UIDs removed.
    pub async fn expunge(
        &self,
        account: &str,
        mailbox: &str,
        uids: Option<&[u32]>,
    ) -> Result<Vec<u32>, MailError> {
        let mailbox = canonical(mailbox);
        let guard = self.lock_alone(account).await;
        let (modseq, gone) = self.read(account, |a| {
            let mb = a.mailbox(&mailbox)?;
            let gone: Vec<u32> = mb
                .messages
                .values()
                .filter(|m| m.flags.deleted() && uids.is_none_or(|set| set.contains(&m.uid)))
                .map(|m| m.uid)
                .collect();
            Ok((mb.highest_modseq + 1, gone))
        })?;
        if gone.is_empty() {
            return Ok(gone);
        }
        self.commit(
            guard,
            MailOp::Expunge {
                account: account.to_string(),
                mailbox,
                modseq,
                uids: gone.clone(),
            },
        )
        .await?;
        Ok(gone)
    }

    /// Copies (or moves) messages to another mailbox of the same account;
    /// returns (source UID, new UID) pairs (COPYUID). Into or out of Junk,
    /// the account's classifier learns them before this returns
    /// ([`learn`]).
    pub async fn copy(
        &self,
        account: &str,
        from: &str,
        to: &str,
        uids: &[u32],
        moving: bool,
    ) -> Result<Vec<(u32, u32)>, MailError> {
        let (from, to) = (canonical(from), canonical(to));
        let guard = self.lock_alone(account).await;
        let (pairs, modseq, expunge_at, taught) = self.read(account, |a| {
            let src = a.mailbox(&from)?;
            let dst = a.mailbox(&to)?;
            let found: Vec<&Message> = uids.iter().filter_map(|u| src.messages.get(u)).collect();
            if !moving {
                a.check_quota(found.iter().map(|m| m.size).sum(), found.len() as u64)?;
            }
            let pairs: Vec<(u32, u32)> = found
                .iter()
                .zip(dst.uidnext..)
                .map(|(m, new)| (m.uid, new))
                .collect();
            let modseq = dst.highest_modseq + 1;
            // Moving within one mailbox expunges right after the copy.
            let expunge_at = moving.then_some(if from == to {
                modseq + 1
            } else {
                src.highest_modseq + 1
            });
            let taught = learn::lesson(src.role, dst.role)
                .map(|class| (class, found.iter().map(|m| m.blob.hash).collect::<Vec<_>>()));
            Ok((pairs, modseq, expunge_at, taught))
        })?;
        if pairs.is_empty() {
            return Ok(pairs);
        }
        self.commit(
            guard,
            MailOp::Copy {
                account: account.to_string(),
                from,
                to,
                pairs: pairs.clone(),
                modseq,
                expunge_at,
            },
        )
        .await?;
        if let Some((class, hashes)) = taught {
            self.teach(account, class, hashes).await;
        }
        Ok(pairs)
    }
}

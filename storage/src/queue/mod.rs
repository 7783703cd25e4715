//! The persistent outbound mail queue of one shard: the messages accepted
//! on the shard for remote recipients, kept until every recipient is
//! delivered or has failed. No cross-shard traffic on the hot path: each
//! shard queues, and delivers, what it accepted.
//!
//! A queued message is one entry of the table [`Messages`]
//! (`queue.messages`), keyed by its sequence number on the shard, holding
//! the envelope and the state of every recipient. The body is stored once
//! in the shard's blob store (content-addressed, shared with mail) and the
//! entry counts as a reference to it, so compaction keeps it while the
//! entry exists. Those references are not logged: when the shard opens,
//! after its log is replayed, every entry's body is counted into the blob
//! reference counts (whether the shard opened from a checkpoint or from
//! the whole log), before anything can compact; a removal gives its
//! reference back once the table delete is durable.
//!
//! Enqueueing queues the body's record in the log and the entry's record
//! right behind it: one group commit makes both durable, and the log never
//! makes the entry durable without the body before it. A crash before the
//! entry's record leaves a dead body, which compaction reclaims.
//! [`QueueStore::enqueue`] returns once both are durable.
//!
//! Sequence numbers increase and are never reused, across restarts too:
//! they are handed out from blocks whose upper bound is committed to the
//! table [`Meta`] before the first number of a block is used (one small
//! commit per [`ID_BLOCK`] messages), and a reopened shard starts past
//! both that bound and the highest entry.
//!
//! Every change runs in a task of its own, so a caller going away (a
//! dropped connection) cannot leave a durable change half applied: the
//! reference counts and the due-time index always follow the table.

mod model;
pub mod service;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use cairn_shards::sync::LocalMutex;
use event_listener::Event;

pub use crate::notify::Changed;
use futures_channel::oneshot;

use crate::log::LogError;
use crate::mailbox::{MailError, MailStore};
use crate::table::{Batch, Table, TableError, Tables};
pub use model::{
    NewMessage, Notify, QueuedMessage, QueuedRecipient, RecipientState, MAX_ADDRESS, MAX_ENVID,
    MAX_MX, MAX_ORCPT, MAX_RECIPIENTS, MAX_REPLY,
};
pub use service::{QueueMesh, QueueReply, QueueRequest, QueueService};

/// The queued messages of a shard, by sequence number.
pub struct Messages;

impl Table for Messages {
    const NAME: &'static str = "queue.messages";
    type Key = u64;
    type Value = QueuedMessage;
}

/// The queue's own bookkeeping: [`NEXT_ID`], the bound of the sequence
/// numbers handed out so far.
pub struct Meta;

impl Table for Meta {
    const NAME: &'static str = "queue.meta";
    type Key = String;
    type Value = u64;
}

/// The key of [`Meta`] that holds the bound: every sequence number handed
/// out is below it.
pub const NEXT_ID: &str = "next_id";

/// How many sequence numbers one commit to [`Meta`] reserves.
pub const ID_BLOCK: u64 = 1024;

/// How many messages [`QueueStore::retry`] updates at once.
const RETRY_PARALLEL: usize = 64;

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// No queued message has this id (never had, or it was removed).
    #[error("no queued message {0}")]
    NotFound(u64),
    /// A message needs a recipient.
    #[error("a queued message needs at least one recipient")]
    NoRecipients,
    /// More recipients than one entry holds ([`MAX_RECIPIENTS`]).
    #[error("{count} recipients, at most {max} per queued message")]
    TooManyRecipients { count: usize, max: usize },
    /// An envelope field is over its limit.
    #[error("the {field} is {len} bytes long, at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// An update tried to change the body of a queued message.
    #[error("the body of queued message {0} cannot change")]
    BodyChanged(u64),
    /// The log refused or failed the write (a full disk is
    /// [`LogError::DiskFull`]); nothing was acknowledged.
    #[error(transparent)]
    Log(LogError),
    /// The body could not be stored or read.
    #[error(transparent)]
    Mail(MailError),
    /// The queue's table failed otherwise (its message: table errors do not
    /// clone).
    #[error("queue table: {0}")]
    Table(String),
    /// The task doing the work went away (the shard is stopping).
    #[error("a queue operation was lost")]
    Lost,
}

impl From<TableError> for QueueError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::Log(e) => QueueError::Log(e),
            e => QueueError::Table(e.to_string()),
        }
    }
}

impl From<MailError> for QueueError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Log(e) => QueueError::Log(e),
            e => QueueError::Mail(e),
        }
    }
}

/// The current time in unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The queued messages by due time.
#[derive(Default)]
struct DueIndex {
    at: HashMap<u64, i64>,
    order: BTreeSet<(i64, u64)>,
}

impl DueIndex {
    fn set(&mut self, id: u64, next_attempt: Option<i64>) {
        if let Some(old) = self.at.remove(&id) {
            self.order.remove(&(old, id));
        }
        if let Some(at) = next_attempt {
            self.at.insert(id, at);
            self.order.insert((at, id));
        }
    }
}

/// One shard's outbound queue, over the shard's tables and mailstore (for
/// the bodies). Cheap to clone; every clone sees the same queue.
#[derive(Clone)]
pub struct QueueStore {
    inner: Rc<Inner>,
}

struct Inner {
    tables: Tables,
    mail: MailStore,
    index: RefCell<DueIndex>,
    /// The next sequence number, and the durable bound it must stay below.
    next: Cell<u64>,
    reserved: Cell<u64>,
    reserving: LocalMutex,
    changed: Event,
}

/// Runs `work` in a task of its own and waits for its outcome.
async fn detached<T: 'static>(
    work: impl Future<Output = Result<T, QueueError>> + 'static,
) -> Result<T, QueueError> {
    let (tx, rx) = oneshot::channel();
    cairn_shards::spawn_detached(async move {
        let _ = tx.send(work.await);
    });
    rx.await.unwrap_or(Err(QueueError::Lost))
}

impl QueueStore {
    /// The queue held in `tables`, its bodies in `mail`'s blob store: counts
    /// every entry's body as a reference (once per open shard: the shard
    /// store does it as it opens) and indexes the entries by due time.
    pub(crate) fn open(tables: Tables, mail: MailStore) -> Result<Self, TableError> {
        let mut index = DueIndex::default();
        let mut highest = 0u64;
        let mut after = None;
        loop {
            let page = tables.scan::<Messages>(after.as_ref(), 1024)?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            for (id, m) in &page {
                mail.count_body(&m.body, 1);
                index.set(*id, Some(m.next_attempt));
                highest = highest.max(*id);
            }
            after = Some(last);
        }
        let bound = tables.get::<Meta>(&NEXT_ID.to_string())?.unwrap_or(0);
        let next = bound.max(highest.saturating_add(1)).max(1);
        Ok(Self {
            inner: Rc::new(Inner {
                tables,
                mail,
                index: RefCell::new(index),
                next: Cell::new(next),
                reserved: Cell::new(next),
                reserving: LocalMutex::new(),
                changed: Event::new(),
            }),
        })
    }

    /// Queues a message: stores its body (once per shard, shared with any
    /// message with the same bytes) and its entry, every recipient pending
    /// and the first attempt due at `new.now`. Returns once both are
    /// durable, with the entry as stored.
    pub async fn enqueue(
        &self,
        new: NewMessage,
        body: Arc<[u8]>,
    ) -> Result<QueuedMessage, QueueError> {
        let message = new.into_queued(body.len() as u64)?;
        let this = self.clone();
        detached(async move { this.enqueue_here(message, &body).await }).await
    }

    async fn enqueue_here(
        &self,
        mut message: QueuedMessage,
        body: &[u8],
    ) -> Result<QueuedMessage, QueueError> {
        let inner = &self.inner;
        message.id = self.allocate().await?;
        let held = inner.mail.stage_body(body)?;
        message.body = held.hash;
        let mut batch = Batch::new();
        batch
            .require_absent::<Messages>(&message.id)
            .put::<Messages>(&message.id, &message);
        // No await between staging the body and queueing the entry: the
        // entry's record lies right behind the body's.
        let committed = inner.tables.commit(batch).await;
        let stored = inner.mail.finish_body(&held).await;
        committed?;
        if let Err(e) = stored {
            // Never expected: the log makes a record durable only with
            // every earlier one. Take the entry back rather than keep one
            // without a body.
            let mut undo = Batch::new();
            undo.delete::<Messages>(&message.id);
            if let Err(undo) = inner.tables.commit(undo).await {
                tracing::error!(id = message.id, error = %undo, "a queued message without its body stays");
            }
            self.refresh(message.id);
            return Err(e.into());
        }
        inner.mail.count_body(&message.body, 1);
        drop(held);
        self.refresh(message.id);
        inner.changed.notify(usize::MAX);
        Ok(message)
    }

    /// The next sequence number, reserving a new block first if the last
    /// one is used up.
    async fn allocate(&self) -> Result<u64, QueueError> {
        let inner = &self.inner;
        loop {
            let next = inner.next.get();
            if next < inner.reserved.get() {
                inner.next.set(next + 1);
                return Ok(next);
            }
            let _guard = inner.reserving.lock().await;
            if inner.next.get() < inner.reserved.get() {
                continue;
            }
            let bound = inner
                .next
                .get()
                .checked_add(ID_BLOCK)
                .ok_or_else(|| QueueError::Table("the sequence numbers ran out".into()))?;
            let mut batch = Batch::new();
            batch.put::<Meta>(&NEXT_ID.to_string(), &bound);
            inner.tables.commit(batch).await?;
            inner.reserved.set(bound);
        }
    }

    /// Points the due-time index at the entry's state in the table now.
    fn refresh(&self, id: u64) {
        let at = self.get(id).map(|m| m.next_attempt);
        self.inner.index.borrow_mut().set(id, at);
    }

    /// The queued message `id`.
    pub fn get(&self, id: u64) -> Option<QueuedMessage> {
        match self.inner.tables.get::<Messages>(&id) {
            Ok(found) => found.map(|mut m| {
                m.id = id;
                m
            }),
            Err(error) => {
                tracing::error!(id, %error, "a queued message does not read back");
                None
            }
        }
    }

    /// Every queued message, in id order.
    pub fn list(&self) -> Vec<QueuedMessage> {
        match self.inner.tables.scan::<Messages>(None, usize::MAX) {
            Ok(all) => all
                .into_iter()
                .map(|(id, mut m)| {
                    m.id = id;
                    m
                })
                .collect(),
            Err(error) => {
                tracing::error!(%error, "the queue does not read back");
                Vec::new()
            }
        }
    }

    /// Up to `limit` messages due at `now` (`next_attempt <= now`), the
    /// longest due first (then by id).
    pub fn due(&self, now: i64, limit: usize) -> Vec<QueuedMessage> {
        let ids: Vec<u64> = self
            .inner
            .index
            .borrow()
            .order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|&(_, id)| id)
            .collect();
        ids.into_iter().filter_map(|id| self.get(id)).collect()
    }

    /// The earliest `next_attempt` of any queued message.
    pub fn next_due(&self) -> Option<i64> {
        self.inner.index.borrow().order.first().map(|&(at, _)| at)
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.inner.tables.len::<Messages>()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves after the next enqueue, update, removal or retry, so that a
    /// delivery runner can sleep until work arrives or
    /// [`QueueStore::next_due`]. Take it before reading the queue, so that
    /// a change between the read and the wait is not missed.
    pub fn changed(&self) -> Changed {
        Changed::on(&self.inner.changed)
    }

    /// Replaces the queued message with the same id (after an attempt: the
    /// recipients' states, the next attempt …), durably. Replies,
    /// exchangers and the last error are cut to [`MAX_REPLY`] and
    /// [`MAX_MX`]; the body cannot change ([`QueueError::BodyChanged`]),
    /// and a message no longer queued is [`QueueError::NotFound`].
    pub async fn update(&self, mut message: QueuedMessage) -> Result<(), QueueError> {
        message.check_update()?;
        let this = self.clone();
        detached(async move { this.update_here(message).await }).await
    }

    async fn update_here(&self, message: QueuedMessage) -> Result<(), QueueError> {
        let id = message.id;
        let existing = self.get(id).ok_or(QueueError::NotFound(id))?;
        if existing.body != message.body {
            return Err(QueueError::BodyChanged(id));
        }
        let mut batch = Batch::new();
        batch
            .require_present::<Messages>(&id)
            .put::<Messages>(&id, &message);
        match self.inner.tables.commit(batch).await {
            Err(TableError::Conflict { .. }) => return Err(QueueError::NotFound(id)),
            done => done?,
        }
        self.refresh(id);
        self.inner.changed.notify(usize::MAX);
        Ok(())
    }

    /// Removes a queued message, durably, then gives up its reference to
    /// the body (which compaction reclaims once nothing else refers to
    /// it).
    pub async fn remove(&self, id: u64) -> Result<(), QueueError> {
        let this = self.clone();
        detached(async move { this.remove_here(id).await }).await
    }

    async fn remove_here(&self, id: u64) -> Result<(), QueueError> {
        // The body of an id never changes, and an id is never reused.
        let existing = self.get(id).ok_or(QueueError::NotFound(id))?;
        let mut batch = Batch::new();
        batch
            .require_present::<Messages>(&id)
            .delete::<Messages>(&id);
        match self.inner.tables.commit(batch).await {
            Err(TableError::Conflict { .. }) => return Err(QueueError::NotFound(id)),
            done => done?,
        }
        self.inner.mail.count_body(&existing.body, -1);
        self.refresh(id);
        self.inner.changed.notify(usize::MAX);
        Ok(())
    }

    /// Removes a queued message; false if it was not queued.
    pub async fn delete(&self, id: u64) -> Result<bool, QueueError> {
        match self.remove(id).await {
            Ok(()) => Ok(true),
            Err(QueueError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes message `id` (every message with `None`) due at `now`, unless
    /// it is due already, and wakes the runner. Returns how many messages
    /// are now due that were asked for (0 for an id not queued).
    pub async fn retry(&self, id: Option<u64>, now: i64) -> Result<usize, QueueError> {
        let targets = match id {
            Some(id) => self.get(id).into_iter().collect(),
            None => self.list(),
        };
        let mut done = 0;
        let mut first_error = None;
        for group in targets.chunks(RETRY_PARALLEL) {
            let tasks: Vec<_> = group
                .iter()
                .map(|m| {
                    let (this, mut m) = (self.clone(), m.clone());
                    cairn_shards::spawn(async move {
                        if m.next_attempt <= now {
                            return Ok(true);
                        }
                        m.next_attempt = now;
                        match this.update(m).await {
                            Ok(()) => Ok(true),
                            Err(QueueError::NotFound(_)) => Ok(false),
                            Err(e) => Err(e),
                        }
                    })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(true) => done += 1,
                    Ok(false) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.inner.changed.notify(usize::MAX);
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// The body of a queued message.
    pub async fn body(&self, message: &QueuedMessage) -> Result<Vec<u8>, QueueError> {
        Ok(self.inner.mail.body_by_hash(&message.body).await?)
    }
}

#[cfg(test)]
mod tests;

//! The placement table, persisted and shared by every shard.
//!
//! One shard, [`PLACEMENT_SHARD`] (the directory's), is the table's only
//! writer and keeps it durably in its own typed tables: every explicit
//! entry, and the *base* shard count that default placement hashes over,
//! written at the node's first start. Keeping it beside the directory
//! rather than in each shard's store means one durable copy, written once
//! per change, and a shard added by a growth (whose store is empty) learns
//! the whole table like any other. Every shard holds a replica
//! ([`PlacementTable`]): at start it loads it from the writer before it
//! serves anything; afterwards the writer persists each change, then
//! broadcasts it to every replica, and only then answers, so that a
//! placement is durable and routed everywhere before anything relies on it.
//! Changes are serialized on the writer; its stamps order them.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::placement::{
    Home, PlacementError, PlacementKey, PlacementTable, PlacementUpdate, Stamp,
};
use cairn_shards::sync::LocalMutex;
use cairn_shards::ShardId;
use futures_channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::directory::service::DIRECTORY_SHARD;
use crate::service::{MailService, ServiceError};
use crate::table::{Table, TableError, Tables};

/// The shard that persists the placement table and makes every change.
pub const PLACEMENT_SHARD: ShardId = DIRECTORY_SHARD;

/// Explicit entries by (kind, id): kind [`ACCOUNT`] or [`ROOM`].
struct PlacementEntries;

impl Table for PlacementEntries {
    const NAME: &'static str = "placement";
    type Key = (u32, String);
    type Value = StoredEntry;
}

/// The base shard count, under key [`BASE_KEY`].
struct PlacementBase;

impl Table for PlacementBase {
    const NAME: &'static str = "placement_base";
    type Key = u32;
    type Value = u64;
}

const ACCOUNT: u32 = 0;
const ROOM: u32 = 1;
const BASE_KEY: u32 = 0;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEntry {
    shard: u64,
    version: u64,
    origin: u64,
}

fn table_key(key: &PlacementKey) -> (u32, String) {
    match key {
        PlacementKey::Account(id) => (ACCOUNT, id.clone()),
        PlacementKey::Room(id) => (ROOM, id.clone()),
    }
}

fn decode(key: (u32, String), entry: StoredEntry) -> Result<PlacementUpdate, PlacementFailure> {
    let corrupt = || PlacementFailure::Persist(format!("a corrupt placement entry for {key:?}"));
    let placed = match key.0 {
        ACCOUNT => PlacementKey::Account(key.1.clone()),
        ROOM => PlacementKey::Room(key.1.clone()),
        _ => return Err(corrupt()),
    };
    Ok(PlacementUpdate {
        key: placed,
        shard: usize::try_from(entry.shard).map_err(|_| corrupt())?,
        stamp: Stamp {
            version: entry.version,
            origin: usize::try_from(entry.origin).map_err(|_| corrupt())?,
        },
    })
}

/// Why moving an account failed (it stays where it was).
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Placement(#[from] PlacementFailure),
    #[error(transparent)]
    Mail(#[from] ServiceError),
}

/// Why a placement call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementFailure {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("cannot persist the placement table: {0}")]
    Persist(String),
    #[error("the placement shard did not answer: {0}")]
    Mesh(#[from] MeshError),
    #[error("the placement shard answered a different request")]
    Mismatch,
}

impl From<TableError> for PlacementFailure {
    fn from(e: TableError) -> Self {
        Self::Persist(e.to_string())
    }
}

/// What the writer keeps: the base count and every explicit entry.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub base: usize,
    pub entries: Vec<PlacementUpdate>,
}

/// A request between the shards about placement.
#[derive(Debug, Clone)]
pub enum PlacementRequest {
    /// To the writer: the whole table, for a replica starting.
    Snapshot,
    /// To the writer: place a key being created (see
    /// [`PlacementTable::home_of_new`]).
    PlaceNew(PlacementKey),
    /// To the writer: place `key` on `shard`, wherever it was.
    Move { key: PlacementKey, shard: ShardId },
    /// To every replica: apply a change the writer made durable.
    Apply(PlacementUpdate),
}

/// The answer to a [`PlacementRequest`].
#[derive(Debug)]
pub enum PlacementReply {
    Snapshot(Result<Snapshot, PlacementFailure>),
    /// Where the key is now.
    Placed(Result<ShardId, PlacementFailure>),
    Applied(Result<bool, PlacementError>),
}

/// The mesh that carries placement requests, and the base count to record
/// at the first start; made before the shards start.
#[derive(Clone)]
pub struct PlacementMesh {
    mesh: Mesh<PlacementRequest, PlacementReply>,
    first_base: Option<usize>,
}

impl PlacementMesh {
    /// A mesh for `shards` shards, queues of `capacity` requests.
    pub fn new(shards: usize, capacity: usize) -> Self {
        Self {
            mesh: Mesh::new(shards, capacity),
            first_base: None,
        }
    }

    /// Records `base` (not the configured count) as the base if none is
    /// recorded yet: for a data directory made before the base was kept,
    /// the number of shards it holds.
    pub fn with_first_base(mut self, base: usize) -> Self {
        self.first_base = (base > 0).then_some(base);
        self
    }
}

/// The writer's state, on [`PLACEMENT_SHARD`] only.
struct Writer {
    tables: Tables,
    lock: LocalMutex,
}

/// This shard's replica and the way to the writer. Cheap to clone.
#[derive(Clone)]
pub struct PlacementService {
    endpoint: Rc<MeshEndpoint<PlacementRequest, PlacementReply>>,
    table: Rc<RefCell<PlacementTable>>,
}

/// Loads the writer's table from `tables`, recording the base (`first` if
/// given, else `shards`) when none is recorded yet.
async fn load(
    tables: &Tables,
    shards: usize,
    first: Option<usize>,
    replica: ShardId,
) -> Result<PlacementTable, PlacementFailure> {
    let base = match tables.get::<PlacementBase>(&BASE_KEY)? {
        Some(base) => usize::try_from(base)
            .map_err(|_| PlacementFailure::Persist(format!("a corrupt base count {base}")))?,
        None => {
            let base = first.unwrap_or(shards);
            let mut batch = tables.batch();
            batch
                .require_absent::<PlacementBase>(&BASE_KEY)
                .put::<PlacementBase>(&BASE_KEY, &(base as u64));
            tables.commit(batch).await?;
            tracing::info!(base, "placement base recorded");
            base
        }
    };
    let mut table = PlacementTable::with_base(shards, base, replica)?;
    let mut after = None;
    loop {
        let page = tables.scan::<PlacementEntries>(after.as_ref(), 1024)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, entry) in page {
            table.apply(&decode(key, entry)?)?;
        }
    }
    Ok(table)
}

impl Writer {
    async fn handle(
        &self,
        table: &RefCell<PlacementTable>,
        endpoint: &Weak<MeshEndpoint<PlacementRequest, PlacementReply>>,
        req: PlacementRequest,
    ) -> PlacementReply {
        match req {
            PlacementRequest::Snapshot => {
                let table = table.borrow();
                PlacementReply::Snapshot(Ok(Snapshot {
                    base: table.base(),
                    entries: table.entries().collect(),
                }))
            }
            PlacementRequest::PlaceNew(key) => {
                PlacementReply::Placed(self.place(table, endpoint, key, None).await)
            }
            PlacementRequest::Move { key, shard } => {
                PlacementReply::Placed(self.place(table, endpoint, key, Some(shard)).await)
            }
            PlacementRequest::Apply(update) => {
                PlacementReply::Applied(table.borrow_mut().apply(&update))
            }
        }
    }

    /// Places `key` on `to`, or where a new key goes when `None`: persists
    /// the change, then has every replica apply it.
    async fn place(
        &self,
        table: &RefCell<PlacementTable>,
        endpoint: &Weak<MeshEndpoint<PlacementRequest, PlacementReply>>,
        key: PlacementKey,
        to: Option<ShardId>,
    ) -> Result<ShardId, PlacementFailure> {
        let _serial = self.lock.lock().await;
        let shard = match to {
            Some(shard) if table.borrow().shard_of(&key) == shard => return Ok(shard),
            Some(shard) => shard,
            None => match table.borrow().home_of_new(&key) {
                Home::Placed(shard) => return Ok(shard),
                Home::Assign(shard) => shard,
            },
        };
        let update = table.borrow().prepare(key, shard)?;
        let mut batch = self.tables.batch();
        batch.put::<PlacementEntries>(
            &table_key(&update.key),
            &StoredEntry {
                shard: update.shard as u64,
                version: update.stamp.version,
                origin: update.stamp.origin as u64,
            },
        );
        self.tables.commit(batch).await?;
        // Durable: from here on the change stands, whatever a replica says
        // (one that missed it loads it at its next start).
        if let Err(error) = table.borrow_mut().apply(&update) {
            tracing::error!(%error, "placement change not applied here");
        }
        let Some(endpoint) = endpoint.upgrade() else {
            tracing::warn!("placement change not broadcast: stopping");
            return Ok(shard);
        };
        for (replica, reply) in endpoint
            .broadcast(PlacementRequest::Apply(update))
            .await
            .into_iter()
            .enumerate()
        {
            match reply {
                Ok(PlacementReply::Applied(Ok(_))) => {}
                Ok(PlacementReply::Applied(Err(e))) => {
                    tracing::error!(replica, error = %e, "placement change refused")
                }
                Ok(_) => tracing::error!(replica, "placement change answered oddly"),
                Err(e) => tracing::warn!(replica, error = %e, "placement change not applied"),
            }
        }
        Ok(shard)
    }
}

impl PlacementService {
    /// Joins the mesh as shard `shard` of `shards` and loads this shard's
    /// replica before serving: on [`PLACEMENT_SHARD`] from `tables` (where
    /// it also records the base at the first start), elsewhere from that
    /// shard.
    pub async fn start(
        mesh: &PlacementMesh,
        shard: ShardId,
        shards: usize,
        tables: &Tables,
    ) -> Result<Self, PlacementFailure> {
        let endpoint = Rc::new(mesh.mesh.join(shard).await?);
        let table = if shard == PLACEMENT_SHARD {
            load(tables, shards, mesh.first_base, shard).await?
        } else {
            let reply = endpoint
                .call(PLACEMENT_SHARD, PlacementRequest::Snapshot)
                .await?;
            let snapshot =
                expect_reply!(reply, PlacementReply::Snapshot, PlacementFailure::Mismatch)?;
            let mut table = PlacementTable::with_base(shards, snapshot.base, shard)?;
            for update in &snapshot.entries {
                table.apply(update)?;
            }
            table
        };
        let table = Rc::new(RefCell::new(table));
        let writer = (shard == PLACEMENT_SHARD).then(|| {
            Rc::new(Writer {
                tables: tables.clone(),
                lock: LocalMutex::new(),
            })
        });
        let (served, weak) = (table.clone(), Rc::downgrade(&endpoint));
        endpoint.serve(move |_from, req| {
            let (table, weak, writer) = (served.clone(), weak.clone(), writer.clone());
            async move {
                match (&writer, req) {
                    (Some(writer), req) => writer.handle(&table, &weak, req).await,
                    (None, PlacementRequest::Apply(update)) => {
                        PlacementReply::Applied(table.borrow_mut().apply(&update))
                    }
                    (None, _) => PlacementReply::Placed(Err(PlacementFailure::Mismatch)),
                }
            }
        })?;
        Ok(Self { endpoint, table })
    }

    /// This shard's replica, for the services that route by it.
    pub fn table(&self) -> Rc<RefCell<PlacementTable>> {
        self.table.clone()
    }

    /// The shard that owns `account`, by this shard's replica.
    pub fn owner(&self, account: &str) -> ShardId {
        self.table
            .borrow()
            .shard_of(&PlacementKey::account(account))
    }

    /// Where a new `account` would go, by this shard's replica (nothing is
    /// written: [`PlacementService::place_new_account`] does that).
    pub fn home_of_new_account(&self, account: &str) -> ShardId {
        self.table
            .borrow()
            .home_of_new(&PlacementKey::account(account))
            .shard()
    }

    /// Places an account being created: after a growth of the shard count,
    /// as an explicit entry, durable and applied on every shard before this
    /// returns. Returns its shard.
    pub async fn place_new_account(&self, account: &str) -> Result<ShardId, PlacementFailure> {
        let req = PlacementRequest::PlaceNew(PlacementKey::account(account));
        self.call_writer(req).await
    }

    /// Moves `account` and its mail to shard `to` (see
    /// [`crate::mailbox::MailStore::import`]): the account is held still
    /// on its shard and copied to `to`, the placement switched (durable,
    /// on every replica), then the old copy deleted and the hold let go;
    /// if the copy or the switch fails, the new copy is deleted and the
    /// account stays. Runs to its end even if the caller goes away (a hold
    /// must not outlive its move). Returns the shard it was on.
    pub async fn move_account(
        &self,
        mail: &MailService,
        account: &str,
        to: ShardId,
    ) -> Result<ShardId, MoveError> {
        let shards = self.table.borrow().shards();
        if to >= shards {
            return Err(
                PlacementFailure::from(PlacementError::NoSuchShard { shard: to, shards }).into(),
            );
        }
        let from = self.owner(account);
        if from == to {
            return Ok(from);
        }
        let (this, mail, account) = (self.clone(), mail.clone(), account.to_string());
        let (tx, rx) = oneshot::channel();
        cairn_shards::spawn_detached(async move {
            let _ = tx.send(this.run_move(&mail, &account, from, to).await);
        });
        rx.await
            .unwrap_or_else(|_| Err(PlacementFailure::from(MeshError::Closed).into()))
    }

    async fn run_move(
        &self,
        mail: &MailService,
        account: &str,
        from: ShardId,
        to: ShardId,
    ) -> Result<ShardId, MoveError> {
        mail.move_in(account, from, to).await?;
        if let Err(e) = self.switch_account(account, to).await {
            if let Err(error) = mail.discard(account, to).await {
                tracing::error!(%account, to, %error, "a copy of an account that did not move stays");
            }
            if let Err(error) = mail.thaw(account, from, false).await {
                tracing::error!(%account, %error, "cannot let go of an account whose move failed");
            }
            return Err(e.into());
        }
        if let Err(error) = mail.thaw(account, from, true).await {
            tracing::error!(%account, from, %error, "moved, but the old copy stays");
        }
        tracing::info!(%account, from, to, "account moved");
        Ok(from)
    }

    /// Places `account` on `shard` (its data must already be there),
    /// durable and applied on every shard before this returns (an error
    /// means nothing changed).
    async fn switch_account(
        &self,
        account: &str,
        shard: ShardId,
    ) -> Result<ShardId, PlacementFailure> {
        let req = PlacementRequest::Move {
            key: PlacementKey::account(account),
            shard,
        };
        self.call_writer(req).await
    }

    async fn call_writer(&self, req: PlacementRequest) -> Result<ShardId, PlacementFailure> {
        let reply = self.endpoint.call(PLACEMENT_SHARD, req).await?;
        expect_reply!(reply, PlacementReply::Placed, PlacementFailure::Mismatch)
    }
}

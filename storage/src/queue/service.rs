//! Every shard's outbound queue from any shard, for the admin API (`cairn
//! admin queue list/retry/delete`): a message is named by its shard and
//! its id there, and each call runs on that shard. Delivery itself never
//! crosses shards: each shard's runner works on [`QueueService::local`].

use std::rc::Rc;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::ShardId;

use super::{now_secs, QueueError, QueueStore, QueuedMessage};
use crate::service::ServiceError;

/// A request for one shard's queue.
#[derive(Debug, Clone)]
pub enum QueueRequest {
    /// Every message queued there.
    List,
    /// Makes one message (every message with `None`) due now.
    Retry { id: Option<u64> },
    /// Removes a message without a bounce.
    Delete { id: u64 },
}

/// The shard's answer.
#[derive(Debug)]
pub enum QueueReply {
    List(Vec<QueuedMessage>),
    Retried(Result<usize, QueueError>),
    Deleted(Result<bool, QueueError>),
}

/// The mesh that carries queue requests; made before the shards start.
pub type QueueMesh = Mesh<QueueRequest, QueueReply>;

/// The queues of every shard, from this shard's point of view. Cheap to
/// clone.
#[derive(Clone)]
pub struct QueueService {
    endpoint: Rc<MeshEndpoint<QueueRequest, QueueReply>>,
    store: QueueStore,
}

async fn handle(store: QueueStore, req: QueueRequest) -> QueueReply {
    match req {
        QueueRequest::List => QueueReply::List(store.list()),
        QueueRequest::Retry { id } => QueueReply::Retried(store.retry(id, now_secs()).await),
        QueueRequest::Delete { id } => QueueReply::Deleted(store.delete(id).await),
    }
}

impl QueueService {
    /// Joins the mesh as this shard and serves requests with `store`, this
    /// shard's queue.
    pub async fn start(
        mesh: &QueueMesh,
        shard: ShardId,
        store: QueueStore,
    ) -> Result<Self, MeshError> {
        let endpoint = mesh.join(shard).await?;
        let serving = store.clone();
        endpoint.serve(move |_from, req| handle(serving.clone(), req))?;
        Ok(Self {
            endpoint: Rc::new(endpoint),
            store,
        })
    }

    /// This shard's queue (its delivery runner works on it).
    pub fn local(&self) -> &QueueStore {
        &self.store
    }

    /// How many shards (and queues) there are.
    pub fn shards(&self) -> usize {
        self.endpoint.shards()
    }

    /// Every shard's queued messages, by shard and then id.
    pub async fn list(&self) -> Result<Vec<(ShardId, QueuedMessage)>, ServiceError> {
        let mut out = Vec::new();
        for (shard, reply) in self
            .endpoint
            .broadcast(QueueRequest::List)
            .await
            .into_iter()
            .enumerate()
        {
            match reply? {
                QueueReply::List(messages) => {
                    out.extend(messages.into_iter().map(|m| (shard, m)));
                }
                _ => return Err(ServiceError::Mismatch),
            }
        }
        Ok(out)
    }

    /// Makes message `id` of `shard` (all of that shard's with `None`) due
    /// now and wakes that shard's runner; returns how many messages that
    /// made due (0 for an id not queued).
    pub async fn retry(&self, shard: ShardId, id: Option<u64>) -> Result<usize, ServiceError> {
        expect_reply!(
            self.endpoint
                .call(shard, QueueRequest::Retry { id })
                .await?,
            QueueReply::Retried,
            ServiceError::Mismatch
        )
    }

    /// Removes message `id` from `shard`'s queue without a bounce; false if
    /// it was not queued.
    pub async fn delete(&self, shard: ShardId, id: u64) -> Result<bool, ServiceError> {
        expect_reply!(
            self.endpoint
                .call(shard, QueueRequest::Delete { id })
                .await?,
            QueueReply::Deleted,
            ServiceError::Mismatch
        )
    }
}

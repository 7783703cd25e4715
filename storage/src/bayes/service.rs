//! Classification from any shard: the SMTP session asks each shard owning
//! some of a message's recipients (one request per shard, all at once,
//! the body shared) what those accounts' classifiers say of it. The owning
//! shard tokenizes the message once per request, and only when one of its
//! accounts is trained enough to classify (most are not: a message for
//! them costs one lookup). Training never crosses shards: it happens where
//! the account's mail is filed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::placement::{PlacementKey, PlacementTable};
use cairn_shards::ShardId;

use super::{tokenize, BayesStore, Classification, Policy, Token};
use crate::service::{scatter, ServiceError};

/// A request for the shard that owns `accounts`: classify `message` for
/// each of them under `policy`.
#[derive(Debug, Clone)]
pub struct Classify {
    pub accounts: Vec<String>,
    pub message: Arc<[u8]>,
    pub policy: Policy,
}

/// The mesh that carries classification requests (the answer: one
/// classification per account, in order); made before the shards start.
pub type BayesMesh = Mesh<Classify, Vec<Classification>>;

/// The classifiers of every shard, from this shard's point of view. Cheap
/// to clone.
#[derive(Clone)]
pub struct BayesService {
    endpoint: Rc<MeshEndpoint<Classify, Vec<Classification>>>,
    placement: Rc<RefCell<PlacementTable>>,
}

async fn handle(store: BayesStore, req: Classify) -> Vec<Classification> {
    let mut tokens: Option<Vec<Token>> = None;
    let mut out = Vec::with_capacity(req.accounts.len());
    for account in &req.accounts {
        let verdict = if store.ready(account, &req.policy) {
            let tokens = tokens.get_or_insert_with(|| tokenize(&req.message));
            store.classify(account, tokens, &req.policy)
        } else {
            Classification::Untrained
        };
        store.count(&verdict);
        out.push(verdict);
        cairn_shards::yield_if_needed().await;
    }
    out
}

impl BayesService {
    /// Joins the mesh as this shard, serves requests with `store` (this
    /// shard's classifiers), and routes by `placement`.
    pub async fn start(
        mesh: &BayesMesh,
        shard: ShardId,
        store: BayesStore,
        placement: Rc<RefCell<PlacementTable>>,
    ) -> Result<Self, MeshError> {
        let endpoint = mesh.join(shard).await?;
        endpoint.serve(move |_from, req| handle(store.clone(), req))?;
        Ok(Self {
            endpoint: Rc::new(endpoint),
            placement,
        })
    }

    /// What each account's classifier says of `message` under `policy`;
    /// one result per account, in order.
    pub async fn classify(
        &self,
        accounts: &[String],
        message: Arc<[u8]>,
        policy: Policy,
    ) -> Vec<Result<Classification, ServiceError>> {
        scatter(
            &self.endpoint,
            |account: &String| {
                self.placement
                    .borrow()
                    .shard_of(&PlacementKey::account(account.as_str()))
            },
            accounts,
            |accounts| Classify {
                accounts,
                message: message.clone(),
                policy,
            },
            |reply| Some(reply.into_iter().map(Ok).collect()),
        )
        .await
    }
}

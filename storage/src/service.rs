//! Shard-aware mail services: a call made on any shard runs on the shard
//! that owns the account (the placement table says which), through the
//! runtime's cross-shard calls — Seastar's `submit_to`. Deliveries to many
//! recipients go to each owning shard once, with the body shared, so a
//! message is stored once per shard however many of its recipients live
//! there.
//!
//! Sessions that work on one account for long (IMAP, POP3) move to the
//! owning shard instead and use its [`MailStore`] directly.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::placement::{PlacementKey, PlacementTable};
use cairn_shards::ShardId;

use crate::mailbox::{BlobRef, Delivered, Export, Frozen, MailError, MailStore, Message, Status};
use crate::queue::QueueError;

/// A request for the shard that owns the account(s) in it.
#[derive(Debug, Clone)]
pub enum MailRequest {
    CreateAccount {
        account: String,
        quota_bytes: u64,
        quota_messages: u64,
    },
    /// Every (account, mailbox) here lives on the receiving shard.
    Deliver {
        recipients: Vec<(String, String)>,
        body: Arc<[u8]>,
        internal_date: i64,
    },
    DeleteAccount {
        account: String,
    },
    SetQuota {
        account: String,
        quota_bytes: u64,
        quota_messages: u64,
    },
    Status {
        account: String,
        mailbox: String,
    },
    Messages {
        account: String,
        mailbox: String,
    },
    Body {
        blob: BlobRef,
    },
    Quota {
        account: String,
    },
    /// To the shard an account is moving from: hold it still (deliveries
    /// to it are refused at once, other writes wait) and answer what the
    /// move carries.
    Freeze {
        account: String,
    },
    /// To the shard an account is moving from: end the hold; with
    /// `remove` (it moved), delete the account there first.
    Thaw {
        account: String,
        remove: bool,
    },
    /// To the shard an account is moving to: copy it from shard `from`
    /// (held still there until a `Thaw`).
    MoveIn {
        account: String,
        from: ShardId,
    },
    /// To a shard: delete its copy of an account that did not move there.
    Discard {
        account: String,
    },
}

/// The owning shard's answer.
#[derive(Debug)]
pub enum MailReply {
    Done(Result<(), MailError>),
    Delivered(Vec<Result<Delivered, MailError>>),
    Status(Result<Status, MailError>),
    Messages(Result<Vec<Message>, MailError>),
    Body(Result<Vec<u8>, MailError>),
    Quota(Result<(u64, u64, u64, u64), MailError>),
    Frozen(Result<Box<Export>, MailError>),
}

/// The mesh that carries mail requests; made before the shards start.
pub type MailMesh = Mesh<MailRequest, MailReply>;

/// Why a routed call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the owning shard did not answer: {0}")]
    Mesh(#[from] MeshError),
    #[error("the owning shard answered a different request")]
    Mismatch,
}

/// Sends one request per shard owning some of `items` (`owner` says
/// which), all shards at once, made by `request` from that shard's items
/// in order, and gathers the replies: `answers` turns a reply into one
/// result per item of its request (`None`, or a wrong count, is
/// [`ServiceError::Mismatch`]). One result per item, in order.
pub(crate) async fn scatter<I, Req, Rep, T>(
    endpoint: &Rc<MeshEndpoint<Req, Rep>>,
    owner: impl Fn(&I) -> ShardId,
    items: &[I],
    request: impl Fn(Vec<I>) -> Req,
    answers: impl Fn(Rep) -> Option<Vec<Result<T, ServiceError>>>,
) -> Vec<Result<T, ServiceError>>
where
    I: Clone,
    Req: Send + 'static,
    Rep: Send + 'static,
{
    let mut by_shard: Vec<(ShardId, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let shard = owner(item);
        match by_shard.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, idx)) => idx.push(i),
            None => by_shard.push((shard, vec![i])),
        }
    }
    let calls: Vec<_> = by_shard
        .into_iter()
        .map(|(shard, idx)| {
            let req = request(idx.iter().filter_map(|&i| items.get(i).cloned()).collect());
            let endpoint = endpoint.clone();
            let call = cairn_shards::spawn(async move { endpoint.call(shard, req).await });
            (idx, call)
        })
        .collect();
    let mut out: Vec<Option<Result<T, ServiceError>>> = items.iter().map(|_| None).collect();
    for (idx, call) in calls {
        let results = match call.await {
            Ok(reply) => answers(reply)
                .filter(|r| r.len() == idx.len())
                .ok_or(ServiceError::Mismatch),
            Err(e) => Err(ServiceError::from(e)),
        };
        match results {
            Ok(results) => {
                for (i, r) in idx.into_iter().zip(results) {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            }
            Err(e) => {
                for i in idx {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(Err(e.clone()));
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or(Err(ServiceError::Mismatch)))
        .collect()
}

/// Mail on every shard, from this shard's point of view. Cheap to clone.
#[derive(Clone)]
pub struct MailService {
    endpoint: Rc<MeshEndpoint<MailRequest, MailReply>>,
    placement: Rc<RefCell<PlacementTable>>,
}

/// One shard's part in moving accounts: the accounts it holds still,
/// and its way to the shard an account moves from.
struct Moves {
    frozen: RefCell<HashMap<String, Frozen>>,
    endpoint: Weak<MeshEndpoint<MailRequest, MailReply>>,
}

fn mesh_failure(e: MeshError) -> MailError {
    MailError::MoveFailed(format!("the shards lost each other: {e}"))
}

impl Moves {
    async fn freeze(&self, store: &MailStore, account: String) -> Result<Box<Export>, MailError> {
        let (frozen, export) = store.freeze(&account).await?;
        self.frozen.borrow_mut().insert(account, frozen);
        Ok(Box::new(export))
    }

    async fn thaw(&self, store: &MailStore, account: &str, remove: bool) -> Result<(), MailError> {
        let frozen = self.frozen.borrow_mut().remove(account);
        match frozen {
            Some(frozen) => store.thaw(frozen, remove).await,
            None => Err(MailError::MoveFailed(format!("{account} is not moving"))),
        }
    }

    async fn call(&self, to: ShardId, req: MailRequest) -> Result<MailReply, MailError> {
        let endpoint = self
            .endpoint
            .upgrade()
            .ok_or(mesh_failure(MeshError::Closed))?;
        endpoint.call(to, req).await.map_err(mesh_failure)
    }

    /// Delivers to `recipients`, but refuses at once those whose account
    /// is held for a move: with the error a write that waited for the move
    /// gets (the account is leaving this shard), which the sender takes as
    /// temporary and retries, reaching the account's new shard.
    async fn deliver(
        &self,
        store: &MailStore,
        recipients: &[(String, String)],
        body: &[u8],
        internal_date: i64,
    ) -> Vec<Result<Delivered, MailError>> {
        let moving: Vec<bool> = {
            let frozen = self.frozen.borrow();
            recipients
                .iter()
                .map(|(account, _)| frozen.contains_key(account))
                .collect()
        };
        if !moving.contains(&true) {
            return store.deliver(recipients, body, internal_date).await;
        }
        let staying: Vec<(String, String)> = recipients
            .iter()
            .zip(&moving)
            .filter(|(_, moving)| !**moving)
            .map(|(r, _)| r.clone())
            .collect();
        let mut delivered = if staying.is_empty() {
            Vec::new()
        } else {
            store.deliver(&staying, body, internal_date).await
        }
        .into_iter();
        recipients
            .iter()
            .zip(moving)
            .map(|((account, _), moving)| match moving {
                true => Err(MailError::NoSuchAccount(account.clone())),
                false => delivered
                    .next()
                    .unwrap_or_else(|| Err(MailError::Corrupt("a delivery went missing".into()))),
            })
            .collect()
    }

    /// Holds the account still on `from`, copies it into `store`, and
    /// leaves it held; if the copy fails, lets it go.
    async fn move_in(
        &self,
        store: &MailStore,
        account: String,
        from: ShardId,
    ) -> Result<(), MailError> {
        let req = MailRequest::Freeze {
            account: account.clone(),
        };
        let mismatch =
            || MailError::MoveFailed("the source shard answered a different request".into());
        let export = expect_reply!(self.call(from, req).await?, MailReply::Frozen, mismatch())?;
        let body = |blob| async move {
            expect_reply!(
                self.call(from, MailRequest::Body { blob }).await?,
                MailReply::Body,
                mismatch()
            )
        };
        let copied = store.import(&account, &export, body).await;
        if copied.is_err() {
            let thaw = MailRequest::Thaw {
                account: account.clone(),
                remove: false,
            };
            if let Err(error) = self.call(from, thaw).await {
                tracing::error!(%account, %error, "cannot let go of an account whose move failed");
            }
        }
        copied
    }
}

async fn handle(store: MailStore, moves: Rc<Moves>, req: MailRequest) -> MailReply {
    match req {
        MailRequest::Freeze { account } => MailReply::Frozen(moves.freeze(&store, account).await),
        MailRequest::Thaw { account, remove } => {
            MailReply::Done(moves.thaw(&store, &account, remove).await)
        }
        MailRequest::MoveIn { account, from } => {
            MailReply::Done(moves.move_in(&store, account, from).await)
        }
        MailRequest::Discard { account } => MailReply::Done(store.discard(&account).await),
        MailRequest::CreateAccount {
            account,
            quota_bytes,
            quota_messages,
        } => MailReply::Done(
            store
                .create_account(&account, quota_bytes, quota_messages)
                .await,
        ),
        MailRequest::DeleteAccount { account } => {
            MailReply::Done(store.delete_account(&account).await)
        }
        MailRequest::SetQuota {
            account,
            quota_bytes,
            quota_messages,
        } => MailReply::Done(store.set_quota(&account, quota_bytes, quota_messages).await),
        MailRequest::Deliver {
            recipients,
            body,
            internal_date,
        } => MailReply::Delivered(
            moves
                .deliver(&store, &recipients, &body, internal_date)
                .await,
        ),
        MailRequest::Status { account, mailbox } => {
            MailReply::Status(store.status(&account, &mailbox))
        }
        MailRequest::Messages { account, mailbox } => {
            MailReply::Messages(store.messages(&account, &mailbox))
        }
        MailRequest::Body { blob } => MailReply::Body(store.body(&blob).await),
        MailRequest::Quota { account } => MailReply::Quota(store.quota(&account)),
    }
}

impl MailService {
    /// Joins the mesh as this shard, serves requests with `store`, and
    /// routes by `placement`.
    pub async fn start(
        mesh: &MailMesh,
        shard: ShardId,
        store: MailStore,
        placement: Rc<RefCell<PlacementTable>>,
    ) -> Result<Self, MeshError> {
        let endpoint = Rc::new(mesh.join(shard).await?);
        let moves = Rc::new(Moves {
            frozen: RefCell::default(),
            endpoint: Rc::downgrade(&endpoint),
        });
        endpoint.serve(move |_from, req| handle(store.clone(), moves.clone(), req))?;
        Ok(Self {
            endpoint,
            placement,
        })
    }

    /// The shard that owns `account`.
    pub fn owner(&self, account: &str) -> ShardId {
        self.placement
            .borrow()
            .shard_of(&PlacementKey::account(account))
    }

    async fn call(&self, account: &str, req: MailRequest) -> Result<MailReply, ServiceError> {
        Ok(self.endpoint.call(self.owner(account), req).await?)
    }

    /// Creates an account on its shard.
    pub async fn create_account(
        &self,
        account: &str,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<(), ServiceError> {
        let req = MailRequest::CreateAccount {
            account: account.to_string(),
            quota_bytes,
            quota_messages,
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// Sets an account's quotas (0: none) on its shard.
    pub async fn set_quota(
        &self,
        account: &str,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<(), ServiceError> {
        let req = MailRequest::SetQuota {
            account: account.to_string(),
            quota_bytes,
            quota_messages,
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// Deletes an account and its mail on its shard.
    pub async fn delete_account(&self, account: &str) -> Result<(), ServiceError> {
        let req = MailRequest::DeleteAccount {
            account: account.to_string(),
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// A mailbox's counters, from the account's shard.
    pub async fn status(&self, account: &str, mailbox: &str) -> Result<Status, ServiceError> {
        let req = MailRequest::Status {
            account: account.to_string(),
            mailbox: mailbox.to_string(),
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Status,
            ServiceError::Mismatch
        )
    }

    /// A mailbox's messages, from the account's shard.
    pub async fn messages(
        &self,
        account: &str,
        mailbox: &str,
    ) -> Result<Vec<Message>, ServiceError> {
        let req = MailRequest::Messages {
            account: account.to_string(),
            mailbox: mailbox.to_string(),
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Messages,
            ServiceError::Mismatch
        )
    }

    /// An account's usage and limits, from its shard: (bytes used, byte
    /// quota, messages, message quota); a quota of 0 is no limit.
    pub async fn quota(&self, account: &str) -> Result<(u64, u64, u64, u64), ServiceError> {
        let req = MailRequest::Quota {
            account: account.to_string(),
        };
        expect_reply!(
            self.call(account, req).await?,
            MailReply::Quota,
            ServiceError::Mismatch
        )
    }

    /// A message body, from the account's shard.
    pub async fn body(&self, account: &str, blob: BlobRef) -> Result<Vec<u8>, ServiceError> {
        expect_reply!(
            self.call(account, MailRequest::Body { blob }).await?,
            MailReply::Body,
            ServiceError::Mismatch
        )
    }

    /// Copies `account` from shard `from` to shard `to`, holding it still
    /// on `from` until [`MailService::thaw`] (also when this fails: the
    /// hold is then let go).
    pub async fn move_in(
        &self,
        account: &str,
        from: ShardId,
        to: ShardId,
    ) -> Result<(), ServiceError> {
        let req = MailRequest::MoveIn {
            account: account.to_string(),
            from,
        };
        expect_reply!(
            self.endpoint.call(to, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// Ends the hold on `account` on shard `on`; with `remove`, deletes it
    /// there first (it moved).
    pub async fn thaw(&self, account: &str, on: ShardId, remove: bool) -> Result<(), ServiceError> {
        let req = MailRequest::Thaw {
            account: account.to_string(),
            remove,
        };
        expect_reply!(
            self.endpoint.call(on, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// Deletes shard `on`'s copy of `account` (a move that did not finish).
    pub async fn discard(&self, account: &str, on: ShardId) -> Result<(), ServiceError> {
        let req = MailRequest::Discard {
            account: account.to_string(),
        };
        expect_reply!(
            self.endpoint.call(on, req).await?,
            MailReply::Done,
            ServiceError::Mismatch
        )
    }

    /// Delivers `body` to every (account, mailbox): one request per owning
    /// shard, all shards at once; one result per recipient, in order.
    pub async fn deliver(
        &self,
        recipients: &[(String, String)],
        body: Arc<[u8]>,
        internal_date: i64,
    ) -> Vec<Result<Delivered, ServiceError>> {
        scatter(
            &self.endpoint,
            |(account, _): &(String, String)| self.owner(account),
            recipients,
            |recipients| MailRequest::Deliver {
                recipients,
                body: body.clone(),
                internal_date,
            },
            |reply| match reply {
                MailReply::Delivered(results) => Some(
                    results
                        .into_iter()
                        .map(|r| r.map_err(ServiceError::from))
                        .collect(),
                ),
                _ => None,
            },
        )
        .await
    }
}

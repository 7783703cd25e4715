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
use std::rc::Rc;
use std::sync::Arc;

use cairn_shards::mesh::{Mesh, MeshEndpoint, MeshError};
use cairn_shards::placement::{PlacementKey, PlacementTable};
use cairn_shards::ShardId;

use crate::mailbox::{BlobRef, Delivered, MailError, MailStore, Message, Status};
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

async fn handle(store: MailStore, req: MailRequest) -> MailReply {
    match req {
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
        } => MailReply::Delivered(store.deliver(&recipients, &body, internal_date).await),
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
        let endpoint = mesh.join(shard).await?;
        endpoint.serve(move |_from, req| handle(store.clone(), req))?;
        Ok(Self {
            endpoint: Rc::new(endpoint),
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

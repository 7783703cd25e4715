//! The storage services of one shard, bundled for the protocol servers and
//! the admin API: the directory (with authentication), mail, the outbound
//! queues and the accounts' Bayes classifiers, all reachable from any
//! shard, and the blocking pool for password hashing.
//! Provisioning an account (directory entry and mailboxes together) lives
//! here so that every caller does it the same way.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_shards::mesh::MeshError;
use cairn_shards::{BlockingPool, ShardContext, ShardId};

use crate::bayes::{BayesMesh, BayesService};
use crate::directory::auth::Authenticator;
use crate::directory::lockout::Policy;
use crate::directory::service::{CallError, DirectoryMesh, DirectoryService, DIRECTORY_SHARD};
use crate::directory::{names, Account, Directory, NewAccount};
use crate::mailbox::MailStore;
use crate::metrics::{AuthMetrics, BayesMetrics};
use crate::placement::{PlacementFailure, PlacementMesh, PlacementService};
use crate::queue::{QueueMesh, QueueService};
use crate::service::{MailMesh, MailService, ServiceError};
use crate::shard_store::ShardStore;

/// Bound on requests queued from one shard to another.
const MESH_QUEUE: usize = 64;

/// What the shards share, made once before they start: the cross-shard
/// meshes, and where logins and the Bayes classifiers are counted.
#[derive(Clone)]
pub struct Meshes {
    pub mail: MailMesh,
    pub directory: DirectoryMesh,
    pub queue: QueueMesh,
    pub bayes: BayesMesh,
    pub placement: PlacementMesh,
    pub auth_metrics: Option<AuthMetrics>,
    pub bayes_metrics: Option<BayesMetrics>,
}

impl Meshes {
    pub fn new(shards: usize) -> Self {
        Self {
            mail: MailMesh::new(shards, MESH_QUEUE),
            directory: DirectoryMesh::new(shards, MESH_QUEUE),
            queue: QueueMesh::new(shards, MESH_QUEUE),
            bayes: BayesMesh::new(shards, MESH_QUEUE),
            placement: PlacementMesh::new(shards, MESH_QUEUE),
            auth_metrics: None,
            bayes_metrics: None,
        }
    }

    /// Records `shards` as the base of default placement if the node has
    /// none recorded yet (a data directory from before it was kept: pass
    /// the number of shards it holds).
    pub fn with_shards_on_disk(mut self, shards: usize) -> Self {
        self.placement = self.placement.with_first_base(shards);
        self
    }

    /// Counts logins in `metrics` (`cairn_auth_attempts_total`).
    pub fn with_auth_metrics(mut self, metrics: AuthMetrics) -> Self {
        self.auth_metrics = Some(metrics);
        self
    }

    /// Counts the Bayes classifiers' training and verdicts in `metrics`.
    pub fn with_bayes_metrics(mut self, metrics: BayesMetrics) -> Self {
        self.bayes_metrics = Some(metrics);
        self
    }
}

/// Why provisioning an account failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Directory(#[from] CallError),
    #[error(transparent)]
    Mail(#[from] ServiceError),
    #[error(transparent)]
    Placement(#[from] PlacementFailure),
}

/// Why a shard's services did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("cannot load the placement table: {0}")]
    Placement(#[from] PlacementFailure),
}

/// The services as seen from one shard. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub shard: ShardId,
    pub directory: DirectoryService,
    pub mail: MailService,
    /// This shard's own mailstore: for sessions that moved to the shard
    /// owning their account (`mail.owner(account) == shard`).
    pub mailstore: MailStore,
    /// Every shard's outbound queue; this shard's is `queue.local()`.
    pub queue: QueueService,
    /// Every shard's Bayes classifiers.
    pub bayes: BayesService,
    /// Which shard owns each account, and the way to change it.
    pub placement: PlacementService,
    pub blocking: BlockingPool,
}

impl Services {
    /// Joins the meshes as this shard; the directory's shard also serves
    /// the directory and its authenticator (lockout per `policy`).
    pub async fn start(
        ctx: &ShardContext,
        store: &ShardStore,
        meshes: &Meshes,
        policy: Policy,
    ) -> Result<Self, StartError> {
        let placement_service =
            PlacementService::start(&meshes.placement, ctx.id(), ctx.count(), &store.tables)
                .await?;
        let placement = placement_service.table();
        let mail = MailService::start(
            &meshes.mail,
            ctx.id(),
            store.mail.clone(),
            placement.clone(),
        )
        .await?;
        let serving = (ctx.id() == DIRECTORY_SHARD).then(|| {
            let directory = Directory::new(store.tables.clone());
            let auth = Authenticator::new(directory.clone(), ctx.blocking().clone(), policy)
                .observed(meshes.auth_metrics.clone());
            (directory, auth)
        });
        let directory = DirectoryService::start(&meshes.directory, ctx.id(), serving).await?;
        let queue = QueueService::start(&meshes.queue, ctx.id(), store.queue.clone()).await?;
        store.bayes.observe(meshes.bayes_metrics.clone());
        let bayes =
            BayesService::start(&meshes.bayes, ctx.id(), store.bayes.clone(), placement).await?;
        Ok(Self {
            shard: ctx.id(),
            directory,
            mail,
            mailstore: store.mail.clone(),
            queue,
            bayes,
            placement: placement_service,
            blocking: ctx.blocking().clone(),
        })
    }

    /// Hashes a password with argon2id on the blocking pool.
    pub async fn hash_password(&self, password: String) -> Result<String, ProvisionError> {
        let hashed = self
            .blocking
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
            })
            .await;
        match hashed {
            Ok(Ok(hash)) => Ok(hash),
            Ok(Err(e)) => Err(ProvisionError::Hash(e.to_string())),
            Err(e) => Err(ProvisionError::Hash(e.to_string())),
        }
    }

    /// Adds an account (its password already hashed) to the directory and
    /// makes its mailboxes on the shard that will own them; if the mail
    /// side fails the directory entry is taken back, so that no account
    /// exists without mail. The address is normalized and `new.shard` set
    /// here; an account that needs an explicit placement (made after a
    /// growth of the shard count) gets it, durably, once the directory
    /// took the address and before its mailboxes are made.
    pub async fn add_account(&self, mut new: NewAccount) -> Result<Account, ProvisionError> {
        new.address = names::address(&new.address)
            .map_err(CallError::Directory)?
            .0;
        new.shard = self.placement.home_of_new_account(&new.address) as u32;
        let address = new.address.clone();
        // The directory resolves a quota of 0 to the class's.
        let created = self.directory.add_account(new).await?;
        let quota = created.quota_bytes;
        let made = match self.placement.place_new_account(&address).await {
            Ok(_) => self
                .mail
                .create_account(&created.address, quota, 0)
                .await
                .map_err(ProvisionError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = made {
            if let Err(undo) = self.directory.delete_account(address.clone()).await {
                tracing::error!(%address, error = %undo, "cannot undo a half-created account");
            }
            return Err(e);
        }
        Ok(created)
    }
}

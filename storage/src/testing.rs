//! A node of shards with real storage and services on a temporary data
//! directory, for the protocol crates' integration tests (feature
//! `testing`): the servers under test start on every shard with its
//! [`Services`] (a test binds its listener on shard 0 only, but servers
//! whose sessions move to the owning shard need every shard to take them),
//! and the node stops and joins its shards when dropped.

use std::future::Future;
use std::time::Duration;

use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};

use crate::directory::lockout::Policy;
use crate::services::{Meshes, Services};
use crate::shard_store::ShardStore;

/// Running shards on a temporary data directory.
pub struct ServiceNode {
    shutdown: Shutdown,
    runtime: Option<Runtime<()>>,
    _data: tempfile::TempDir,
}

impl ServiceNode {
    /// Starts `shards` unpinned shards, each with its storage and services
    /// (a lockout policy loose enough not to get in a test's way), and runs
    /// `serve` on every shard; every shard then waits for the node's
    /// shutdown, and closes its log.
    pub fn start<F, Fut>(shards: usize, serve: F) -> Self
    where
        F: Fn(Services, ShardContext) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let data = tempfile::tempdir().expect("tempdir");
        let path = data.path().to_path_buf();
        let meshes = Meshes::new(shards);
        let config = RuntimeConfig {
            shards,
            pin: false,
            blocking_threads: 2,
            ..RuntimeConfig::default()
        };
        let shutdown = Shutdown::new();
        let runtime = Runtime::start(&config, shutdown.clone(), move |ctx: ShardContext| {
            let (meshes, path, serve) = (meshes.clone(), path.clone(), serve.clone());
            async move {
                let (store, _) = ShardStore::open(&path, ctx.id()).await.expect("store");
                let policy = Policy {
                    per_account: 1000,
                    per_address: 1000,
                    window: Duration::from_secs(60),
                };
                let services = Services::start(&ctx, &store, &meshes, policy)
                    .await
                    .expect("services");
                // The shard's services stay in the meshes until shutdown,
                // whenever `serve` returns.
                serve(services.clone(), ctx.clone()).await;
                ctx.shutdown().wait().await;
                drop(services);
                store.log.close().await;
            }
        })
        .expect("runtime");
        Self {
            shutdown,
            runtime: Some(runtime),
            _data: data,
        }
    }
}

impl Drop for ServiceNode {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(rt) = self.runtime.take() {
            let _ = rt.join();
        }
    }
}

//! A node of shards with real storage and services on a temporary data
//! directory, for the protocol crates' integration tests (feature
//! `testing`): the servers under test start on every shard with its
//! [`Services`] (a test binds its listener on shard 0 only, but servers
//! whose sessions move to the owning shard need every shard to take them),
//! and the node stops and joins its shards when dropped. Beside it, what
//! every protocol test needs: a self-signed certificate and its server
//! settings, one address per shard, and an accept loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cairn_shards::net::TcpListener;
use cairn_shards::stream::{server_config, Stream};
use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};

use crate::directory::lockout::Policy;
use crate::log::LogConfig;
use crate::services::{Meshes, Services};
use crate::shard_store::ShardStore;

/// Running shards on a temporary data directory.
pub struct ServiceNode {
    shutdown: Shutdown,
    runtime: Option<Runtime<()>>,
    data: tempfile::TempDir,
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
        Self::start_with_log(shards, LogConfig::default(), serve)
    }

    /// [`ServiceNode::start`] with the shards' logs configured by `log`
    /// (e.g. records large enough for large messages).
    pub fn start_with_log<F, Fut>(shards: usize, log: LogConfig, serve: F) -> Self
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
            let log = log.clone();
            async move {
                let (store, _) = ShardStore::open_with(&path, ctx.id(), log)
                    .await
                    .expect("store");
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
            data,
        }
    }

    /// The node's data directory (see [`crate::shard_store::shard_dir`]).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
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

/// A self-signed certificate for `localhost`, made once per test binary
/// (clients add its `cert.der()` to their roots).
pub fn certificate() -> &'static rcgen::CertifiedKey {
    static CERT: OnceLock<rcgen::CertifiedKey> = OnceLock::new();
    CERT.get_or_init(|| {
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert")
    })
}

/// Server TLS settings for [`certificate`].
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    let made = certificate();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
    server_config(vec![made.cert.der().clone()], key.into(), &[]).expect("TLS settings")
}

/// One address `user{i}@example.org` owned by each shard, in shard order
/// (not provisioned).
pub fn address_per_shard(services: &Services, shards: usize) -> Vec<String> {
    let mut on: Vec<Option<String>> = vec![None; shards];
    for i in 0.. {
        let address = format!("user{i}@example.org");
        if let Some(slot @ None) = on.get_mut(services.mail.owner(&address)) {
            *slot = Some(address);
        }
        if on.iter().all(Option::is_some) {
            break;
        }
    }
    on.into_iter().flatten().collect()
}

/// Accepts plain connections until `shutdown`, serving each in its own
/// task.
pub async fn accept_loop<F, Fut>(listener: TcpListener, serve: F, shutdown: Shutdown)
where
    F: Fn(Stream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(Ok(tcp)) = accepted else { break };
        let Ok(peer) = tcp.peer_addr() else { continue };
        cairn_shards::spawn_detached(serve(Stream::Plain(tcp), peer));
    }
}

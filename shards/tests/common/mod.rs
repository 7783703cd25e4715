//! Helpers of the multi-shard tests: start a runtime of n unpinned shards
//! with a deadline on each, and a barrier between shards.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};

/// Past this, a shard is taken to hang and the test fails (not a timing claim).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `body` on each of `shards` shards and returns their outputs in shard
/// order.
pub fn run_shards<T, F, Fut>(shards: usize, body: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(ShardContext) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    let config = RuntimeConfig {
        shards,
        pin: false,
        blocking_threads: 1,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(&config, Shutdown::new(), move |ctx: ShardContext| {
        let body = body.clone();
        async move {
            let id = ctx.id();
            cairn_shards::time::timeout(DEADLINE, body(ctx))
                .await
                .unwrap_or_else(|e| panic!("shard {id} hung: {e}"))
        }
    })
    .expect("start the runtime");
    rt.join().expect("every shard ends well")
}

/// Waits until `n` parties (shards or threads) have arrived.
#[derive(Clone)]
pub struct Barrier {
    arrived: Arc<AtomicUsize>,
    all: Shutdown,
    n: usize,
}

impl Barrier {
    pub fn new(n: usize) -> Self {
        Self {
            arrived: Arc::new(AtomicUsize::new(0)),
            all: Shutdown::new(),
            n,
        }
    }

    pub async fn wait(&self) {
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 >= self.n {
            self.all.trigger();
        }
        self.all.wait().await;
    }
}

//! Starting and joining the shards: one thread per shard, each running its
//! own glommio executor pinned to one core, each handed a [`ShardContext`].

use std::future::Future;
use std::thread::JoinHandle;

use glommio::{LocalExecutorBuilder, Placement};

use crate::{BlockingPool, Shutdown};

/// The index of a shard, `0..count`.
pub type ShardId = usize;

/// How the runtime lays out its shards.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Number of shards (executors); 0 means one per available core.
    pub shards: usize,
    /// Pin each shard to one core (round-robin over the online cores).
    pub pin: bool,
    /// Threads of the blocking pool; 0 means one per core.
    pub blocking_threads: usize,
    /// Thread name prefix.
    pub name: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            pin: true,
            blocking_threads: 0,
            name: "cairn-shard".into(),
        }
    }
}

impl RuntimeConfig {
    /// The shard count this config resolves to on this machine.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            available_cores()
        }
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Why the runtime could not start or a shard failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Not enough locked memory for io_uring (the message says what to set).
    #[error("{0}")]
    MemLock(String),
    /// A shard's executor could not be created.
    #[error("shard {shard}: cannot start its executor: {reason}")]
    Executor { shard: ShardId, reason: String },
    /// A shard thread panicked.
    #[error("shard {0} panicked")]
    Panicked(ShardId),
    /// Spawning a thread failed.
    #[error("cannot spawn a thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// What a shard knows about itself and the runtime it belongs to.
#[derive(Clone)]
pub struct ShardContext {
    id: ShardId,
    count: usize,
    shutdown: Shutdown,
    blocking: BlockingPool,
}

impl ShardContext {
    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }
    /// How many shards the runtime runs.
    pub fn count(&self) -> usize {
        self.count
    }
    /// The runtime's shutdown signal.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }
    /// The pool for blocking or CPU-heavy work.
    pub fn blocking(&self) -> &BlockingPool {
        &self.blocking
    }
}

/// A started runtime: its shard threads, to be joined.
pub struct Runtime<T> {
    shards: Vec<JoinHandle<Result<T, RuntimeError>>>,
    shutdown: Shutdown,
}

impl<T: Send + 'static> Runtime<T> {
    /// Starts the shards. `init` runs once on each shard thread and its future
    /// is that shard's main task; the shard ends when it returns. If any shard
    /// cannot start, `shutdown` is raised so that the others wind down too.
    pub fn start<F, Fut>(
        config: &RuntimeConfig,
        shutdown: Shutdown,
        init: F,
    ) -> Result<Self, RuntimeError>
    where
        F: Fn(ShardContext) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let count = config.shard_count();
        let io_memory = crate::memlock::io_memory_budget(count).map_err(RuntimeError::MemLock)?;
        let cores = available_cores();
        let blocking_threads = if config.blocking_threads > 0 {
            config.blocking_threads
        } else {
            cores
        };
        let (blocking, _workers) = BlockingPool::start(blocking_threads, 1024)?;
        let mut shards = Vec::with_capacity(count);
        for id in 0..count {
            let ctx = ShardContext {
                id,
                count,
                shutdown: shutdown.clone(),
                blocking: blocking.clone(),
            };
            let placement = if config.pin {
                Placement::Fixed(id % cores)
            } else {
                Placement::Unbound
            };
            let mut builder = LocalExecutorBuilder::new(placement).name(&config.name);
            if let Some(bytes) = io_memory {
                builder = builder.io_memory(bytes);
            }
            let init = init.clone();
            let on_failure = shutdown.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-{id}", config.name))
                .spawn(move || {
                    let executor = builder.make().map_err(|e| {
                        on_failure.trigger();
                        RuntimeError::Executor {
                            shard: id,
                            reason: e.to_string(),
                        }
                    })?;
                    Ok(executor.run(init(ctx)))
                })?;
            shards.push(handle);
        }
        Ok(Self { shards, shutdown })
    }

    /// The signal that stops this runtime.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Waits for every shard to end and returns their outputs in shard order,
    /// or the first error.
    pub fn join(self) -> Result<Vec<T>, RuntimeError> {
        let mut out = Vec::with_capacity(self.shards.len());
        let mut first_err = None;
        for (id, handle) in self.shards.into_iter().enumerate() {
            match handle.join() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => {
                    self.shutdown.trigger();
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    self.shutdown.trigger();
                    first_err.get_or_insert(RuntimeError::Panicked(id));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_runs_once_with_its_own_id() {
        let config = RuntimeConfig {
            shards: 3,
            pin: false,
            ..RuntimeConfig::default()
        };
        let rt = Runtime::start(&config, Shutdown::new(), |ctx: ShardContext| async move {
            (ctx.id(), ctx.count())
        })
        .expect("start");
        let mut got = rt.join().expect("join");
        got.sort();
        assert_eq!(got, vec![(0, 3), (1, 3), (2, 3)]);
    }

    #[test]
    fn shards_stop_on_shutdown_and_blocking_work_runs_off_shard() {
        let config = RuntimeConfig {
            shards: 2,
            pin: false,
            ..RuntimeConfig::default()
        };
        let shutdown = Shutdown::new();
        let rt = Runtime::start(&config, shutdown.clone(), |ctx: ShardContext| async move {
            let shard_thread = std::thread::current().id();
            let worker = ctx
                .blocking()
                .run(|| std::thread::current().id())
                .await
                .expect("blocking job");
            ctx.shutdown().wait().await;
            shard_thread != worker
        })
        .expect("start");
        std::thread::sleep(std::time::Duration::from_millis(50));
        shutdown.trigger();
        assert_eq!(rt.join().expect("join"), vec![true, true]);
    }
}

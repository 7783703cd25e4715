//! One executor on the calling thread, for tests and command-line tools
//! that need the runtime's I/O (files, sockets, timers) without starting
//! shards.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

use crate::RuntimeError;

/// Runs `fut` to completion on a fresh executor on this thread.
pub fn block_on<T>(fut: impl Future<Output = T>) -> Result<T, RuntimeError> {
    let mut builder = LocalExecutorBuilder::new(Placement::Unbound);
    if let Some(bytes) = crate::memlock::io_memory_budget(1).map_err(RuntimeError::MemLock)? {
        builder = builder.io_memory(bytes);
    }
    let executor = builder.make().map_err(|e| RuntimeError::Executor {
        shard: 0,
        reason: e.to_string(),
    })?;
    Ok(executor.run(fut))
}

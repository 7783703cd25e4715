//! `cairn-shards`: the thread-per-core runtime of Cairn.
//!
//! One glommio executor per core, pinned; each shard owns its data outright
//! and talks to the others by message. This crate is the only one that names
//! glommio, so the rest of Cairn sees a small vocabulary: [`Runtime`] to start
//! shards, [`ShardContext`] inside one, [`net`] for sockets, [`time`] for
//! timers, [`BlockingPool`] for CPU-heavy work and [`Shutdown`] to stop;
//! [`Mesh`] carries typed requests between shards, [`PlacementTable`] says
//! which shard owns an account or a room, and [`hand_off`] moves an accepted
//! connection to the shard that owns it.

pub mod blocking;
pub mod fs;
pub mod handoff;
pub mod ip_limit;
pub mod listener;
pub mod local;
pub mod memlock;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod placement;
pub mod runtime;
pub mod shutdown;
pub mod stream;
pub mod sync;
pub mod time;

pub use blocking::BlockingPool;
pub use handoff::{hand_off, HandedOffSocket};
pub use listener::{probe_bind, ConnectionTracker};
pub use mesh::{Mesh, MeshEndpoint, MeshError};
pub use placement::{PlacementKey, PlacementTable, PlacementUpdate};
pub use runtime::{Runtime, RuntimeConfig, RuntimeError, ShardContext, ShardId};
pub use shutdown::Shutdown;

/// Spawns a task on the current shard and detaches it: it runs to completion
/// even if nobody awaits it.
pub fn spawn_detached(future: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(future).detach();
}

/// Spawns a task on the current shard and returns a handle that yields its
/// output; dropping the handle cancels the task.
pub fn spawn<T: 'static>(future: impl std::future::Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(future))
}

/// A task running on the current shard (see [`spawn`]).
pub struct Task<T>(glommio::Task<T>);

impl<T> std::future::Future for Task<T> {
    type Output = T;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Yields to other tasks of the shard if this one has run for long enough:
/// long loops call it so that no shard stalls.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await
}

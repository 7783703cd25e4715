//! Timers and deadlines on the shard's own clock (the executor's timer wheel).

use std::future::Future;
use std::time::Duration;

/// Sleeps for `dur` without blocking the shard.
pub async fn sleep(dur: Duration) {
    glommio::timer::sleep(dur).await
}

/// The future did not finish before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline of {0:?} passed")]
pub struct Elapsed(pub Duration);

/// Runs `fut` and gives up after `dur`.
pub async fn timeout<T>(dur: Duration, fut: impl Future<Output = T>) -> Result<T, Elapsed> {
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(sleep(dur));
    match futures_lite::future::or(async { Some(fut.await) }, async {
        timer.await;
        None
    })
    .await
    {
        Some(v) => Ok(v),
        None => Err(Elapsed(dur)),
    }
}

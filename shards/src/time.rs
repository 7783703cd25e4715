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

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Instant;

    fn on_a_shard<T>(fut: impl Future<Output = T>) -> T {
        crate::local::block_on(fut).expect("executor")
    }

    #[test]
    fn timeout_fires_when_the_future_is_late() {
        let got = on_a_shard(async {
            let started = Instant::now();
            let r = timeout(Duration::from_millis(20), sleep(Duration::from_secs(3600))).await;
            (r, started.elapsed())
        });
        assert_eq!(got.0, Err(Elapsed(Duration::from_millis(20))));
        assert!(
            got.1 >= Duration::from_millis(20),
            "fired early: {:?}",
            got.1
        );
    }

    #[test]
    fn timeout_does_not_fire_when_the_future_is_on_time() {
        let got = on_a_shard(async {
            let ready = timeout(Duration::from_secs(60), async { 7 }).await;
            let after_a_sleep = timeout(Duration::from_secs(60), async {
                sleep(Duration::from_millis(5)).await;
                8
            })
            .await;
            (ready, after_a_sleep)
        });
        assert_eq!(got, (Ok(7), Ok(8)));
    }

    #[test]
    fn sleep_waits_at_least_its_duration_and_lets_others_run() {
        let (slept, others_ran) = on_a_shard(async {
            let ran = std::rc::Rc::new(std::cell::Cell::new(false));
            let flag = ran.clone();
            let other = crate::spawn(async move { flag.set(true) });
            let started = Instant::now();
            sleep(Duration::from_millis(15)).await;
            other.await;
            (started.elapsed(), ran.get())
        });
        assert!(slept >= Duration::from_millis(15), "{slept:?}");
        assert!(others_ran);
    }
}

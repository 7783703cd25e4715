//! The blocking pool: a few plain threads fed by a crossbeam queue, for
//! CPU-heavy or blocking work (password hashing, image decoding) that must
//! never run on a shard. A shard awaits the result without stalling.

use std::future::Future;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};
use futures_channel::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of worker threads. Cloning shares the same workers.
#[derive(Clone)]
pub struct BlockingPool {
    jobs: Sender<Job>,
}

/// The pool was shut down, or the job panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the blocking job did not complete (pool closed or job panicked)")]
pub struct JobLost;

impl BlockingPool {
    /// Starts `threads` workers with a queue of `queue` pending jobs; callers
    /// beyond that wait (backpressure), they are never refused.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (tx, rx) = bounded::<Job>(queue.max(1));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("cairn-blocking-{i}"))
                    .spawn(move || {
                        for job in rx.iter() {
                            // A panicking job drops its reply sender (the caller
                            // sees JobLost) and the worker lives on.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    })?,
            );
        }
        Ok((Self { jobs: tx }, handles))
    }

    /// Runs `f` on a worker and resolves with its result.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, JobLost>> + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let jobs = self.jobs.clone();
        async move {
            let mut job = Some(job);
            // A full queue is waited out a little at a time so the shard stays responsive.
            while let Some(j) = job.take() {
                match jobs.try_send(j) {
                    Ok(()) => {}
                    Err(crossbeam_channel::TrySendError::Full(j)) => {
                        job = Some(j);
                        crate::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(JobLost),
                }
            }
            rx.await.map_err(|_| JobLost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_off_the_calling_thread() {
        let (pool, _workers) = BlockingPool::start(2, 4).expect("start pool");
        let caller = std::thread::current().id();
        let got = futures_lite::future::block_on(pool.run(move || std::thread::current().id()))
            .expect("job result");
        assert_ne!(got, caller);
    }

    #[test]
    fn a_panicking_job_is_reported_not_propagated() {
        let (pool, _workers) = BlockingPool::start(1, 1).expect("start pool");
        let r: Result<(), _> = futures_lite::future::block_on(pool.run(|| panic!("boom")));
        assert_eq!(r, Err(JobLost));
    }
}

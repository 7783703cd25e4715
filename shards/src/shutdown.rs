//! Graceful shutdown: one flag shared by every shard, raised by SIGTERM,
//! SIGINT or a call to [`Shutdown::trigger`], and awaitable on any shard.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// A cloneable shutdown signal. Cheap to clone; every clone sees the same flag.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    raised: AtomicBool,
    event: Event,
}

impl Shutdown {
    /// A new, not yet raised, signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal: every waiter wakes, from any thread.
    pub fn trigger(&self) {
        self.inner.raised.store(true, Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    /// Whether the signal has been raised.
    pub fn is_triggered(&self) -> bool {
        self.inner.raised.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is raised (at once if it already was).
    pub async fn wait(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            let listener = self.inner.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }

    /// Raises this signal on the first SIGTERM or SIGINT. The handler thread
    /// lives as long as the process; a second signal while shutting down
    /// exits at once with status 130, as a user pressing ^C twice expects.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let this = self.clone();
        std::thread::Builder::new()
            .name("cairn-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if this.is_triggered() {
                        tracing::warn!(signal, "second signal during shutdown: exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!(signal, "signal received: shutting down");
                    this.trigger();
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_after_trigger_from_another_thread() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = std::thread::spawn(move || futures_lite::future::block_on(s2.wait()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!s.is_triggered());
        s.trigger();
        t.join().expect("waiter thread");
        assert!(s.is_triggered());
        // Already raised: resolves at once.
        futures_lite::future::block_on(s.wait());
    }
}

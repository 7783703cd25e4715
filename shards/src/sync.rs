//! Synchronisation between the tasks of one shard: an async mutex without
//! atomics or threads (tasks of a shard never run at the same time, but an
//! operation that awaits I/O must keep others out of the state it is
//! changing until it is done).

use std::cell::Cell;
use std::rc::Rc;

use event_listener::Event;

/// A shard-local async mutex: `lock().await` waits without blocking the shard.
#[derive(Clone, Default)]
pub struct LocalMutex {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    held: Cell<bool>,
    released: Event,
}

/// Holds the lock until dropped.
pub struct LocalGuard {
    inner: Rc<Inner>,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        self.inner.held.set(false);
        self.inner.released.notify(1);
    }
}

impl LocalMutex {
    /// A new, free mutex.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until the mutex is free and takes it.
    pub async fn lock(&self) -> LocalGuard {
        loop {
            if !self.inner.held.get() {
                self.inner.held.set(true);
                return LocalGuard {
                    inner: self.inner.clone(),
                };
            }
            let listener = self.inner.released.listen();
            if !self.inner.held.get() {
                continue;
            }
            listener.await;
        }
    }

    /// Whether someone holds it now.
    pub fn is_locked(&self) -> bool {
        self.inner.held.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_take_turns_across_awaits() {
        crate::local::block_on(async {
            let m = LocalMutex::new();
            let log = Rc::new(std::cell::RefCell::new(Vec::new()));
            let tasks: Vec<_> = (0..5)
                .map(|i| {
                    let (m, log) = (m.clone(), log.clone());
                    crate::spawn(async move {
                        let _g = m.lock().await;
                        log.borrow_mut().push(("in", i));
                        crate::time::sleep(std::time::Duration::from_millis(2)).await;
                        log.borrow_mut().push(("out", i));
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            let log = log.borrow();
            assert_eq!(log.len(), 10);
            for pair in log.chunks(2) {
                assert_eq!(pair[0].0, "in");
                assert_eq!(pair[1], ("out", pair[0].1), "another task entered: {log:?}");
            }
            assert!(!m.is_locked());
        })
        .expect("executor");
    }
}

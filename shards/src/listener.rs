//! Listening sockets: a probe that names a busy port before any shard binds,
//! and a tracker of live connections so that shutdown can drain them.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Binds `addr` once without SO_REUSEPORT and lets it go: if anything else
/// holds the port, this fails with `AddrInUse` before the shards join it
/// (SO_REUSEPORT alone would let a second appliance silently share it).
pub fn probe_bind(addr: SocketAddr) -> io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// Counts the live connections of one shard. Sessions hold a guard; shutdown
/// waits for the count to reach zero or for its deadline.
#[derive(Clone, Default)]
pub struct ConnectionTracker {
    live: Rc<Cell<usize>>,
}

/// Held by a session for as long as its connection lives.
pub struct ConnectionGuard {
    live: Rc<Cell<usize>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.live.set(self.live.get().saturating_sub(1));
    }
}

impl ConnectionTracker {
    /// Registers a new connection.
    pub fn enter(&self) -> ConnectionGuard {
        self.live.set(self.live.get() + 1);
        ConnectionGuard {
            live: self.live.clone(),
        }
    }

    /// How many connections are live on this shard.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Waits until no connection is live or `deadline` has passed; returns the
    /// number still live (0 when drained).
    pub async fn drain(&self, deadline: Duration) -> usize {
        let start = std::time::Instant::now();
        while self.live.get() > 0 && start.elapsed() < deadline {
            crate::time::sleep(Duration::from_millis(10)).await;
        }
        self.live.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_a_busy_port() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let err = probe_bind(addr).expect_err("port is held");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(held);
        probe_bind(addr).expect("port is free again");
    }

    #[test]
    fn guards_count_live_connections() {
        let t = ConnectionTracker::default();
        let a = t.enter();
        let b = t.enter();
        assert_eq!(t.live(), 2);
        drop(a);
        assert_eq!(t.live(), 1);
        drop(b);
        assert_eq!(t.live(), 0);
    }
}

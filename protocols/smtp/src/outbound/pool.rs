//! The outbound connections of one shard: at most so many open at once in
//! all and to any one host address, and idle ones kept for a short while
//! so that the next message to the same host reuses the session (no new
//! TCP, TLS and EHLO).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::client::{ClientError, ClientOptions, Connection};

/// How long an idle connection is kept for reuse.
pub const IDLE: Duration = Duration::from_secs(30);

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
}

struct Inner {
    max_total: u32,
    max_per_host: u32,
    busy_total: Cell<u32>,
    busy: RefCell<HashMap<SocketAddr, u32>>,
    idle: RefCell<HashMap<SocketAddr, Vec<(Connection, Instant)>>>,
    released: Event,
}

/// A connection slot held for one host; dropping it frees the slot.
pub struct Lease {
    inner: Rc<Inner>,
    addr: SocketAddr,
    /// The connection, and whether it was reused from the idle set.
    pub connection: Option<Connection>,
    pub reused: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner.busy_total.set(self.inner.busy_total.get() - 1);
        let mut busy = self.inner.busy.borrow_mut();
        if let Some(n) = busy.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.addr);
            }
        }
        self.inner.released.notify(usize::MAX);
    }
}

impl Lease {
    /// Keeps the connection for the next message to the same host.
    pub fn keep(mut self) {
        if let Some(connection) = self.connection.take() {
            self.inner
                .idle
                .borrow_mut()
                .entry(self.addr)
                .or_default()
                .push((connection, Instant::now()));
        }
    }
}

impl Pool {
    pub fn new(max_total: u32, max_per_host: u32) -> Self {
        Pool {
            inner: Rc::new(Inner {
                max_total: max_total.max(1),
                max_per_host: max_per_host.max(1),
                busy_total: Cell::new(0),
                busy: RefCell::new(HashMap::new()),
                idle: RefCell::new(HashMap::new()),
                released: Event::new(),
            }),
        }
    }

    fn has_room(&self, addr: SocketAddr) -> bool {
        let inner = &self.inner;
        inner.busy_total.get() < inner.max_total
            && inner.busy.borrow().get(&addr).copied().unwrap_or(0) < inner.max_per_host
    }

    /// Waits for a slot to `addr`, then hands out an idle connection to it
    /// or opens a new one.
    pub async fn get(
        &self,
        addr: SocketAddr,
        server_name: &str,
        options: &ClientOptions,
    ) -> Result<Lease, ClientError> {
        loop {
            if self.has_room(addr) {
                break;
            }
            let listener = self.inner.released.listen();
            if self.has_room(addr) {
                break;
            }
            listener.await;
        }
        self.inner.busy_total.set(self.inner.busy_total.get() + 1);
        *self.inner.busy.borrow_mut().entry(addr).or_default() += 1;
        let mut lease = Lease {
            inner: self.inner.clone(),
            addr,
            connection: None,
            reused: false,
        };
        if let Some(connection) = self.take_idle(addr) {
            lease.connection = Some(connection);
            lease.reused = true;
        } else {
            lease.connection = Some(Connection::open(addr, server_name, options).await?);
        }
        Ok(lease)
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Connection> {
        let mut idle = self.inner.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some((connection, since)) = list.pop() {
            if now.duration_since(since) < IDLE {
                return Some(connection);
            }
            drop(connection);
        }
        None
    }

    /// Connections idle for longer than [`IDLE`], taken out of the pool
    /// for the caller to close with QUIT.
    pub fn expired(&self) -> Vec<Connection> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut idle = self.inner.idle.borrow_mut();
        for list in idle.values_mut() {
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|(_, since)| now.duration_since(*since) >= IDLE);
            *list = fresh;
            out.extend(old.into_iter().map(|(c, _)| c));
        }
        idle.retain(|_, list| !list.is_empty());
        out
    }

    /// Every idle connection, for QUIT at shutdown.
    pub fn drain(&self) -> Vec<Connection> {
        self.inner
            .idle
            .borrow_mut()
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|(c, _)| c))
            .collect()
    }
}

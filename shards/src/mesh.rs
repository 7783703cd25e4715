//! Typed cross-shard messaging, Seastar's `submit_to`: a [`Mesh`] is one
//! bounded single-producer single-consumer queue per ordered pair of shards,
//! made before the runtime starts and joined by every shard. A request
//! travels in an envelope with a oneshot for its reply; a full queue makes
//! the caller wait (backpressure) and never grows. No lock is taken on the
//! message path.
//!
//! ```no_run
//! use std::rc::Rc;
//! use cairn_shards::{Mesh, MeshError, Runtime, RuntimeConfig, Shutdown};
//!
//! let config = RuntimeConfig::default();
//! let mesh = Mesh::<u64, u64>::new(config.shard_count(), 256);
//! let runtime = Runtime::start(&config, Shutdown::new(), move |ctx| {
//!     let mesh = mesh.clone();
//!     async move {
//!         let ep = Rc::new(mesh.join(ctx.id()).await?);
//!         ep.serve(|_from, n| async move { n * 2 })?;
//!         let doubled = ep.call((ctx.id() + 1) % ctx.count(), 21).await?;
//!         ctx.shutdown().wait().await; // keep answering the others
//!         Ok::<u64, MeshError>(doubled)
//!     }
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use event_listener::Event;
use futures_channel::oneshot;
use futures_lite::future;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;

/// The payload of a mesh call's reply when it is the variant expected,
/// its error converted with `?`: `expect_reply!(reply, Reply::Variant,
/// mismatch)` is `Ok(payload?)` for `Reply::Variant(Ok(payload))` and
/// `Err(mismatch)` for any other variant (a shard answering out of turn).
#[macro_export]
macro_rules! expect_reply {
    ($reply:expr, $reply_enum:ident::$variant:ident, $mismatch:expr) => {
        match $reply {
            $reply_enum::$variant(r) => Ok(r?),
            _ => Err($mismatch),
        }
    };
}

use crate::{ShardId, Shutdown, Task};

/// Why a cross-shard request did not get its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// The peer's endpoint is gone (dropped, or its shard stopped). A call
    /// in flight when that happens may or may not have been handled.
    #[error("the peer shard has left the mesh")]
    Closed,
    /// The shard index is out of range.
    #[error("shard {shard} is not in this mesh of {shards} shards")]
    NoSuchShard { shard: ShardId, shards: usize },
    /// [`Mesh::join`] was called twice for the same shard.
    #[error("shard {0} has already joined this mesh")]
    AlreadyJoined(ShardId),
    /// [`MeshEndpoint::serve`] was called twice on the same endpoint.
    #[error("this mesh endpoint already serves requests")]
    AlreadyServing,
}

/// A request on its way, with where it came from and where to reply (none
/// for fire-and-forget).
struct Envelope<Req, Rep> {
    from: ShardId,
    req: Req,
    reply: Option<oneshot::Sender<Rep>>,
}

/// One shard's not-yet-connected queue ends, indexed by peer shard (`None`
/// at the shard's own index: a shard calls itself without a queue).
struct Links<Req: Send + 'static, Rep: Send + 'static> {
    to: Vec<Option<SharedSender<Envelope<Req, Rep>>>>,
    from: Vec<Option<SharedReceiver<Envelope<Req, Rep>>>>,
}

struct Shared<Req: Send + 'static, Rep: Send + 'static> {
    /// Taken once by [`Mesh::join`]; the lock is never touched afterwards.
    links: Vec<Mutex<Option<Links<Req, Rep>>>>,
    /// Raised when a shard's endpoint is dropped.
    left: Vec<Shutdown>,
    capacity: usize,
}

/// The queues between every pair of shards for one kind of request.
/// Cheap to clone, `Send + Sync`: make it before [`crate::Runtime::start`]
/// and move a clone into the init closure, where each shard [`join`]s it.
///
/// Memory: `shards × (shards − 1)` queues of `capacity` envelopes.
///
/// [`join`]: Mesh::join
pub struct Mesh<Req: Send + 'static, Rep: Send + 'static> {
    shared: Arc<Shared<Req, Rep>>,
}

impl<Req: Send + 'static, Rep: Send + 'static> Clone for Mesh<Req, Rep> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<Req: Send + 'static, Rep: Send + 'static> Mesh<Req, Rep> {
    /// A mesh for `shards` shards (at least one) whose queues hold `capacity`
    /// requests each (at least one; glommio rounds it up to a power of two).
    pub fn new(shards: usize, capacity: usize) -> Self {
        let shards = shards.max(1);
        let capacity = capacity.max(1);
        let mut to: Vec<Vec<_>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        let mut from: Vec<Vec<_>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        for (src, outgoing) in to.iter_mut().enumerate() {
            for (dst, slot) in outgoing.iter_mut().enumerate() {
                if src != dst {
                    let (tx, rx) = shared_channel::new_bounded(capacity);
                    *slot = Some(tx);
                    from[dst][src] = Some(rx);
                }
            }
        }
        let links = to
            .into_iter()
            .zip(from)
            .map(|(to, from)| Mutex::new(Some(Links { to, from })))
            .collect();
        Self {
            shared: Arc::new(Shared {
                links,
                left: (0..shards).map(|_| Shutdown::new()).collect(),
                capacity,
            }),
        }
    }

    /// How many shards the mesh connects.
    pub fn shards(&self) -> usize {
        self.shared.links.len()
    }

    /// Joins the mesh as `shard`, on that shard's thread. Resolves once every
    /// shard has joined (each queue end waits for its peer), so every shard
    /// must join, and shards that join several meshes join them in the same
    /// order.
    pub async fn join(&self, shard: ShardId) -> Result<MeshEndpoint<Req, Rep>, MeshError> {
        let shards = self.shards();
        let slot = self
            .shared
            .links
            .get(shard)
            .ok_or(MeshError::NoSuchShard { shard, shards })?;
        let links = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        let links = links.ok_or(MeshError::AlreadyJoined(shard))?;
        // A queue end's connect() waits for its peer's: connect all of them at
        // once, each in its own task, or two shards would wait on each other.
        let outgoing: Vec<Option<Task<_>>> = links
            .to
            .into_iter()
            .map(|end| end.map(|end| crate::spawn(end.connect())))
            .collect();
        let incoming: Vec<Task<_>> = links
            .from
            .into_iter()
            .flatten()
            .map(|end| crate::spawn(end.connect()))
            .collect();
        let mut peers = Vec::with_capacity(shards);
        let mut watchers = Vec::with_capacity(shards);
        for (peer, end) in outgoing.into_iter().enumerate() {
            let Some(end) = end else {
                peers.push(None);
                continue;
            };
            let left = Rc::new(LocalSignal::default());
            let (watched, local) = (self.shared.left[peer].clone(), left.clone());
            watchers.push(crate::spawn(async move {
                watched.wait().await;
                local.raise();
            }));
            peers.push(Some(Peer {
                outbox: end.await,
                left,
            }));
        }
        let mut inboxes = Vec::with_capacity(incoming.len());
        for end in incoming {
            inboxes.push(end.await);
        }
        Ok(MeshEndpoint {
            shard,
            shared: self.shared.clone(),
            peers,
            inboxes: RefCell::new(inboxes),
            handler: Rc::new(HandlerSlot::default()),
            tasks: RefCell::new(watchers),
        })
    }
}

/// A request handler, type-erased.
type Handler<Req, Rep> = Rc<dyn Fn(ShardId, Req) -> Pin<Box<dyn Future<Output = Rep>>>>;

/// The way to one other shard.
struct Peer<Req: Send + 'static, Rep: Send + 'static> {
    outbox: ConnectedSender<Envelope<Req, Rep>>,
    /// Raised on this shard when the peer's endpoint is dropped.
    left: Rc<LocalSignal>,
}

/// Where a request goes.
enum Route<'a, Req: Send + 'static, Rep: Send + 'static> {
    Local,
    Remote(&'a Peer<Req, Rep>),
}

/// One shard's end of a [`Mesh`]: calls out, and (once [`serve`]d) answers
/// the requests of the other shards. `!Send`; wrap it in an `Rc` to share
/// it between the shard's tasks. Dropping it leaves the mesh: calls to this
/// shard then fail with [`MeshError::Closed`].
///
/// [`serve`]: MeshEndpoint::serve
pub struct MeshEndpoint<Req: Send + 'static, Rep: Send + 'static> {
    shard: ShardId,
    shared: Arc<Shared<Req, Rep>>,
    /// Indexed by shard; `None` at this shard's own index.
    peers: Vec<Option<Peer<Req, Rep>>>,
    /// Incoming queues (from each other shard) until `serve` takes them.
    inboxes: RefCell<Vec<ConnectedReceiver<Envelope<Req, Rep>>>>,
    handler: Rc<HandlerSlot<Req, Rep>>,
    /// Peer watchers and receive loops: cancelled when the endpoint drops.
    tasks: RefCell<Vec<Task<()>>>,
}

impl<Req: Send + 'static, Rep: Send + 'static> MeshEndpoint<Req, Rep> {
    /// This endpoint's shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// How many shards the mesh connects.
    pub fn shards(&self) -> usize {
        self.peers.len()
    }

    /// Answers every request sent to this shard with `handler(from, request)`,
    /// each in its own task so that a slow one does not hold up the queue.
    /// At most `capacity` requests from one peer are handled at once; beyond
    /// that they wait in the queue, and past it the callers wait. A handler
    /// that starts something long-lived (a handed-off session) spawns it and
    /// returns.
    pub fn serve<H, F>(&self, handler: H) -> Result<(), MeshError>
    where
        H: Fn(ShardId, Req) -> F + 'static,
        F: Future<Output = Rep> + 'static,
    {
        let handler: Handler<Req, Rep> =
            Rc::new(move |from, req| -> Pin<Box<dyn Future<Output = Rep>>> {
                Box::pin(handler(from, req))
            });
        self.handler.install(handler.clone())?;
        let mut tasks = self.tasks.borrow_mut();
        for inbox in self.inboxes.borrow_mut().drain(..) {
            tasks.push(crate::spawn(receive(
                inbox,
                handler.clone(),
                self.shared.capacity,
            )));
        }
        Ok(())
    }

    /// Sends `req` to shard `to` and waits for its reply. A call to this
    /// shard runs the handler here, without a queue (after `serve`, which it
    /// waits for, like calls to a peer that has not served yet).
    pub async fn call(&self, to: ShardId, req: Req) -> Result<Rep, MeshError> {
        match self.route(to)? {
            Route::Local => Ok(self.handle_here(req).await),
            Route::Remote(peer) => {
                let (tx, rx) = oneshot::channel();
                self.enqueue(peer, req, Some(tx)).await?;
                reply(peer, rx).await
            }
        }
    }

    /// Sends `req` to shard `to` without waiting for the handler; its reply is
    /// dropped. Resolves once the request is queued (a full queue waits).
    pub async fn send(&self, to: ShardId, req: Req) -> Result<(), MeshError> {
        match self.route(to)? {
            Route::Local => {
                let handler = self.handler.get().await;
                let from = self.shard;
                crate::spawn_detached(async move {
                    handler(from, req).await;
                });
                Ok(())
            }
            Route::Remote(peer) => self.enqueue(peer, req, None).await,
        }
    }

    /// Calls every shard, this one included, with a clone of `req`; the
    /// replies come back in shard order. The requests are all queued before
    /// any reply is awaited, so the shards handle them concurrently.
    pub async fn broadcast(&self, req: Req) -> Vec<Result<Rep, MeshError>>
    where
        Req: Clone,
    {
        let mut queued = Vec::with_capacity(self.peers.len());
        for peer in self.peers.iter().flatten() {
            let (tx, rx) = oneshot::channel();
            let sent = self.enqueue(peer, req.clone(), Some(tx)).await;
            queued.push((peer, sent.map(|()| rx)));
        }
        let here = self.handle_here(req).await;
        let mut replies = Vec::with_capacity(self.peers.len());
        for (peer, sent) in queued {
            replies.push(match sent {
                Ok(rx) => reply(peer, rx).await,
                Err(e) => Err(e),
            });
        }
        // The peers come in shard order without this one; put it in its place.
        replies.insert(self.shard, Ok(here));
        replies
    }

    fn route(&self, to: ShardId) -> Result<Route<'_, Req, Rep>, MeshError> {
        match self.peers.get(to) {
            None => Err(MeshError::NoSuchShard {
                shard: to,
                shards: self.peers.len(),
            }),
            Some(None) => Ok(Route::Local),
            Some(Some(peer)) => Ok(Route::Remote(peer)),
        }
    }

    async fn handle_here(&self, req: Req) -> Rep {
        let handler = self.handler.get().await;
        handler(self.shard, req).await
    }

    /// Queues a request, waiting while the queue is full, until the peer
    /// leaves.
    async fn enqueue(
        &self,
        peer: &Peer<Req, Rep>,
        req: Req,
        reply: Option<oneshot::Sender<Rep>>,
    ) -> Result<(), MeshError> {
        if peer.left.is_raised() {
            return Err(MeshError::Closed);
        }
        let envelope = Envelope {
            from: self.shard,
            req,
            reply,
        };
        future::or(
            async {
                peer.outbox
                    .send(envelope)
                    .await
                    .map_err(|_| MeshError::Closed)
            },
            async {
                peer.left.wait().await;
                Err(MeshError::Closed)
            },
        )
        .await
    }
}

impl<Req: Send + 'static, Rep: Send + 'static> Drop for MeshEndpoint<Req, Rep> {
    fn drop(&mut self) {
        if let Some(left) = self.shared.left.get(self.shard) {
            left.trigger();
        }
    }
}

/// Waits for the reply to a queued request, or for the peer to leave (a
/// request still in its queue then gets no answer).
async fn reply<Req: Send + 'static, Rep: Send + 'static>(
    peer: &Peer<Req, Rep>,
    rx: oneshot::Receiver<Rep>,
) -> Result<Rep, MeshError> {
    future::or(async { rx.await.map_err(|_| MeshError::Closed) }, async {
        peer.left.wait().await;
        Err(MeshError::Closed)
    })
    .await
}

/// Takes requests from one peer's queue, at most `in_flight` being handled
/// at once, until the peer leaves or the endpoint drops this task.
async fn receive<Req: Send + 'static, Rep: Send + 'static>(
    inbox: ConnectedReceiver<Envelope<Req, Rep>>,
    handler: Handler<Req, Rep>,
    in_flight: usize,
) {
    let permits = Rc::new(Semaphore::new(in_flight as u64));
    loop {
        let Ok(permit) = permits.acquire_static_permit(1).await else {
            return;
        };
        let Some(Envelope { from, req, reply }) = inbox.recv().await else {
            return; // the peer left
        };
        let handling = handler(from, req);
        crate::spawn_detached(async move {
            let rep = handling.await;
            if let Some(reply) = reply {
                // The caller may have given up; nothing to do then.
                let _ = reply.send(rep);
            }
            drop(permit);
        });
    }
}

/// The endpoint's handler, once `serve` installs it.
struct HandlerSlot<Req, Rep> {
    handler: OnceCell<Handler<Req, Rep>>,
    installed: LocalSignal,
}

impl<Req, Rep> Default for HandlerSlot<Req, Rep> {
    fn default() -> Self {
        Self {
            handler: OnceCell::new(),
            installed: LocalSignal::default(),
        }
    }
}

impl<Req, Rep> HandlerSlot<Req, Rep> {
    fn install(&self, handler: Handler<Req, Rep>) -> Result<(), MeshError> {
        self.handler
            .set(handler)
            .map_err(|_| MeshError::AlreadyServing)?;
        self.installed.raise();
        Ok(())
    }

    async fn get(&self) -> Handler<Req, Rep> {
        loop {
            if let Some(handler) = self.handler.get() {
                return handler.clone();
            }
            self.installed.wait().await;
        }
    }
}

/// A one-way flag for the tasks of one shard: raised once, awaited by many.
#[derive(Default)]
struct LocalSignal {
    raised: Cell<bool>,
    event: Event,
}

impl LocalSignal {
    fn raise(&self) {
        self.raised.set(true);
        self.event.notify(usize::MAX);
    }

    fn is_raised(&self) -> bool {
        self.raised.get()
    }

    async fn wait(&self) {
        while !self.is_raised() {
            let listener = self.event.listen();
            if self.is_raised() {
                return;
            }
            listener.await;
        }
    }
}

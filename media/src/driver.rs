//! The shard's media socket: one UDP port per shard (the first port of
//! the media range plus the shard's index), read and written through the
//! shard's io_uring, feeding datagrams and time to the shard's
//! [`Sfu`] and sending what it hands back; and the recordings' files,
//! each written in order by its own task through io_uring. At shutdown
//! every recording is finished and synced before [`run`] returns.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_shards::shutdown::Shutdown;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::io::BufferedFile;
use glommio::net::UdpSocket;

use crate::metrics::MediaMetrics;
use crate::recording::FileOp;
use crate::sfu::{Datagram, Sfu, SfuStats};

/// Largest datagram read (above any path MTU).
const MAX_DATAGRAM: usize = 2048;
/// Longest the loop sleeps without a datagram or a timer.
const IDLE_WAKE: Duration = Duration::from_millis(50);

/// The media socket's kernel buffers: a burst to many subscribers must not
/// overflow them between two turns of the loop.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;
/// Datagrams sent at once (each an io_uring operation in flight).
const SEND_BATCH: usize = 64;

/// Binds the media socket of a shard at `addr`, without SO_REUSEPORT (a
/// second process on the same port fails here instead of taking half the
/// datagrams) and with [`SOCKET_BUFFER`]-sized kernel buffers.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    cairn_shards::net::bind_udp_exclusive_buffered(addr, Some(SOCKET_BUFFER))
}

/// How often the SFU's counters go to the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Runs `sfu` (shard `shard`) on `socket` until `shutdown`, sampling its
/// counters into `metrics`. One task reads the socket without pause (a
/// receive is never abandoned, so no datagram is lost between turns);
/// this one drives the timers, the recordings and the metrics.
pub async fn run(
    sfu: Rc<RefCell<Sfu>>,
    socket: UdpSocket,
    shutdown: Shutdown,
    shard: usize,
    metrics: Arc<MediaMetrics>,
) {
    let local = match socket.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "media: the socket has no address");
            return;
        }
    };
    let socket = Rc::new(socket);
    let timer = Rc::new(Timer::default());
    let reader = cairn_shards::spawn(read(sfu.clone(), socket.clone(), local, timer.clone()));
    let mut files = Files::default();
    let (mut sampled, mut last) = (None::<Instant>, SfuStats::default());
    while !shutdown.is_triggered() {
        if sampled.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
            sampled = Some(Instant::now());
            let sfu = sfu.borrow();
            let rooms = sfu.rooms().all().count();
            metrics.sample(shard, &sfu.stats(), &mut last, rooms, sfu.session_count());
        }
        sfu.borrow_mut().tick(Instant::now());
        files.perform(&sfu);
        flush(&sfu, &socket).await;
        let now = Instant::now();
        let wait = sfu
            .borrow()
            .next_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(IDLE_WAKE)
            .clamp(Duration::from_millis(1), IDLE_WAKE);
        timer.planned.set(Some(now + wait));
        let woken = timer.wake.listen();
        futures_lite::future::or(cairn_shards::time::sleep(wait), async {
            futures_lite::future::or(woken, shutdown.wait()).await;
        })
        .await;
    }
    drop(reader);
    sfu.borrow_mut().finish_recordings();
    files.perform(&sfu);
    files.close().await;
}

/// When the timer loop means to wake, and how to wake it sooner.
#[derive(Default)]
struct Timer {
    planned: std::cell::Cell<Option<Instant>>,
    wake: event_listener::Event,
}

/// Reads datagrams into the SFU and sends what each one produced; runs
/// the timers that fell due meanwhile, and wakes the timer loop when a
/// session now needs it before it planned to wake (a pacer releasing a
/// forwarded frame in a millisecond must not wait out a long sleep).
async fn read(sfu: Rc<RefCell<Sfu>>, socket: Rc<UdpSocket>, local: SocketAddr, timer: Rc<Timer>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let now = Instant::now();
                let next = {
                    let mut sfu = sfu.borrow_mut();
                    sfu.receive(now, from, local, &buf[..n]);
                    if sfu.next_timeout().is_some_and(|t| t <= now) {
                        sfu.tick(now);
                    }
                    sfu.next_timeout()
                };
                if next.is_some_and(|t| timer.planned.get().is_none_or(|p| t < p)) {
                    timer.wake.notify(1);
                }
                flush(&sfu, &socket).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "media: receive failed");
                cairn_shards::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Sends every datagram the SFU has ready, [`SEND_BATCH`] at a time.
async fn flush(sfu: &RefCell<Sfu>, socket: &UdpSocket) {
    loop {
        let batch: Vec<Datagram> = {
            let mut sfu = sfu.borrow_mut();
            std::iter::from_fn(|| sfu.transmit())
                .take(SEND_BATCH)
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        let sends = batch
            .iter()
            .map(|d| socket.send_to(&d.contents, d.destination));
        for (result, d) in futures_util::future::join_all(sends)
            .await
            .into_iter()
            .zip(&batch)
        {
            if let Err(e) = result {
                tracing::debug!(error = %e, to = %d.destination, "media: send failed");
            }
        }
    }
}

/// Longest the shutdown waits for recordings to be synced.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The recordings' writer tasks, by file.
#[derive(Default)]
struct Files {
    writers: HashMap<u64, LocalSender<FileOp>>,
    /// Writer tasks still running.
    live: Rc<std::cell::Cell<usize>>,
}

impl Files {
    /// Hands the SFU's pending file operations to their writers.
    fn perform(&mut self, sfu: &RefCell<Sfu>) {
        loop {
            let op = sfu.borrow_mut().file_op();
            let Some(op) = op else {
                return;
            };
            let file = match &op {
                FileOp::Create { file, path } => {
                    let (tx, rx) = local_channel::new_unbounded();
                    self.writers.insert(*file, tx);
                    let live = self.live.clone();
                    live.set(live.get() + 1);
                    let path = path.clone();
                    cairn_shards::spawn_detached(async move {
                        write_file(path, rx).await;
                        live.set(live.get() - 1);
                    });
                    continue;
                }
                FileOp::Append { file, .. } => *file,
                FileOp::Finish { file, .. } => *file,
            };
            let finished = matches!(op, FileOp::Finish { .. });
            if let Some(tx) = self.writers.get(&file) {
                let _ = tx.try_send(op);
            }
            if finished {
                self.writers.remove(&file);
            }
        }
    }

    /// Waits for every writer to finish its file.
    async fn close(self) {
        drop(self.writers);
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.live.get() > 0 && Instant::now() < deadline {
            cairn_shards::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Writes one recording: appends in order, then the patches, fdatasync.
async fn write_file(path: PathBuf, ops: LocalReceiver<FileOp>) {
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(path = %path.display(), error = %e, "media: cannot create the recording's folder");
            return;
        }
    }
    let file = match BufferedFile::create(&path).await {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "media: cannot create the recording");
            return;
        }
    };
    let mut at = 0u64;
    let mut failed = false;
    while let Some(op) = ops.recv().await {
        let (bytes, patches) = match op {
            FileOp::Append { bytes, .. } => (bytes, Vec::new()),
            FileOp::Finish { tail, patches, .. } => (tail, patches),
            FileOp::Create { .. } => continue,
        };
        let len = bytes.len() as u64;
        if !bytes.is_empty() && !failed {
            failed = file.write_at(bytes, at).await.is_err();
        }
        at += len;
        for patch in patches {
            if !failed {
                failed = file.write_at(patch.bytes, patch.offset).await.is_err();
            }
        }
    }
    if failed {
        tracing::error!(path = %path.display(), "media: writing the recording failed");
    }
    if let Err(e) = file.fdatasync().await {
        tracing::error!(path = %path.display(), error = %e, "media: cannot sync the recording");
    }
    let _ = file.close().await;
    tracing::info!(path = %path.display(), bytes = at, "media: recording finished");
}

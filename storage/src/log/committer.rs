//! Group commit: the one task per log that owns the open segment, takes
//! every queued append as a batch, writes the batch with the unfinished
//! last block in one aligned O_DIRECT write, runs one `fdatasync`, and only
//! then answers the appenders. A failed commit fails every append queued
//! behind it too, so that no record becomes durable after an earlier one
//! was lost.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use cairn_shards::fs::{sync_dir, DirectFile};
use futures_channel::oneshot;

use super::{segment_name, Location, LogError, Position, Shared};

/// An append waiting for its batch.
pub(super) struct Pending {
    pub frame: Vec<u8>,
    pub seq: u64,
    pub reply: oneshot::Sender<Result<Location, LogError>>,
}

/// The open segment and where the next record goes.
pub(super) struct Writer {
    file: DirectFile,
    path: PathBuf,
    segment: u64,
    /// End of the last durable record.
    pos: u64,
    /// The bytes of the last, unfinished block (from `align_down(pos)`).
    tail: Vec<u8>,
    /// A write failed: bytes past `pos` may be garbage and are cut before
    /// the next write, so that they can never be read back as records.
    dirty: bool,
}

fn align_down(v: u64, a: u64) -> u64 {
    v - v % a
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

impl Writer {
    /// Starts a new, empty segment and makes its directory entry durable.
    pub async fn create(dir: &Path, segment: u64) -> Result<Self, LogError> {
        let path = dir.join(segment_name(segment));
        let file = DirectFile::open(&path)
            .await
            .map_err(|e| LogError::io(&path, &e))?;
        sync_dir(dir).await.map_err(|e| LogError::io(dir, &e))?;
        Ok(Self {
            file,
            path,
            segment,
            pos: 0,
            tail: Vec::new(),
            dirty: false,
        })
    }

    /// Continues the last segment after recovery: everything past `end`
    /// (a torn tail, stale blocks) is cut off first.
    pub async fn resume(
        file: DirectFile,
        path: PathBuf,
        segment: u64,
        end: u64,
        bytes: &[u8],
    ) -> Result<Self, LogError> {
        let a = file.alignment();
        let keep = align_up(end, a);
        if bytes.len() as u64 != keep {
            file.truncate(keep)
                .await
                .map_err(|e| LogError::io(&path, &e))?;
            file.fdatasync()
                .await
                .map_err(|e| LogError::io(&path, &e))?;
        }
        let start = align_down(end, a) as usize;
        let tail = bytes.get(start..end as usize).unwrap_or_default().to_vec();
        Ok(Self {
            file,
            path,
            segment,
            pos: end,
            tail,
            dirty: false,
        })
    }

    async fn rotate(&mut self, dir: &Path) -> Result<(), LogError> {
        let next = Writer::create(dir, self.segment + 1).await?;
        let old = std::mem::replace(self, next);
        old.file
            .close()
            .await
            .map_err(|e| LogError::io(&old.path, &e))
    }

    /// Writes `batch` durably; returns each frame's offset in the segment.
    async fn commit(
        &mut self,
        dir: &Path,
        segment_bytes: u64,
        batch: &[Pending],
    ) -> Result<Vec<u64>, LogError> {
        let total: u64 = batch.iter().map(|p| p.frame.len() as u64).sum();
        if self.pos > 0 && self.pos + total > segment_bytes {
            self.rotate(dir).await?;
        }
        let a = self.file.alignment();
        let io_err = |e: std::io::Error| LogError::io(&self.path, &e);
        if self.dirty {
            self.file
                .truncate(align_up(self.pos, a))
                .await
                .map_err(io_err)?;
            self.dirty = false;
        }
        let start = align_down(self.pos, a);
        let used = self.tail.len() + total as usize;
        let mut buf = self.file.buffer(align_up(used as u64, a) as usize);
        let bytes = buf.as_bytes_mut();
        bytes[..self.tail.len()].copy_from_slice(&self.tail);
        let mut at = self.tail.len();
        let mut offsets = Vec::with_capacity(batch.len());
        for p in batch {
            offsets.push(start + at as u64);
            bytes[at..at + p.frame.len()].copy_from_slice(&p.frame);
            at += p.frame.len();
        }
        let new_pos = self.pos + total;
        let new_tail = bytes[(align_down(new_pos, a) - start) as usize..used].to_vec();
        let written = async {
            self.file.write_at(buf, start).await?;
            self.file.fdatasync().await
        }
        .await;
        if let Err(e) = written {
            self.dirty = true;
            return Err(LogError::io(&self.path, &e));
        }
        self.pos = new_pos;
        self.tail = new_tail;
        Ok(offsets)
    }
}

/// The committer's loop: runs until the log is closed and drained.
pub(super) async fn run(shared: Rc<Shared>, mut writer: Writer) {
    loop {
        loop {
            if !shared.queue.borrow().pending.is_empty() {
                break;
            }
            if shared.closed.get() {
                return;
            }
            let listener = shared.wake.listen();
            if !shared.queue.borrow().pending.is_empty() || shared.closed.get() {
                continue;
            }
            listener.await;
        }
        let wait = shared.config.max_batch_wait;
        if !wait.is_zero() && shared.queue.borrow().bytes < shared.config.max_batch_bytes {
            cairn_shards::time::sleep(wait).await;
        }
        let batch = take_batch(&shared);
        let result = writer
            .commit(&shared.dir, shared.config.segment_bytes, &batch)
            .await;
        match result {
            Ok(offsets) => {
                let mut stats = shared.stats.get();
                stats.commits += 1;
                stats.records += batch.len() as u64;
                stats.bytes += batch.iter().map(|p| p.frame.len() as u64).sum::<u64>();
                shared.stats.set(stats);
                if let Some(last) = batch.last() {
                    shared.durable.set(Position {
                        seq: last.seq,
                        segment: writer.segment,
                        offset: writer.pos,
                    });
                }
                for (p, offset) in batch.into_iter().zip(offsets) {
                    let location = Location {
                        seq: p.seq,
                        segment: writer.segment,
                        offset,
                        len: (p.frame.len() - crate::record::HEADER_LEN) as u32,
                    };
                    // An appender gone away takes no answer (and applies nothing).
                    if p.reply.send(Ok(location)).is_ok() {
                        shared.answered.set(shared.answered.get() + 1);
                    }
                }
            }
            Err(e) => {
                let mut stats = shared.stats.get();
                stats.failed_commits += 1;
                shared.stats.set(stats);
                // Everything queued behind the failed batch fails with it: a
                // later record may depend on one of the lost ones.
                let queued: Vec<Pending> = {
                    let mut q = shared.queue.borrow_mut();
                    q.bytes = 0;
                    q.pending.drain(..).collect()
                };
                tracing::error!(
                    error = %e,
                    records = batch.len(),
                    queued = queued.len(),
                    "group commit failed"
                );
                for p in batch.into_iter().chain(queued) {
                    if p.reply.send(Err(e.clone())).is_ok() {
                        shared.answered.set(shared.answered.get() + 1);
                    }
                }
            }
        }
    }
}

/// Takes queued appends up to the batch size (at least one).
fn take_batch(shared: &Shared) -> Vec<Pending> {
    let mut q = shared.queue.borrow_mut();
    let mut bytes = 0;
    let mut n = 0;
    for p in &q.pending {
        if n > 0 && bytes + p.frame.len() > shared.config.max_batch_bytes {
            break;
        }
        bytes += p.frame.len();
        n += 1;
    }
    q.bytes -= bytes;
    q.pending.drain(..n).collect()
}

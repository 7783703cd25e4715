//! The segment log of one shard: append-only segment files of framed
//! records written through the shard's io_uring with O_DIRECT, and group
//! commit — concurrent appenders are batched into one write and one
//! `fdatasync`, and each append resolves only once its bytes are durable.
//!
//! Records are durable in the order they were appended: a batch is one
//! write and one `fdatasync` after the previous batch's, and when a group
//! commit fails every append still queued behind it fails with it. So a
//! record is never durable while one appended before it (before the failure
//! was reported) is not: an appender may append a record, then records that
//! refer to it, and wait for the last one only.
//!
//! Opening the log replays every intact record to the caller (who rebuilds
//! its in-memory state from them), reports damage with its file and offset,
//! and cuts a torn tail off the last segment. Opened after a [`Position`]
//! (a checkpoint's), it does not read the segments before that position's
//! and replays its segment from its offset only.

mod committer;
mod record_reader;
mod scan;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use cairn_shards::fs::{sync_dir, DirectFile};
use event_listener::Event;
use futures_channel::oneshot;

use crate::record::{encode, encoded_len, Record, MAX_PAYLOAD};
use committer::{Pending, Writer};
pub use record_reader::RecordReader;
pub use scan::{scan, Damage, Scan};

/// How the log batches and cuts its segments.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The most bytes one group commit writes (a record larger than this
    /// is committed alone; none may be larger than a segment).
    pub max_batch_bytes: usize,
    /// How long the committer waits for more appenders before writing a
    /// batch that is not full (0: write as soon as the previous commit ends;
    /// appenders arriving during a commit form the next batch anyway).
    pub max_batch_wait: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
            max_batch_wait: Duration::ZERO,
        }
    }
}

/// Where a durable record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Its sequence number.
    pub seq: u64,
    /// The segment file's index.
    pub segment: u64,
    /// The offset of its frame in that file.
    pub offset: u64,
    /// Its payload's length.
    pub len: u32,
}

/// A point in the log: everything up to and including record `seq` lies
/// before it, and the log goes on at `offset` in segment `segment`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// The last record before this point (0: none).
    pub seq: u64,
    /// The segment the log goes on in.
    pub segment: u64,
    /// Where in that segment.
    pub offset: u64,
}

/// A record handed back by recovery.
pub struct Replayed<'a> {
    /// Where it lies.
    pub location: Location,
    /// Its kind.
    pub kind: u8,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Why an operation of the log failed. Cloneable: one failed group commit
/// is reported to every appender in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The filesystem is full; nothing of this append was acknowledged.
    #[error("no space left on the device holding {0}")]
    DiskFull(PathBuf),
    /// Any other I/O failure.
    #[error("I/O error on {path}: {message}")]
    Io {
        path: PathBuf,
        kind: io::ErrorKind,
        message: String,
    },
    /// The payload is larger than a record or a segment may hold.
    #[error("record of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// A stored record does not read back intact.
    #[error("corrupt record in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
}

impl LogError {
    fn io(path: &Path, e: &io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull {
            LogError::DiskFull(path.to_path_buf())
        } else {
            LogError::Io {
                path: path.to_path_buf(),
                kind: e.kind(),
                message: e.to_string(),
            }
        }
    }
}

/// What opening the log found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Intact records replayed.
    pub records: u64,
    /// Damaged ranges skipped: file, offset, reason.
    pub damaged: Vec<(PathBuf, u64, String)>,
    /// The torn tail cut off the last segment: file, offset, reason, bytes cut.
    pub torn_tail: Option<(PathBuf, u64, String, u64)>,
    /// The checkpoint the state was loaded from before replaying (`records`
    /// counts the records replayed after it); `None`: a full replay.
    pub checkpoint: Option<PathBuf>,
    /// Segments not read at all because the checkpoint covers them.
    pub skipped_segments: usize,
}

/// Counters of a log since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Group commits written (one write and one fdatasync each).
    pub commits: u64,
    /// Records made durable.
    pub records: u64,
    /// Record bytes made durable (frames, without block padding).
    pub bytes: u64,
    /// Group commits that failed.
    pub failed_commits: u64,
    /// Sealed segment files removed by compaction.
    pub segments_removed: u64,
    /// Bytes those files held.
    pub bytes_reclaimed: u64,
}

/// The log. Cheap to clone; every clone appends to the same files.
#[derive(Clone)]
pub struct SegmentLog {
    shared: Rc<Shared>,
}

struct Shared {
    dir: PathBuf,
    config: LogConfig,
    queue: RefCell<Queue>,
    wake: Event,
    closed: Cell<bool>,
    stats: Cell<LogStats>,
    readers: RefCell<HashMap<u64, Rc<DirectFile>>>,
    /// Segments removed by [`SegmentLog::remove_segment`]: never opened again.
    removed: RefCell<HashSet<u64>>,
    committer: RefCell<Option<cairn_shards::Task<()>>>,
    /// The end of the last successful group commit.
    durable: Cell<Position>,
    /// Appends answered by the committer (durable or failed), and those
    /// whose appenders have taken the answer (or gone away): while the two
    /// differ, some durable record may not be applied to memory yet, or a
    /// failure not yet accounted for by its appender.
    answered: Cell<u64>,
    taken: Cell<u64>,
    /// Notified when `taken` catches up with `answered`.
    settled: Event,
}

/// An append in flight: its wait for the committer's answer. The answer
/// counts as taken (see [`SegmentLog::settled_position`]) when it is taken,
/// by [`Appending::wait`] or [`Appending::try_take`], or when this goes
/// away without taking an answer that had arrived.
pub struct Appending {
    shared: Rc<Shared>,
    state: AppendState,
}

enum AppendState {
    Waiting(oneshot::Receiver<Result<Location, LogError>>),
    /// Refused before it was queued, or its answer taken already.
    Done(Option<Result<Location, LogError>>),
}

impl Appending {
    /// Waits until the record is durable (or its commit failed).
    pub async fn wait(mut self) -> Result<Location, LogError> {
        if let AppendState::Waiting(rx) = &mut self.state {
            let result = match rx.await {
                Ok(result) => {
                    self.shared.take_answer();
                    result
                }
                Err(_) => Err(LogError::Closed),
            };
            self.state = AppendState::Done(Some(result));
        }
        match &mut self.state {
            AppendState::Done(result) => result.take().unwrap_or(Err(LogError::Closed)),
            AppendState::Waiting(_) => Err(LogError::Closed),
        }
    }

    /// The answer if it has arrived, without waiting; `None` while the
    /// record's commit has not ended. An answer is handed out once.
    pub fn try_take(&mut self) -> Option<Result<Location, LogError>> {
        match &mut self.state {
            AppendState::Waiting(rx) => {
                let result = match rx.try_recv() {
                    Ok(None) => return None,
                    Ok(Some(result)) => {
                        self.shared.take_answer();
                        result
                    }
                    Err(_) => Err(LogError::Closed),
                };
                self.state = AppendState::Done(None);
                Some(result)
            }
            AppendState::Done(result) => result.take(),
        }
    }
}

impl Drop for Appending {
    fn drop(&mut self) {
        if let AppendState::Waiting(rx) = &mut self.state {
            if matches!(rx.try_recv(), Ok(Some(_))) {
                self.shared.take_answer();
            }
        }
    }
}

impl Shared {
    fn take_answer(&self) {
        self.taken.set(self.taken.get() + 1);
        if self.taken.get() == self.answered.get() {
            self.settled.notify(usize::MAX);
        }
    }
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    bytes: usize,
    next_seq: u64,
}

fn segment_name(index: u64) -> String {
    format!("{index:016}.seg")
}

fn segment_index(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// The indexes of the segment files in `dir`, in order.
pub fn segment_indexes(dir: &Path) -> io::Result<Vec<u64>> {
    let mut indexes: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| segment_index(entry.ok()?.file_name().to_str()?))
        .collect();
    indexes.sort_unstable();
    Ok(indexes)
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, replaying every intact record
    /// to `replay` in order, and starts its committer on this shard.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        replay: impl FnMut(Replayed<'_>),
    ) -> Result<(Self, RecoveryReport), LogError> {
        Self::open_after(dir, config, None, replay).await
    }

    /// Like [`SegmentLog::open`], replaying only the records after `after`
    /// when given: the segments before its segment are not read (they stay,
    /// and [`SegmentLog::read`] still reads them), its segment is scanned
    /// from its offset. A position the log does not reach (a missing
    /// segment, one shorter than the offset) is a [`LogError::Corrupt`],
    /// found before anything is replayed.
    pub async fn open_after(
        dir: &Path,
        config: LogConfig,
        after: Option<Position>,
        mut replay: impl FnMut(Replayed<'_>),
    ) -> Result<(Self, RecoveryReport), LogError> {
        let config = LogConfig {
            max_batch_bytes: config
                .max_batch_bytes
                .clamp(1, config.segment_bytes as usize),
            ..config
        };
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, &e))?;
        let mut indexes = segment_indexes(dir).map_err(|e| LogError::io(dir, &e))?;
        let mut report = RecoveryReport::default();
        let from = after.unwrap_or_default();
        let mut next_seq = from.seq + 1;
        let mut durable = from;
        if after.is_some() {
            if !indexes.contains(&from.segment) {
                return Err(LogError::Corrupt {
                    file: dir.join(segment_name(from.segment)),
                    offset: from.offset,
                    reason: "the segment to resume from is missing".into(),
                });
            }
            report.skipped_segments = indexes.iter().filter(|&&i| i < from.segment).count();
            indexes.retain(|&i| i >= from.segment);
        }
        let mut writer = None;
        let last = indexes.last().copied();
        for index in indexes {
            let path = dir.join(segment_name(index));
            let io_err = |e: io::Error| LogError::io(&path, &e);
            let file = DirectFile::open(&path).await.map_err(io_err)?;
            let size = file.size().await.map_err(io_err)?;
            let bytes = file.read_at(0, size as usize).await.map_err(io_err)?;
            let start = if index == from.segment {
                from.offset
            } else {
                0
            };
            let Some(rest) = bytes.get(start as usize..) else {
                return Err(LogError::Corrupt {
                    file: path,
                    offset: start,
                    reason: format!("the segment is only {size} bytes long"),
                });
            };
            let mut found = scan(rest);
            found.end += start;
            report.segments += 1;
            for (offset, record) in &found.records {
                if record.seq <= from.seq {
                    continue;
                }
                next_seq = next_seq.max(record.seq + 1);
                report.records += 1;
                replay(Replayed {
                    location: Location {
                        seq: record.seq,
                        segment: index,
                        offset: start + *offset,
                        len: record.payload.len() as u32,
                    },
                    kind: record.kind,
                    payload: record.payload,
                });
            }
            for (offset, damage) in &found.damaged {
                let offset = start + *offset;
                tracing::error!(file = %path.display(), offset, %damage, "corrupt record skipped");
                report
                    .damaged
                    .push((path.clone(), offset, damage.to_string()));
            }
            let torn_tail = found
                .torn_tail
                .map(|(offset, damage)| (start + offset, damage));
            if Some(index) == last {
                durable = Position {
                    seq: next_seq - 1,
                    segment: index,
                    offset: found.end,
                };
                if let Some((offset, damage)) = torn_tail {
                    let cut = size - offset;
                    tracing::warn!(file = %path.display(), offset, %damage, cut, "torn tail cut off");
                    report.torn_tail = Some((path.clone(), offset, damage.to_string(), cut));
                }
                writer = Some(Writer::resume(file, path, index, found.end, &bytes).await?);
            } else {
                if let Some((offset, damage)) = torn_tail {
                    tracing::error!(file = %path.display(), offset, %damage, "corrupt end of a closed segment");
                    report
                        .damaged
                        .push((path.clone(), offset, damage.to_string()));
                }
                file.close().await.map_err(io_err)?;
            }
        }
        let writer = match writer {
            Some(w) => w,
            None => Writer::create(dir, 0).await?,
        };
        let shared = Rc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            queue: RefCell::new(Queue {
                next_seq,
                ..Queue::default()
            }),
            wake: Event::new(),
            closed: Cell::new(false),
            stats: Cell::new(LogStats::default()),
            readers: RefCell::new(HashMap::new()),
            removed: RefCell::new(HashSet::new()),
            committer: RefCell::new(None),
            durable: Cell::new(durable),
            answered: Cell::new(0),
            taken: Cell::new(0),
            settled: Event::new(),
        });
        let task = cairn_shards::spawn(committer::run(shared.clone(), writer));
        *shared.committer.borrow_mut() = Some(task);
        Ok((Self { shared }, report))
    }

    /// Appends a record; resolves with its location once it is durable.
    pub fn append(
        &self,
        kind: u8,
        payload: &[u8],
    ) -> impl std::future::Future<Output = Result<Location, LogError>> + 'static {
        self.start_append(kind, payload).wait()
    }

    /// Queues a record now (its place in the log is fixed when this
    /// returns) and hands back the wait for its durability.
    pub fn start_append(&self, kind: u8, payload: &[u8]) -> Appending {
        let state = match self.enqueue(kind, payload) {
            Ok(rx) => AppendState::Waiting(rx),
            Err(e) => AppendState::Done(Some(Err(e))),
        };
        Appending {
            shared: self.shared.clone(),
            state,
        }
    }

    fn enqueue(
        &self,
        kind: u8,
        payload: &[u8],
    ) -> Result<oneshot::Receiver<Result<Location, LogError>>, LogError> {
        // A record larger than a batch is committed alone; no record may
        // be larger than a segment.
        let segment = usize::try_from(self.shared.config.segment_bytes).unwrap_or(usize::MAX);
        let max = MAX_PAYLOAD.min(segment.saturating_sub(encoded_len(0)));
        if payload.len() > max {
            return Err(LogError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        if self.shared.closed.get() {
            return Err(LogError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let mut q = self.shared.queue.borrow_mut();
        let seq = q.next_seq;
        q.next_seq += 1;
        let mut frame = Vec::with_capacity(encoded_len(payload.len()));
        encode(&Record { kind, seq, payload }, &mut frame);
        q.bytes += frame.len();
        q.pending.push(Pending {
            frame,
            seq,
            reply: tx,
        });
        drop(q);
        self.shared.wake.notify(1);
        Ok(rx)
    }

    /// Reads a durable record's payload back, checking its frame.
    pub async fn read(&self, at: Location) -> Result<Vec<u8>, LogError> {
        let path = self.shared.dir.join(segment_name(at.segment));
        let file = self.reader(at.segment, &path).await?;
        let want = encoded_len(at.len as usize);
        let bytes = file
            .read_at(at.offset, want)
            .await
            .map_err(|e| LogError::io(&path, &e))?;
        let corrupt = |reason: String| LogError::Corrupt {
            file: path.clone(),
            offset: at.offset,
            reason,
        };
        match crate::record::decode(&bytes) {
            crate::record::Decoded::Record { record, .. } if record.seq == at.seq => {
                Ok(record.payload.to_vec())
            }
            crate::record::Decoded::Record { record, .. } => Err(corrupt(format!(
                "expected record {} and found {}",
                at.seq, record.seq
            ))),
            crate::record::Decoded::Corrupt(c) => Err(corrupt(c.to_string())),
            crate::record::Decoded::Incomplete | crate::record::Decoded::End => {
                Err(corrupt("no record there".into()))
            }
        }
    }

    async fn reader(&self, segment: u64, path: &Path) -> Result<Rc<DirectFile>, LogError> {
        if let Some(f) = self.shared.readers.borrow().get(&segment) {
            return Ok(f.clone());
        }
        let gone = || LogError::Io {
            path: path.to_path_buf(),
            kind: io::ErrorKind::NotFound,
            message: "the segment was removed by compaction".into(),
        };
        if self.shared.removed.borrow().contains(&segment) {
            return Err(gone());
        }
        let file = Rc::new(
            DirectFile::open(path)
                .await
                .map_err(|e| LogError::io(path, &e))?,
        );
        if self.shared.removed.borrow().contains(&segment) {
            // Removed while it opened (opening creates a missing file):
            // remove what the open may have created again.
            let _ = std::fs::remove_file(path);
            return Err(gone());
        }
        self.shared
            .readers
            .borrow_mut()
            .insert(segment, file.clone());
        Ok(file)
    }

    /// The end of the last successful group commit: every record up to it
    /// is durable (some may not be applied to memory yet, see
    /// [`SegmentLog::settled_position`]).
    pub fn position(&self) -> Position {
        self.shared.durable.get()
    }

    /// Waits for an instant when every durable record's appender has taken
    /// its answer (and so, for the mailstore and the tables, applied it to
    /// memory) and returns [`SegmentLog::position`] at that instant: state
    /// read on this shard before the next `.await` is exactly the records
    /// up to the returned position.
    pub async fn settled_position(&self) -> Position {
        loop {
            if self.shared.taken.get() == self.shared.answered.get() {
                return self.position();
            }
            let listener = self.shared.settled.listen();
            if self.shared.taken.get() == self.shared.answered.get() {
                continue;
            }
            listener.await;
        }
    }

    /// The segment files: index and size, in order.
    pub fn segments(&self) -> Result<Vec<(u64, u64)>, LogError> {
        let dir = &self.shared.dir;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, &e))? {
            let entry = entry.map_err(|e| LogError::io(dir, &e))?;
            let Some(index) = entry.file_name().to_str().and_then(segment_index) else {
                continue;
            };
            if self.shared.removed.borrow().contains(&index) {
                continue;
            }
            let size = entry
                .metadata()
                .map_err(|e| LogError::io(&entry.path(), &e))?
                .len();
            found.push((index, size));
        }
        found.sort_unstable();
        Ok(found)
    }

    /// The segment appends go to (and every later one) are active; those
    /// before it are sealed and never written again.
    pub fn active_segment(&self) -> u64 {
        self.position().segment
    }

    /// Removes sealed segment files (compaction, once a durable checkpoint
    /// covers them and nothing refers to them), then makes the removal
    /// durable; returns the bytes they held. The active segment is refused.
    /// Reads of a removed segment fail from now on.
    pub async fn remove_segments(&self, segments: &[u64]) -> Result<u64, LogError> {
        let active = self.active_segment();
        let dir = self.shared.dir.clone();
        let mut bytes = 0;
        for &index in segments {
            let path = dir.join(segment_name(index));
            if index >= active {
                return Err(LogError::Io {
                    path,
                    kind: io::ErrorKind::InvalidInput,
                    message: format!("segment {index} is not sealed (the active one is {active})"),
                });
            }
            let size = std::fs::metadata(&path)
                .map_err(|e| LogError::io(&path, &e))?
                .len();
            self.shared.removed.borrow_mut().insert(index);
            let reader = self.shared.readers.borrow_mut().remove(&index);
            if let Some(reader) = reader.and_then(|r| Rc::try_unwrap(r).ok()) {
                let _ = reader.close().await;
            }
            std::fs::remove_file(&path).map_err(|e| LogError::io(&path, &e))?;
            tracing::info!(file = %path.display(), bytes = size, "compacted segment removed");
            bytes += size;
            let mut stats = self.shared.stats.get();
            stats.segments_removed += 1;
            stats.bytes_reclaimed += size;
            self.shared.stats.set(stats);
        }
        sync_dir(&dir).await.map_err(|e| LogError::io(&dir, &e))?;
        Ok(bytes)
    }

    /// The directory of its segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// What the log has done since it was opened.
    pub fn stats(&self) -> LogStats {
        self.shared.stats.get()
    }

    /// Stops accepting appends, lets the committer write what is queued,
    /// and waits for it to end.
    pub async fn close(&self) {
        self.shared.closed.set(true);
        self.shared.wake.notify(usize::MAX);
        let task = self.shared.committer.borrow_mut().take();
        if let Some(task) = task {
            task.await;
        }
    }
}

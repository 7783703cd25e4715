//! Checkpoints of a shard's in-memory state, so that opening a shard reads
//! the newest checkpoint and replays only the log after it.
//!
//! A checkpoint file holds the mail state, the blob and digest indexes and the tables'
//! contents as they were after the log's record `seq`, and the log position
//! where the log goes on after it. On disk: a 32-byte header (magic, format
//! version, CRC32C and length of the archive) and an rkyv archive, read
//! back through a memory map, validated (bytecheck), and deserialised into
//! the in-memory types (no in-place view is kept).
//!
//! A checkpoint is written as `checkpoint-<seq>.tmp`, fsync'd, renamed to
//! `checkpoint-<seq>.ckpt`, and the directory fsync'd; the newest
//! [`KEEP`] are kept. A checkpoint that does not read back intact is
//! reported and skipped: the previous one, or a full replay, is used.
//! Format 1 (before digests) is still read, with no digests.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::Position;
use crate::mailbox::{BlobRef, DigestRef, State};
use crate::table::TableData;

/// How many checkpoints are kept.
pub const KEEP: usize = 2;

const MAGIC: &[u8; 8] = b"CAIRNCKP";
const VERSION: u32 = 2;
/// The format before digests, still read.
const VERSION_1: u32 = 1;
/// The header's length; a multiple of the archive's alignment.
const HEADER_LEN: usize = 32;
const SUFFIX: &str = ".ckpt";
const PREFIX: &str = "checkpoint-";

/// A shard's state after record `seq`.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Image {
    /// The last record the state includes.
    pub seq: u64,
    /// Where the log goes on: segment …
    pub segment: u64,
    /// … and offset.
    pub offset: u64,
    /// Accounts, mailboxes and messages.
    pub state: State,
    /// Every stored body.
    pub blobs: Vec<BlobRef>,
    /// The tables.
    pub tables: TableData,
    /// Every stored digest.
    pub digests: Vec<DigestRef>,
}

/// An [`Image`] of format 1 (no digests).
#[derive(rkyv::Archive, rkyv::Deserialize)]
struct ImageV1 {
    seq: u64,
    segment: u64,
    offset: u64,
    state: State,
    blobs: Vec<BlobRef>,
    tables: TableData,
}

impl From<ImageV1> for Image {
    fn from(v1: ImageV1) -> Self {
        Self {
            seq: v1.seq,
            segment: v1.segment,
            offset: v1.offset,
            state: v1.state,
            blobs: v1.blobs,
            tables: v1.tables,
            digests: Vec::new(),
        }
    }
}

impl Image {
    /// Where the log goes on after it.
    pub fn position(&self) -> Position {
        Position {
            seq: self.seq,
            segment: self.segment,
            offset: self.offset,
        }
    }

    /// The segments its bodies and digests lie in, sorted, each once.
    pub fn segments(&self) -> Vec<u64> {
        let mut used: Vec<u64> = self
            .blobs
            .iter()
            .map(|b| b.segment)
            .chain(self.digests.iter().map(|d| d.segment))
            .collect();
        used.sort_unstable();
        used.dedup();
        used
    }
}

/// Why a checkpoint was not written or not read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An I/O failure.
    #[error("checkpoint I/O error on {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not an intact checkpoint.
    #[error("checkpoint {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The state did not serialise.
    #[error("checkpoint could not be serialised: {0}")]
    Encode(String),
    /// The thread writing it went away.
    #[error("the checkpoint writer went away")]
    Lost,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The file name of the checkpoint after record `seq`.
pub fn file_name(seq: u64) -> String {
    format!("{PREFIX}{seq:020}{SUFFIX}")
}

fn seq_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// The checkpoints in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let e = e.ok()?;
                    Some((seq_of(e.file_name().to_str()?)?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

/// Removes temporary files left by a checkpoint write that never finished.
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(".tmp") {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %e.path().display(), "unfinished checkpoint removed")
                }
                Err(error) => {
                    tracing::warn!(file = %e.path().display(), %error, "unfinished checkpoint not removed")
                }
            }
        }
    }
}

/// Header and archive of `image`.
pub fn encode(image: &Image) -> Result<Vec<u8>, CheckpointError> {
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(image)
        .map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + archive.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(&archive);
    Ok(out)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Checks the header and the archive of a checkpoint's bytes and reads the
/// image out. `bytes` must start 16-byte aligned (a memory map does).
pub fn decode(bytes: &[u8]) -> Result<Image, String> {
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err("bad magic".into());
    }
    let version = le_u32(bytes, 8).ok_or("short header")?;
    if version != VERSION && version != VERSION_1 {
        return Err(format!("format version {version}, expected {VERSION}"));
    }
    let crc = le_u32(bytes, 12).ok_or("short header")?;
    let len = le_u64(bytes, 16).ok_or("short header")?;
    let archive = usize::try_from(len)
        .ok()
        .and_then(|len| bytes.get(HEADER_LEN..HEADER_LEN.checked_add(len)?))
        .ok_or_else(|| format!("archive of {len} bytes cut short"))?;
    if bytes.len() != HEADER_LEN + archive.len() {
        return Err("bytes after the archive".into());
    }
    if crc32c::crc32c(archive) != crc {
        return Err("CRC mismatch".into());
    }
    if version == VERSION_1 {
        return read_archive::<ImageV1>(archive).map(Image::from);
    }
    read_archive::<Image>(archive)
}

/// Validates an archive of `T` and deserialises it.
fn read_archive<T>(archive: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let archived = rkyv::access::<T::Archived, rkyv::rancor::Error>(archive)
        .map_err(|e| format!("archive does not validate: {e}"))?;
    rkyv::deserialize::<T, rkyv::rancor::Error>(archived)
        .map_err(|e| format!("archive does not deserialise: {e}"))
}

/// Reads the checkpoint at `path` through a memory map.
pub fn load(path: &Path) -> Result<Image, CheckpointError> {
    let file = File::open(path).map_err(io_err(path))?;
    // SAFETY: checkpoint files are written whole under a temporary name and
    // renamed into place; nothing writes to one afterwards, so the mapped
    // bytes do not change while they are read.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
    decode(&map).map_err(|reason| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `image` durably into `dir` (blocking: run it off the shard) and
/// removes all but the newest [`KEEP`] checkpoints; returns its path.
pub fn write(dir: &Path, image: &Image) -> Result<PathBuf, CheckpointError> {
    let bytes = encode(image)?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{PREFIX}{:020}-{n}.tmp", image.seq));
    let path = dir.join(file_name(image.seq));
    let written = (|| {
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    for (_, old) in list(dir).into_iter().skip(KEEP) {
        if let Err(error) = std::fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), %error, "old checkpoint not removed");
        }
    }
    Ok(path)
}

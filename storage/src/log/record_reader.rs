//! Reading one durable record's payload in pieces, at any offset, without
//! reading the whole record: for bodies streamed to a socket. The frame's
//! header is checked when the record is opened (its length and sequence
//! must be the ones the caller's [`Location`] names); the payload's
//! checksum covers the whole payload and so is not checked here: the
//! caller checks what it reads (a body against its SHA-256).
//!
//! Opening reads the frame's header and, in the same read, as many of
//! the payload's first bytes as the caller asks for (a body's hash and a
//! small range of it, say): reads within them cost no further I/O.
//!
//! An open record holds its segment file open: compaction may remove the
//! file meanwhile (its records copied elsewhere), and the reads go on from
//! the file as it was.

use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use cairn_shards::fs::DirectFile;

use super::{segment_name, Location, LogError, SegmentLog};
use crate::record::HEADER_LEN;

/// A durable record opened for reads of its payload (see the module).
pub struct RecordReader {
    file: Rc<DirectFile>,
    path: PathBuf,
    /// Where the payload starts in the file.
    start: u64,
    len: u32,
    /// The payload's first bytes, read when the record was opened.
    head: Vec<u8>,
}

fn field<const N: usize>(header: &[u8], at: usize) -> Option<[u8; N]> {
    header.get(at..at + N)?.try_into().ok()
}

impl SegmentLog {
    /// Opens the durable record at `at` for reads of its payload in pieces
    /// (see [`RecordReader`]), checking its frame's header; its first
    /// `head` bytes (at most the payload) are read with the header.
    pub async fn open_record(&self, at: Location, head: usize) -> Result<RecordReader, LogError> {
        let path = self.shared.dir.join(segment_name(at.segment));
        let file = self.reader(at.segment, &path).await?;
        let head = head.min(at.len as usize);
        let mut header = file
            .read_at(at.offset, HEADER_LEN + head)
            .await
            .map_err(|e| LogError::io(&path, &e))?;
        let corrupt = |reason: String| LogError::Corrupt {
            file: path.clone(),
            offset: at.offset,
            reason,
        };
        let len = field::<4>(&header, 0).map(u32::from_le_bytes);
        let kind = header.get(4).copied();
        let seq = field::<8>(&header, 8).map(u64::from_le_bytes);
        match (len, kind, seq) {
            (Some(len), Some(kind), Some(seq)) if len == at.len && kind != 0 && seq == at.seq => {
                // A file that ends within the head leaves it short: reads
                // past what was read go to the file (and fail there).
                let head = header.split_off(HEADER_LEN.min(header.len()));
                Ok(RecordReader {
                    file,
                    path,
                    start: at.offset + HEADER_LEN as u64,
                    len,
                    head,
                })
            }
            (Some(_), Some(_), Some(seq)) if seq != at.seq => Err(corrupt(format!(
                "expected record {} and found {seq}",
                at.seq
            ))),
            (Some(_), Some(_), Some(_)) => Err(corrupt(
                "the record's header does not match its location".into(),
            )),
            _ => Err(corrupt("no record there".into())),
        }
    }
}

impl RecordReader {
    /// The payload's length.
    pub fn payload_len(&self) -> u32 {
        self.len
    }

    /// Exactly `len` bytes of the payload from `from` (a range beyond the
    /// payload is refused; a file shorter than the record is corrupt).
    pub async fn read(&self, from: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let end = from.checked_add(len as u64);
        if end.is_none_or(|end| end > u64::from(self.len)) {
            return Err(LogError::Io {
                path: self.path.clone(),
                kind: io::ErrorKind::InvalidInput,
                message: format!(
                    "bytes {from}..+{len} are beyond a payload of {} bytes",
                    self.len
                ),
            });
        }
        if let Some(bytes) = usize::try_from(from)
            .ok()
            .and_then(|from| self.head.get(from..from.checked_add(len)?))
        {
            return Ok(bytes.to_vec());
        }
        let at = self.start + from;
        let bytes = self
            .file
            .read_at(at, len)
            .await
            .map_err(|e| LogError::io(&self.path, &e))?;
        if bytes.len() != len {
            return Err(LogError::Corrupt {
                file: self.path.clone(),
                offset: at,
                reason: format!("the file ends {} bytes into a read of {len}", bytes.len()),
            });
        }
        Ok(bytes)
    }
}

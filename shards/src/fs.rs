//! Files on the shard's own io_uring, opened with O_DIRECT: reads and
//! writes bypass the page cache, buffers are aligned to the device, and
//! `fdatasync` is one ring operation. Storage's segment log is built on it.

use std::io;
use std::path::Path;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

/// An aligned buffer for [`DirectFile::write_at`].
pub type AlignedBuffer = DmaBuffer;

/// A file opened for direct I/O on the current shard.
pub struct DirectFile {
    file: DmaFile,
}

impl DirectFile {
    /// Opens `path` for reading and writing, creating it if needed.
    pub async fn open(path: &Path) -> io::Result<Self> {
        probe_device(path).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await?;
        Ok(Self { file })
    }

    /// The alignment that offsets and lengths of writes must respect.
    pub fn alignment(&self) -> u64 {
        self.file.alignment()
    }

    /// A zeroed, aligned buffer of `len` bytes (`len` a multiple of the
    /// alignment).
    pub fn buffer(&self, len: usize) -> AlignedBuffer {
        let mut buf = self.file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        buf
    }

    /// Writes the whole buffer at `pos` (both aligned). A short write (the
    /// device filling up midway) is continued, so that the caller sees the
    /// error that stopped it rather than a silent partial write.
    pub async fn write_at(&self, buf: AlignedBuffer, pos: u64) -> io::Result<()> {
        let buf = std::rc::Rc::new(buf);
        let mut done = 0usize;
        while done < buf.len() {
            let wrote = if done == 0 {
                self.file.write_rc_at(buf.clone(), pos).await?
            } else {
                let rest = &buf.as_bytes()[done..];
                let mut more = self.buffer(rest.len());
                more.as_bytes_mut().copy_from_slice(rest);
                self.file.write_at(more, pos + done as u64).await?
            };
            if wrote == 0
                || (!(wrote as u64).is_multiple_of(self.alignment()) && done + wrote < buf.len())
            {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!(
                        "direct write stopped at {} of {} bytes",
                        done + wrote,
                        buf.len()
                    ),
                ));
            }
            done += wrote;
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `pos` (any alignment); fewer at the end of
    /// the file.
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let got = self.file.read_at(pos, len).await?;
        Ok(got.to_vec())
    }

    /// Makes every completed write durable.
    pub async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.file.fdatasync().await?)
    }

    /// The file's size in bytes.
    pub async fn size(&self) -> io::Result<u64> {
        Ok(self.file.file_size().await?)
    }

    /// Sets the file's size (the tail beyond it is dropped).
    pub async fn truncate(&self, size: u64) -> io::Result<()> {
        Ok(self.file.truncate(size).await?)
    }

    /// Closes the file.
    pub async fn close(self) -> io::Result<()> {
        Ok(self.file.close().await?)
    }
}

thread_local! {
    /// Devices whose io_uring poll support this thread has already probed.
    static PROBED: std::cell::RefCell<std::collections::HashSet<u64>> = Default::default();
}

/// glommio decides once per device whether reads may use the polled ring,
/// by reading the first block of the first file opened there. On an empty
/// file that read succeeds even where polling is unsupported (virtio), and
/// every later read then fails with EOPNOTSUPP. So the first open on a
/// device goes through a probe file that holds a full block.
async fn probe_device(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dev = std::fs::metadata(dir)?.dev();
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(format!(".cairn-io-probe-{}", std::process::id()));
    std::fs::write(&probe, [0u8; 4096])?;
    let opened = DmaFile::open(&probe).await;
    let _ = std::fs::remove_file(&probe);
    opened?.close().await?;
    PROBED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

/// Makes a directory's entries (a created or renamed file) durable,
/// through the ring.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    // glommio opens directories relative to nothing: make the path absolute.
    let dir = std::path::absolute(dir)?;
    let d = glommio::io::Directory::open(&dir).await?;
    d.sync().await?;
    Ok(d.close().await?)
}

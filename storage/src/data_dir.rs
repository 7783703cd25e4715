//! The data directory: creation, a write check, and an exclusive lock held
//! for the life of the process (a second appliance on the same directory is
//! refused instead of corrupting it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// It could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It exists but is not a directory.
    #[error("the data directory {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// A file could not be written in it.
    #[error("the data directory {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds its lock.
    #[error(
        "the data directory {0} is in use by another Cairn process (lock file {0}/cairn.lock)"
    )]
    Locked(PathBuf),
}

/// An open, locked data directory. The lock is released when it is dropped
/// (or when the process dies, whatever the way).
pub struct DataDir {
    root: PathBuf,
    _lock: File,
    created: bool,
}

impl DataDir {
    /// Opens `root`, creating it (mode 0700) if it does not exist, checks that
    /// it can be written and takes its lock.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        let created = !root.exists();
        if created {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|source| DataDirError::Create {
                    path: root.to_path_buf(),
                    source,
                })?;
        } else if !root.is_dir() {
            return Err(DataDirError::NotADirectory(root.to_path_buf()));
        }
        let not_writable = |source| DataDirError::NotWritable {
            path: root.to_path_buf(),
            source,
        };
        let probe = root.join(".write-probe");
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok").and_then(|()| f.sync_all()))
            .map_err(not_writable)?;
        std::fs::remove_file(&probe).map_err(not_writable)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("cairn.lock"))
            .map_err(not_writable)?;
        // SAFETY: flock on an fd we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(DataDirError::Locked(root.to_path_buf()));
        }
        // Absolute from here on: io_uring's directory operations do not
        // take paths relative to the working directory.
        let root = std::fs::canonicalize(root).map_err(not_writable)?;
        Ok(Self {
            root,
            _lock: lock,
            created,
        })
    }

    /// The directory's absolute path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Whether this open created the directory (a first start).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Writes `bytes` to `relative` atomically and durably: a temporary file,
    /// fsync, rename into place, fsync of the directory. `mode` is the file's
    /// permission bits (0600 for secrets).
    pub fn write_file(&self, relative: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let target = self.root.join(relative);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = target.with_extension("tmp");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        File::open(&dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_locks_and_refuses_a_second_opener() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        let first = DataDir::open(&root).expect("first open");
        assert!(first.created());
        assert!(matches!(DataDir::open(&root), Err(DataDirError::Locked(_))));
        drop(first);
        let again = DataDir::open(&root).expect("reopen after release");
        assert!(!again.created());
    }

    #[test]
    fn a_file_is_not_a_data_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(
            DataDir::open(&file),
            Err(DataDirError::NotADirectory(_))
        ));
    }

    #[test]
    fn write_file_replaces_atomically_with_the_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        let rel = Path::new("tls/key.pem");
        dir.write_file(rel, b"one", 0o600).expect("write");
        dir.write_file(rel, b"two", 0o600).expect("rewrite");
        let path = tmp.path().join(rel);
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

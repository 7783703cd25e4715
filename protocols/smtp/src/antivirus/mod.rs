//! The built-in anti-virus: a signature scanner over the raw message and
//! its decoded MIME parts, sans-IO (no runtime; the session runs it on the
//! blocking pool).
//!
//! - [`signatures`]: the database format (Cairn lines plus a subset of
//!   ClamAV `.ndb`/`.hdb`), its parser with line errors and limits, and the
//!   Aho-Corasick matcher; the EICAR test signature is always present;
//! - [`scan`]: one message against a database, to a [`Verdict`];
//! - [`clamd`]: ClamAV's clamd (INSTREAM) as a second scanner, when
//!   configured;
//! - `testing` (feature `testing`): a real clamd for tests.
//!
//! [`Antivirus`] holds the current database behind a lock that every shard
//! reads once per message, so a reload ([`Antivirus::replace`], or
//! [`Reloader::check`] when the file's mtime changed) reaches them all.
//! The database lives in the data directory at [`DB_PATH`]; `cairn avdb
//! update FILE` replaces it atomically.
//!
//! What an infected message gets is a [`VirusAction`]: refused at the end
//! of DATA with `554 5.7.1`, or quarantined (accepted, and delivered only
//! to one local account).
//!
//! Metrics ([`Antivirus::register_metrics`]):
//! `cairn_smtp_antivirus_scans_total{result="clean|infected|failed"}`,
//! `cairn_smtp_antivirus_signatures` (the size of the database in use) and
//! `cairn_smtp_antivirus_quarantined_total` (infected messages
//! quarantined, whichever scanner found them).

pub mod clamd;
pub mod scan;
pub mod signatures;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

pub use scan::{scan, scan_with, ScanLimits, Verdict};
pub use signatures::{AvdbError, Signatures, EICAR, EICAR_NAME};

/// The database file, relative to the data directory.
pub const DB_PATH: &str = "avdb/signatures.db";

/// What happens to a message a scanner finds infected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VirusAction {
    /// Refused at the end of DATA/BDAT with `554 5.7.1`; nothing stored.
    #[default]
    Reject,
    /// Accepted, and delivered only to the INBOX of this local address,
    /// with the verdict and the envelope in `X-Cairn-Quarantine*` fields;
    /// the recipients get nothing.
    Quarantine(String),
}

/// The scanner a listener uses: the current database, swappable.
#[derive(Debug)]
pub struct Antivirus {
    current: RwLock<Arc<Signatures>>,
    limits: ScanLimits,
    scans: IntCounterVec,
    clean: IntCounter,
    infected: IntCounter,
    failed: IntCounter,
    signature_count: IntGauge,
    quarantined: IntCounter,
}

impl Antivirus {
    pub fn new(signatures: Signatures) -> Self {
        // Constant, valid names: these cannot fail.
        let scans = IntCounterVec::new(
            Opts::new(
                "cairn_smtp_antivirus_scans_total",
                "Messages scanned for viruses, by result.",
            ),
            &["result"],
        )
        .unwrap_or_else(|e| unreachable!("metric definition: {e}"));
        let signature_count = IntGauge::new(
            "cairn_smtp_antivirus_signatures",
            "Signatures in the anti-virus database in use.",
        )
        .unwrap_or_else(|e| unreachable!("metric definition: {e}"));
        signature_count.set(signatures.len() as i64);
        let quarantined = IntCounter::new(
            "cairn_smtp_antivirus_quarantined_total",
            "Infected messages quarantined instead of refused.",
        )
        .unwrap_or_else(|e| unreachable!("metric definition: {e}"));
        Self {
            current: RwLock::new(Arc::new(signatures)),
            limits: ScanLimits::default(),
            clean: scans.with_label_values(&["clean"]),
            infected: scans.with_label_values(&["infected"]),
            failed: scans.with_label_values(&["failed"]),
            scans,
            signature_count,
            quarantined,
        }
    }

    /// Exposes the scanner's metrics at `/metrics` (call once).
    pub fn register_metrics(&self, metrics: &cairn_shards::metrics::Metrics) {
        metrics.register(&self.scans);
        metrics.register(&self.signature_count);
        metrics.register(&self.quarantined);
    }

    /// Counts a scan that could not run (the blocking pool lost it).
    pub fn count_failed(&self) {
        self.failed.inc();
    }

    /// Counts an infected message that was quarantined.
    pub fn count_quarantined(&self) {
        self.quarantined.inc();
    }

    /// The built-in database (EICAR only).
    pub fn builtin() -> Self {
        Self::new(Signatures::builtin())
    }

    /// The database in use now.
    pub fn signatures(&self) -> Arc<Signatures> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `signatures` in use for every message scanned from now on.
    pub fn replace(&self, signatures: Signatures) {
        self.signature_count.set(signatures.len() as i64);
        let new = Arc::new(signatures);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Scans one message with the current database (CPU-bound: call it on
    /// the blocking pool for anything big).
    pub fn scan(&self, message: &[u8]) -> Verdict {
        let verdict = scan_with(message, &self.signatures(), self.limits);
        match verdict {
            Verdict::Clean => self.clean.inc(),
            Verdict::Infected { .. } => self.infected.inc(),
        }
        verdict
    }

    /// Scans so far: (clean, infected, failed).
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.clean.get(), self.infected.get(), self.failed.get())
    }
}

/// The database file of a data directory.
pub fn db_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_PATH)
}

/// Reads and parses a database file (bounded in size).
pub fn load_file(path: &Path) -> Result<Signatures, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(signatures::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Signatures::parse(&bytes, &path.display().to_string()).map_err(|e| e.to_string())
}

/// The data directory's database, or the built-in one when it has none.
/// An unreadable or invalid file is an error (the appliance refuses to
/// start rather than run without the signatures it was given).
pub fn load_signatures(data_dir: &Path) -> Result<Signatures, String> {
    let path = db_file(data_dir);
    if !path.exists() {
        return Ok(Signatures::builtin());
    }
    load_file(&path)
}

/// [`load_signatures`] into a shareable [`Antivirus`].
pub fn load_antivirus(data_dir: &Path) -> Result<Arc<Antivirus>, String> {
    Ok(Arc::new(Antivirus::new(load_signatures(data_dir)?)))
}

/// Reloads a data directory's database when its file changed. Blocking
/// file IO: call [`Reloader::check`] from the blocking pool (e.g. every
/// 60 s).
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

impl Reloader {
    /// Watches `data_dir`'s database, taking its present state as loaded.
    pub fn new(data_dir: &Path) -> Self {
        let path = db_file(data_dir);
        let seen = stamp(&path);
        Self { path, seen }
    }

    /// Reloads into `av` when the file's mtime or size changed since the
    /// last check: `Ok(Some(count))` when reloaded, `Ok(None)` when
    /// unchanged. An invalid new file is an error and the old database
    /// stays in use (it is tried again only once the file changes again).
    /// A removed file puts the built-in database back.
    pub fn check(&mut self, av: &Antivirus) -> Result<Option<usize>, String> {
        let now = stamp(&self.path);
        if now == self.seen {
            return Ok(None);
        }
        self.seen = now;
        let sigs = if now.is_none() {
            Signatures::builtin()
        } else {
            load_file(&self.path)?
        };
        let count = sigs.len();
        av.replace(sigs);
        Ok(Some(count))
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_reloads_and_falls_back_to_builtin() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let av = load_antivirus(tmp.path()).expect("no file: built-in");
        assert_eq!(av.signatures().source(), "built-in");
        assert_eq!(av.signatures().len(), 1);
        let mut reloader = Reloader::new(tmp.path());
        assert_eq!(reloader.check(&av), Ok(None));

        let file = db_file(tmp.path());
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "Test.Sig:6576696c2d6279746573\n").expect("write");
        assert_eq!(reloader.check(&av), Ok(Some(2)));
        assert!(av.scan(b"Subject: x\r\n\r\nevil-bytes\r\n").is_infected());
        assert_eq!(reloader.check(&av), Ok(None));

        std::fs::write(&file, "Broken:zz\n").expect("write");
        let err = reloader.check(&av).expect_err("invalid");
        assert!(err.contains(":1:"), "{err}");
        assert_eq!(av.signatures().len(), 2, "the old database stays");
        assert!(load_antivirus(tmp.path()).is_err());

        std::fs::remove_file(&file).expect("rm");
        assert_eq!(reloader.check(&av), Ok(Some(1)));
    }
}

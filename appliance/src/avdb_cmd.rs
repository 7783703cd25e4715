//! `cairn avdb …`: the built-in anti-virus's signature database.
//!
//! - `cairn avdb update FILE` checks FILE (the format is documented in
//!   `cairn_smtp::antivirus::signatures`; every error is listed with its
//!   line) and only then replaces `DATA/avdb/signatures.db` atomically
//!   (a temporary file in the same folder, fsync, rename, fsync of the
//!   folder). It needs no lock on the data directory, so it works while
//!   the appliance runs: the appliance sees the new mtime and reloads
//!   within a minute, keeping the old database if the new one fails.
//! - `cairn avdb show` prints the number of signatures in use and their
//!   source (the file, or the built-in EICAR signature alone).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_config::Config;
use cairn_smtp::antivirus::{self, Signatures};

use crate::cli::{AvdbCommand, AvdbPlace};

/// Runs one `avdb` command; exit 1 with the reason on failure.
pub fn run(cmd: AvdbCommand) -> ExitCode {
    let result = match cmd {
        AvdbCommand::Update { file, place } => update(&file, &place),
        AvdbCommand::Show { place } => show(&place),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn avdb: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The data directory: `--data-dir`, else the configuration's.
fn data_dir(place: &AvdbPlace) -> Result<PathBuf, String> {
    if let Some(dir) = &place.data_dir {
        return Ok(dir.clone());
    }
    let config = match &place.config {
        Some(path) => Config::load(path).map_err(|e| format!("invalid configuration:\n{e}"))?,
        None => Config::embedded_default(),
    };
    Ok(config.data_dir)
}

fn update(file: &Path, place: &AvdbPlace) -> Result<(), String> {
    let text = read_bounded(file)?;
    let sigs = Signatures::parse(&text, &file.display().to_string())
        .map_err(|e| format!("{} refused, nothing changed:\n{e}", file.display()))?;
    let dir = data_dir(place)?;
    let target = antivirus::db_file(&dir);
    write_atomically(&target, &text)
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    println!(
        "{} signatures installed in {} (the EICAR test signature included); \
         a running appliance loads them within a minute",
        sigs.len(),
        target.display()
    );
    Ok(())
}

fn show(place: &AvdbPlace) -> Result<(), String> {
    let dir = data_dir(place)?;
    let sigs = antivirus::load_signatures(&dir)?;
    println!("signatures: {}", sigs.len());
    println!("source: {}", sigs.source());
    Ok(())
}

/// Reads at most the database size limit (and one byte more, so that the
/// parser reports an oversized file).
fn read_bounded(file: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut bytes = Vec::new();
    f.take(antivirus::signatures::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(bytes)
}

/// Temporary file beside `target`, fsync, rename over it, fsync the
/// folder: a reader sees the old file or the new one, never a mix, and a
/// crash leaves one of them.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = target
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)?;
    let tmp = folder.join(format!(".signatures.db.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)?;
        File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

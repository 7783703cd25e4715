//! A full disk: on a small tmpfs mounted by the test, appends fail with
//! `DiskFull`, nothing acknowledged is lost, and appending resumes once
//! space is freed. Needs root to mount; skipped (and says so) otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_shards::local::block_on;
use cairn_storage::log::{LogConfig, LogError, SegmentLog};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the executor may still be closing its last descriptors.
        let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
    }
}

fn mount_small_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return None;
    }
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "root could not mount a tmpfs at {}",
        at.display()
    );
    Some(Mount(at.to_path_buf()))
}

async fn replayed(dir: &Path) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    let (log, _) = SegmentLog::open(dir, LogConfig::default(), |r| seen.push(r.payload.to_vec()))
        .await
        .expect("reopen");
    log.close().await;
    seen
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_service_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = mount_small_tmpfs(tmp.path(), "512k") else {
        return;
    };
    let filler = tmp.path().join("filler");
    std::fs::write(&filler, vec![0u8; 128 * 1024]).expect("filler");
    let dir = tmp.path().join("log");
    block_on(async {
        let (log, _) = SegmentLog::open(&dir, LogConfig::default(), |_| {})
            .await
            .expect("open");
        let mut acked = Vec::new();
        let mut failure = None;
        for i in 0..1000u32 {
            let body = format!("{i}:").repeat(1200).into_bytes();
            match log.append(1, &body).await {
                Ok(_) => acked.push(body),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("the disk filled up");
        assert!(matches!(failure, LogError::DiskFull(_)), "{failure:?}");
        assert!(failure.to_string().contains("no space left"), "{failure}");
        assert!(!acked.is_empty());
        // Still full: a second try of the same size fails the same way and
        // breaks nothing.
        let again = log.append(1, &"x".repeat(6000).into_bytes()).await;
        assert!(matches!(again, Err(LogError::DiskFull(_))), "{again:?}");
        log.close().await;

        let seen = replayed(&dir).await;
        assert_eq!(seen, acked, "every acknowledged record, and only those");

        std::fs::remove_file(&filler).expect("free space");
        let (log, _) = SegmentLog::open(&dir, LogConfig::default(), |_| {})
            .await
            .expect("open");
        log.append(1, b"after space was freed")
            .await
            .expect("append resumes");
        log.close().await;
        let seen = replayed(&dir).await;
        assert_eq!(seen.len(), acked.len() + 1);
        assert_eq!(
            seen.last().map(Vec::as_slice),
            Some(&b"after space was freed"[..])
        );
    })
    .expect("executor");
}

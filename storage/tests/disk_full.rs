//! A full disk: on a small tmpfs mounted by the test, appends fail with
//! `DiskFull`, nothing acknowledged is lost, and appending resumes once
//! space is freed; pipelined deliveries to one account that fail leave the
//! mailstore consistent (quota released, later deliveries work, the state
//! comes back the same). Needs root to mount; skipped (and says so)
//! otherwise.

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

#[test]
fn failed_pipelined_deliveries_leave_the_mailstore_consistent() {
    use cairn_storage::shard_store::ShardStore;
    const ALICE: &str = "alice@example.org";
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = mount_small_tmpfs(tmp.path(), "1m") else {
        return;
    };
    let filler = tmp.path().join("filler");
    std::fs::write(&filler, vec![0u8; 256 * 1024]).expect("filler");
    let data = tmp.path().join("data");
    block_on(async {
        let (store, _) = ShardStore::open(&data, 0).await.expect("open");
        store
            .mail
            .create_account(ALICE, 0, 0)
            .await
            .expect("account");
        let mut delivered = Vec::new();
        let mut failed = 0;
        for round in 0..40usize {
            let tasks: Vec<_> = (0..8usize)
                .map(|k| {
                    let mail = store.mail.clone();
                    let i = round * 8 + k;
                    cairn_shards::spawn(async move {
                        let body = format!("{i}:").repeat(3000).into_bytes();
                        let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
                        (i, mail.deliver(&rcpt, &body, i as i64).await.pop())
                    })
                })
                .collect();
            for t in tasks {
                match t.await {
                    (i, Some(Ok(d))) => delivered.push((i, d.uid)),
                    (_, Some(Err(_))) => failed += 1,
                    (_, None) => panic!("no result"),
                }
            }
            if failed > 0 {
                break;
            }
        }
        assert!(failed > 0, "the disk filled up");
        let check = |store: &ShardStore| {
            let messages = store.mail.messages(ALICE, "INBOX").expect("messages");
            let (bytes, _, count, _) = store.mail.quota(ALICE).expect("quota");
            assert_eq!(count, messages.len() as u64, "quota released");
            assert_eq!(bytes, messages.iter().map(|m| m.size).sum::<u64>());
            messages
        };
        let messages = check(&store);
        for (i, uid) in &delivered {
            assert!(
                messages
                    .iter()
                    .any(|m| m.uid == *uid && m.internal_date == *i as i64),
                "acknowledged delivery {i} is there"
            );
        }
        std::fs::remove_file(&filler).expect("free space");
        let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
        let after = store
            .mail
            .deliver(&rcpt, b"after space was freed", 9999)
            .await;
        let uid = after[0].as_ref().expect("deliveries resume").uid;
        assert!(messages.iter().all(|m| m.uid < uid), "UIDs keep increasing");
        let messages = check(&store);
        let snapshot = store.mail.snapshot();
        store.log.close().await;
        let (store, _) = ShardStore::open(&data, 0).await.expect("reopen");
        assert_eq!(store.mail.snapshot(), snapshot);
        for m in &messages {
            store.mail.body(&m.blob).await.expect("body");
        }
        store.log.close().await;
    })
    .expect("executor");
}

//! The segment log on a real executor and real files: concurrent appends
//! group-committed, reopen and replay, segment rotation, torn and corrupt
//! tails.

use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::log::{Location, LogConfig, SegmentLog};

fn payload(i: u32) -> Vec<u8> {
    format!("message {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

/// Opens the log and collects every replayed record as (seq, kind, payload).
async fn open(
    dir: &Path,
    config: LogConfig,
) -> (
    SegmentLog,
    Vec<(u64, u8, Vec<u8>)>,
    cairn_storage::log::RecoveryReport,
) {
    let mut seen = Vec::new();
    let (log, report) = SegmentLog::open(dir, config, |r| {
        seen.push((r.location.seq, r.kind, r.payload.to_vec()))
    })
    .await
    .expect("open log");
    (log, seen, report)
}

async fn append_many(log: &SegmentLog, n: u32) -> Vec<Location> {
    let futures: Vec<_> = (0..n).map(|i| log.append(1, &payload(i))).collect();
    let mut locations = Vec::new();
    for f in futures {
        locations.push(f.await.expect("append"));
    }
    locations
}

#[test]
fn concurrent_appends_share_commits_and_survive_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    block_on(async {
        let (log, seen, _) = open(&dir, LogConfig::default()).await;
        assert!(seen.is_empty());
        let locations = append_many(&log, 300).await;
        let stats = log.stats();
        assert_eq!(stats.records, 300);
        assert!(stats.commits < 300, "no batching happened: {stats:?}");
        let mut seqs: Vec<u64> = locations.iter().map(|l| l.seq).collect();
        seqs.dedup();
        assert_eq!(
            seqs.len(),
            300,
            "sequence numbers are unique and increasing"
        );
        assert_eq!(
            log.read(locations[123]).await.expect("read back"),
            payload(123)
        );
        log.close().await;

        let (log, seen, report) = open(&dir, LogConfig::default()).await;
        assert_eq!(report.records, 300);
        assert!(
            report.damaged.is_empty() && report.torn_tail.is_none(),
            "{report:?}"
        );
        for (i, (seq, kind, bytes)) in seen.iter().enumerate() {
            assert_eq!((*seq, *kind), (i as u64 + 1, 1));
            assert_eq!(bytes, &payload(i as u32));
        }
        // Appending continues after the replayed sequence.
        let next = log.append(2, b"after reopen").await.expect("append");
        assert_eq!(next.seq, 301);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn segments_rotate_and_replay_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let config = LogConfig {
        segment_bytes: 8 * 1024,
        max_batch_bytes: 4 * 1024,
        ..LogConfig::default()
    };
    block_on(async {
        let (log, _, _) = open(&dir, config.clone()).await;
        let locations = append_many(&log, 400).await;
        assert!(
            locations.last().expect("some").segment >= 2,
            "no rotation happened"
        );
        log.close().await;
        let (log, seen, report) = open(&dir, config.clone()).await;
        assert!(report.segments >= 3, "{report:?}");
        let seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
        log.close().await;
    })
    .expect("executor");
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_survives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    block_on(async {
        let (log, _, _) = open(&dir, LogConfig::default()).await;
        let locations = append_many(&log, 50).await;
        log.close().await;
        // Cut the file in the middle of the last record.
        let last = locations[49];
        let seg = last_segment(&dir);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open seg");
        f.set_len(last.offset + 10).expect("truncate");
        drop(f);

        let (log, seen, report) = open(&dir, LogConfig::default()).await;
        assert_eq!(seen.len(), 49);
        let (file, offset, _, _) = report.torn_tail.clone().expect("torn tail reported");
        assert_eq!((file, offset), (seg.clone(), last.offset));
        let again = log.append(1, b"new").await.expect("append after recovery");
        log.close().await;
        let (log, seen, report) = open(&dir, LogConfig::default()).await;
        assert!(report.torn_tail.is_none(), "{report:?}");
        assert_eq!(seen.len(), 50);
        assert_eq!(
            seen.last().map(|s| (s.0, s.2.clone())),
            Some((again.seq, b"new".to_vec()))
        );
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_corrupt_record_is_reported_with_file_and_offset_and_the_rest_survives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    block_on(async {
        let (log, _, _) = open(&dir, LogConfig::default()).await;
        let locations = append_many(&log, 20).await;
        log.close().await;
        let victim = locations[7];
        let seg = last_segment(&dir);
        let mut bytes = std::fs::read(&seg).expect("read seg");
        bytes[victim.offset as usize + 25] ^= 0x5a;
        std::fs::write(&seg, &bytes).expect("write seg");

        let (log, seen, report) = open(&dir, LogConfig::default()).await;
        assert_eq!(seen.len(), 19);
        assert!(!seen.iter().any(|s| s.0 == victim.seq));
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(
            (report.damaged[0].0.clone(), report.damaged[0].1),
            (seg, victim.offset)
        );
        assert!(report.damaged[0].2.contains("checksum"), "{report:?}");
        let err = log.read(victim).await.expect_err("corrupt read");
        assert!(err.to_string().contains("corrupt record"), "{err}");
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn oversized_records_are_refused_with_a_typed_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 8192,
        max_batch_bytes: 8192,
        ..LogConfig::default()
    };
    block_on(async {
        let (log, _, _) = open(tmp.path(), config).await;
        let err = log
            .append(1, &vec![7u8; 9000])
            .await
            .expect_err("too large");
        assert!(
            matches!(
                err,
                cairn_storage::log::LogError::TooLarge { len: 9000, .. }
            ),
            "{err:?}"
        );
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_log_under_a_relative_path_opens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = std::env::current_dir().expect("cwd");
    let relative = tmp
        .path()
        .strip_prefix("/")
        .map(|p| {
            let mut up = std::path::PathBuf::new();
            for _ in cwd.components().skip(1) {
                up.push("..");
            }
            up.join(p).join("log")
        })
        .expect("absolute temp dir");
    assert!(relative.is_relative());
    block_on(async {
        let (log, _, _) = open(&relative, LogConfig::default()).await;
        log.append(1, b"relative").await.expect("append");
        log.close().await;
    })
    .expect("executor");
}

//! Bodies read in chunks (`MailStore::body_reader`): a large body comes in
//! several chunks equal to the whole read, ranges are cut at the body's
//! end, a corrupt byte is reported after the last chunk, and a reader open
//! while compaction moves its body (and removes the segment) reads on.

use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;

use cairn_shards::local::block_on;
use cairn_storage::log::LogConfig;
use cairn_storage::mailbox::{BodyReader, MailError, BODY_CHUNK};
use cairn_storage::shard_store::{shard_dir, ShardStore};

mod common;
use common::{add_alice, compact_all, deliver, ALICE};

const FIVE_MIB: usize = 5 * 1024 * 1024;

/// A body of `len` bytes: lines of varying text, so that no chunk repeats.
fn body(len: usize) -> Vec<u8> {
    let mut out = b"Subject: large\r\n\r\n".to_vec();
    let mut i = 0u64;
    while out.len() < len {
        let line = format!("line {i} {}\r\n", "abcdefghij".repeat((i % 7) as usize));
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A shard store whose records may hold a large body (a segment holds
/// at most one of them).
async fn open(data: &std::path::Path) -> ShardStore {
    let config = LogConfig {
        segment_bytes: 8 * 1024 * 1024,
        max_batch_bytes: 8 * 1024 * 1024,
        ..LogConfig::default()
    };
    let (store, _) = ShardStore::open_with(data, 0, config).await.expect("open");
    add_alice(&store).await;
    store
}

/// Every chunk of `reader`, and the error that ended it if any.
async fn drain(reader: &mut BodyReader) -> (Vec<Vec<u8>>, Option<MailError>) {
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        match chunk {
            Ok(chunk) => chunks.push(chunk),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

#[test]
fn a_large_body_streams_in_chunks_equal_to_the_whole_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open(tmp.path()).await;
        let original = body(FIVE_MIB);
        let blob = deliver(&store, &original).await;
        let before = store.mail.reads();
        let mut reader = store.mail.body_reader(&blob, None).await.expect("open");
        assert_eq!(reader.size(), FIVE_MIB as u64);
        let (chunks, error) = drain(&mut reader).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(chunks.len(), FIVE_MIB.div_ceil(BODY_CHUNK));
        let (last, full) = chunks.split_last().expect("chunks");
        assert!(full.iter().all(|c| c.len() == BODY_CHUNK));
        assert!(!last.is_empty() && last.len() <= BODY_CHUNK);
        assert!(reader.next_chunk().await.is_none(), "ended for good");
        let after = store.mail.reads();
        assert_eq!(after.streams, before.streams + 1);
        assert_eq!(after.bodies, before.bodies, "nothing read whole");
        let streamed = chunks.concat();
        assert!(streamed == original, "streamed bytes differ");
        let whole = store.mail.body(&blob).await.expect("whole");
        assert!(streamed == whole);
        assert_eq!(store.mail.reads().bodies, before.bodies + 1);
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn ranges_are_cut_at_the_end_of_the_body() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open(tmp.path()).await;
        let original = body(300_000);
        let len = original.len() as u64;
        let blob = deliver(&store, &original).await;
        let chunk = BODY_CHUNK as u64;
        let ranges: [Range<u64>; 8] = [
            0..10,
            1000..6000,
            chunk - 1..chunk + 1,
            5..3 * chunk + 7,
            len - 5..len + 100,
            len..len + 1,
            len + 10..len + 20,
            0..u64::MAX,
        ];
        for range in ranges {
            let mut reader = store
                .mail
                .body_reader(&blob, Some(range.clone()))
                .await
                .expect("open");
            let start = range.start.min(len) as usize;
            let end = range.end.clamp(range.start.min(len), len) as usize;
            let want = &original[start..end];
            assert_eq!(reader.size(), want.len() as u64, "{range:?}");
            let (chunks, error) = drain(&mut reader).await;
            assert!(error.is_none(), "{range:?}: {error:?}");
            assert!(chunks.iter().all(|c| c.len() <= BODY_CHUNK));
            assert!(chunks.concat() == want, "{range:?}");
        }
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_corrupt_byte_is_reported_after_the_last_chunk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open(tmp.path()).await;
        let original = body(FIVE_MIB);
        let blob = deliver(&store, &original).await;
        // A byte in the middle of the body: past the frame's header (20
        // bytes) and the stored hash (32).
        let segment = shard_dir(tmp.path(), 0)
            .join("log")
            .join(format!("{:016}.seg", blob.segment));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("segment");
        let mid = FIVE_MIB as u64 / 2;
        let at = blob.offset + 20 + 32 + mid;
        file.seek(SeekFrom::Start(at)).expect("seek");
        let flipped = original[FIVE_MIB / 2] ^ 0x20;
        file.write_all(&[flipped]).expect("write");
        file.sync_all().expect("sync");
        drop(file);
        let mut reader = store.mail.body_reader(&blob, None).await.expect("open");
        let (chunks, error) = drain(&mut reader).await;
        assert!(matches!(error, Some(MailError::Corrupt(_))), "{error:?}");
        assert_eq!(chunks.concat().len(), FIVE_MIB, "every byte came first");
        assert!(reader.next_chunk().await.is_none());
        // A range is not checked against the hash: it reads what is there.
        let mut reader = store
            .mail
            .body_reader(&blob, Some(mid..mid + 1))
            .await
            .expect("open");
        let (chunks, error) = drain(&mut reader).await;
        assert!(error.is_none());
        assert_eq!(chunks.concat(), vec![flipped]);
        // The whole read fails too (on the record's checksum).
        assert!(store.mail.body(&blob).await.is_err());
        store.log.close().await;
    })
    .expect("runtime");
}

/// Opens a reader on a large body, takes a chunk, then (with `expunge`,
/// after expunging its message) compacts every sealed segment, removing
/// the body's, and reads on.
async fn read_across_compaction(expunge: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let original = body(FIVE_MIB);
    let blob = deliver(&store, &original).await;
    // Seals the large body's segment.
    deliver(&store, &body(4 * 1024 * 1024)).await;
    assert!(blob.segment < store.log.active_segment());
    let mut reader = store.mail.body_reader(&blob, None).await.expect("open");
    let first = reader.next_chunk().await.expect("a chunk").expect("read");
    if expunge {
        let uids: Vec<u32> = store
            .mail
            .messages(ALICE, "INBOX")
            .expect("inbox")
            .iter()
            .filter(|m| m.blob.hash == blob.hash)
            .map(|m| m.uid)
            .collect();
        common::expunge(&store, &uids).await;
    }
    let report = compact_all(&store).await;
    assert!(
        report.removed.contains(&blob.segment),
        "the body's segment is gone: {report:?}"
    );
    if expunge {
        assert_eq!(report.forgotten, 1);
    } else {
        assert_eq!(report.moved, 1);
    }
    let (rest, error) = drain(&mut reader).await;
    assert!(error.is_none(), "{error:?}");
    let streamed = [vec![first], rest].concat().concat();
    assert!(streamed == original, "streamed bytes differ");
    if !expunge {
        // A reader opened now, with the old reference, finds the copy.
        let mut reader = store.mail.body_reader(&blob, None).await.expect("open");
        let (chunks, error) = drain(&mut reader).await;
        assert!(error.is_none(), "{error:?}");
        assert!(chunks.concat() == original);
    }
    store.log.close().await;
}

#[test]
fn a_reader_reads_on_while_compaction_moves_its_body() {
    block_on(read_across_compaction(false)).expect("runtime");
}

#[test]
fn a_reader_reads_on_while_compaction_forgets_its_expunged_body() {
    block_on(read_across_compaction(true)).expect("runtime");
}

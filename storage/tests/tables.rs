//! Typed tables on a real log and a real executor: round trips, atomic
//! conditional batches, ordered scans and paging, replay after reopen,
//! concurrent claims sharing group commits, limits, corrupt records, a full
//! disk (on a small tmpfs; needs root, skipped otherwise), and property
//! tests against a plain `BTreeMap` model.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::kinds;
use cairn_storage::log::{LogConfig, LogError, SegmentLog};
use cairn_storage::table::{
    Table, TableData, TableError, TableKey, Tables, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    name: String,
    quota: u64,
}

struct Accounts;
impl Table for Accounts {
    const NAME: &'static str = "accounts";
    type Key = String;
    type Value = Account;
}

struct Aliases;
impl Table for Aliases {
    const NAME: &'static str = "aliases";
    type Key = String;
    type Value = String;
}

/// (account, message id) → size.
struct Queue;
impl Table for Queue {
    const NAME: &'static str = "queue";
    type Key = (String, u64);
    type Value = u32;
}

/// The property test's table.
struct Model;
impl Table for Model {
    const NAME: &'static str = "model";
    type Key = (u32, String);
    type Value = Vec<u8>;
}

/// Opens the log in `dir` and the tables recovered from it, with the
/// replay errors met.
async fn open_with(dir: &Path, config: LogConfig) -> (Tables, SegmentLog, Vec<TableError>) {
    let mut data = TableData::new();
    let mut errors = Vec::new();
    let (log, _) = SegmentLog::open(dir, config, |r| {
        if r.kind == kinds::TABLE_BATCH {
            if let Err(e) = data.replay(r.payload) {
                errors.push(e);
            }
        }
    })
    .await
    .expect("open log");
    (Tables::new(log.clone(), data), log, errors)
}

async fn open(dir: &Path) -> (Tables, SegmentLog) {
    let (tables, log, errors) = open_with(dir, LogConfig::default()).await;
    assert!(errors.is_empty(), "{errors:?}");
    (tables, log)
}

fn account(name: &str, quota: u64) -> Account {
    Account {
        name: name.into(),
        quota,
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn put_get_delete_round_trip_across_two_tables_with_the_same_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let key = s("alice@example.org");
        assert_eq!(tables.get::<Accounts>(&key).expect("get"), None);
        let mut b = tables.batch();
        b.put::<Accounts>(&key, &account("Alice", 10))
            .put::<Aliases>(&key, &s("alice"));
        tables.commit(b).await.expect("commit");
        assert_eq!(
            tables.get::<Accounts>(&key).expect("get"),
            Some(account("Alice", 10))
        );
        assert_eq!(tables.get::<Aliases>(&key).expect("get"), Some(s("alice")));
        assert_eq!((tables.len::<Accounts>(), tables.len::<Aliases>()), (1, 1));

        let mut b = tables.batch();
        b.delete::<Aliases>(&key);
        tables.commit(b).await.expect("commit");
        assert!(tables.contains::<Accounts>(&key));
        assert!(!tables.contains::<Aliases>(&key));
        assert!(tables.is_empty::<Aliases>());
        assert_eq!(log.stats().records, 2);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_batch_whose_second_condition_fails_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let mut b = tables.batch();
        b.put::<Accounts>(&s("bob"), &account("Bob", 1));
        tables.commit(b).await.expect("commit");

        let mut b = tables.batch();
        b.put::<Accounts>(&s("carol"), &account("Carol", 2))
            .put::<Aliases>(&s("c"), &s("carol"))
            .delete::<Accounts>(&s("bob"))
            .require_present::<Accounts>(&s("bob"))
            .require_present::<Aliases>(&s("nobody"));
        let err = tables.commit(b).await.expect_err("condition fails");
        match err {
            TableError::Conflict { table, key } => {
                assert_eq!((table, key), ("aliases", s("nobody").to_bytes()))
            }
            other => panic!("{other:?}"),
        }
        assert!(tables.contains::<Accounts>(&s("bob")));
        assert!(!tables.contains::<Accounts>(&s("carol")));
        assert!(tables.is_empty::<Aliases>());
        assert_eq!(log.stats().records, 1, "nothing appended");
        log.close().await;
        // Nor does anything of it replay.
        let (tables, log) = open(tmp.path()).await;
        assert_eq!((tables.len::<Accounts>(), tables.len::<Aliases>()), (1, 0));
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn require_absent_refuses_a_duplicate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let claim = |quota| {
            let mut b = tables.batch();
            b.require_absent::<Accounts>(&s("dup@example.org"))
                .put::<Accounts>(&s("dup@example.org"), &account("Dup", quota));
            b
        };
        tables.commit(claim(1)).await.expect("first claim");
        let err = tables.commit(claim(2)).await.expect_err("duplicate");
        assert!(
            matches!(
                err,
                TableError::Conflict {
                    table: "accounts",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("dup@example.org"), "{err}");
        assert_eq!(
            tables.get::<Accounts>(&s("dup@example.org")).expect("get"),
            Some(account("Dup", 1))
        );
        // A batch of conditions only checks and writes nothing.
        let mut b = tables.batch();
        b.require_present::<Accounts>(&s("dup@example.org"));
        tables.commit(b).await.expect("condition holds");
        tables.commit(tables.batch()).await.expect("empty batch");
        assert_eq!(log.stats().records, 1);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn scans_page_in_key_order_and_prefix_scans_keep_to_their_prefix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let owners = ["a", "ab", "b", "a\0", ""];
        let mut b = tables.batch();
        for owner in owners {
            for id in [300u64, 2, 10, u64::MAX] {
                b.put::<Queue>(&(s(owner), id), &(id as u32));
            }
        }
        tables.commit(b).await.expect("commit");
        let mut expected: Vec<(String, u64)> = owners
            .iter()
            .flat_map(|o| [2u64, 10, 300, u64::MAX].map(|id| (s(o), id)))
            .collect();
        expected.sort();

        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = tables.scan::<Queue>(after.as_ref(), 3).expect("scan");
            assert!(page.len() <= 3);
            let Some((last, _)) = page.last().cloned() else {
                break;
            };
            paged.extend(page.into_iter().map(|(k, v)| {
                assert_eq!(v, k.1 as u32);
                k
            }));
            after = Some(last);
        }
        assert_eq!(paged, expected);
        assert_eq!(tables.len::<Queue>(), 20);

        let a: Vec<_> = tables
            .scan_prefix::<Queue, _>(&s("a"), None, 100)
            .expect("prefix")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(a, [2, 10, 300, u64::MAX].map(|id| (s("a"), id)));
        let page = tables
            .scan_prefix::<Queue, _>(&s("a"), Some(&(s("a"), 10)), 2)
            .expect("prefix page");
        assert_eq!(
            page.into_iter().map(|(k, _)| k.1).collect::<Vec<_>>(),
            [300, u64::MAX]
        );
        // A cursor before the prefix starts at the prefix; one past it ends.
        let from_before = tables
            .scan_prefix::<Queue, _>(&s("ab"), Some(&(s("a"), 2)), 1)
            .expect("prefix");
        assert_eq!(from_before.first().map(|e| e.0.clone()), Some((s("ab"), 2)));
        assert!(tables
            .scan_prefix::<Queue, _>(&s("ab"), Some(&(s("b"), 0)), 10)
            .expect("prefix")
            .is_empty());
        assert!(tables
            .scan_prefix::<Queue, _>(&s("zz"), None, 10)
            .expect("prefix")
            .is_empty());
        log.close().await;
    })
    .expect("executor");
}

type Snapshot = (
    Vec<(String, Account)>,
    Vec<(String, String)>,
    Vec<((String, u64), u32)>,
);

fn snapshot(tables: &Tables) -> Snapshot {
    (
        tables.scan::<Accounts>(None, usize::MAX).expect("scan"),
        tables.scan::<Aliases>(None, usize::MAX).expect("scan"),
        tables.scan::<Queue>(None, usize::MAX).expect("scan"),
    )
}

#[test]
fn reopening_replays_identical_contents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        for i in 0..40u64 {
            let mut b = tables.batch();
            b.put::<Accounts>(&format!("user{i}"), &account("U", i))
                .put::<Queue>(&(format!("user{}", i % 5), i), &(i as u32));
            if i % 3 == 0 {
                b.put::<Aliases>(&format!("alias{i}"), &format!("user{i}"));
            }
            if i % 4 == 0 && i > 0 {
                b.delete::<Accounts>(&format!("user{}", i - 1))
                    .delete::<Aliases>(&format!("alias{}", i - 3));
            }
            tables.commit(b).await.expect("commit");
        }
        let before = snapshot(&tables);
        assert!(!before.0.is_empty() && !before.1.is_empty() && !before.2.is_empty());
        log.close().await;

        let (tables, log) = open(tmp.path()).await;
        assert_eq!(snapshot(&tables), before);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn fifty_tasks_claiming_one_key_one_wins() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                let tables = tables.clone();
                cairn_shards::spawn(async move {
                    let mut b = tables.batch();
                    b.require_absent::<Accounts>(&s("taken"))
                        .put::<Accounts>(&s("taken"), &account("T", i));
                    (i, tables.commit(b).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await {
                (i, Ok(())) => winners.push(i),
                (
                    _,
                    Err(TableError::Conflict {
                        table: "accounts", ..
                    }),
                ) => {}
                (_, Err(e)) => panic!("{e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(
            tables.get::<Accounts>(&s("taken")).expect("get"),
            Some(account("T", winners[0]))
        );
        assert_eq!(log.stats().records, 1);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn fifty_tasks_claiming_distinct_keys_all_win_and_share_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                let tables = tables.clone();
                cairn_shards::spawn(async move {
                    let mut b = tables.batch();
                    b.require_absent::<Accounts>(&format!("u{i}"))
                        .put::<Accounts>(&format!("u{i}"), &account("U", i))
                        .put::<Queue>(&(s("shared-owner"), i), &1);
                    tables.commit(b).await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("every claim wins");
        }
        let stats = log.stats();
        assert_eq!(stats.records, 50);
        assert!(stats.commits < 50, "no group commit: {stats:?}");
        assert_eq!((tables.len::<Accounts>(), tables.len::<Queue>()), (50, 50));
        log.close().await;
        let (tables, log) = open(tmp.path()).await;
        assert_eq!((tables.len::<Accounts>(), tables.len::<Queue>()), (50, 50));
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn oversized_keys_values_and_batches_are_refused_and_write_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        max_batch_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    block_on(async {
        let (tables, log, _) = open_with(tmp.path(), config).await;
        let mut b = tables.batch();
        b.put::<Aliases>(&s("ok"), &s("fine"))
            .put::<Aliases>(&"k".repeat(MAX_KEY_BYTES), &s("v"));
        let err = tables.commit(b).await.expect_err("key too large");
        assert!(
            matches!(
                err,
                TableError::KeyTooLarge {
                    table: "aliases",
                    ..
                }
            ),
            "{err:?}"
        );

        let mut b = tables.batch();
        b.put::<Aliases>(&s("big"), &"v".repeat(MAX_VALUE_BYTES));
        let err = tables.commit(b).await.expect_err("value too large");
        assert!(matches!(err, TableError::ValueTooLarge { .. }), "{err:?}");

        let mut b = tables.batch();
        for i in 0..10 {
            b.put::<Aliases>(&format!("k{i}"), &"v".repeat(10_000));
        }
        let err = tables.commit(b).await.expect_err("batch too large");
        assert!(
            matches!(err, TableError::Log(LogError::TooLarge { .. })),
            "{err:?}"
        );
        assert!(tables.is_empty::<Aliases>());
        assert_eq!(log.stats().records, 0);
        // The keys of a refused batch are free again.
        let mut b = tables.batch();
        b.put::<Aliases>(&s("k0"), &s("small"));
        tables.commit(b).await.expect("commit");
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn an_undecodable_record_is_a_typed_error_and_the_rest_replays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (tables, log) = open(tmp.path()).await;
        let mut b = tables.batch();
        b.put::<Aliases>(&s("before"), &s("x"));
        tables.commit(b).await.expect("commit");
        log.append(kinds::TABLE_BATCH, b"\x01\xff\xff garbage")
            .await
            .expect("append garbage");
        // A well-formed record whose value is not an Account.
        let mut b = tables.batch();
        b.put::<Aliases>(&s("wrong-type"), &s(""));
        tables.commit(b).await.expect("commit");
        let mut b = tables.batch();
        b.put::<Aliases>(&s("after"), &s("y"));
        tables.commit(b).await.expect("commit");
        log.close().await;

        let (tables, log, errors) = open_with(tmp.path(), LogConfig::default()).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(matches!(errors[0], TableError::Corrupt(_)), "{errors:?}");
        assert_eq!(tables.len::<Aliases>(), 3);
        assert_eq!(
            tables.get::<Aliases>(&s("after")).expect("get"),
            Some(s("y"))
        );

        // Reading the same bytes as another table's value is an error, not
        // a panic.
        struct Misread;
        impl Table for Misread {
            const NAME: &'static str = "aliases";
            type Key = String;
            type Value = Account;
        }
        let err = tables
            .get::<Misread>(&s("wrong-type"))
            .expect_err("not an account");
        assert!(matches!(err, TableError::Corrupt(_)), "{err:?}");
        assert!(tables.scan::<Misread>(None, 10).is_err());
        log.close().await;
    })
    .expect("executor");
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the executor may still be closing its last descriptors.
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_fails_the_commit_with_disk_full_and_shows_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(tmp.path())
        .status()
        .expect("run mount");
    assert!(status.success(), "could not mount a tmpfs");
    let _mount = Mount(tmp.path().to_path_buf());
    let dir = tmp.path().join("log");
    block_on(async {
        let (tables, log) = open(&dir).await;
        let mut acked = Vec::new();
        let failure = loop {
            let key = format!("k{}", acked.len());
            let value = "v".repeat(8000);
            let mut b = tables.batch();
            b.require_absent::<Aliases>(&key)
                .put::<Aliases>(&key, &value);
            match tables.commit(b).await {
                Ok(()) => acked.push((key, value)),
                Err(e) => break (key, e),
            }
            assert!(acked.len() < 1000, "the disk never filled up");
        };
        let (lost, err) = failure;
        assert!(
            matches!(err, TableError::Log(LogError::DiskFull(_))),
            "{err:?}"
        );
        assert!(!tables.contains::<Aliases>(&lost));
        // Its key is not left claimed: the retry fails the same way.
        let mut b = tables.batch();
        b.put::<Aliases>(&lost, &"w".repeat(8000));
        let again = tables.commit(b).await;
        assert!(
            matches!(again, Err(TableError::Log(LogError::DiskFull(_)))),
            "{again:?}"
        );
        assert_eq!(
            tables
                .scan::<Aliases>(None, usize::MAX)
                .expect("scan")
                .len(),
            acked.len()
        );
        log.close().await;
        let (tables, log) = open(&dir).await;
        let mut expected = acked;
        expected.sort();
        assert_eq!(
            tables.scan::<Aliases>(None, usize::MAX).expect("scan"),
            expected
        );
        log.close().await;
    })
    .expect("executor");
}

#[derive(Debug, Clone)]
enum Op {
    Put(u32, String, Vec<u8>),
    Delete(u32, String),
    RequireAbsent(u32, String),
    RequirePresent(u32, String),
}

fn op() -> impl Strategy<Value = Op> {
    let key = (0u32..4, "[ab\\x00]{0,3}");
    prop_oneof![
        4 => (key.clone(), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|((a, b), v)| Op::Put(a, b, v)),
        2 => key.clone().prop_map(|(a, b)| Op::Delete(a, b)),
        1 => key.clone().prop_map(|(a, b)| Op::RequireAbsent(a, b)),
        1 => key.prop_map(|(a, b)| Op::RequirePresent(a, b)),
    ]
}

type Reference = BTreeMap<(u32, String), Vec<u8>>;

/// What the batch does to the model: `None` if a condition fails.
fn model_commit(model: &Reference, ops: &[Op]) -> Option<Reference> {
    let holds = ops.iter().all(|op| match op {
        Op::RequireAbsent(a, b) => !model.contains_key(&(*a, b.clone())),
        Op::RequirePresent(a, b) => model.contains_key(&(*a, b.clone())),
        _ => true,
    });
    if !holds {
        return None;
    }
    let mut next = model.clone();
    for op in ops {
        match op {
            Op::Put(a, b, v) => {
                next.insert((*a, b.clone()), v.clone());
            }
            Op::Delete(a, b) => {
                next.remove(&(*a, b.clone()));
            }
            _ => {}
        }
    }
    Some(next)
}

fn contents(tables: &Tables) -> Vec<((u32, String), Vec<u8>)> {
    tables.scan::<Model>(None, usize::MAX).expect("scan")
}

fn flat(model: &Reference) -> Vec<((u32, String), Vec<u8>)> {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn batches_match_a_btreemap_model_and_survive_reopen(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 1..12)
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        block_on(async {
            let (tables, log) = open(tmp.path()).await;
            let mut model = Reference::new();
            for ops in &batches {
                let mut b = tables.batch();
                for op in ops {
                    match op {
                        Op::Put(a, k, v) => b.put::<Model>(&(*a, k.clone()), v),
                        Op::Delete(a, k) => b.delete::<Model>(&(*a, k.clone())),
                        Op::RequireAbsent(a, k) => b.require_absent::<Model>(&(*a, k.clone())),
                        Op::RequirePresent(a, k) => b.require_present::<Model>(&(*a, k.clone())),
                    };
                }
                let result = tables.commit(b).await;
                match model_commit(&model, ops) {
                    Some(next) => {
                        assert!(result.is_ok(), "{result:?}");
                        model = next;
                    }
                    None => assert!(matches!(result, Err(TableError::Conflict { .. })), "{result:?}"),
                }
                assert_eq!(contents(&tables), flat(&model));
                assert_eq!(tables.len::<Model>(), model.len());
            }
            log.close().await;
            let (tables, log) = open(tmp.path()).await;
            assert_eq!(contents(&tables), flat(&model));
            log.close().await;
        })
        .expect("executor");
    }

    #[test]
    fn string_key_bytes_order_as_strings(a in "[a\\x00\\x01\\xff\u{e9}]{0,6}", b in "[a\\x00\\x01\\xff\u{e9}]{0,6}") {
        prop_assert_eq!(a.to_bytes().cmp(&b.to_bytes()), a.cmp(&b));
        prop_assert_eq!(String::decode(&a.to_bytes()), Some(a));
    }

    #[test]
    fn integer_key_bytes_order_as_integers(a: u64, b: u64, c: u32, d: u32) {
        prop_assert_eq!(a.to_bytes().cmp(&b.to_bytes()), a.cmp(&b));
        prop_assert_eq!(c.to_bytes().cmp(&d.to_bytes()), c.cmp(&d));
        prop_assert_eq!(u64::decode(&a.to_bytes()), Some(a));
        prop_assert_eq!(u32::decode(&c.to_bytes()), Some(c));
    }

    #[test]
    fn tuple_key_bytes_order_as_tuples(
        a in ("[ab\\x00]{0,3}", "[ab\\x00]{0,3}"),
        b in ("[ab\\x00]{0,3}", "[ab\\x00]{0,3}"),
        c in ("[ab]{0,2}", any::<u64>()),
        d in ("[ab]{0,2}", any::<u64>()),
        e in (any::<u32>(), ("[ab]{0,2}", any::<u64>())),
        f in (any::<u32>(), ("[ab]{0,2}", any::<u64>())),
    ) {
        prop_assert_eq!(a.to_bytes().cmp(&b.to_bytes()), a.cmp(&b));
        prop_assert_eq!(c.to_bytes().cmp(&d.to_bytes()), c.cmp(&d));
        prop_assert_eq!(e.to_bytes().cmp(&f.to_bytes()), e.cmp(&f));
        prop_assert_eq!(<(String, String)>::decode(&a.to_bytes()), Some(a));
        prop_assert_eq!(<(u32, (String, u64))>::decode(&e.to_bytes()), Some(e));
    }
}

//! Crash consistency of compaction: a child process delivers, expunges and
//! compacts in a loop, reporting each acknowledged delivery and each
//! expunge before and after it; the parent SIGKILLs it at random moments
//! and, after each round, reopens the store and checks that every
//! acknowledged message not (possibly) expunged is there with its exact
//! body, and that no message confirmed expunged came back. The child is
//! this test binary run again (CAIRN_COMPACTION_CHILD names its data
//! directory); CAIRN_COMPACTION_CRASH_ROUNDS sets the rounds (20).

mod compaction_support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use cairn_shards::local::block_on;
use cairn_storage::mailbox::{flags, FlagAction, Flags};
use cairn_storage::shard_store::CompactionConfig;
use compaction_support::open;

const SEGMENT: u64 = 32 * 1024;
const ACCOUNTS: u64 = 3;
const CHILD_ENV: &str = "CAIRN_COMPACTION_CHILD";

fn account(id: u64) -> String {
    format!("user{}@example.org", id % ACCOUNTS)
}

/// The body of delivery `id` (its id is in the X-Id header).
fn body(id: u64) -> Vec<u8> {
    let fill: String = (0..(500 + id * 53 % 2500))
        .map(|k| (b'a' + ((id + k) % 26) as u8) as char)
        .collect();
    format!("X-Id: {id}\r\nSubject: {id}\r\n\r\n{fill}\r\n").into_bytes()
}

fn id_of(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    text.strip_prefix("X-Id: ")?
        .split("\r\n")
        .next()?
        .parse()
        .ok()
}

fn pseudo_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The child: runs until killed.
async fn child(data: &Path, first_id: u64) {
    let store = open(data, SEGMENT).await;
    for a in 0..ACCOUNTS {
        let _ = store.mail.create_account(&account(a), 0, 0).await;
    }
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say("ready".into());
    let mut id = first_id;
    loop {
        // A delivery to two accounts every fifth time (one shared body).
        let mut rcpts = vec![(account(id), "INBOX".to_string())];
        if id.is_multiple_of(5) {
            rcpts.push((account(id + 1), "INBOX".to_string()));
        }
        let results = store.mail.deliver(&rcpts, &body(id), 0).await;
        if results.iter().all(Result::is_ok) {
            say(format!("ack {id}"));
        }
        if id % 7 == 6 {
            // Expunge two thirds of an account's INBOX.
            let acct = account(id / 7);
            let messages = store.mail.messages(&acct, "INBOX").unwrap_or_default();
            let doomed: Vec<_> = messages.iter().filter(|m| m.uid % 3 != 0).collect();
            let mut ids = Vec::new();
            for m in &doomed {
                if let Some(i) = store
                    .mail
                    .body(&m.blob)
                    .await
                    .ok()
                    .as_deref()
                    .and_then(id_of)
                {
                    ids.push(i);
                }
            }
            let uids: Vec<u32> = doomed.iter().map(|m| m.uid).collect();
            let list = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            say(format!("deleting {acct} {}", list(&ids)));
            let flagged = store
                .mail
                .store_flags(
                    &acct,
                    "INBOX",
                    &uids,
                    FlagAction::Add,
                    &Flags::new(flags::DELETED, &[]),
                    None,
                )
                .await;
            if flagged.is_ok()
                && store
                    .mail
                    .expunge(&acct, "INBOX", Some(&uids))
                    .await
                    .is_ok()
            {
                say(format!("deleted {acct} {}", list(&ids)));
            }
        }
        if id % 20 == 19 {
            if let Ok(r) = store
                .compact(&CompactionConfig {
                    min_dead_fraction: 0.3,
                    batch_bytes: 16 * 1024,
                })
                .await
            {
                say(format!(
                    "compacted {} {}",
                    r.removed.len(),
                    r.bytes_reclaimed
                ));
            }
        }
        id += 1;
    }
}

#[test]
fn compaction_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let first: u64 = std::env::var("CAIRN_COMPACTION_FIRST_ID")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    block_on(child(Path::new(&dir), first)).expect("executor");
}

/// Every message in the store: id → (account, count of copies), checking
/// each body is exactly the one of its id.
fn check_store(data: &Path) -> BTreeMap<(String, u64), usize> {
    block_on(async {
        let store = open(data, SEGMENT).await;
        let mut found = BTreeMap::new();
        let state = store.mail.snapshot();
        for (acct, a) in &state.accounts {
            for m in a.mailboxes.values().flat_map(|mb| mb.messages.values()) {
                let got = store
                    .mail
                    .body(&m.blob)
                    .await
                    .expect("every message's body reads back");
                let id = id_of(&got).expect("a body with an id");
                assert_eq!(got, body(id), "the body of {id} in {acct}");
                *found.entry((acct.clone(), id)).or_insert(0) += 1;
            }
        }
        store.log.close().await;
        found
    })
    .expect("executor")
}

#[test]
fn every_acknowledged_message_survives_sigkill_during_compaction() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds: u64 = std::env::var("CAIRN_COMPACTION_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("seed {seed}");
    // (account, id) acknowledged; those whose expunge began; those whose expunge ended.
    let mut acked: HashSet<(String, u64)> = HashSet::new();
    let mut maybe_gone: HashSet<(String, u64)> = HashSet::new();
    let mut gone: HashSet<(String, u64)> = HashSet::new();
    let (mut compactions, mut removed, mut reclaimed) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "compaction_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, data)
            .env("CAIRN_COMPACTION_FIRST_ID", (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Wait until the child has opened the store, then a random while.
        let ready = rx.iter().any(|l| l.ends_with("ready"));
        assert!(ready, "round {round}: the child did not start");
        let delay = Duration::from_millis(20 + pseudo_random(&mut seed) % 400);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let _ = reader.join();
        for line in rx.try_iter() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("ack"), Some(id), None) => {
                    let id: u64 = id.parse().expect("id");
                    acked.insert((account(id), id));
                    if id.is_multiple_of(5) {
                        acked.insert((account(id + 1), id));
                    }
                }
                (Some(what @ ("deleting" | "deleted")), Some(acct), ids) => {
                    for id in ids.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
                        let key = (acct.to_string(), id.parse().expect("id"));
                        if what == "deleting" {
                            maybe_gone.insert(key);
                        } else {
                            gone.insert(key);
                        }
                    }
                }
                (Some("compacted"), Some(n), Some(bytes)) => {
                    compactions += 1;
                    removed += n.parse::<u64>().unwrap_or(0);
                    reclaimed += bytes.parse::<u64>().unwrap_or(0);
                }
                _ => {}
            }
        }
        let found = check_store(data);
        let lost: Vec<_> = acked
            .iter()
            .filter(|k| !maybe_gone.contains(k) && !found.contains_key(k))
            .take(10)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged messages lost: {lost:?} (seed {seed})"
        );
        let back: Vec<_> = gone
            .iter()
            .filter(|k| found.contains_key(k))
            .take(10)
            .collect();
        assert!(
            back.is_empty(),
            "round {round}: expunged messages came back: {back:?} (seed {seed})"
        );
    }
    println!(
        "{} acknowledged deliveries, {} expunged, {compactions} compactions removing {removed} segments ({reclaimed} bytes) over {rounds} SIGKILLs",
        acked.len(),
        gone.len()
    );
    assert!(
        acked.len() as u64 > rounds,
        "the children acknowledged almost nothing"
    );
    assert!(removed > 0, "no compaction removed a segment");
}

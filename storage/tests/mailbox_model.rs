//! Random sequences of mailbox operations against a plain reference model,
//! compared after every step and again after the log is reopened and
//! replayed; plus quota, naming and delivery checks on real files.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::log::{LogConfig, SegmentLog};
use cairn_storage::mailbox::{flags, FlagAction, Flags, MailError, MailRecovery, MailStore, State};
use proptest::prelude::*;

async fn open(dir: &Path) -> (MailStore, SegmentLog) {
    let mut recovery = MailRecovery::new();
    let (log, _) = SegmentLog::open(dir, LogConfig::default(), |r| {
        recovery
            .replay(r.kind, r.location, r.payload)
            .expect("replay")
    })
    .await
    .expect("open log");
    (recovery.finish(log.clone()), log)
}

/// The reference: what an account's mail should look like, written as
/// plainly as possible.
#[derive(Debug, Default, Clone)]
struct RefMailbox {
    uidnext: u32,
    /// uid → (flags, body)
    messages: BTreeMap<u32, (Flags, Vec<u8>)>,
}

#[derive(Debug, Default, Clone)]
struct RefAccount {
    quota_bytes: u64,
    mailboxes: BTreeMap<String, RefMailbox>,
}

impl RefAccount {
    fn used(&self) -> u64 {
        self.mailboxes
            .values()
            .flat_map(|m| m.messages.values())
            .map(|(_, b)| b.len() as u64)
            .sum()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        acct: usize,
        mb: usize,
        body: usize,
        seen: bool,
    },
    /// MULTIAPPEND: all of the bodies or none.
    AppendMany {
        acct: usize,
        mb: usize,
        bodies: Vec<usize>,
        seen: bool,
    },
    Store {
        acct: usize,
        mb: usize,
        pick: usize,
        action: u8,
        flag: u8,
        kw: bool,
    },
    Expunge {
        acct: usize,
        mb: usize,
    },
    Copy {
        acct: usize,
        from: usize,
        to: usize,
        pick: usize,
        moving: bool,
    },
    Create {
        acct: usize,
        mb: usize,
    },
    Delete {
        acct: usize,
        mb: usize,
    },
}

const ACCOUNTS: [&str; 2] = ["alice@example.org", "bob@example.org"];
const MAILBOXES: [&str; 5] = ["INBOX", "Archive", "Work", "Work/2026", "Lists"];
const QUOTA: [u64; 2] = [0, 4_000];

fn body(i: usize) -> Vec<u8> {
    format!("Subject: {i}\r\n\r\n{}", "z".repeat(i * 97 % 900)).into_bytes()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let a = 0..ACCOUNTS.len();
    let m = 0..MAILBOXES.len();
    prop_oneof![
        4 => (a.clone(), m.clone(), 0..12usize, any::<bool>()).prop_map(|(acct, mb, body, seen)| Op::Append { acct, mb, body, seen }),
        2 => (a.clone(), m.clone(), proptest::collection::vec(0..12usize, 1..4), any::<bool>()).prop_map(|(acct, mb, bodies, seen)| Op::AppendMany { acct, mb, bodies, seen }),
        3 => (a.clone(), m.clone(), 0..8usize, 0..3u8, 0..3u8, any::<bool>()).prop_map(|(acct, mb, pick, action, flag, kw)| Op::Store { acct, mb, pick, action, flag, kw }),
        1 => (a.clone(), m.clone()).prop_map(|(acct, mb)| Op::Expunge { acct, mb }),
        2 => (a.clone(), m.clone(), m.clone(), 0..8usize, any::<bool>()).prop_map(|(acct, from, to, pick, moving)| Op::Copy { acct, from, to, pick, moving }),
        1 => (a.clone(), m.clone()).prop_map(|(acct, mb)| Op::Create { acct, mb }),
        1 => (a, m).prop_map(|(acct, mb)| Op::Delete { acct, mb }),
    ]
}

fn flag_of(flag: u8, kw: bool) -> Flags {
    let system = [flags::SEEN, flags::FLAGGED, flags::DELETED][flag as usize % 3];
    if kw {
        Flags::new(system, &["$Work"])
    } else {
        Flags::new(system, &[])
    }
}

/// Runs one op on both, checking that they agree on success or refusal.
async fn step(store: &MailStore, model: &mut [RefAccount], op: &Op) {
    match op {
        Op::Append {
            acct,
            mb,
            body: b,
            seen,
        } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let bytes = body(*b);
            let flags = Flags::new(if *seen { flags::SEEN } else { 0 }, &[]);
            let got = store.append(name, mbx, &bytes, flags.clone(), 0).await;
            let acc = &mut model[*acct];
            let over = acc.quota_bytes > 0 && acc.used() + bytes.len() as u64 > acc.quota_bytes;
            match (acc.mailboxes.get_mut(mbx), got) {
                (None, Err(MailError::NoSuchMailbox(_))) => {}
                (Some(_), Err(MailError::OverQuota { .. })) if over => {}
                (Some(m), Ok(d)) if !over => {
                    assert_eq!(d.uid, m.uidnext, "{op:?}");
                    m.messages.insert(m.uidnext, (flags, bytes));
                    m.uidnext += 1;
                }
                (m, got) => panic!(
                    "{op:?}: model has mailbox {} (over quota {over}), store said {got:?}",
                    m.is_some()
                ),
            }
        }
        Op::AppendMany {
            acct,
            mb,
            bodies,
            seen,
        } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let batch: Vec<(Vec<u8>, Flags)> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let seen = *seen && i % 2 == 0;
                    (
                        body(*b),
                        Flags::new(if seen { flags::SEEN } else { 0 }, &[]),
                    )
                })
                .collect();
            let request: Vec<(&[u8], Flags, i64)> = batch
                .iter()
                .map(|(b, f)| (b.as_slice(), f.clone(), 0))
                .collect();
            let got = store.append_many(name, mbx, &request).await;
            let acc = &mut model[*acct];
            let added: u64 = batch.iter().map(|(b, _)| b.len() as u64).sum();
            let over = acc.quota_bytes > 0 && acc.used() + added > acc.quota_bytes;
            match (acc.mailboxes.get_mut(mbx), got) {
                (None, Err(MailError::NoSuchMailbox(_))) => {}
                (Some(_), Err(MailError::OverQuota { .. })) if over => {}
                (Some(m), Ok(done)) if !over => {
                    let uids: Vec<u32> = done.iter().map(|d| d.uid).collect();
                    let want: Vec<u32> = (m.uidnext..).take(batch.len()).collect();
                    assert_eq!(uids, want, "{op:?}");
                    for (b, f) in batch {
                        m.messages.insert(m.uidnext, (f, b));
                        m.uidnext += 1;
                    }
                }
                (m, got) => panic!(
                    "{op:?}: model has mailbox {} (over quota {over}), store said {got:?}",
                    m.is_some()
                ),
            }
        }
        Op::Store {
            acct,
            mb,
            pick,
            action,
            flag,
            kw,
        } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let with = flag_of(*flag, *kw);
            let action =
                [FlagAction::Add, FlagAction::Remove, FlagAction::Replace][*action as usize % 3];
            let Some(m) = model[*acct].mailboxes.get_mut(mbx) else {
                assert!(store
                    .store_flags(name, mbx, &[1], action, &with, None)
                    .await
                    .is_err());
                return;
            };
            let uids: Vec<u32> = m
                .messages
                .keys()
                .copied()
                .filter(|u| (*u as usize) % 3 == pick % 3)
                .collect();
            store
                .store_flags(name, mbx, &uids, action, &with, None)
                .await
                .expect("store");
            for uid in uids {
                if let Some((f, _)) = m.messages.get_mut(&uid) {
                    *f = f.apply(action, &with);
                }
            }
        }
        Op::Expunge { acct, mb } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let got = store.expunge(name, mbx, None).await;
            match model[*acct].mailboxes.get_mut(mbx) {
                None => assert!(got.is_err()),
                Some(m) => {
                    let want: Vec<u32> = m
                        .messages
                        .iter()
                        .filter(|(_, (f, _))| f.deleted())
                        .map(|(u, _)| *u)
                        .collect();
                    m.messages.retain(|_, (f, _)| !f.deleted());
                    assert_eq!(got.expect("expunge"), want);
                }
            }
        }
        Op::Copy {
            acct,
            from,
            to,
            pick,
            moving,
        } => {
            let (name, f, t) = (ACCOUNTS[*acct], MAILBOXES[*from], MAILBOXES[*to]);
            let acc = &mut model[*acct];
            let uids: Vec<u32> = acc
                .mailboxes
                .get(f)
                .map(|m| {
                    m.messages
                        .keys()
                        .copied()
                        .filter(|u| (*u as usize) % 2 == pick % 2)
                        .collect()
                })
                .unwrap_or_default();
            let got = store.copy(name, f, t, &uids, *moving).await;
            if !acc.mailboxes.contains_key(f) || !acc.mailboxes.contains_key(t) {
                assert!(
                    matches!(got, Err(MailError::NoSuchMailbox(_))),
                    "{op:?}: {got:?}"
                );
                return;
            }
            let copied: Vec<(Flags, Vec<u8>)> = uids
                .iter()
                .filter_map(|u| acc.mailboxes[f].messages.get(u).cloned())
                .collect();
            let added: u64 = copied.iter().map(|(_, b)| b.len() as u64).sum();
            if !moving && acc.quota_bytes > 0 && acc.used() + added > acc.quota_bytes {
                assert!(
                    matches!(got, Err(MailError::OverQuota { .. })),
                    "{op:?}: {got:?}"
                );
                return;
            }
            let pairs = got.expect("copy");
            assert_eq!(pairs.len(), copied.len());
            if *moving {
                let src = acc.mailboxes.get_mut(f).expect("source");
                for u in &uids {
                    src.messages.remove(u);
                }
            }
            let dst = acc.mailboxes.get_mut(t).expect("dest");
            for ((_, new), msg) in pairs.iter().zip(copied) {
                assert_eq!(*new, dst.uidnext);
                dst.messages.insert(*new, msg);
                dst.uidnext += 1;
            }
        }
        Op::Create { acct, mb } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let got = store.create_mailbox(name, mbx, None).await;
            let acc = &mut model[*acct];
            if acc.mailboxes.contains_key(mbx) {
                assert!(
                    matches!(got, Err(MailError::MailboxExists(_))),
                    "{op:?}: {got:?}"
                );
            } else {
                got.expect("create");
                if let Some((parent, _)) = mbx.rsplit_once('/') {
                    acc.mailboxes
                        .entry(parent.to_string())
                        .or_insert(RefMailbox {
                            uidnext: 1,
                            ..Default::default()
                        });
                }
                acc.mailboxes.insert(
                    mbx.to_string(),
                    RefMailbox {
                        uidnext: 1,
                        ..Default::default()
                    },
                );
            }
        }
        Op::Delete { acct, mb } => {
            let (name, mbx) = (ACCOUNTS[*acct], MAILBOXES[*mb]);
            let got = store.delete_mailbox(name, mbx).await;
            let acc = &mut model[*acct];
            if mbx == "INBOX" {
                assert!(matches!(got, Err(MailError::Protected(_))));
            } else if acc.mailboxes.remove(mbx).is_some() {
                got.expect("delete");
            } else {
                assert!(matches!(got, Err(MailError::NoSuchMailbox(_))));
            }
        }
    }
}

async fn agree(store: &MailStore, model: &[RefAccount], after: &Op) {
    for (i, acc) in model.iter().enumerate() {
        let name = ACCOUNTS[i];
        let listed: Vec<String> = store
            .mailboxes(name)
            .expect("list")
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        let want: Vec<String> = acc.mailboxes.keys().cloned().collect();
        assert_eq!(listed, want, "mailboxes of {name} after {after:?}");
        for (mbx, m) in &acc.mailboxes {
            let got = store.messages(name, mbx).expect("messages");
            let got_view: Vec<(u32, Flags, u64)> = got
                .iter()
                .map(|x| (x.uid, x.flags.clone(), x.size))
                .collect();
            let want_view: Vec<(u32, Flags, u64)> = m
                .messages
                .iter()
                .map(|(u, (f, b))| (*u, f.clone(), b.len() as u64))
                .collect();
            assert_eq!(got_view, want_view, "{name}/{mbx} after {after:?}");
            let status = store.status(name, mbx).expect("status");
            assert_eq!(
                status.uidnext, m.uidnext,
                "{name}/{mbx} uidnext after {after:?}"
            );
            assert_eq!(
                status.unseen as usize,
                m.messages.values().filter(|(f, _)| !f.seen()).count()
            );
            if let (Some(first), Some((_, want_body))) = (got.first(), m.messages.values().next()) {
                assert_eq!(&store.body(&first.blob).await.expect("body"), want_body);
            }
        }
        let (used, ..) = store.quota(name).expect("quota");
        assert_eq!(used, acc.used(), "quota use of {name} after {after:?}");
    }
}

fn fresh_model() -> Vec<RefAccount> {
    QUOTA
        .iter()
        .map(|q| RefAccount {
            quota_bytes: *q,
            mailboxes: ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        RefMailbox {
                            uidnext: 1,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_reference_model_before_and_after_restart(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        block_on(async {
            let mut model = fresh_model();
            let (store, log) = open(&dir).await;
            for (name, quota) in ACCOUNTS.iter().zip(QUOTA) {
                store.create_account(name, quota, 0).await.expect("account");
            }
            for op in &ops {
                step(&store, &mut model, op).await;
                agree(&store, &model, op).await;
            }
            let before: State = store.snapshot();
            log.close().await;
            let (reopened, log) = open(&dir).await;
            assert_eq!(reopened.snapshot(), before, "replay rebuilt a different state");
            agree(&reopened, &model, &Op::Expunge { acct: 0, mb: 0 }).await;
            log.close().await;
        }).expect("executor");
    }
}

#[test]
fn one_body_for_many_recipients_and_typed_refusals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, log) = open(tmp.path()).await;
        let rcpts: Vec<(String, String)> = (0..50)
            .map(|i| (format!("user{i}@example.org"), "INBOX".to_string()))
            .collect();
        for (a, _) in &rcpts {
            store.create_account(a, 0, 0).await.expect("account");
        }
        assert!(matches!(
            store.create_account("user0@example.org", 0, 0).await,
            Err(MailError::AccountExists(_))
        ));
        let before = log.stats().bytes;
        let results = store.deliver(&rcpts, &body(7), 0).await;
        assert!(
            results.iter().all(|r| r.as_ref().map(|d| d.uid) == Ok(1)),
            "{results:?}"
        );
        assert_eq!(store.blob_count(), 1, "the body is stored once");
        let written = log.stats().bytes - before;
        assert!(
            written < 50 * body(7).len() as u64,
            "{written} bytes for 50 recipients"
        );

        store
            .set_quota("user1@example.org", 10, 0)
            .await
            .expect("quota");
        let r = store
            .append("user1@example.org", "INBOX", &body(3), Flags::default(), 0)
            .await;
        assert!(matches!(r, Err(MailError::OverQuota { .. })), "{r:?}");
        let r = store
            .append("user2@example.org", "Nope", b"x", Flags::default(), 0)
            .await;
        assert!(matches!(r, Err(MailError::NoSuchMailbox(_))), "{r:?}");
        let r = store
            .create_mailbox("user2@example.org", "bad//name", None)
            .await;
        assert!(matches!(r, Err(MailError::InvalidName { .. })), "{r:?}");
        let r = store
            .rename_mailbox("user2@example.org", "INBOX", "Old")
            .await;
        assert!(matches!(r, Err(MailError::Protected(_))), "{r:?}");

        // Rename carries children; UNCHANGEDSINCE refuses stale stores.
        store
            .create_mailbox("user2@example.org", "Work/2026", None)
            .await
            .expect("create");
        store
            .rename_mailbox("user2@example.org", "Work", "Job")
            .await
            .expect("rename");
        let names: Vec<String> = store
            .mailboxes("user2@example.org")
            .expect("list")
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert!(
            names.contains(&"Job/2026".to_string()) && !names.iter().any(|n| n.starts_with("Work")),
            "{names:?}"
        );
        let d = store
            .append("user2@example.org", "Job", b"hello", Flags::default(), 0)
            .await
            .expect("append");
        let first = store
            .store_flags(
                "user2@example.org",
                "Job",
                &[d.uid],
                FlagAction::Add,
                &Flags::new(flags::SEEN, &[]),
                None,
            )
            .await
            .expect("store");
        let stale = store
            .store_flags(
                "user2@example.org",
                "Job",
                &[d.uid],
                FlagAction::Add,
                &Flags::new(flags::FLAGGED, &[]),
                Some(first.modseq - 1),
            )
            .await
            .expect("store");
        assert_eq!(stale.modified_since, vec![d.uid]);
        assert!(stale.changed.is_empty());
        let changes = store
            .changes_since("user2@example.org", "Job", first.modseq - 1)
            .expect("changes");
        assert_eq!(changes.changed.len(), 1);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_caller_dropped_mid_append_never_leaves_memory_behind_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, log) = open(tmp.path()).await;
        store
            .create_account("dora@example.org", 0, 0)
            .await
            .expect("account");
        // Drop appends after 1..12 polls, with the committer running in
        // between, so that some are dropped while their operation is in
        // flight; each is followed by a normal append.
        for polls in 1..12u32 {
            let bytes = body(polls as usize + 20);
            let mut fut =
                Box::pin(store.append("dora@example.org", "INBOX", &bytes, Flags::default(), 0));
            for _ in 0..polls {
                if futures_lite::future::poll_once(&mut fut).await.is_some() {
                    break;
                }
                cairn_shards::time::sleep(std::time::Duration::from_micros(200)).await;
            }
            drop(fut);
            store
                .append(
                    "dora@example.org",
                    "INBOX",
                    &body(polls as usize + 100),
                    Flags::default(),
                    0,
                )
                .await
                .expect("the next append works");
        }
        cairn_shards::time::sleep(std::time::Duration::from_millis(20)).await;
        let before = store.snapshot();
        log.close().await;
        let (reopened, log) = open(tmp.path()).await;
        assert_eq!(reopened.snapshot(), before, "memory and log disagree");
        log.close().await;
    })
    .expect("executor");
}

/// Whether `watch` has resolved, without waiting.
fn fired(watch: &mut cairn_storage::notify::Changed) -> bool {
    futures_lite::future::block_on(futures_lite::future::poll_once(watch)).is_some()
}

#[test]
fn a_watch_wakes_at_the_next_change_of_its_account_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _log) = open(tmp.path()).await;
        for a in ["a@example.org", "b@example.org"] {
            store.create_account(a, 0, 0).await.expect("account");
        }
        let mut watch = store.watch("a@example.org");
        assert!(!fired(&mut watch), "nothing changed yet");
        store
            .append("b@example.org", "INBOX", &body(1), Flags::default(), 0)
            .await
            .expect("append to b");
        assert!(!fired(&mut watch), "a change of another account");
        store
            .deliver(&[("a@example.org".into(), "INBOX".into())], &body(2), 0)
            .await
            .into_iter()
            .for_each(|r| assert!(r.is_ok(), "{r:?}"));
        assert!(fired(&mut watch), "a delivery wakes the watch");
        let seen = store
            .read_mailbox("a@example.org", "inbox", |mb| mb.messages.len())
            .expect("read in place");
        assert_eq!(seen, 1);

        let mut watch = store.watch("a@example.org");
        store
            .store_flags(
                "a@example.org",
                "INBOX",
                &[1],
                FlagAction::Add,
                &Flags::new(flags::SEEN, &[]),
                None,
            )
            .await
            .expect("store");
        assert!(fired(&mut watch), "a flag change wakes the watch");
    })
    .expect("executor");
}

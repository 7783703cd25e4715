//! The Bayes classifiers: learning, relearning and flipping without double
//! counts, durable across reopens (from the log and from a checkpoint),
//! forgetting, classification once trained, the mailstore's copies and
//! moves teaching them, and classification across shards.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::local::block_on;
use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};

use super::tokens::token;
use super::*;
use crate::directory::lockout::Policy as Lockout;
use crate::services::{Meshes, Services};
use crate::shard_store::ShardStore;

const ALICE: &str = "alice@example.org";

async fn open(data: &Path) -> (ShardStore, bool) {
    let (store, report) = ShardStore::open(data, 0).await.expect("open the shard");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    (store, report.checkpoint.is_some())
}

async fn reopen(data: &Path, store: ShardStore) -> (ShardStore, bool) {
    store.log.close().await;
    open(data).await
}

fn blocking<T>(fut: impl Future<Output = T>) -> T {
    block_on(fut).expect("executor")
}

fn body_tokens(words: &[&str]) -> Vec<Token> {
    let mut tokens: Vec<Token> = words.iter().map(|w| token("", w)).collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

fn sample(message: u64, words: &[&str]) -> Sample {
    Sample {
        message,
        tokens: body_tokens(words),
    }
}

fn counts(store: &ShardStore, account: &str, word: &str) -> Option<Counts> {
    store
        .tables
        .get::<Tokens>(&(account.to_string(), token("", word)))
        .expect("counts read back")
}

fn trained(store: &ShardStore, account: &str) -> Trained {
    store.bayes.trained(account).expect("totals read back")
}

#[test]
fn learning_flips_instead_of_double_counting_and_survives_reopens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    blocking(async {
        let (store, _) = open(data).await;
        let pills = sample(1, &["cheap", "pills"]);
        let learned = store
            .bayes
            .learn(ALICE, Class::Spam, &[pills.clone(), pills.clone()])
            .await
            .expect("learn");
        assert_eq!((learned.added, learned.unchanged), (1, 1), "{learned:?}");
        let spam_once = Trained {
            spam: 1,
            ham: 0,
            tokens: 2,
        };
        assert_eq!(trained(&store, ALICE), spam_once);
        assert_eq!(
            counts(&store, ALICE, "cheap"),
            Some(Counts { spam: 1, ham: 0 })
        );

        // The same message again: nothing changes.
        let again = store
            .bayes
            .learn(ALICE, Class::Spam, std::slice::from_ref(&pills))
            .await;
        assert_eq!(again.expect("learn").unchanged, 1);
        assert_eq!(trained(&store, ALICE), spam_once);

        // Taken out of Junk: untrained as spam, trained as ham.
        let flipped = store
            .bayes
            .learn(ALICE, Class::Ham, std::slice::from_ref(&pills))
            .await
            .expect("learn");
        assert_eq!(flipped.flipped, 1);
        let ham_once = Trained {
            spam: 0,
            ham: 1,
            tokens: 2,
        };
        assert_eq!(trained(&store, ALICE), ham_once);
        assert_eq!(
            counts(&store, ALICE, "pills"),
            Some(Counts { spam: 0, ham: 1 })
        );

        // From the log.
        let (store, from_checkpoint) = reopen(data, store).await;
        assert!(!from_checkpoint);
        assert_eq!(trained(&store, ALICE), ham_once);
        assert_eq!(
            store.bayes.lesson(ALICE, 1).expect("lesson"),
            Some(Class::Ham)
        );

        // From a checkpoint, with more after it.
        store.checkpoint().await.expect("checkpoint");
        store
            .bayes
            .learn(ALICE, Class::Spam, &[sample(2, &["cheap", "lottery"])])
            .await
            .expect("learn");
        let (store, from_checkpoint) = reopen(data, store).await;
        assert!(from_checkpoint);
        assert_eq!(
            trained(&store, ALICE),
            Trained {
                spam: 1,
                ham: 1,
                tokens: 3,
            }
        );
        assert_eq!(
            counts(&store, ALICE, "cheap"),
            Some(Counts { spam: 1, ham: 1 })
        );

        // Flipping the second back leaves no empty token behind.
        store
            .bayes
            .learn(ALICE, Class::Ham, &[sample(2, &["cheap", "lottery"])])
            .await
            .expect("learn");
        assert_eq!(
            counts(&store, ALICE, "lottery"),
            Some(Counts { spam: 0, ham: 1 })
        );
        store
            .bayes
            .learn(ALICE, Class::Spam, &[sample(2, &["cheap", "lottery"])])
            .await
            .expect("learn");
        assert_eq!(
            counts(&store, ALICE, "cheap"),
            Some(Counts { spam: 1, ham: 1 })
        );

        // Forgotten: nothing left, after a reopen too.
        store.bayes.forget(ALICE).await.expect("forget");
        assert_eq!(trained(&store, ALICE), Trained::default());
        let (store, _) = reopen(data, store).await;
        assert_eq!(trained(&store, ALICE), Trained::default());
        assert_eq!(counts(&store, ALICE, "cheap"), None);
        assert_eq!(store.bayes.lesson(ALICE, 1).expect("lesson"), None);
        store.log.close().await;
    });
}

fn spammy(i: u64) -> Sample {
    let own = format!("offer{i}");
    sample(
        i,
        &[
            "viagra", "pharmacy", "lottery", "winner", "cheap", "prize", &own,
        ],
    )
}

fn hammy(i: u64) -> Sample {
    let own = format!("minutes{i}");
    sample(
        1000 + i,
        &[
            "meeting",
            "project",
            "agenda",
            "review",
            "quarterly",
            "budget",
            &own,
        ],
    )
}

#[test]
fn a_trained_classifier_tells_spam_from_ham() {
    let tmp = tempfile::tempdir().expect("tempdir");
    blocking(async {
        let (store, _) = open(tmp.path()).await;
        let bayes = &store.bayes;
        let policy = Policy::default();
        let spam: Vec<Sample> = (0..20).map(spammy).collect();
        let ham: Vec<Sample> = (0..19).map(hammy).collect();
        bayes.learn(ALICE, Class::Spam, &spam).await.expect("learn");
        bayes.learn(ALICE, Class::Ham, &ham).await.expect("learn");
        let offer = body_tokens(&["cheap", "pharmacy", "prize", "unseen"]);
        let agenda = body_tokens(&["project", "meeting", "agenda", "unseen"]);
        // One ham short of the minimum.
        assert_eq!(
            bayes.classify(ALICE, &offer, &policy),
            Classification::Untrained
        );
        bayes
            .learn(ALICE, Class::Ham, &[hammy(19)])
            .await
            .expect("learn");
        match bayes.classify(ALICE, &offer, &policy) {
            Classification::Spam(p) => assert!(p > 0.99, "{p}"),
            other => panic!("{other:?}"),
        }
        match bayes.classify(ALICE, &agenda, &policy) {
            Classification::Ham(p) => assert!(p < 0.01, "{p}"),
            other => panic!("{other:?}"),
        }
        // Nothing known: no evidence either way.
        let unknown = body_tokens(&["zebra", "quantum"]);
        assert_eq!(
            bayes.classify(ALICE, &unknown, &policy),
            Classification::Ham(0.5)
        );
        // A stricter policy, another account.
        let strict = Policy {
            min_messages: 21,
            ..policy
        };
        assert_eq!(
            bayes.classify(ALICE, &offer, &strict),
            Classification::Untrained
        );
        assert_eq!(
            bayes.classify("bob@example.org", &offer, &policy),
            Classification::Untrained
        );
        store.log.close().await;
    });
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: someone@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n")
        .into_bytes()
}

#[test]
fn copies_and_moves_teach_the_accounts_classifier() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    blocking(async {
        let (store, _) = open(data).await;
        let mail = &store.mail;
        mail.create_account(ALICE, 0, 0).await.expect("account");
        let inbox = [(ALICE.to_string(), "INBOX".to_string())];
        for (subject, body) in [
            ("Cheap pills", "Pharmacy discount winner"),
            ("Lottery prize", "Claim your lottery prize"),
            ("Project meeting", "The agenda for the review"),
        ] {
            let done = mail.deliver(&inbox, &message(subject, body), 1).await;
            assert!(done.iter().all(Result::is_ok), "{done:?}");
        }
        // Two into Junk: spam.
        mail.copy(ALICE, "INBOX", "Junk", &[1, 2], true)
            .await
            .expect("move");
        let t = trained(&store, ALICE);
        assert_eq!((t.spam, t.ham), (2, 0));
        assert_eq!(
            counts(&store, ALICE, "pharmacy"),
            Some(Counts { spam: 1, ham: 0 })
        );
        // One back out of Junk: it moves over to ham.
        mail.copy(ALICE, "Junk", "INBOX", &[1], true)
            .await
            .expect("move");
        let t = trained(&store, ALICE);
        assert_eq!((t.spam, t.ham), (1, 1));
        assert_eq!(
            counts(&store, ALICE, "pharmacy"),
            Some(Counts { spam: 0, ham: 1 })
        );
        // Junk to Trash says nothing.
        mail.copy(ALICE, "Junk", "Trash", &[2], true)
            .await
            .expect("move");
        assert_eq!(trained(&store, ALICE), t);
        // Filed from INBOX into Archive: ham; a second copy of the same
        // message counts once.
        mail.copy(ALICE, "INBOX", "Archive", &[3], false)
            .await
            .expect("copy");
        mail.copy(ALICE, "INBOX", "Archive", &[3], false)
            .await
            .expect("copy");
        let t = trained(&store, ALICE);
        assert_eq!((t.spam, t.ham), (1, 2));
        let (store, _) = reopen(data, store).await;
        assert_eq!(trained(&store, ALICE), t);
        // The account goes, and its counts with it.
        store.mail.delete_account(ALICE).await.expect("delete");
        assert_eq!(trained(&store, ALICE), Trained::default());
        assert_eq!(counts(&store, ALICE, "pharmacy"), None);
        store.log.close().await;
    });
}

#[test]
fn classification_reaches_the_shard_owning_each_account() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().to_path_buf();
    let meshes = Meshes::new(2);
    let ready = Arc::new(AtomicUsize::new(0));
    let config = RuntimeConfig {
        shards: 2,
        pin: false,
        blocking_threads: 1,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(&config, Shutdown::new(), move |ctx: ShardContext| {
        let (meshes, data, ready) = (meshes.clone(), data.clone(), ready.clone());
        async move {
            let (store, _) = ShardStore::open(&data, ctx.id()).await.expect("open");
            let lockout = Lockout {
                per_account: 1000,
                per_address: 1000,
                window: Duration::from_secs(60),
            };
            let services = Services::start(&ctx, &store, &meshes, lockout)
                .await
                .expect("services");
            // One account owned by each shard.
            let owned: Vec<String> = (0..2)
                .map(|shard| {
                    (0..)
                        .map(|i| format!("user{i}@example.org"))
                        .find(|a| services.mail.owner(a) == shard)
                        .unwrap_or_default()
                })
                .collect();
            // Each shard trains its own account: spam here is ham there.
            let mine = &owned[ctx.id()];
            let (spam, ham) = if ctx.id() == 0 {
                (spammy as fn(u64) -> Sample, hammy as fn(u64) -> Sample)
            } else {
                (hammy as fn(u64) -> Sample, spammy as fn(u64) -> Sample)
            };
            let spam: Vec<Sample> = (0..3).map(spam).collect();
            let ham: Vec<Sample> = (0..3).map(ham).collect();
            store
                .bayes
                .learn(mine, Class::Spam, &spam)
                .await
                .expect("learn");
            store
                .bayes
                .learn(mine, Class::Ham, &ham)
                .await
                .expect("learn");
            ready.fetch_add(1, Ordering::SeqCst);
            let mut verdicts = Vec::new();
            if ctx.id() == 0 {
                while ready.load(Ordering::SeqCst) < 2 {
                    cairn_shards::time::sleep(Duration::from_millis(5)).await;
                }
                let policy = Policy {
                    min_messages: 3,
                    ..Policy::default()
                };
                let message: Arc<[u8]> =
                    Arc::from(&b"Subject: hi\r\n\r\nviagra lottery prize\r\n"[..]);
                let accounts = vec![
                    owned[1].clone(),
                    owned[0].clone(),
                    "nobody@example.org".into(),
                ];
                verdicts = services
                    .bayes
                    .classify(&accounts, message, policy)
                    .await
                    .into_iter()
                    .map(|r| r.expect("classified").name())
                    .collect();
                ctx.shutdown().trigger();
            }
            ctx.shutdown().wait().await;
            drop(services);
            store.log.close().await;
            verdicts
        }
    })
    .expect("start");
    let verdicts = rt.join().expect("join");
    assert_eq!(verdicts[0], vec!["ham", "spam", "untrained"]);
}

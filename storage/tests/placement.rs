//! The persisted placement table: a node started with 2 shards makes
//! accounts and delivers to them; started again with 4 shards on the same
//! data directory, every account is still found with its mail (default
//! placement stays over the base count, 2), and accounts made after the
//! growth get explicit entries over all 4 shards, which a further restart
//! keeps. And moving an account between shards: everything it has
//! (mailboxes, ids, flags, history, quota, classifier) arrives intact, the
//! source is emptied, and a restart keeps the account where it went;
//! deliveries racing a move are either acknowledged and found on the
//! target, or refused with an error the sender retries.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::placement::{PlacementKey, PlacementUpdate};
use cairn_shards::{Runtime, RuntimeConfig, ShardContext, Shutdown};
use cairn_storage::directory::lockout::Policy;
use cairn_storage::directory::NewAccount;
use cairn_storage::mailbox::flags::{self, FlagAction, Flags};
use cairn_storage::mailbox::{Account, BlobRef, MailError};
use cairn_storage::service::ServiceError;
use cairn_storage::services::{Meshes, Services};
use cairn_storage::shard_store::ShardStore;

/// Runs `shards` shards with their services on `data`; `work` runs on
/// shard 0 and its output is returned once every shard has stopped, after
/// checking that every shard's replica of the placement table ended the
/// same.
fn with_node<T, F, Fut>(data: &Path, shards: usize, work: F) -> T
where
    T: Send + 'static,
    F: Fn(Services, ShardStore) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    let meshes = Meshes::new(shards);
    let config = RuntimeConfig {
        shards,
        pin: false,
        blocking_threads: 1,
        ..RuntimeConfig::default()
    };
    let data: PathBuf = data.to_path_buf();
    let rt = Runtime::start(&config, Shutdown::new(), move |ctx: ShardContext| {
        let (meshes, data, work) = (meshes.clone(), data.clone(), work.clone());
        async move {
            let (store, _) = ShardStore::open(&data, ctx.id()).await.expect("store");
            let policy = Policy {
                per_account: 1000,
                per_address: 1000,
                window: Duration::from_secs(60),
            };
            let services = Services::start(&ctx, &store, &meshes, policy)
                .await
                .expect("services");
            let out = if ctx.id() == 0 {
                let out = work(services.clone(), store.clone()).await;
                ctx.shutdown().trigger();
                Some(out)
            } else {
                None
            };
            ctx.shutdown().wait().await;
            let replica: Vec<PlacementUpdate> =
                services.placement.table().borrow().entries().collect();
            drop(services);
            store.log.close().await;
            (out, replica)
        }
    })
    .expect("runtime");
    let ended = rt.join().expect("join");
    let replicas: Vec<&Vec<PlacementUpdate>> = ended.iter().map(|(_, r)| r).collect();
    assert_eq!(replicas.len(), shards);
    assert!(replicas.iter().all(|r| *r == replicas[0]), "{replicas:?}");
    ended
        .into_iter()
        .find_map(|(out, _)| out)
        .expect("shard 0's output")
}

fn user(i: usize) -> String {
    format!("user{i}@example.org")
}

async fn add(services: &Services, accounts: &[String]) {
    let password_hash = services
        .hash_password("correct horse".into())
        .await
        .expect("hash");
    for address in accounts {
        let new = NewAccount {
            address: address.clone(),
            password_hash: password_hash.clone(),
            ..NewAccount::default()
        };
        services.add_account(new).await.expect("add account");
    }
}

/// Each account's shard and INBOX message count, routed from shard 0.
async fn census(services: &Services, accounts: &[String]) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for account in accounts {
        let status = services.mail.status(account, "INBOX").await;
        let messages = status
            .map(|s| s.messages)
            .unwrap_or_else(|e| panic!("{account} on shard {}: {e}", services.mail.owner(account)));
        out.push((services.mail.owner(account), messages));
    }
    out
}

#[test]
fn growing_the_shard_count_keeps_every_account_where_its_mail_is() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old: Vec<String> = (0..16).map(user).collect();
    let new: Vec<String> = (16..48).map(user).collect();

    let accounts = old.clone();
    let before = with_node(tmp.path(), 2, move |services, _| {
        let accounts = accounts.clone();
        async move {
            {
                let table = services.placement.table();
                let table = table.borrow();
                assert_eq!((table.shards(), table.base()), (2, 2));
            }
            services
                .directory
                .add_domain("example.org".into(), None, None)
                .await
                .expect("domain");
            add(&services, &accounts).await;
            let rcpts: Vec<(String, String)> = accounts
                .iter()
                .map(|a| (a.clone(), "INBOX".into()))
                .collect();
            let body: Arc<[u8]> = Arc::from(&b"Subject: before\r\n\r\nkept"[..]);
            for result in services.mail.deliver(&rcpts, body, 0).await {
                result.expect("deliver");
            }
            assert_eq!(
                services.placement.table().borrow().entries().count(),
                0,
                "no growth, no entries"
            );
            census(&services, &accounts).await
        }
    });
    assert!(before.iter().all(|&(shard, n)| shard < 2 && n == 1));
    assert!(before.iter().any(|&(shard, _)| shard == 1));

    let (accounts, added) = (old.clone(), new.clone());
    let (after, placed) = with_node(tmp.path(), 4, move |services, _| {
        let (accounts, added) = (accounts.clone(), added.clone());
        async move {
            {
                let table = services.placement.table();
                let table = table.borrow();
                assert_eq!((table.shards(), table.base()), (4, 2), "the base is kept");
            }
            let after = census(&services, &accounts).await;
            add(&services, &added).await;
            let placed = census(&services, &added).await;
            // Every replica has the new entries.
            let table = services.placement.table();
            let entries = table.borrow().entries().count();
            assert_eq!(entries, added.len());
            (after, placed)
        }
    });
    assert_eq!(after, before, "every old account is where its mail is");
    assert!(placed.iter().all(|&(_, n)| n == 0));
    assert!(
        placed.iter().any(|&(shard, _)| shard >= 2),
        "new accounts use the new shards: {placed:?}"
    );

    let (accounts, added) = (old, new);
    let (again, placed_again) = with_node(tmp.path(), 4, move |services, _| {
        let (accounts, added) = (accounts.clone(), added.clone());
        async move {
            let keys: Vec<PlacementKey> = added.iter().map(PlacementKey::account).collect();
            let table = services.placement.table();
            assert!(keys
                .iter()
                .all(|k| table.borrow().entries().any(|e| &e.key == k)));
            (
                census(&services, &accounts).await,
                census(&services, &added).await,
            )
        }
    });
    assert_eq!(again, before);
    assert_eq!(placed_again, placed, "explicit entries survive a restart");
}

/// `account` with its bodies named by content hash only (their place in
/// the log differs from shard to shard).
fn by_content(mut account: Account) -> Account {
    for mailbox in account.mailboxes.values_mut() {
        for message in mailbox.messages.values_mut() {
            message.blob = BlobRef::pending(message.blob.hash);
        }
    }
    account
}

fn mail_of(store: &ShardStore, account: &str) -> Option<Account> {
    store
        .mail
        .snapshot()
        .accounts
        .get(account)
        .cloned()
        .map(by_content)
}

/// Gives shard 0's `account` some history: mailboxes made, deleted and
/// unsubscribed, messages with flags and keywords, flag changes, an
/// expunge, a copy into Junk (which teaches the classifier), a quota.
async fn give_history(store: &ShardStore, account: &str) {
    let mail = &store.mail;
    for i in 0..4i64 {
        let body = format!("Subject: message {i}\r\n\r\nbody {i} cheap pills");
        let flags = Flags::new(flags::FLAGGED, &["$Label1"]);
        mail.append(account, "INBOX", body.as_bytes(), flags, 1_700_000_000 + i)
            .await
            .expect("append");
    }
    let seen = Flags::new(flags::SEEN, &[]);
    mail.store_flags(account, "INBOX", &[1], FlagAction::Add, &seen, None)
        .await
        .expect("store");
    let deleted = Flags::new(flags::DELETED, &[]);
    mail.store_flags(account, "INBOX", &[2, 4], FlagAction::Add, &deleted, None)
        .await
        .expect("store");
    mail.expunge(account, "INBOX", None).await.expect("expunge");
    mail.copy(account, "INBOX", "Junk", &[3], false)
        .await
        .expect("copy");
    mail.create_mailbox(account, "Projects/2026", None)
        .await
        .expect("create");
    mail.copy(account, "INBOX", "Projects/2026", &[1, 3], true)
        .await
        .expect("move");
    mail.subscribe(account, "Archive", false)
        .await
        .expect("unsubscribe");
    mail.delete_mailbox(account, "Drafts")
        .await
        .expect("delete");
    mail.set_quota(account, 1 << 20, 100).await.expect("quota");
}

#[test]
fn moving_an_account_carries_everything_and_empties_the_source() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let moved = with_node(tmp.path(), 2, |services, store| async move {
        services
            .directory
            .add_domain("example.org".into(), None, None)
            .await
            .expect("domain");
        let account = (0..)
            .map(user)
            .find(|a| services.mail.owner(a) == 0)
            .expect("an account of shard 0");
        add(&services, std::slice::from_ref(&account)).await;
        give_history(&store, &account).await;
        let before = mail_of(&store, &account).expect("the account");
        let learned = store.bayes.export(&account).expect("export");
        assert!(learned.totals.is_some() && !learned.tokens.is_empty());
        let inbox = before.mailboxes.get("INBOX").expect("INBOX");
        assert!(!inbox.expunged.is_empty() && inbox.uidnext == 5);

        // To shard 1: the source keeps nothing, the target has it all.
        let from = services
            .placement
            .move_account(&services.mail, &account, 1)
            .await;
        assert_eq!(from.expect("move"), 0);
        assert_eq!(services.mail.owner(&account), 1);
        assert!(mail_of(&store, &account).is_none(), "the source is emptied");
        // Letting go of an account no move holds is a failed move step,
        // not damaged data.
        let stray = services.mail.thaw(&account, 0, false).await;
        assert!(
            matches!(stray, Err(ServiceError::Mail(MailError::MoveFailed(_)))),
            "{stray:?}"
        );
        assert_eq!(
            store.bayes.export(&account).expect("export"),
            Default::default()
        );
        for (name, mailbox) in &before.mailboxes {
            let status = services.mail.status(&account, name).await.expect("status");
            assert_eq!(status, mailbox.status(), "{name}");
            let messages = services
                .mail
                .messages(&account, name)
                .await
                .expect("messages");
            for (there, here) in messages.iter().zip(mailbox.messages.values()) {
                assert_eq!(BlobRef::pending(there.blob.hash), here.blob);
                assert_eq!(
                    (there.uid, there.modseq, &there.flags),
                    (here.uid, here.modseq, &here.flags)
                );
                let body = services
                    .mail
                    .body(&account, there.blob)
                    .await
                    .expect("body");
                assert!(body.starts_with(b"Subject: message "));
            }
        }
        // And back: exactly what it was, classifier included.
        let from = services
            .placement
            .move_account(&services.mail, &account, 0)
            .await;
        assert_eq!(from.expect("move back"), 1);
        assert_eq!(mail_of(&store, &account), Some(before.clone()));
        assert_eq!(store.bayes.export(&account).expect("export"), learned);
        // Moving where it is changes nothing; to no shard is refused.
        let same = services
            .placement
            .move_account(&services.mail, &account, 0)
            .await;
        assert_eq!(same.expect("no move"), 0);
        let nowhere = services
            .placement
            .move_account(&services.mail, &account, 2)
            .await;
        assert!(nowhere.is_err());
        // It ends on shard 1, for the restart.
        let from = services
            .placement
            .move_account(&services.mail, &account, 1)
            .await;
        assert_eq!(from.expect("move"), 0);
        (account, before)
    });
    let (account, before) = moved;
    let after = with_node(tmp.path(), 2, move |services, store| {
        let account = account.clone();
        async move {
            assert_eq!(
                services.mail.owner(&account),
                1,
                "the move survives a restart"
            );
            assert!(mail_of(&store, &account).is_none());
            let inbox = services
                .mail
                .status(&account, "INBOX")
                .await
                .expect("status");
            let projects = services
                .mail
                .status(&account, "Projects/2026")
                .await
                .expect("status");
            (inbox, projects)
        }
    });
    assert_eq!(
        after.0,
        before.mailboxes.get("INBOX").expect("INBOX").status()
    );
    assert_eq!(
        after.1,
        before
            .mailboxes
            .get("Projects/2026")
            .expect("mailbox")
            .status()
    );
}

#[test]
fn deliveries_during_a_move_land_on_the_target_or_fail_for_a_retry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    with_node(tmp.path(), 2, |services, _| async move {
        services
            .directory
            .add_domain("example.org".into(), None, None)
            .await
            .expect("domain");
        let account = (0..)
            .map(user)
            .find(|a| services.mail.owner(a) == 0)
            .expect("an account of shard 0");
        add(&services, std::slice::from_ref(&account)).await;
        // Deliveries one after another, before, during and after the move.
        let (mail, rcpt) = (
            services.mail.clone(),
            vec![(account.clone(), "INBOX".to_string())],
        );
        let deliveries = cairn_shards::spawn(async move {
            let (mut acknowledged, mut refused) = (0, 0);
            for i in 0..60 {
                let body: Arc<[u8]> = Arc::from(format!("Subject: {i}\r\n\r\nx").as_bytes());
                for result in mail.deliver(&rcpt, body, 0).await {
                    match result {
                        Ok(_) => acknowledged += 1,
                        // The account left the shard the delivery waited
                        // on: a temporary failure, retried by the sender.
                        Err(ServiceError::Mail(MailError::NoSuchAccount(_))) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                cairn_shards::time::sleep(Duration::from_millis(1)).await;
            }
            (acknowledged, refused)
        });
        cairn_shards::time::sleep(Duration::from_millis(5)).await;
        let moved = services
            .placement
            .move_account(&services.mail, &account, 1)
            .await;
        assert_eq!(moved.expect("move"), 0);
        let (acknowledged, refused) = deliveries.await;
        // Most land before or after it; one that meets it is refused.
        assert_eq!(acknowledged + refused, 60);
        let status = services
            .mail
            .status(&account, "INBOX")
            .await
            .expect("status");
        assert_eq!(
            status.messages, acknowledged,
            "every acknowledged message moved"
        );
    });
}

//! A shard's storage opened as a whole: mail and tables written through
//! one log come back together after a reopen.

use cairn_shards::local::block_on;
use cairn_storage::mailbox::Flags;
use cairn_storage::shard_store::{shard_dir, shards_on_disk, ShardStore};
use cairn_storage::table::Table;

struct Placement;
impl Table for Placement {
    const NAME: &'static str = "test-placement";
    type Key = String;
    type Value = u32;
}

#[test]
fn mail_and_tables_replay_from_one_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, report) = ShardStore::open(tmp.path(), 3).await.expect("open");
        assert_eq!(report.records, 0);
        store
            .mail
            .create_account("alice@example.org", 0, 0)
            .await
            .expect("account");
        let d = store
            .mail
            .append(
                "alice@example.org",
                "INBOX",
                b"Subject: hi\r\n\r\nhello",
                Flags::default(),
                7,
            )
            .await
            .expect("append");
        let mut batch = store.tables.batch();
        batch.put::<Placement>(&"alice@example.org".to_string(), &3);
        store.tables.commit(batch).await.expect("commit");
        store.log.close().await;

        assert!(shard_dir(tmp.path(), 3).join("log").is_dir());
        assert_eq!(shards_on_disk(tmp.path()), 4);
        let (store, report) = ShardStore::open(tmp.path(), 3).await.expect("reopen");
        assert_eq!(report.records, 4, "account, blob, append, table batch");
        let messages = store
            .mail
            .messages("alice@example.org", "INBOX")
            .expect("messages");
        assert_eq!(
            messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![d.uid]
        );
        assert_eq!(
            store.mail.body(&messages[0].blob).await.expect("body"),
            b"Subject: hi\r\n\r\nhello"
        );
        assert_eq!(
            store
                .tables
                .get::<Placement>(&"alice@example.org".to_string())
                .expect("get"),
            Some(3)
        );
        store.log.close().await;
    })
    .expect("executor");
}

//! Helpers shared by the shard store tests of one account's INBOX (digests,
//! streamed bodies, MULTIAPPEND): the account, a delivery to its INBOX,
//! expunging some of its messages, and a compaction of every sealed
//! segment.

use cairn_storage::mailbox::{flags, BlobRef, FlagAction, Flags};
use cairn_storage::shard_store::{CompactionConfig, CompactionReport, ShardStore};

/// The one account of these tests.
pub const ALICE: &str = "alice@example.org";

/// Creates the account ALICE (no quota) in `store`.
pub async fn add_alice(store: &ShardStore) {
    store
        .mail
        .create_account(ALICE, 0, 0)
        .await
        .expect("account");
}

/// Delivers `body` to ALICE's INBOX; returns its message's body reference.
pub async fn deliver(store: &ShardStore, body: &[u8]) -> BlobRef {
    let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
    let done = store.mail.deliver(&rcpt, body, 0).await;
    let uid = done[0].as_ref().expect("delivered").uid;
    let messages = store.mail.messages(ALICE, "INBOX").expect("inbox");
    messages
        .iter()
        .find(|m| m.uid == uid)
        .map(|m| m.blob)
        .expect("the message")
}

/// Flags ALICE's INBOX messages `uids` `\Deleted` and expunges them.
pub async fn expunge(store: &ShardStore, uids: &[u32]) {
    let deleted = Flags::new(flags::DELETED, &[]);
    store
        .mail
        .store_flags(ALICE, "INBOX", uids, FlagAction::Add, &deleted, None)
        .await
        .expect("flag");
    store
        .mail
        .expunge(ALICE, "INBOX", None)
        .await
        .expect("expunge");
}

/// Compacts every sealed segment, however little of it is dead.
pub async fn compact_all(store: &ShardStore) -> CompactionReport {
    let config = CompactionConfig {
        min_dead_fraction: 0.0,
        ..CompactionConfig::default()
    };
    store.compact(&config).await.expect("compact")
}

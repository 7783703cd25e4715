//! The record kinds of a shard's segment log: every component that persists
//! through the log owns one kind, and recovery hands each record to the
//! component that owns its kind.

/// A batch of typed key-value table changes (`table`).
pub const TABLE_BATCH: u8 = 2;
/// A message body stored once per shard (`mailbox::blobs`).
pub const BLOB: u8 = 3;
/// A mailbox operation (`mailbox`).
pub const MAILBOX_OP: u8 = 4;
/// A body's digest (`mailbox::digests`), appended after its body once made
/// (off the shard).
pub const BLOB_DIGEST: u8 = 5;

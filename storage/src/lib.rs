//! `cairn-storage`: the data model and its persistence.
//!
//! Each shard persists everything it owns through one segment log
//! ([`log`]): records framed by [`record`], group-committed, replayed at
//! start into the mailstore ([`mailbox`]) and the typed tables ([`table`]);
//! [`shard_store`] opens them together. [`DataDir`] is the appliance's data
//! directory, locked so that two appliances never share one.

/// Takes the expected variant out of a cross-shard reply (`Enum::Variant`
/// holding a `Result`), or fails with `mismatch`: shared by the services
/// that route calls to another shard.
macro_rules! expect_reply {
    ($reply:expr, $reply_enum:ident::$variant:ident, $mismatch:expr) => {
        match $reply {
            $reply_enum::$variant(r) => Ok(r?),
            _ => Err($mismatch),
        }
    };
}

pub mod bayes;
pub mod checkpoint;
pub mod data_dir;
pub mod directory;
pub mod kinds;
pub mod log;
pub mod mailbox;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod record;
pub mod service;
pub mod services;
pub mod shard_store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use data_dir::{DataDir, DataDirError};

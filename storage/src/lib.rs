//! `cairn-storage`: the data model and its persistence.
//!
//! Each shard persists everything it owns through one segment log
//! ([`log`]): records framed by [`record`], group-committed, replayed at
//! start into the mailstore ([`mailbox`]) and the typed tables ([`table`]);
//! [`shard_store`] opens them together. [`DataDir`] is the appliance's data
//! directory, locked so that two appliances never share one.

// `expect_reply!` (cairn_shards::mesh) for the services that route calls
// to another shard.
#[macro_use]
extern crate cairn_shards;

pub mod bayes;
pub mod checkpoint;
pub mod data_dir;
pub mod directory;
pub mod kinds;
pub mod log;
pub mod mailbox;
pub mod metrics;
pub mod notify;
pub mod placement;
pub mod queue;
pub mod record;
pub mod service;
pub mod services;
pub mod shard_store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use data_dir::{DataDir, DataDirError};

//! `cairn-storage`: the data model and its persistence.
//!
//! The segment log, mailboxes and tables arrive with the storage issue; what
//! lives here now is the [`DataDir`]: the appliance's data directory, made on
//! first start, checked for writing, and locked so that two appliances never
//! share one.

pub mod data_dir;
pub mod kinds;
pub mod log;
pub mod mailbox;
pub mod metrics;
pub mod record;
pub mod shard_store;

pub use data_dir::{DataDir, DataDirError};

//! The benchmark harness: latency histograms, a run's summary, and the
//! writer of `benches/RESULTS.md`, where each scenario keeps one section
//! that a new run of it replaces (with the command that made it).

pub mod appliance;
pub mod imap_client;
pub mod report;
pub mod rr_protocol;
pub mod rtc_load;
pub mod sfu_peers;
pub mod smtp_client;
pub mod smtp_load;

pub use report::{Measurement, ResultsFile};

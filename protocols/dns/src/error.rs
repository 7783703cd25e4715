//! The one error type of the crate, sorted by what the caller should do:
//! a name that does not exist, a failure worth retrying later, and a
//! failure that retrying will not fix.

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (RCODE NXDOMAIN).
    #[error("the domain name does not exist (NXDOMAIN)")]
    NxDomain,
    /// A failure that may pass: no answer in time, SERVFAIL, REFUSED, a
    /// malformed or mismatched reply, a socket error.
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
    /// A failure that asking again will not fix: the name itself is not a
    /// valid domain name, or the records break a limit.
    #[error("permanent DNS failure: {0}")]
    Permanent(String),
}

impl DnsError {
    /// Whether asking again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary(_))
    }
}

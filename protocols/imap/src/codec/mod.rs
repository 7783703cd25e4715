//! The IMAP wire, sans-IO: [`framer`] cuts the client's bytes into
//! commands (lines and literals, under limits), [`command`] decodes them
//! with imap-codec (after [`extended`] pre-decodes the syntax imap-types
//! lacks), [`response`] writes replies, and [`utf7`] converts
//! mailbox names (RFC 3501 §5.1.3 modified UTF-7).

pub mod command;
pub mod extended;
pub mod framer;
pub mod response;
pub mod utf7;

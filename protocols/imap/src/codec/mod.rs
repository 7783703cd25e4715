//! The IMAP wire, sans-IO: [`framer`] cuts the client's bytes into
//! commands (lines and literals, under limits), [`command`] decodes them
//! with imap-codec (after [`extended`] pre-decodes the syntax imap-types
//! lacks), [`response`] writes replies, [`utf7`] converts
//! mailbox names (RFC 3501 §5.1.3 modified UTF-7), [`objectid`]
//! writes and reads object identifiers (RFC 8474), and [`imapurl`] reads
//! the IMAP URLs of CATENATE (RFC 5092, RFC 4469).

pub mod command;
pub mod extended;
pub mod framer;
pub mod imapurl;
pub mod objectid;
pub mod response;
pub mod utf7;

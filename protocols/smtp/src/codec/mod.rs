//! The SMTP wire, sans-IO: no runtime, no sockets, only bytes in and bytes
//! out, so that every piece can be fuzzed and property-tested alone.
//!
//! - command lines are framed out of the read buffer by `cairn-lines`
//!   (shared with POP3), with a length limit that never loses the
//!   session's place in the stream;
//! - [`command`] parses one line into a [`command::Command`] that borrows
//!   from the buffer (smtp-proto underneath);
//! - [`data`] undoes DATA's dot-stuffing and finds its end, checking for
//!   bare CR/LF, NUL and the size limit as it goes;
//! - [`reply`] writes replies, one-line and multi-line.

pub mod command;
pub mod data;
pub mod reply;

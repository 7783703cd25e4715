//! Messages as IMAP sees them, sans IO: a message parsed once
//! ([`Parsed`], over mail-parser) and everything the IMAP session computes
//! from it — ENVELOPE, BODY/BODYSTRUCTURE, `BODY[section]` and `BINARY[part]`
//! content, SEARCH evaluation, SORT and THREAD (RFC 9051, RFC 3516, RFC 5256).

mod address;
mod envelope;
mod header;
mod istring;
mod parsed;
mod search;
mod section;
mod shape;
mod sort;
mod structure;
mod subject;
mod thread;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use std::num::NonZeroU32;

pub use header::block as header_block;
pub use parsed::Parsed;
pub use search::{
    matches, needs_body, needs_header, needs_message, part_text, Candidate, MessageText,
    SearchContext, TextReads,
};
pub use section::BinaryError;
pub(crate) use section::{decode_part, filter_fields, Located};
pub use shape::{cut_range, Framing, Shape};
pub use sort::{sort, SortItem};
pub use thread::{thread, thread_root};

/// RFC 3501 partial fetch `<start.length>` applied to `content`: the
/// bytes from `start` on, at most `length` of them (empty when `start` is
/// past the end). `None` returns the content unchanged.
pub fn partial(content: &[u8], partial: Option<(u32, NonZeroU32)>) -> &[u8] {
    let Some((start, length)) = partial else {
        return content;
    };
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let rest = content.get(start..).unwrap_or_default();
    let length = usize::try_from(length.get()).unwrap_or(usize::MAX);
    rest.get(..length).unwrap_or(rest)
}

//! ENVELOPE (RFC 9051 §7.5.2) of a message or of a nested message/rfc822
//! part: the raw header strings (unfolded, encoded-words intact) and the
//! parsed address lists.

use imap_types::envelope::{Address, Envelope};

use super::{
    address::{parse_list, RawAddress},
    header::first_raw,
    istring::nstring,
    parsed::Parsed,
};

impl Parsed<'_> {
    /// ENVELOPE (RFC 9051 §7.5.2): date, subject, from, sender, reply-to,
    /// to, cc, bcc, in-reply-to, message-id. Sender and reply-to default to
    /// from when absent or empty; groups are start/end markers; strings are
    /// the raw header values (unfolded), NIL when the field is absent.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope_of(self.bytes(self.root().header.clone()))
    }
}

/// The envelope of the message whose header block is `header`.
pub(crate) fn envelope_of(header: &[u8]) -> Envelope<'static> {
    let from = addresses(header, b"From");
    let or_from = |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: nstring(first_raw(header, b"Date")),
        subject: nstring(first_raw(header, b"Subject")),
        sender: or_from(addresses(header, b"Sender")),
        reply_to: or_from(addresses(header, b"Reply-To")),
        to: addresses(header, b"To"),
        cc: addresses(header, b"Cc"),
        bcc: addresses(header, b"Bcc"),
        in_reply_to: nstring(first_raw(header, b"In-Reply-To")),
        message_id: nstring(first_raw(header, b"Message-ID")),
        from,
    }
}

/// The first field `name`'s address list, as raw addresses.
pub(crate) fn raw_addresses(header: &[u8], name: &[u8]) -> Vec<RawAddress> {
    first_raw(header, name)
        .map(|value| parse_list(&value))
        .unwrap_or_default()
}

fn addresses(header: &[u8], name: &[u8]) -> Vec<Address<'static>> {
    raw_addresses(header, name)
        .into_iter()
        .map(|a| Address {
            name: nstring(a.name),
            adl: nstring(a.adl),
            mailbox: nstring(a.mailbox),
            host: nstring(a.host),
        })
        .collect()
}

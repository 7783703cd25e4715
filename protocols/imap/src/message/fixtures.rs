//! Hand-made test messages (written with `\n`, sent with CRLF) and a
//! helper that writes imap-types values as IMAP wire text.

use std::num::NonZeroU32;

use imap_codec::{encode::Encoder, ResponseCodec};
use imap_types::{
    core::Vec1,
    fetch::MessageDataItem,
    response::{Data, Response},
};

/// `text` with every `\n` turned into CRLF.
pub(crate) fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// A typical multipart/alternative message.
pub(crate) fn alternative() -> Vec<u8> {
    crlf(
        "From: Alice <alice@example.com>
To: Bob <bob@example.org>
Subject: Test
Date: Mon, 7 Feb 1994 21:52:25 -0800
Message-ID: <B27397-0100000@cac.washington.edu>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=us-ascii

Hello
--b1
Content-Type: text/html; charset=us-ascii

<p>Hello</p>
--b1--
",
    )
}

/// A multipart/mixed message: a quoted-printable text part, a base64
/// attachment, a nested message/rfc822 (itself multipart/alternative);
/// encoded-word and group headers.
pub(crate) fn mixed() -> Vec<u8> {
    crlf(
        "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>
To: Team: a@x.example, \"B, b\" <b@y.example>;, c@z.example
Cc: undisclosed-recipients:;
Subject: =?utf-8?q?Caf=C3=A9?=
  menu
Date: Tue, 1 Mar 2022 10:00:00 +0100
Message-ID: <m1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

preamble
--outer
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait=
 soon
--outer
Content-Type: application/octet-stream; name=\"data.bin\"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"data.bin\"

AAECAw==
--outer
Content-Type: message/rfc822
Content-Description: forwarded

From: Carol <carol@example.net>
Subject: inner
Date: Wed, 2 Mar 2022 11:00:00 +0000
Message-ID: <inner@example.net>
Content-Type: multipart/alternative; boundary=\"inner\"

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/html

<b>inner</b>
--inner--
--outer--
epilogue
",
    )
}

/// A message with no MIME headers at all and few others.
pub(crate) fn bare() -> Vec<u8> {
    crlf("Subject: no mime\n\nline one\nline two\n")
}

/// `item` written as the IMAP wire text of its FETCH data item.
pub(crate) fn wire(item: MessageDataItem<'static>) -> String {
    let Some(seq) = NonZeroU32::new(1) else {
        return String::new();
    };
    let response = Response::Data(Data::Fetch {
        seq,
        items: Vec1::from(item),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let inner = text
        .trim_end()
        .strip_prefix("* 1 FETCH (")
        .and_then(|t| t.strip_suffix(')'));
    inner.unwrap_or(&text).to_owned()
}

/// A small mailbox for SORT and THREAD, in sequence order (1 to 9):
/// `(message-id, subject, hour of 2020-01-01 UTC, extra header lines)`.
pub(crate) const THREAD_SET: [(&str, &str, u32, &str); 9] = [
    ("<1@x>", "Hello", 10, "From: Zed <zed@a.example>\n"),
    (
        "<2@x>",
        "Re: Hello",
        11,
        "References: <1@x>\nFrom: amy@b.example\n",
    ),
    ("<3@x>", "Other", 9, "From: \"Bob\" <Bob@c.example>\n"),
    ("<4@x>", "RE: hello", 12, "In-Reply-To: <1@x> (sent by x)\n"),
    ("<5@x>", "Re: Re: Hello", 13, "References: <1@x>\n <2@x>\n"),
    ("<6@x>", "Re: Lost", 8, "References: <missing@x>\n"),
    ("<7@x>", "[list] Re: Lost", 14, "References: <missing@x>\n"),
    ("<8@x>", "Fwd: Other", 15, ""),
    ("", "Solo", 16, ""),
];

/// The raw messages of [`THREAD_SET`].
pub(crate) fn thread_set() -> Vec<Vec<u8>> {
    THREAD_SET
        .iter()
        .map(|(id, subject, hour, extra)| {
            let id = if id.is_empty() { String::new() } else { format!("Message-ID: {id}\n") };
            crlf(&format!(
                "{id}Subject: {subject}\nDate: Wed, 1 Jan 2020 {hour:02}:00:00 +0000\n{extra}\nbody\n"
            ))
        })
        .collect()
}

/// Sort items over parsed messages, id = sequence number, internal date
/// all equal, size decreasing with the sequence number.
pub(crate) fn sort_items<'a>(parsed: &'a [super::Parsed<'a>]) -> Vec<super::SortItem<'a>> {
    parsed
        .iter()
        .zip(1u32..)
        .map(|(parsed, seq)| super::SortItem {
            id: seq,
            seq,
            internal_date: 0,
            size: u64::from(100u32.saturating_sub(seq)),
            parsed,
        })
        .collect()
}

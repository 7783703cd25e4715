//! IMAP URLs (RFC 5092) naming a message or a part of one, sans-IO, as
//! CATENATE (RFC 4469 §5) uses them:
//!
//! - `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=x][/;PARTIAL=o[.l]]`,
//!   relative to this server;
//! - the same path after `imap://user[;AUTH=…]@host[:port]`, which the
//!   caller accepts only when `user` is the logged-in one.
//!
//! Mailbox names and sections are percent-encoded UTF-8; a section is
//! what `BODY[…]` takes (decoded by imap-codec); URLAUTH parameters and
//! anything else are refused. The parser reads at most [`MAX_URL`] bytes
//! and never panics.

use std::num::NonZeroU32;

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_types::command::CommandBody;
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_types::IntoStatic;

/// The longest URL parsed, in bytes.
pub const MAX_URL: usize = 4096;

/// A message (or part of one) an IMAP URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The user of an absolute URL (percent-decoded).
    pub user: Option<String>,
    /// The mailbox name, UTF-8.
    pub mailbox: String,
    pub uidvalidity: Option<NonZeroU32>,
    pub uid: NonZeroU32,
    /// `None`: the whole message.
    pub section: Option<Section<'static>>,
    pub partial: Option<Partial>,
}

/// `;PARTIAL=offset[.length]`: without a length, to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub offset: u32,
    pub length: Option<NonZeroU32>,
}

/// Why a URL names no message here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is longer than {MAX_URL} bytes")]
    TooLong,
    #[error("only imap:// URLs and paths on this server are resolved")]
    Scheme,
    #[error("the URL names no user")]
    NoUser,
    #[error("bad percent-encoding or UTF-8")]
    Encoding,
    #[error("the URL names no mailbox")]
    NoMailbox,
    #[error("the URL names no message (;UID=)")]
    NoUid,
    #[error("bad number in {0}")]
    Number(&'static str),
    #[error("bad section")]
    Section,
    #[error("unsupported or misplaced URL parameter {0}")]
    Parameter(String),
}

/// Parses a URL as CATENATE's `URL` part carries it.
pub fn parse(url: &[u8]) -> Result<ImapUrl, UrlError> {
    if url.len() > MAX_URL {
        return Err(UrlError::TooLong);
    }
    let (user, path) = match strip_prefix_ci(url, b"imap://") {
        Some(rest) => {
            let at = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(at);
            (Some(user_of(authority)?), path)
        }
        None => (None, url),
    };
    let path = path.strip_prefix(b"/").ok_or(UrlError::Scheme)?;
    if path.starts_with(b"/") {
        // `//host/…` names another server.
        return Err(UrlError::Scheme);
    }
    let mut segments = path.split(|&b| b == b'/').peekable();
    // The mailbox: every segment up to the first parameter segment; the
    // last of them may end with `;UIDVALIDITY=n`.
    let mut mailbox = Vec::new();
    let mut uidvalidity = None;
    while let Some(segment) = segments.next_if(|s| !s.starts_with(b";")) {
        if uidvalidity.is_some() {
            return Err(UrlError::Parameter("UIDVALIDITY".into()));
        }
        let (name, params) = match segment.iter().position(|&b| b == b';') {
            Some(at) => segment.split_at(at),
            None => (segment, &b""[..]),
        };
        if !mailbox.is_empty() {
            mailbox.push(b'/');
        }
        mailbox.extend_from_slice(&percent_decode(name)?);
        if !params.is_empty() {
            let (key, value) = parameter(params)?;
            if key != "UIDVALIDITY" {
                return Err(UrlError::Parameter(key));
            }
            uidvalidity = Some(nz_number(value, "UIDVALIDITY")?);
        }
    }
    let mailbox = String::from_utf8(mailbox).map_err(|_| UrlError::Encoding)?;
    if mailbox.is_empty() {
        return Err(UrlError::NoMailbox);
    }
    let mut uid = None;
    let mut section = None;
    let mut partial = None;
    for segment in segments {
        let (key, value) = parameter(segment)?;
        // In RFC 5092's order, each at most once.
        match key.as_str() {
            "UID" if uid.is_none() => uid = Some(nz_number(value, "UID")?),
            "SECTION" if uid.is_some() && section.is_none() && partial.is_none() => {
                section = Some(section_of(value)?);
            }
            "PARTIAL" if uid.is_some() && partial.is_none() => partial = Some(partial_of(value)?),
            _ => return Err(UrlError::Parameter(key)),
        }
    }
    Ok(ImapUrl {
        user,
        mailbox,
        uidvalidity,
        uid: uid.ok_or(UrlError::NoUid)?,
        section,
        partial,
    })
}

fn strip_prefix_ci<'a>(b: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = b.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| b.get(prefix.len()..))
        .flatten()
}

/// The user of `user[;AUTH=…]@host[:port]`.
fn user_of(authority: &[u8]) -> Result<String, UrlError> {
    let at = authority
        .iter()
        .rposition(|&b| b == b'@')
        .ok_or(UrlError::NoUser)?;
    let userinfo = authority.get(..at).unwrap_or_default();
    let user = match userinfo.iter().position(|&b| b == b';') {
        Some(semi) => {
            let auth = userinfo.get(semi..).unwrap_or_default();
            if strip_prefix_ci(auth, b";AUTH=").is_none_or(<[u8]>::is_empty) {
                return Err(UrlError::Parameter("AUTH".into()));
            }
            userinfo.get(..semi).unwrap_or_default()
        }
        None => userinfo,
    };
    let user = String::from_utf8(percent_decode(user)?).map_err(|_| UrlError::Encoding)?;
    if user.is_empty() {
        return Err(UrlError::NoUser);
    }
    Ok(user)
}

/// `;KEY=value`: the key upper-cased, the value as sent.
fn parameter(segment: &[u8]) -> Result<(String, &[u8]), UrlError> {
    let body = segment.strip_prefix(b";").unwrap_or(segment);
    let eq = body.iter().position(|&b| b == b'=');
    let key = body.get(..eq.unwrap_or(body.len())).unwrap_or_default();
    let key = String::from_utf8_lossy(key.get(..key.len().min(32)).unwrap_or_default())
        .to_ascii_uppercase();
    match eq.and_then(|eq| body.get(eq + 1..)) {
        Some(value) => Ok((key, value)),
        None => Err(UrlError::Parameter(key)),
    }
}

/// A decimal number from 1 to 2^32-1, without a sign or leading zeros.
fn nz_number(value: &[u8], what: &'static str) -> Result<NonZeroU32, UrlError> {
    if value.first() == Some(&b'0') {
        return Err(UrlError::Number(what));
    }
    number(value, what).and_then(|n| NonZeroU32::new(n).ok_or(UrlError::Number(what)))
}

fn number(value: &[u8], what: &'static str) -> Result<u32, UrlError> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return Err(UrlError::Number(what));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(UrlError::Number(what))
}

fn partial_of(value: &[u8]) -> Result<Partial, UrlError> {
    let (offset, length) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (
            value.get(..dot).unwrap_or_default(),
            Some(nz_number(
                value.get(dot + 1..).unwrap_or_default(),
                "PARTIAL",
            )?),
        ),
        None => (value, None),
    };
    Ok(Partial {
        offset: number(offset, "PARTIAL")?,
        length,
    })
}

/// A section as `BODY[…]` takes it, decoded by imap-codec.
fn section_of(value: &[u8]) -> Result<Section<'static>, UrlError> {
    let text = percent_decode(value)?;
    // Printable ASCII only: nothing can end the item or the command.
    if text.is_empty()
        || !text
            .iter()
            .all(|&b| (b' '..=b'~').contains(&b) && b != b'{')
    {
        return Err(UrlError::Section);
    }
    let mut line = b"s FETCH 1 BODY.PEEK[".to_vec();
    line.extend_from_slice(&text);
    line.extend_from_slice(b"]\r\n");
    let Ok((b"", command)) = CommandCodec::default().decode(&line) else {
        return Err(UrlError::Section);
    };
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
        ..
    } = command.body
    else {
        return Err(UrlError::Section);
    };
    match items.as_slice() {
        [MessageDataItemName::BodyExt {
            section: Some(section),
            partial: None,
            ..
        }] => Ok(section.clone().into_static()),
        _ => Err(UrlError::Section),
    }
}

/// Undoes `%XX` escapes.
fn percent_decode(b: &[u8]) -> Result<Vec<u8>, UrlError> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::Encoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::Encoding)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(UrlError::Encoding);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Encoding)?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// `url` as the text of a `[BADURL …]` code (RFC 4469 §6: no `]`, no
/// CR, LF or NUL): what cannot stand there, and any byte that is not
/// printable ASCII, percent-encoded; at most [`MAX_URL`] bytes of it.
pub fn response_text(url: &[u8]) -> String {
    let mut out = String::with_capacity(url.len().min(MAX_URL));
    for &b in url.iter().take(MAX_URL) {
        if b > b' ' && b < 0x7f && b != b']' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_types::core::{AString, Vec1};
    use imap_types::fetch::Part;
    use proptest::prelude::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    fn url(mailbox: &str, uid: u32) -> ImapUrl {
        ImapUrl {
            user: None,
            mailbox: mailbox.into(),
            uidvalidity: None,
            uid: nz(uid),
            section: None,
            partial: None,
        }
    }

    #[test]
    fn relative_and_absolute() {
        assert_eq!(parse(b"/INBOX/;UID=3"), Ok(url("INBOX", 3)));
        assert_eq!(
            parse(b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER"),
            Ok(ImapUrl {
                uidvalidity: Some(nz(385759045)),
                section: Some(Section::Header(None)),
                ..url("Drafts", 20)
            })
        );
        assert_eq!(
            parse(b"/Work/Reports%202026;uidvalidity=7/;uid=9/;SECTION=1.2.MIME/;PARTIAL=10.20"),
            Ok(ImapUrl {
                uidvalidity: Some(nz(7)),
                section: Some(Section::Mime(Part(
                    Vec1::try_from(vec![nz(1), nz(2)]).expect("two")
                ))),
                partial: Some(Partial {
                    offset: 10,
                    length: Some(nz(20))
                }),
                ..url("Work/Reports 2026", 9)
            })
        );
        assert_eq!(
            parse(
                b"imap://alice%40example.org;AUTH=*@mail.example.org:143/INBOX/;UID=1/;PARTIAL=5"
            ),
            Ok(ImapUrl {
                user: Some("alice@example.org".into()),
                partial: Some(Partial {
                    offset: 5,
                    length: None
                }),
                ..url("INBOX", 1)
            })
        );
        assert_eq!(
            parse(b"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject%20From)").map(|u| u.section),
            Ok(Some(Section::HeaderFields(
                None,
                Vec1::try_from(vec![
                    AString::try_from("Subject").expect("astring"),
                    AString::try_from("From").expect("astring"),
                ])
                .expect("two")
            )))
        );
        // Non-ASCII names are percent-encoded UTF-8.
        assert_eq!(
            parse(b"/R%C3%A9cents/;UID=2").map(|u| u.mailbox),
            Ok("Récents".to_string())
        );
    }

    #[test]
    fn refusals() {
        for (bad, why) in [
            (&b"INBOX/;UID=1"[..], UrlError::Scheme),
            (b"http://x/INBOX/;UID=1", UrlError::Scheme),
            (b"//host/INBOX/;UID=1", UrlError::Scheme),
            (b"imap://host/INBOX/;UID=1", UrlError::NoUser),
            (b"imap://@host/INBOX/;UID=1", UrlError::NoUser),
            (
                b"imap://u;AUTH=@host/INBOX/;UID=1",
                UrlError::Parameter("AUTH".into()),
            ),
            (b"/INBOX", UrlError::NoUid),
            (b"/;UID=1", UrlError::NoMailbox),
            (b"/INBOX/;UID=0", UrlError::Number("UID")),
            (b"/INBOX/;UID=01", UrlError::Number("UID")),
            (b"/INBOX/;UID=4294967296", UrlError::Number("UID")),
            (
                b"/INBOX;UIDVALIDITY=/;UID=1",
                UrlError::Number("UIDVALIDITY"),
            ),
            (b"/INBOX/;UID=1/;UID=2", UrlError::Parameter("UID".into())),
            (
                b"/INBOX/;SECTION=1/;UID=2",
                UrlError::Parameter("SECTION".into()),
            ),
            (
                b"/INBOX/;UID=1/;PARTIAL=1/;SECTION=1",
                UrlError::Parameter("SECTION".into()),
            ),
            (b"/INBOX/;UID=1/;PARTIAL=1.0", UrlError::Number("PARTIAL")),
            (
                b"/INBOX/;UID=1/;URLAUTH=anonymous",
                UrlError::Parameter("URLAUTH".into()),
            ),
            (
                b"/INBOX/;UID=1/;EXPIRE=x",
                UrlError::Parameter("EXPIRE".into()),
            ),
            (b"/INBOX/;UID=1/;SECTION=FOO", UrlError::Section),
            (
                b"/INBOX/;UID=1/;SECTION=1]%20FLAGS%20BODY[2",
                UrlError::Section,
            ),
            (
                b"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20({3}%0D%0Aabc)",
                UrlError::Section,
            ),
            (b"/INBOX/;UID=1/;SECTION=", UrlError::Section),
            (b"/IN%2/;UID=1", UrlError::Encoding),
            (b"/IN%FF/;UID=1", UrlError::Encoding),
            (
                b"/INBOX;UIDVALIDITY=1/x/;UID=1",
                UrlError::Parameter("UIDVALIDITY".into()),
            ),
            (b"/INBOX;X=1/;UID=1", UrlError::Parameter("X".into())),
            (b"/INBOX/;UID", UrlError::Parameter("UID".into())),
        ] {
            assert_eq!(parse(bad), Err(why), "{}", String::from_utf8_lossy(bad));
        }
        let long = format!("/INBOX/;UID=1/;SECTION={}", "1.".repeat(MAX_URL));
        assert_eq!(parse(long.as_bytes()), Err(UrlError::TooLong));
    }

    #[test]
    fn response_text_has_no_closing_bracket() {
        assert_eq!(
            response_text(b"/a b]/;UID=1\r\n\xff"),
            "/a%20b%5D/;UID=1%0D%0A%FF"
        );
    }

    /// The percent-encoding a client would write for a mailbox name.
    fn encode(name: &str) -> String {
        name.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            prop_assert!(!response_text(&bytes).contains(']'));
        }

        #[test]
        fn url_shaped_input_never_panics(
            head in "(imap://|/|imap://[a-z%@;=*]{0,12}@h/)",
            rest in "([A-Za-z0-9 %./()\\[\\]{}]|;UID=|;UIDVALIDITY=|;SECTION=|;PARTIAL=|;AUTH=|/;){0,30}",
        ) {
            let _ = parse(format!("{head}{rest}").as_bytes());
        }

        #[test]
        fn a_written_url_reads_back(
            user in proptest::option::of("[a-z]{1,8}@[a-z]{1,8}\\.org"),
            mailbox in "[A-Za-z0-9 éü日&;%]{1,12}(/[A-Za-z0-9 ]{1,8}){0,2}",
            uidvalidity in proptest::option::of(1u32..),
            uid in 1u32..,
            section in proptest::option::of(prop_oneof![
                Just(("HEADER", Section::Header(None))),
                Just(("TEXT", Section::Text(None))),
                Just(("1", Section::Part(Part(Vec1::from(NonZeroU32::MIN))))),
            ]),
            partial in proptest::option::of((any::<u32>(), proptest::option::of(1u32..))),
        ) {
            let mut text = match &user {
                Some(u) => format!("imap://{}@host", encode(u)),
                None => String::new(),
            };
            text.push('/');
            text.push_str(&encode(&mailbox));
            if let Some(v) = uidvalidity {
                text.push_str(&format!(";UIDVALIDITY={v}"));
            }
            text.push_str(&format!("/;UID={uid}"));
            if let Some((s, _)) = &section {
                text.push_str(&format!("/;SECTION={s}"));
            }
            if let Some((offset, length)) = partial {
                text.push_str(&format!("/;PARTIAL={offset}"));
                if let Some(l) = length {
                    text.push_str(&format!(".{l}"));
                }
            }
            let parsed = parse(text.as_bytes());
            prop_assert_eq!(parsed, Ok(ImapUrl {
                user,
                mailbox,
                uidvalidity: uidvalidity.map(nz),
                uid: nz(uid),
                section: section.map(|(_, s)| s),
                partial: partial.map(|(offset, length)| Partial { offset, length: length.map(nz) }),
            }));
        }
    }
}

//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) of a parsed message: types
//! and parameters from the parsed MIME headers, other fields raw,
//! sizes and line counts of the encoded bodies as they stand in the
//! message (so that a part's size equals the length of `BODY[part]`).

use imap_types::{
    body::{
        BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
        SinglePartExtensionData, SpecificFields,
    },
    core::{IString, Vec1},
};

use super::{
    envelope::envelope_of,
    header::first_raw,
    istring::{istring, nstring, upper},
    parsed::{Content, Node, Parsed},
};

impl Parsed<'_> {
    /// BODYSTRUCTURE (`extended`) or BODY (not `extended`), RFC 9051
    /// §7.5.2. Type, subtype, parameter names and encoding are upper-cased;
    /// the MD5 is the raw Content-MD5 (NIL when absent).
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        structure(self, self.root(), extended, false)
    }
}

type Params = Vec<(IString<'static>, IString<'static>)>;

fn structure(
    p: &Parsed<'_>,
    node: &Node<'_>,
    extended: bool,
    in_digest: bool,
) -> BodyStructure<'static> {
    if let Content::Multipart(parts) = &node.content {
        let (_, subtype) = media(node, in_digest);
        let digest = subtype == "digest";
        let bodies: Vec<_> = parts
            .iter()
            .map(|part| structure(p, part, extended, digest))
            .collect();
        if let Ok(bodies) = Vec1::try_from(bodies) {
            return BodyStructure::Multi {
                bodies,
                subtype: upper(&subtype),
                extension_data: extended.then(|| MultiPartExtensionData {
                    parameter_list: params(node, false),
                    tail: Some(disposition(p, node)),
                }),
            };
        }
    }
    single(p, node, extended, in_digest)
}

fn single(
    p: &Parsed<'_>,
    node: &Node<'_>,
    extended: bool,
    in_digest: bool,
) -> BodyStructure<'static> {
    let header = p.bytes(node.header.clone());
    let body = p.bytes(node.body.clone());
    let (r#type, subtype) = media(node, in_digest);
    let basic = BasicFields {
        parameter_list: params(node, r#type == "text"),
        id: nstring(first_raw(header, b"Content-ID")),
        description: nstring(first_raw(header, b"Content-Description")),
        content_transfer_encoding: upper(&transfer_encoding(header)),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let specific = match &node.content {
        Content::Message(inner) => SpecificFields::Message {
            envelope: Box::new(envelope_of(p.bytes(inner.header.clone()))),
            body_structure: Box::new(structure(p, inner, extended, false)),
            number_of_lines: lines(body),
        },
        _ if r#type == "text" => SpecificFields::Text {
            subtype: upper(&subtype),
            number_of_lines: lines(body),
        },
        _ => SpecificFields::Basic {
            r#type: upper(&r#type),
            subtype: upper(&subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring(first_raw(header, b"Content-MD5")),
            tail: Some(disposition(p, node)),
        }),
    }
}

/// The part's media type and subtype (lower case), with RFC 2045/2046
/// defaults (text/plain, or message/rfc822 inside a multipart/digest),
/// and as its content was actually parsed: a multipart whose boundary is
/// missing is text/plain; a message/rfc822 or message/global part that
/// was not parsed as a message (transfer-encoded, too deep) is
/// application/octet-stream, since the wire form of a MESSAGE/RFC822 body
/// must carry an envelope and a structure.
fn media(node: &Node<'_>, in_digest: bool) -> (String, String) {
    let declared = node.content_type().map(|ct| {
        let ctype = ct.ctype().to_ascii_lowercase();
        let default = if ctype == "text" {
            "plain"
        } else {
            "octet-stream"
        };
        let subtype = ct.subtype().unwrap_or(default).to_ascii_lowercase();
        (ctype, subtype)
    });
    let declared = declared.unwrap_or_else(|| match in_digest {
        true => ("message".into(), "rfc822".into()),
        false => ("text".into(), "plain".into()),
    });
    match (&node.content, declared) {
        (Content::Multipart(_), (ctype, subtype)) if ctype == "multipart" => (ctype, subtype),
        (Content::Multipart(_), _) => ("multipart".into(), "mixed".into()),
        (Content::Message(_), _) => ("message".into(), "rfc822".into()),
        (_, (ctype, _)) if ctype == "multipart" => ("text".into(), "plain".into()),
        (_, (ctype, subtype))
            if ctype == "message" && (subtype == "rfc822" || subtype == "global") =>
        {
            ("application".into(), "octet-stream".into())
        }
        (_, declared) => declared,
    }
}

/// The Content-Type parameters (names upper-cased); a text part without
/// any gets RFC 2045's `CHARSET US-ASCII`.
fn params(node: &Node<'_>, is_text: bool) -> Params {
    let params = node.content_type().map(attributes).unwrap_or_default();
    if params.is_empty() && is_text {
        return vec![(upper("charset"), istring("us-ascii"))];
    }
    params
}

fn attributes(ct: &mail_parser::ContentType<'_>) -> Params {
    ct.attributes()
        .unwrap_or_default()
        .iter()
        .map(|a| (upper(&a.name), istring(a.value.as_bytes())))
        .collect()
}

fn transfer_encoding(header: &[u8]) -> String {
    first_raw(header, b"Content-Transfer-Encoding")
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .filter(|cte| !cte.is_empty())
        .unwrap_or_else(|| "7bit".into())
}

/// The extension data after the MD5 / multipart parameters:
/// disposition, language, location.
fn disposition(p: &Parsed<'_>, node: &Node<'_>) -> Disposition<'static> {
    let header = p.bytes(node.header.clone());
    let language = first_raw(header, b"Content-Language")
        .map(|raw| {
            raw.split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|l| !l.is_empty())
                .map(istring)
                .collect()
        })
        .unwrap_or_default();
    Disposition {
        disposition: node
            .disposition()
            .map(|d| (upper(d.ctype()), attributes(d))),
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: nstring(first_raw(header, b"Content-Location")),
                extensions: Vec::new(),
            }),
        }),
    }
}

/// The number of lines of a body: its line ends, plus one for a last
/// line without one.
fn lines(body: &[u8]) -> u32 {
    let ends = memchr::memchr_iter(b'\n', body).count();
    let partial = usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    u32::try_from(ends + partial).unwrap_or(u32::MAX)
}

//! Mailbox names on the wire (RFC 3501 §5.1.3): modified UTF-7, where
//! `&` starts a run of UTF-16 in base64 (`,` for `/`) ended by `-`, and
//! `&-` is `&`. The store keeps names as UTF-8.

use base64::alphabet::IMAP_MUTF7;
use base64::engine::general_purpose::NO_PAD;
use base64::engine::GeneralPurpose;
use base64::Engine;

const B64: GeneralPurpose = GeneralPurpose::new(&IMAP_MUTF7, NO_PAD);

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mailbox name is not valid modified UTF-7")]
pub struct BadName;

/// Decodes a name from the wire.
pub fn decode(name: &str) -> Result<String, BadName> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).ok_or(BadName)?);
        let after = rest.get(at + 1..).ok_or(BadName)?;
        let end = after.find('-').ok_or(BadName)?;
        let run = after.get(..end).ok_or(BadName)?;
        if run.is_empty() {
            out.push('&');
        } else {
            let bytes = B64.decode(run).map_err(|_| BadName)?;
            if bytes.len() % 2 != 0 {
                return Err(BadName);
            }
            let units = bytes
                .chunks_exact(2)
                .filter_map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes));
            let decoded: String = char::decode_utf16(units)
                .collect::<Result<_, _>>()
                .map_err(|_| BadName)?;
            // Printable ASCII must not be encoded.
            if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                return Err(BadName);
            }
            out.push_str(&decoded);
        }
        rest = after.get(end + 1..).ok_or(BadName)?;
    }
    if rest.chars().any(|c| !(' '..='~').contains(&c)) {
        return Err(BadName);
    }
    out.push_str(rest);
    Ok(out)
}

/// `name` in Unicode Normalization Form C (RFC 5198), as names are kept:
/// "Café" typed with a combining accent names the same mailbox as with
/// the precomposed "é".
pub fn nfc(name: String) -> String {
    match icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(&name) {
        std::borrow::Cow::Borrowed(_) => name,
        std::borrow::Cow::Owned(normalized) => normalized,
    }
}

/// Encodes a name for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&B64.encode(bytes));
            out.push('-');
            run.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_kept_composed() {
        let decomposed = "Cafe\u{301}/Tag".to_string();
        assert_eq!(nfc(decomposed), "Caf\u{e9}/Tag");
        assert_eq!(nfc("Caf\u{e9}".into()), "Caf\u{e9}");
        // Modified UTF-7 of a decomposed name decodes to the same mailbox.
        let wire = encode("Cafe\u{301}");
        assert_eq!(decode(&wire).map(nfc).as_deref(), Ok("Caf\u{e9}"));
    }

    #[test]
    fn rfc_examples() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Ok("~peter/mail/台北/日本語")
        );
        assert_eq!(decode("A&-B").as_deref(), Ok("A&B"));
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode("&Jjo!"), Err(BadName));
        assert_eq!(decode("&AGE-"), Err(BadName), "an encoded ASCII letter");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Ok("Entwürfe"));
    }

    proptest! {
        #[test]
        fn round_trip(name in "\\PC{0,20}") {
            prop_assert_eq!(decode(&encode(&name)), Ok(name));
        }

        #[test]
        fn arbitrary_names_never_panic(name in "[ -~]{0,30}") {
            let _ = decode(&name);
        }
    }
}

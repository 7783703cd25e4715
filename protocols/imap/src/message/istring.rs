//! Building imap-types strings from message bytes without ever failing:
//! a quoted string where the bytes allow it, a literal otherwise (NUL
//! bytes, which no IMAP string may carry, are dropped).

use imap_types::core::{IString, Literal, NString, Quoted};

/// `bytes` as an IMAP string (quoted when possible, else a literal).
pub(crate) fn istring(bytes: impl Into<Vec<u8>>) -> IString<'static> {
    let mut bytes = bytes.into();
    if let Ok(quoted) = Quoted::try_from(bytes.clone()) {
        return IString::Quoted(quoted);
    }
    bytes.retain(|b| *b != 0);
    match Literal::try_from(bytes) {
        Ok(literal) => IString::Literal(literal),
        Err(_) => IString::Quoted(Quoted::unvalidated("")),
    }
}

/// `Some(bytes)` as an IMAP string, `None` as NIL.
pub(crate) fn nstring(bytes: Option<impl Into<Vec<u8>>>) -> NString<'static> {
    NString(bytes.map(istring))
}

/// `text` upper-cased (ASCII) as an IMAP string, for MIME types, subtypes,
/// parameter names and encodings.
pub(crate) fn upper(text: &str) -> IString<'static> {
    istring(text.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_when_possible_literal_otherwise() {
        assert!(matches!(istring("plain"), IString::Quoted(_)));
        assert!(matches!(istring("caf\u{e9}"), IString::Literal(_)));
        assert!(matches!(istring(b"a\r\nb".to_vec()), IString::Literal(_)));
        assert_eq!(istring(b"a\0b".to_vec()).as_ref(), b"ab");
        assert_eq!(nstring(None::<Vec<u8>>), NString(None));
    }
}

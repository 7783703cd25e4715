//! Syntax of the directory's names: domain names (RFC 1035 labels, stored
//! lower-case), mail addresses (a dot-atom local part, RFC 5321 limits),
//! and the short names of classes, service accounts and app passwords.

use super::DirectoryError;

fn invalid(field: &'static str, reason: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Longest short name (a class, a service account, an app password).
pub const MAX_SHORT_NAME: usize = 64;

/// Checks a short name: 1 to [`MAX_SHORT_NAME`] letters, digits, `-`, `_`
/// or `.` (never an `@`, so never an address).
pub fn short_name<'a>(name: &'a str, field: &'static str) -> Result<&'a str, DirectoryError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SHORT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            field,
            format!("a name has 1 to {MAX_SHORT_NAME} letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Checks a domain name and returns it lower-cased.
pub fn domain(name: &str) -> Result<String, DirectoryError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("domain", "a domain name has 1 to 253 characters"));
    }
    if !name.contains('.') {
        return Err(invalid("domain", "a domain name needs at least two labels"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(invalid("domain", format!("invalid label {label:?}")));
        }
    }
    Ok(name)
}

const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// Checks a mail address; returns it with the domain lower-cased (the local
/// part is kept as given but compared case-insensitively by lower-casing
/// it too: Cairn's local parts are case-insensitive), and its domain.
pub fn address(addr: &str) -> Result<(String, String), DirectoryError> {
    let Some((local, dom)) = addr.rsplit_once('@') else {
        return Err(invalid("address", "an address is local@domain"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("address", "the local part has 1 to 64 characters"));
    }
    let atom_ok = local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(&b))
    });
    if !atom_ok {
        return Err(invalid("address", format!("invalid local part {local:?}")));
    }
    let dom = domain(dom)?;
    Ok((format!("{}@{dom}", local.to_ascii_lowercase()), dom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_addresses() {
        assert_eq!(domain("Example.ORG.").ok().as_deref(), Some("example.org"));
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.org",
            "a-.org",
            "ex ample.org",
            "é.org",
        ] {
            assert!(domain(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            address("Alice.Smith+tag@Example.org").ok(),
            Some(("alice.smith+tag@example.org".into(), "example.org".into()))
        );
        for bad in [
            "alice",
            "@example.org",
            "a..b@example.org",
            "a b@example.org",
            "alice@localhost",
        ] {
            assert!(address(bad).is_err(), "{bad:?} accepted");
        }
    }
}

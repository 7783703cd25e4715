//! Host and domain names (RFC 1123 labels): `node.hostname` and each of
//! `node.domains`.

/// `Err(reason)` when `name` is not a DNS host name: 1..=253 characters,
/// dot-separated labels of 1..=63 letters, digits and inner hyphens, the
/// last label not all digits (so an IP address is not a host name).
pub(crate) fn check_host(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty; expected a host name such as mail.example.com".to_string());
    }
    if name.len() > 253 {
        return Err(format!(
            "{} characters; a host name has at most 253",
            name.len()
        ));
    }
    for label in name.split('.') {
        check_label(label).map_err(|why| format!("{name:?} is not a valid name: {why}"))?;
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "{name:?} is not a valid name: the last label is all digits (an IP address?)"
        ));
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (two dots, or a dot at an end)".to_string());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 characters"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{bad:?} is not allowed (letters, digits and '-' only)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_names() {
        for name in [
            "localhost",
            "mail.example.com",
            "a-1.b2.example",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(check_host(name), Ok(()), "{name}");
        }
        let longest_label = "a".repeat(63);
        assert_eq!(check_host(&format!("{longest_label}.com")), Ok(()));
    }

    #[test]
    fn rejects_what_dns_would() {
        for (name, says) in [
            ("", "empty"),
            ("mail..example.com", "empty label"),
            ("example.com.", "empty label"),
            ("-mail.example.com", "starts or ends"),
            ("bad host", "' '"),
            ("under_score.example", "'_'"),
            ("127.0.0.1", "all digits"),
        ] {
            let reason = check_host(name).expect_err(name);
            assert!(reason.contains(says), "{name}: {reason}");
        }
        assert!(check_host(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(check_host(&vec!["abc"; 70].join(".")).is_err());
    }
}

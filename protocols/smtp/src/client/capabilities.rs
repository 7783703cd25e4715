//! What a server offers, from its EHLO reply (RFC 5321 §4.1.1.1), sans-IO:
//! the first line is the greeting, every other line one extension keyword
//! (case-insensitive) with its parameters.

use super::reply::ServerReply;

/// The extensions the client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SIZE (RFC 1870): the largest message the server takes, `Some(0)`
    /// when it offers SIZE without a fixed limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// The AUTH mechanisms (RFC 4954), upper case, in the server's order.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// The extensions of an EHLO reply (none for a HELO one, or for one
    /// that failed).
    pub fn from_ehlo(reply: &ServerReply) -> Self {
        let mut caps = Self::default();
        if !reply.is_positive() {
            return caps;
        }
        for line in reply.lines.iter().skip(1) {
            caps.line(line);
        }
        caps
    }

    /// Whether the server offers the SASL mechanism `name` (upper case).
    pub fn offers_auth(&self, name: &str) -> bool {
        self.auth.iter().any(|m| m == name)
    }

    fn line(&mut self, line: &str) {
        let mut words = line.split_ascii_whitespace();
        let Some(keyword) = words.next() else { return };
        let keyword = keyword.to_ascii_uppercase();
        // Old servers announce `AUTH=LOGIN PLAIN` beside (or instead of)
        // `AUTH LOGIN PLAIN`.
        let (keyword, first) = match keyword.split_once('=') {
            Some(("AUTH", v)) => ("AUTH".to_string(), Some(v.to_string())),
            _ => (keyword, None),
        };
        match keyword.as_str() {
            "PIPELINING" => self.pipelining = true,
            "STARTTLS" => self.starttls = true,
            "SIZE" => {
                // A limit that is no number is taken as none.
                self.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
            }
            "8BITMIME" => self.eight_bit_mime = true,
            "SMTPUTF8" => self.smtputf8 = true,
            "DSN" => self.dsn = true,
            "CHUNKING" => self.chunking = true,
            "ENHANCEDSTATUSCODES" => self.enhanced_status_codes = true,
            "AUTH" => {
                let names = first.into_iter().chain(words.map(str::to_string));
                for name in names {
                    let name = name.to_ascii_uppercase();
                    // At most a few dozen mechanisms, of sane names.
                    let sane = !name.is_empty()
                        && name.len() <= 20
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if sane && self.auth.len() < 32 && !self.offers_auth(&name) {
                        self.auth.push(name);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::reply::{Parsed, ReplyParser};
    use proptest::prelude::*;

    fn parse(wire: &[u8]) -> Capabilities {
        match ReplyParser::new().parse(wire) {
            Ok(Parsed::Reply { reply, .. }) => Capabilities::from_ehlo(&reply),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_a_full_ehlo_reply() {
        let caps = parse(
            b"250-mx.example.org Hello client [127.0.0.1]\r\n\
              250-PIPELINING\r\n\
              250-SIZE 10240000\r\n\
              250-8bitmime\r\n\
              250-SMTPUTF8\r\n\
              250-ENHANCEDSTATUSCODES\r\n\
              250-DSN\r\n\
              250-CHUNKING\r\n\
              250-STARTTLS\r\n\
              250-AUTH PLAIN login XOAUTH2\r\n\
              250-AUTH=LOGIN\r\n\
              250 HELP\r\n",
        );
        assert_eq!(
            caps,
            Capabilities {
                pipelining: true,
                starttls: true,
                size: Some(10_240_000),
                eight_bit_mime: true,
                smtputf8: true,
                dsn: true,
                chunking: true,
                enhanced_status_codes: true,
                auth: vec!["PLAIN".into(), "LOGIN".into(), "XOAUTH2".into()],
            }
        );
        assert!(caps.offers_auth("LOGIN"));
    }

    #[test]
    fn the_greeting_line_is_no_capability_and_size_may_be_bare() {
        let caps = parse(b"250-PIPELINING\r\n250-SIZE\r\n250 \r\n");
        assert!(!caps.pipelining);
        assert_eq!(caps.size, Some(0));
        assert_eq!(parse(b"250 host\r\n"), Capabilities::default());
        assert_eq!(
            parse(b"550-x\r\n550 PIPELINING\r\n"),
            Capabilities::default()
        );
        assert_eq!(parse(b"250-x\r\n250 SIZE lots\r\n").size, Some(0));
        assert_eq!(parse(b"250-x\r\n250 AUTH=\r\n").auth, Vec::<String>::new());
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(any::<String>(), 0..20)) {
            let reply = ServerReply { code: 250, enhanced: None, lines };
            let caps = Capabilities::from_ehlo(&reply);
            prop_assert!(caps.auth.len() <= 32);
        }
    }
}

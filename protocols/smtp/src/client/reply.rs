//! Server replies as the client reads them (RFC 5321 §4.2), sans-IO: an
//! incremental parser that takes whatever bytes have arrived and gives
//! back whole replies, multi-line ones (`250-…` … `250 …`) included, with
//! the enhanced status code (RFC 2034, RFC 3463) when the server sends one.
//!
//! Limits: a line of [`MAX_LINE`] bytes at most (RFC 5321 says 512; real
//! servers send longer ones), [`MAX_LINES`] lines per reply. A reply over a
//! limit, a line without a valid three-digit code, or lines of one reply
//! with different codes are errors: the connection is out of step and the
//! caller closes it.

use std::fmt;

/// The longest reply line, CRLF included.
pub const MAX_LINE: usize = 4096;
/// The most lines in one reply.
pub const MAX_LINES: usize = 1000;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code `class.subject.detail`, when the first
    /// line has one whose class matches the code's first digit.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text of each line, without the code, the separator, the
    /// enhanced status code (where it is the first line's) and the line
    /// ending; control characters become spaces. For an EHLO reply, the
    /// greeting then one capability per line.
    pub lines: Vec<String>,
}

impl ServerReply {
    /// A reply made here rather than read from a server: what a delivery
    /// attempt says when Cairn itself refuses to send (too big for the
    /// server's SIZE, an address the server cannot take).
    pub fn local(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The lines' text joined with spaces (a multi-line reply is usually
    /// one sentence wrapped).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// `550 5.1.1 No such user here`: for logs and delivery status
/// notifications.
impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some((class, subject, detail)) = self.enhanced {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// What was wrong with the server's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// A reply of more than [`MAX_LINES`] lines.
    TooManyLines,
    /// A line that does not start with a valid three-digit code and a
    /// space, a hyphen or the line's end; the line (shortened) is kept.
    Malformed(String),
    /// A line of a multi-line reply with another code than the first.
    CodeChanged { first: u16, then: u16 },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::LineTooLong => write!(f, "reply line over {MAX_LINE} bytes"),
            ReplyError::TooManyLines => write!(f, "reply of more than {MAX_LINES} lines"),
            ReplyError::Malformed(line) => write!(f, "malformed reply line {line:?}"),
            ReplyError::CodeChanged { first, then } => {
                write!(
                    f,
                    "reply code changed from {first} to {then} within one reply"
                )
            }
        }
    }
}

impl std::error::Error for ReplyError {}

/// What [`ReplyParser::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply, which took `consumed` bytes of the input; the rest
    /// is the next reply's.
    Reply { reply: ServerReply, consumed: usize },
    /// No whole reply yet: `consumed` bytes (whole lines) were taken, the
    /// caller drops them, keeps the rest and comes back with more.
    Pending { consumed: usize },
}

/// Collects the lines of one reply at a time.
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    /// The code of the lines so far (0 before the first).
    code: u16,
    /// The raw text of the lines so far.
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser at the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the lines of a reply in progress (after STARTTLS, nothing
    /// read before the handshake counts).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Takes the complete lines at the start of `input`. After an error
    /// the parser is in an undefined state: the connection is closed.
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ReplyError> {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                if rest.len() >= MAX_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(Parsed::Pending { consumed });
            };
            if lf >= MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let line = rest.get(..lf).unwrap_or_default();
            consumed += lf + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.line(line)? {
                let reply = self.finish();
                return Ok(Parsed::Reply { reply, consumed });
            }
        }
    }

    /// Takes one line; true when it was the reply's last.
    fn line(&mut self, line: &[u8]) -> Result<bool, ReplyError> {
        let malformed = || {
            let shown = line.get(..80).unwrap_or(line);
            ReplyError::Malformed(clean(shown))
        };
        let code = match line {
            [a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9', ..] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(malformed()),
        };
        // "250" alone is taken as a last line with no text.
        let (last, text) = match line.get(3..) {
            None | Some([]) => (true, &[][..]),
            Some([b' ', text @ ..]) => (true, text),
            Some([b'-', text @ ..]) => (false, text),
            Some(_) => return Err(malformed()),
        };
        if self.lines.is_empty() {
            self.code = code;
        } else if code != self.code {
            return Err(ReplyError::CodeChanged {
                first: self.code,
                then: code,
            });
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(clean(text));
        Ok(last)
    }

    /// The reply of the lines collected; the parser starts over.
    fn finish(&mut self) -> ServerReply {
        let code = std::mem::take(&mut self.code);
        let mut lines = std::mem::take(&mut self.lines);
        let enhanced = lines
            .first()
            .and_then(|first| enhanced_code(first))
            .filter(|(class, _, _)| u16::from(*class) == code / 100);
        if let Some(status) = enhanced {
            for line in &mut lines {
                if let Some(rest) = strip_enhanced(line, status) {
                    *line = rest.to_string();
                }
            }
        }
        ServerReply {
            code,
            enhanced,
            lines,
        }
    }
}

/// The text as a string: invalid UTF-8 replaced, control characters made
/// spaces (a reply's text goes into logs and DSNs).
fn clean(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The RFC 3463 code at the start of `text` (`5.1.1` followed by a space
/// or the end): class 2, 4 or 5, subject and detail of 1 to 3 digits.
fn enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    let word = text.split(' ').next().unwrap_or_default();
    let mut parts = word.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let number = |s: &str, max_len: usize| -> Option<u16> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let class = match class {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    Some((class, number(subject, 3)?, number(detail, 3)?))
}

/// `text` after its enhanced status code, when it starts with `status`.
fn strip_enhanced(text: &str, status: (u8, u16, u16)) -> Option<&str> {
    let word = text.split(' ').next().unwrap_or_default();
    if enhanced_code(word) != Some(status) {
        return None;
    }
    Some(
        text.get(word.len()..)
            .unwrap_or_default()
            .trim_start_matches(' '),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(input: &[u8]) -> ServerReply {
        match ReplyParser::new().parse(input) {
            Ok(Parsed::Reply { reply, consumed }) => {
                assert_eq!(consumed, input.len());
                reply
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_line_with_and_without_enhanced_code() {
        let r = one(b"550 5.1.1 No such user here\r\n");
        assert_eq!(r.code, 550);
        assert_eq!(r.enhanced, Some((5, 1, 1)));
        assert_eq!(r.lines, vec!["No such user here"]);
        assert!(r.is_permanent() && !r.is_transient() && !r.is_positive());
        assert_eq!(r.to_string(), "550 5.1.1 No such user here");

        let r = one(b"220 mx.example.org ESMTP\n");
        assert_eq!((r.code, r.enhanced), (220, None));
        assert_eq!(r.to_string(), "220 mx.example.org ESMTP");

        let r = one(b"354\r\n");
        assert_eq!(r.code, 354);
        assert_eq!(r.lines, vec![""]);
        assert_eq!(r.to_string(), "354");

        // A class that does not match the code is text, not a status.
        let r = one(b"250 5.0.0 odd\r\n");
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text(), "5.0.0 odd");
        let r = one(b"451 4.3.0\r\n");
        assert_eq!(r.enhanced, Some((4, 3, 0)));
        assert!(r.is_transient());
        assert_eq!(r.to_string(), "451 4.3.0");
        assert_eq!(one(b"550 5.1.1234 x\r\n").enhanced, None);
    }

    #[test]
    fn multi_line_replies() {
        let r = one(
            b"550-5.1.1 The account you tried to reach does not exist.\r\n\
              550-5.1.1 Please check the address\r\n\
              550 5.1.1 for typos.\r\n",
        );
        assert_eq!(r.enhanced, Some((5, 1, 1)));
        assert_eq!(r.lines.len(), 3);
        assert_eq!(
            r.to_string(),
            "550 5.1.1 The account you tried to reach does not exist. Please check the address for typos."
        );
        let r = one(b"250-mx.example.org Hello\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
        assert_eq!(
            r.lines,
            vec!["mx.example.org Hello", "PIPELINING", "SIZE 1000"]
        );
    }

    #[test]
    fn replies_arrive_in_pieces_and_back_to_back() {
        let input = b"250-a\r\n250 b\r\n354 go\r\n221 bye";
        let mut p = ReplyParser::new();
        assert_eq!(
            p.parse(input.get(..4).unwrap_or_default()),
            Ok(Parsed::Pending { consumed: 0 })
        );
        assert_eq!(
            p.parse(input.get(..10).unwrap_or_default()),
            Ok(Parsed::Pending { consumed: 7 })
        );
        let Ok(Parsed::Reply { reply, consumed }) = p.parse(input.get(7..).unwrap_or_default())
        else {
            panic!("reply")
        };
        assert_eq!((reply.code, consumed), (250, 7));
        assert_eq!(reply.lines, vec!["a", "b"]);
        let Ok(Parsed::Reply { reply, consumed }) = p.parse(input.get(14..).unwrap_or_default())
        else {
            panic!("reply")
        };
        assert_eq!((reply.code, consumed), (354, 8));
        assert_eq!(
            p.parse(input.get(22..).unwrap_or_default()),
            Ok(Parsed::Pending { consumed: 0 })
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        let err = |input: &[u8]| ReplyParser::new().parse(input).unwrap_err();
        assert!(matches!(err(b"hello\r\n"), ReplyError::Malformed(_)));
        assert!(matches!(err(b"25\r\n"), ReplyError::Malformed(_)));
        assert!(matches!(err(b"600 x\r\n"), ReplyError::Malformed(_)));
        assert!(matches!(err(b"190 x\r\n"), ReplyError::Malformed(_)));
        assert!(matches!(err(b"260 x\r\n"), ReplyError::Malformed(_)));
        assert!(matches!(err(b"250x\r\n"), ReplyError::Malformed(_)));
        assert_eq!(
            err(b"250-a\r\n251 b\r\n"),
            ReplyError::CodeChanged {
                first: 250,
                then: 251
            }
        );
        assert_eq!(err(&[b'2'; MAX_LINE]), ReplyError::LineTooLong);
        let mut long = b"250 ".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(err(&long), ReplyError::LineTooLong);
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(err(&many), ReplyError::TooManyLines);
    }

    #[test]
    fn text_is_cleaned() {
        let r = one(b"550 5.7.1 bad\x01\xffthing\r\n");
        assert_eq!(r.text(), "bad \u{fffd}thing");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10)) {
            let mut p = ReplyParser::new();
            let mut buf = Vec::new();
            'outer: for chunk in chunks {
                buf.extend_from_slice(&chunk);
                loop {
                    match p.parse(&buf) {
                        Ok(Parsed::Reply { reply, consumed }) => {
                            prop_assert!(consumed <= buf.len());
                            prop_assert!((200..600).contains(&reply.code));
                            let _ = reply.to_string();
                            buf.drain(..consumed);
                        }
                        Ok(Parsed::Pending { consumed }) => {
                            prop_assert!(consumed <= buf.len());
                            buf.drain(..consumed);
                            break;
                        }
                        Err(_) => break 'outer,
                    }
                }
            }
        }

        #[test]
        fn well_formed_replies_round_trip(code in 200u16..560, lines in proptest::collection::vec("[ -~]{0,60}", 1..6)) {
            prop_assume!(code % 100 < 60 && code % 10 <= 9 && (code / 10) % 10 <= 5);
            let mut wire = Vec::new();
            let last = lines.len() - 1;
            for (i, l) in lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                wire.extend_from_slice(format!("{code}{sep}{l}\r\n").as_bytes());
            }
            let r = one(&wire);
            prop_assert_eq!(r.code, code);
            prop_assert_eq!(r.lines.len(), lines.len());
        }
    }
}

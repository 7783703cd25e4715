//! The POP3 wire, sans-IO: no runtime, no sockets, only bytes in and bytes
//! out, so that every piece can be fuzzed and property-tested alone.
//!
//! - [`LineFramer`] (from `cairn-lines`, shared with SMTP) frames command
//!   lines (and SASL continuation lines) out of the read buffer, with a
//!   length limit that never loses the session's place in the stream;
//! - [`parse`] reads one line into a [`Command`] that borrows from it;
//! - [`ok`], [`err`], [`line`] and [`end`] write replies (RFC 1939 §3,
//!   with RFC 2449 response codes);
//! - [`DotStuffer`] byte-stuffs a message body chunk by chunk for RETR and
//!   TOP, and [`unstuff`] undoes it (the client's side, for tests);
//! - [`top`] cuts a message to its header and the first lines of its body
//!   ([`Top`]: the same, fed in chunks as the message is read).

use std::fmt;

pub use cairn_lines::{trim_eol, Frame, LineFramer};

/// One client command (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034
/// AUTH), its arguments borrowed from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    User(&'a str),
    /// The password: the rest of the line (it may hold spaces).
    Pass(&'a str),
    /// `AUTH` alone lists the mechanisms; else the mechanism and the
    /// optional initial response.
    Auth(Option<(&'a str, Option<&'a str>)>),
    Apop,
    Stls,
    Capa,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Rset,
    Noop,
    Quit,
}

/// Why a line is not a command; each becomes `-ERR <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Empty command")]
    Empty,
    #[error("Command line is not valid UTF-8")]
    Utf8,
    #[error("Unknown command")]
    Unknown,
    #[error("{0} needs an argument")]
    MissingArgument(&'static str),
    #[error("{0} takes no argument")]
    UnexpectedArgument(&'static str),
    #[error("Too many arguments for {0}")]
    TooManyArguments(&'static str),
    #[error("Invalid number in {0}")]
    BadNumber(&'static str),
}

/// The longest keyword (RFC 2449 §3: 3 or 4 characters; a little slack).
const MAX_KEYWORD: usize = 8;

/// Parses one command line (its CRLF may still be on it).
pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = std::str::from_utf8(trim_eol(line)).map_err(|_| ParseError::Utf8)?;
    // Leading spaces are a client's sloppiness; trailing ones too.
    let line = line.trim_start_matches(' ');
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let (keyword, rest) = match line.split_once(' ') {
        Some((k, r)) => (k, r),
        None => (line, ""),
    };
    if keyword.len() > MAX_KEYWORD || !keyword.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ParseError::Unknown);
    }
    let upper = keyword.to_ascii_uppercase();
    // PASS keeps its argument whole; the others split on spaces.
    if upper == "PASS" {
        if rest.is_empty() {
            return Err(ParseError::MissingArgument("PASS"));
        }
        return Ok(Command::Pass(rest));
    }
    let mut args = rest.split(' ').filter(|a| !a.is_empty());
    let (a, b, c) = (args.next(), args.next(), args.next());
    let none = |name: &'static str, cmd: Command<'static>| match a {
        None => Ok(cmd),
        Some(_) => Err(ParseError::UnexpectedArgument(name)),
    };
    match upper.as_str() {
        "USER" => match (a, b) {
            (Some(user), None) => Ok(Command::User(user)),
            (None, _) => Err(ParseError::MissingArgument("USER")),
            (Some(_), Some(_)) => Err(ParseError::TooManyArguments("USER")),
        },
        "AUTH" => match (a, b, c) {
            (None, _, _) => Ok(Command::Auth(None)),
            (Some(mech), initial, None) => Ok(Command::Auth(Some((mech, initial)))),
            _ => Err(ParseError::TooManyArguments("AUTH")),
        },
        "APOP" => Ok(Command::Apop),
        "STLS" => none("STLS", Command::Stls),
        "CAPA" => none("CAPA", Command::Capa),
        "STAT" => none("STAT", Command::Stat),
        "RSET" => none("RSET", Command::Rset),
        "NOOP" => none("NOOP", Command::Noop),
        "QUIT" => none("QUIT", Command::Quit),
        "LIST" | "UIDL" => {
            let name = if upper == "LIST" { "LIST" } else { "UIDL" };
            if b.is_some() {
                return Err(ParseError::TooManyArguments(name));
            }
            let n = a.map(|a| number(a, name)).transpose()?;
            Ok(if name == "LIST" {
                Command::List(n)
            } else {
                Command::Uidl(n)
            })
        }
        "RETR" | "DELE" => {
            let name = if upper == "RETR" { "RETR" } else { "DELE" };
            let n = match (a, b) {
                (Some(a), None) => number(a, name)?,
                (None, _) => return Err(ParseError::MissingArgument(name)),
                (Some(_), Some(_)) => return Err(ParseError::TooManyArguments(name)),
            };
            Ok(if name == "RETR" {
                Command::Retr(n)
            } else {
                Command::Dele(n)
            })
        }
        "TOP" => match (a, b, c) {
            (Some(n), Some(lines), None) => {
                Ok(Command::Top(number(n, "TOP")?, number(lines, "TOP")?))
            }
            (Some(_), Some(_), Some(_)) => Err(ParseError::TooManyArguments("TOP")),
            _ => Err(ParseError::MissingArgument("TOP")),
        },
        _ => Err(ParseError::Unknown),
    }
}

/// A decimal number (digits only, no sign), as message numbers and line
/// counts are.
fn number(arg: &str, name: &'static str) -> Result<u32, ParseError> {
    if arg.is_empty() || arg.len() > 10 || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber(name));
    }
    arg.parse().map_err(|_| ParseError::BadNumber(name))
}

/// RFC 2449 §8 response codes (and RFC 3206's SYS and AUTH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// The maildrop is locked by another session.
    InUse,
    /// A temporary failure on our side.
    SysTemp,
    /// A permanent failure on our side (or of the account).
    SysPerm,
    /// The credentials, or what the account may do, are the problem.
    Auth,
}

impl fmt::Display for RespCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RespCode::InUse => "IN-USE",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
            RespCode::Auth => "AUTH",
        })
    }
}

/// Appends text with every control character made a space: a reply never
/// carries a line break from anywhere (a user name echoed back).
fn text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b.is_ascii_control() { b' ' } else { b }),
    );
}

/// Appends `+OK text` (or `+OK` for empty text).
pub fn ok(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"+OK");
    if !msg.is_empty() {
        out.push(b' ');
        text(out, msg);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `-ERR [CODE] text`.
pub fn err(out: &mut Vec<u8>, code: Option<RespCode>, msg: &str) {
    out.extend_from_slice(b"-ERR ");
    if let Some(code) = code {
        out.extend_from_slice(format!("[{code}] ").as_bytes());
    }
    text(out, msg);
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a multi-line reply, byte-stuffed.
pub fn line(out: &mut Vec<u8>, msg: &str) {
    if msg.starts_with('.') {
        out.push(b'.');
    }
    text(out, msg);
    out.extend_from_slice(b"\r\n");
}

/// Appends the end of a multi-line reply.
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Byte-stuffs a message for a multi-line reply (RFC 1939 §3), in chunks:
/// a line that starts with `.` gets a second one; line ends go out as
/// they are. [`DotStuffer::finish`] ends the last line if it is open and
/// writes the terminating `.`.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        Self {
            at_line_start: true,
        }
    }

    /// Appends `chunk`, stuffed, to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while let Some(&first) = chunk.first() {
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (head, tail) = chunk.split_at(i + 1);
                    out.extend_from_slice(head);
                    chunk = tail;
                    self.at_line_start = true;
                }
                None => {
                    out.extend_from_slice(chunk);
                    self.at_line_start = false;
                    chunk = &[];
                }
            }
        }
    }

    /// Ends the reply: CRLF if the last line is open, then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        end(out);
    }
}

/// Undoes byte-stuffing: the body of a multi-line reply (after its first
/// line) up to the terminating `.` line, or `None` if it has none.
pub fn unstuff(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    loop {
        let i = rest.iter().position(|&b| b == b'\n')?;
        let (line, tail) = rest.split_at(i + 1);
        if line == b".\r\n" || line == b".\n" {
            return Some(out);
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        rest = tail;
    }
}

/// The header of `message`, the blank line after it, and the first
/// `lines` lines of its body (TOP). A message without a blank line is all
/// header.
pub fn top(message: &[u8], lines: u32) -> &[u8] {
    Top::new(lines).take(message).0
}

/// [`top`] of a message given in chunks, as it is read: each chunk's part
/// that belongs to the top, and whether the top is complete (nothing more
/// need be read).
#[derive(Debug, Clone)]
pub struct Top {
    in_header: bool,
    /// Body lines still to take.
    left: u32,
    /// Bytes of the current line taken so far, and whether they are a lone
    /// CR (a blank line so far either way when at most that).
    line: usize,
    line_cr: bool,
}

impl Top {
    /// The top of a message with `lines` lines of body.
    pub fn new(lines: u32) -> Self {
        Self {
            in_header: true,
            left: lines,
            line: 0,
            line_cr: false,
        }
    }

    /// Whether the top is complete.
    pub fn done(&self) -> bool {
        !self.in_header && self.left == 0 && self.line == 0
    }

    /// The part of `chunk` (the next bytes of the message) that belongs to
    /// the top, and whether the top is complete.
    pub fn take<'c>(&mut self, chunk: &'c [u8]) -> (&'c [u8], bool) {
        let mut at = 0;
        while at < chunk.len() && !self.done() {
            let rest = chunk.get(at..).unwrap_or_default();
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                self.line_cr =
                    (self.line == 0 && rest == b"\r") || (self.line_cr && rest.is_empty());
                self.line += rest.len();
                at = chunk.len();
                break;
            };
            let before = rest.get(..nl).unwrap_or_default();
            let blank = match self.line {
                0 => before.is_empty() || before == b"\r",
                1 => self.line_cr && before.is_empty(),
                _ => false,
            };
            if self.in_header {
                self.in_header = !blank;
            } else {
                self.left -= 1;
            }
            self.line = 0;
            self.line_cr = false;
            at += nl + 1;
        }
        (chunk.get(..at).unwrap_or(chunk), self.done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse(b"user alice\r\n"), Ok(Command::User("alice")));
        assert_eq!(
            parse(b"PASS with spaces  \r\n"),
            Ok(Command::Pass("with spaces  "))
        );
        assert_eq!(parse(b"STAT\r\n"), Ok(Command::Stat));
        assert_eq!(parse(b"LIST\r\n"), Ok(Command::List(None)));
        assert_eq!(parse(b"list 3\n"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"UIDL 1\r\n"), Ok(Command::Uidl(Some(1))));
        assert_eq!(parse(b"TOP 1 10\r\n"), Ok(Command::Top(1, 10)));
        assert_eq!(parse(b"RETR 2\r\n"), Ok(Command::Retr(2)));
        assert_eq!(parse(b"DELE 2\r\n"), Ok(Command::Dele(2)));
        assert_eq!(parse(b"AUTH\r\n"), Ok(Command::Auth(None)));
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg==\r\n"),
            Ok(Command::Auth(Some(("PLAIN", Some("AGEAYg==")))))
        );
        assert_eq!(parse(b"CAPA\r\n"), Ok(Command::Capa));
        assert_eq!(parse(b"stls\r\n"), Ok(Command::Stls));
        assert_eq!(parse(b"QUIT\r\n"), Ok(Command::Quit));
        assert_eq!(parse(b"\r\n"), Err(ParseError::Empty));
        assert_eq!(parse(b"FOO\r\n"), Err(ParseError::Unknown));
        assert_eq!(parse(b"RETR\r\n"), Err(ParseError::MissingArgument("RETR")));
        assert_eq!(parse(b"RETR -1\r\n"), Err(ParseError::BadNumber("RETR")));
        assert_eq!(
            parse(b"RETR 99999999999\r\n"),
            Err(ParseError::BadNumber("RETR"))
        );
        assert_eq!(parse(b"TOP 1\r\n"), Err(ParseError::MissingArgument("TOP")));
        assert_eq!(
            parse(b"STAT 1\r\n"),
            Err(ParseError::UnexpectedArgument("STAT"))
        );
        assert_eq!(parse(b"USER \xff\r\n"), Err(ParseError::Utf8));
    }

    #[test]
    fn writes_replies() {
        let mut out = Vec::new();
        ok(&mut out, "2 320");
        err(&mut out, Some(RespCode::InUse), "locked\r\nx");
        line(&mut out, ".hidden");
        end(&mut out);
        assert_eq!(
            out,
            b"+OK 2 320\r\n-ERR [IN-USE] locked  x\r\n..hidden\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn stuffs_dots_and_ends() {
        let mut out = Vec::new();
        let mut s = DotStuffer::new();
        s.feed(b".a\r\nb\r\n", &mut out);
        s.feed(b".", &mut out);
        s.feed(b"\r\n..c", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"..a\r\nb\r\n..\r\n...c\r\n.\r\n".to_vec());
        assert_eq!(unstuff(&out), Some(b".a\r\nb\r\n.\r\n..c\r\n".to_vec()));
    }

    #[test]
    fn top_cuts_after_the_header() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top(m, 9), &m[..]);
        assert_eq!(top(b"A: 1\r\n", 3), b"A: 1\r\n");
        assert_eq!(top(b"", 3), b"");
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&line);
        }

        #[test]
        fn parse_never_panics_on_near_commands(
            kw in prop::sample::select(vec!["USER", "PASS", "AUTH", "LIST", "UIDL", "TOP", "RETR", "DELE", "STAT", "CAPA"]),
            args in "[ 0-9a-zA-Z=+/\\-]{0,40}",
        ) {
            let _ = parse(format!("{kw} {args}\r\n").as_bytes());
        }

        #[test]
        fn dot_stuffing_round_trips(
            body in proptest::collection::vec(prop::sample::select(vec![b'.', b'\r', b'\n', b'a']), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut out = Vec::new();
            let mut s = DotStuffer::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for c in cuts {
                s.feed(&body[from..c], &mut out);
                from = c;
            }
            s.feed(&body[from..], &mut out);
            s.finish(&mut out);
            let mut whole = Vec::new();
            let mut w = DotStuffer::new();
            w.feed(&body, &mut whole);
            w.finish(&mut whole);
            prop_assert_eq!(&out, &whole);
            let mut expected = body.clone();
            if !expected.is_empty() && !expected.ends_with(b"\n") {
                expected.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(unstuff(&out), Some(expected));
            // No line of the stuffed body is a lone dot before the end.
            prop_assert!(out.ends_with(b".\r\n"));
        }

        #[test]
        fn top_is_a_prefix(body in proptest::collection::vec(any::<u8>(), 0..200), n in 0u32..5) {
            let t = top(&body, n);
            prop_assert!(body.starts_with(t));
        }

        /// Fed in chunks as the message is read, the top is the same,
        /// and it says it is complete once it is.
        #[test]
        fn top_in_chunks_is_the_top(
            body in proptest::collection::vec(prop::sample::select(vec![b'a', b'\r', b'\n', b':']), 0..120),
            n in 0u32..4,
            cuts in proptest::collection::vec(1usize..9, 0..40),
        ) {
            let whole = top(&body, n);
            let mut t = Top::new(n);
            let (mut got, mut at, mut done) = (Vec::new(), 0, false);
            for cut in cuts.iter().copied().chain(std::iter::once(usize::MAX)) {
                if done || at >= body.len() {
                    break;
                }
                let end = at.saturating_add(cut).min(body.len());
                let (part, complete) = t.take(&body[at..end]);
                got.extend_from_slice(part);
                done = complete;
                at = end;
            }
            prop_assert_eq!(&got[..], whole);
            if done {
                prop_assert!(whole.len() <= body.len());
            }
        }
    }
}

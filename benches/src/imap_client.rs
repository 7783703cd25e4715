//! A minimal async IMAP client for load generation (tokio, plain TCP): one
//! tagged command at a time, replies read line by line with their literals
//! (`{n}` then n bytes) consumed in place, so a command's time is exactly
//! from its write to its tagged reply. Server bytes are never trusted: a
//! malformed or unexpected reply is an error naming the line, never a panic.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest response line accepted (literals are not counted).
const MAX_LINE: usize = 1 << 20;
/// The largest literal accepted.
const MAX_LITERAL: usize = 64 << 20;
/// How long one read may wait for the server.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A server's reply to one command.
#[derive(Debug, Default)]
pub struct Reply {
    /// The untagged and continuation lines before the tagged one, each with
    /// its literals' contents left out (their `{n}` markers stay).
    pub untagged: Vec<String>,
    /// The tagged status line, without the tag.
    pub status: String,
    /// Bytes received for this command, literals included.
    pub bytes: usize,
}

impl Reply {
    /// `n` of the first `* n EXISTS`, if any.
    pub fn exists(&self) -> Option<u32> {
        self.untagged.iter().find_map(|l| {
            let mut w = l.split_ascii_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("*"), Some(n), Some(word)) if word.eq_ignore_ascii_case("EXISTS") => {
                    n.parse().ok()
                }
                _ => None,
            }
        })
    }

    /// The UIDs of the `* n FETCH (… UID u …)` lines.
    pub fn fetched_uids(&self) -> Vec<u32> {
        self.untagged
            .iter()
            .filter_map(|l| after_word(l, "UID"))
            .collect()
    }

    /// The UID of an `[APPENDUID validity uid]` response code (UIDPLUS).
    pub fn append_uid(&self) -> Option<u32> {
        let upper = self.status.to_ascii_uppercase();
        let at = upper.find("[APPENDUID ")?;
        let rest = self.status.get(at + 11..)?;
        let mut w = rest.split([' ', ']']);
        w.next()?;
        w.next()?.parse().ok()
    }
}

/// The number after the word `word` (case-insensitive) in `line`.
fn after_word(line: &str, word: &str) -> Option<u32> {
    let mut w = line
        .split(|c: char| c.is_ascii_whitespace() || c == '(' || c == ')')
        .filter(|s| !s.is_empty());
    while let Some(x) = w.next() {
        if x.eq_ignore_ascii_case(word) {
            return w.next()?.parse().ok();
        }
    }
    None
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

/// One IMAP connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
    tag: u64,
    line: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` and reads the greeting (`* OK`).
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream: BufReader::new(stream),
            tag: 0,
            line: Vec::new(),
        };
        let mut bytes = 0;
        let greeting = conn.read_logical_line(&mut bytes).await?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(protocol_error(format!("greeting: {greeting:?}")));
        }
        Ok(conn)
    }

    /// Reads one physical line (ending in LF) into `self.line`.
    async fn read_raw_line(&mut self) -> io::Result<()> {
        self.line.clear();
        let read = async {
            loop {
                let buf = self.stream.fill_buf().await?;
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                self.line.extend_from_slice(&buf[..take]);
                self.stream.consume(take);
                if done {
                    return Ok(());
                }
                if self.line.len() > MAX_LINE {
                    return Err(protocol_error("response line over 1 MiB"));
                }
            }
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply in 60 s"))?
    }

    /// Reads one logical response line: physical lines joined across
    /// literals, whose contents are read and dropped.
    async fn read_logical_line(&mut self, bytes: &mut usize) -> io::Result<String> {
        let mut out = String::new();
        loop {
            self.read_raw_line().await?;
            *bytes += self.line.len();
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches(['\r', '\n']);
            out.push_str(text);
            let Some(n) = literal_length(text) else {
                return Ok(out);
            };
            if n > MAX_LITERAL {
                return Err(protocol_error(format!("literal of {n} bytes")));
            }
            let mut left = n;
            let mut chunk = [0u8; 16 * 1024];
            while left > 0 {
                let want = left.min(chunk.len());
                let got = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk[..want]))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no literal in 60 s"))??;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection inside a literal",
                    ));
                }
                left -= got;
            }
            *bytes += n;
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("a{}", self.tag)
    }

    /// Reads until the tagged reply to `tag`; an error unless it is `OK`.
    async fn read_reply(&mut self, tag: &str, mut reply: Reply) -> io::Result<Reply> {
        loop {
            let line = self.read_logical_line(&mut reply.bytes).await?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                reply.status = rest.to_string();
                let ok = rest.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("OK "));
                if !ok {
                    return Err(protocol_error(format!("{tag} {rest}")));
                }
                return Ok(reply);
            }
            reply.untagged.push(line);
        }
    }

    /// Sends `command` (without tag or CRLF) and reads its reply.
    pub async fn command(&mut self, command: &str) -> io::Result<Reply> {
        let tag = self.next_tag();
        let wire = format!("{tag} {command}\r\n");
        self.stream.get_mut().write_all(wire.as_bytes()).await?;
        self.read_reply(&tag, Reply::default()).await
    }

    /// `LOGIN` with quoted strings.
    pub async fn login(&mut self, user: &str, password: &str) -> io::Result<Reply> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .await
    }

    /// `APPEND mailbox (flags) {n}` with a synchronising literal.
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> io::Result<Reply> {
        let tag = self.next_tag();
        let head = format!(
            "{tag} APPEND {} ({flags}) {{{}}}\r\n",
            quote(mailbox),
            message.len()
        );
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        let mut reply = Reply::default();
        loop {
            let line = self.read_logical_line(&mut reply.bytes).await?;
            if line.starts_with('+') {
                break;
            }
            if line.starts_with(&format!("{tag} ")) {
                return Err(protocol_error(format!("APPEND refused: {line}")));
            }
            reply.untagged.push(line);
        }
        let w = self.stream.get_mut();
        w.write_all(message).await?;
        w.write_all(b"\r\n").await?;
        self.read_reply(&tag, reply).await
    }

    /// `IDLE`, returning once the server says `+`.
    pub async fn idle(&mut self) -> io::Result<()> {
        let tag = self.next_tag();
        self.stream
            .get_mut()
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        let mut bytes = 0;
        for _ in 0..1000 {
            let line = self.read_logical_line(&mut bytes).await?;
            if line.starts_with('+') {
                return Ok(());
            }
            if line.starts_with(&format!("{tag} ")) {
                return Err(protocol_error(format!("IDLE refused: {line}")));
            }
        }
        Err(protocol_error("no continuation after IDLE"))
    }
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `n` when `line` ends with a literal marker `{n}` or `{n+}`.
fn literal_length(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    let digits = inner.get(open + 1..)?;
    let digits = digits.strip_suffix('+').unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_length("* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_length("a1 APPEND x {7+}"), Some(7));
        assert_eq!(literal_length("* OK {no}"), None);
        assert_eq!(literal_length("* OK done"), None);
    }

    #[test]
    fn reply_fields() {
        let r = Reply {
            untagged: vec![
                "* 12 EXISTS".into(),
                "* 11 FETCH (UID 40 FLAGS (\\Seen))".into(),
                "* 12 FETCH (FLAGS () UID 41)".into(),
            ],
            status: "OK [APPENDUID 99 77] done".into(),
            bytes: 0,
        };
        assert_eq!(r.exists(), Some(12));
        assert_eq!(r.fetched_uids(), vec![40, 41]);
        assert_eq!(r.append_uid(), Some(77));
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}

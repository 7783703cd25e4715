//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034,
//! RFC 3463): `250 2.0.0 text`, and multi-line `250-…` / `250 …`.

use std::borrow::Cow;

/// One reply: the code, the enhanced status code (empty for `220`
/// greetings and `334` challenges) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: &'static str,
    pub text: Cow<'static, str>,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status,
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code (greeting, 334).
    pub fn bare(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(code, "", text)
    }

    /// Whether the reply is a success (2xx or 3xx).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Whether the reply is a permanent failure (5xx).
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply, CRLF-terminated, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_line(out, self.code, ' ', self.status, &self.text);
    }
}

/// Appends a multi-line reply: every line but the last with `code-`.
pub fn write_multiline(out: &mut Vec<u8>, code: u16, status: &str, lines: &[String]) {
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        write_line(out, code, sep, status, line);
    }
}

fn write_line(out: &mut Vec<u8>, code: u16, sep: char, status: &str, text: &str) {
    out.extend_from_slice(format!("{code:03}{sep}").as_bytes());
    if !status.is_empty() {
        out.extend_from_slice(status.as_bytes());
        out.push(b' ');
    }
    // A reply never carries a line break or control character from
    // anywhere (an address echoed back, an error message).
    out.extend(
        text.bytes()
            .map(|b| if b.is_ascii_control() { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_and_many_lines() {
        let mut out = Vec::new();
        Reply::new(250, "2.0.0", "Ok").write(&mut out);
        Reply::bare(334, "").write(&mut out);
        Reply::new(550, "5.1.1", "bad\r\nAUTH x").write(&mut out);
        write_multiline(
            &mut out,
            250,
            "",
            &["host".to_string(), "PIPELINING".to_string()],
        );
        assert_eq!(
            out,
            b"250 2.0.0 Ok\r\n334 \r\n550 5.1.1 bad  AUTH x\r\n250-host\r\n250 PIPELINING\r\n"
        );
    }
}

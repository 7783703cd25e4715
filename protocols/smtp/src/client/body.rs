//! The DATA body on its way out (RFC 5321 §4.5.2), sans-IO: lines end with
//! CRLF (a bare LF or a bare CR becomes CRLF: servers, Cairn's among them,
//! refuse bare line ends, RFC 5321 §2.3.8), a line that starts with `.`
//! gets one more, and the body ends with `CRLF.CRLF`. The encoder works
//! on any slice of the body at a time and fills a bounded output buffer,
//! so that a big message goes out in pieces, copied once.

/// Encodes a body a piece at a time.
#[derive(Debug, Clone)]
pub(crate) struct DotStuffer {
    /// The next byte starts a line.
    line_start: bool,
    /// The last byte was a CR (its LF, or a bare CR's, still to come).
    after_cr: bool,
}

impl DotStuffer {
    pub(crate) fn new() -> Self {
        Self {
            line_start: true,
            after_cr: false,
        }
    }

    /// Encodes bytes of `input` onto `out` until `out` holds `limit`
    /// bytes or more, or the input is used up; returns how many input
    /// bytes were used (at least one when there are any and `out` is
    /// under the limit).
    pub(crate) fn encode(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> usize {
        let mut i = 0;
        while out.len() < limit {
            let Some(&b) = input.get(i) else { break };
            if self.after_cr {
                self.after_cr = false;
                out.push(b'\n');
                self.line_start = true;
                if b == b'\n' {
                    i += 1;
                    continue;
                }
                // A bare CR ended the line; `b` starts the next.
            }
            match b {
                b'\r' => {
                    out.push(b'\r');
                    self.after_cr = true;
                    self.line_start = false;
                    i += 1;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    i += 1;
                }
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    let rest = input.get(i..).unwrap_or_default();
                    let room = limit.saturating_sub(out.len()).max(1);
                    let run = memchr::memchr2(b'\r', b'\n', rest)
                        .unwrap_or(rest.len())
                        .min(room);
                    out.extend_from_slice(rest.get(..run).unwrap_or_default());
                    self.line_start = false;
                    i += run;
                }
            }
        }
        i
    }

    /// Ends the body: the last line's CRLF if it had none, then `.CRLF`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after_cr {
            out.push(b'\n');
            self.after_cr = false;
            self.line_start = true;
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.line_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::data::DataReader;
    use proptest::prelude::*;

    fn encode(body: &[u8], limit: usize) -> Vec<u8> {
        let mut d = DotStuffer::new();
        let mut wire = Vec::new();
        let mut rest = body;
        let mut out = Vec::new();
        while !rest.is_empty() {
            out.clear();
            let used = d.encode(rest, &mut out, limit);
            assert!(used > 0);
            rest = rest.get(used..).unwrap_or_default();
            wire.extend_from_slice(&out);
        }
        d.finish(&mut wire);
        wire
    }

    #[test]
    fn stuffs_dots_and_fixes_line_ends() {
        assert_eq!(encode(b"", 64), b".\r\n");
        assert_eq!(encode(b"a", 64), b"a\r\n.\r\n");
        assert_eq!(
            encode(b".x\r\n..y\r\n.\r\nz\n.\n", 64),
            b"..x\r\n...y\r\n..\r\nz\r\n..\r\n.\r\n"
        );
        assert_eq!(encode(b"a\rb\r", 64), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode(b"a\r\r\n.b", 1), b"a\r\n\r\n..b\r\n.\r\n");
        assert_eq!(encode(b"a.b\r\n", 2), b"a.b\r\n.\r\n");
    }

    proptest! {
        /// What Cairn's own server reads back is the body with its line
        /// ends made CRLF, whatever the pieces.
        #[test]
        fn the_server_reads_back_the_body(body in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300), limit in 1usize..50) {
            prop_assume!(!body.contains(&0));
            let wire = encode(&body, limit);
            let mut reader = DataReader::new(usize::MAX);
            prop_assert_eq!(reader.feed(&wire), wire.len());
            prop_assert!(reader.is_done());
            let read = reader.finish().expect("a clean body");
            let mut expected = Vec::new();
            let mut i = 0;
            while let Some(&b) = body.get(i) {
                match b {
                    b'\r' if body.get(i + 1) == Some(&b'\n') => { expected.extend_from_slice(b"\r\n"); i += 1; }
                    b'\r' | b'\n' => expected.extend_from_slice(b"\r\n"),
                    b => expected.push(b),
                }
                i += 1;
            }
            if !expected.is_empty() && !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(read, expected);
        }
    }
}

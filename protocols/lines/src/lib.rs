//! `cairn-lines`: framing of the line-based protocols' command lines (SMTP
//! and POP3, their AUTH continuation lines too), sans-IO: a line ends at
//! LF (normally CRLF). A line longer than the limit is consumed up to its
//! end and reported once as [`Frame::TooLong`], so that the session keeps
//! its place in the stream and answers with the protocol's error (`500
//! 5.5.2`, `-ERR`) instead of closing.

/// What the framer found at the start of the unread bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of `len` bytes, its CRLF (or LF) included.
    Line { len: usize },
    /// A line over the limit ended; `consumed` bytes of it were here.
    TooLong { consumed: usize },
    /// No complete line yet; `consumed` bytes may be dropped (the middle
    /// of a line being discarded), then more input is needed.
    Pending { consumed: usize },
}

/// Finds lines in a byte stream, with a length limit.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    discarding: bool,
}

impl LineFramer {
    /// Lines may be `max` bytes long, CRLF included (at least 3).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(3),
            discarding: false,
        }
    }

    /// Looks at the unread bytes `buf`. For [`Frame::Line`] the caller
    /// consumes `len` bytes after using the line.
    pub fn next(&mut self, buf: &[u8]) -> Frame {
        let lf = buf.iter().position(|&b| b == b'\n');
        match (self.discarding, lf) {
            (true, Some(i)) => {
                self.discarding = false;
                Frame::TooLong { consumed: i + 1 }
            }
            (true, None) => Frame::Pending {
                consumed: buf.len(),
            },
            (false, Some(i)) if i < self.max => Frame::Line { len: i + 1 },
            (false, Some(i)) => Frame::TooLong { consumed: i + 1 },
            (false, None) if buf.len() >= self.max => {
                self.discarding = true;
                Frame::Pending {
                    consumed: buf.len(),
                }
            }
            (false, None) => Frame::Pending { consumed: 0 },
        }
    }
}

/// A line without its line ending (CRLF, or a lone LF).
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_lines_and_long_lines() {
        let mut f = LineFramer::new(10);
        assert_eq!(f.next(b"NOOP\r\nQUIT"), Frame::Line { len: 6 });
        assert_eq!(f.next(b"QUIT"), Frame::Pending { consumed: 0 });
        assert_eq!(f.next(b"0123456789\r\n"), Frame::TooLong { consumed: 12 });
        assert_eq!(f.next(b"0123456789abc"), Frame::Pending { consumed: 13 });
        assert_eq!(f.next(b"def\r\nNOOP\r\n"), Frame::TooLong { consumed: 5 });
        assert_eq!(f.next(b"NOOP\r\n"), Frame::Line { len: 6 });
        assert_eq!(trim_eol(b"AB\r\n"), b"AB");
        assert_eq!(trim_eol(b"AB\n"), b"AB");
    }

    proptest! {
        #[test]
        fn framing_always_progresses(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16), max in 3usize..40) {
            let mut f = LineFramer::new(max);
            let mut buf: Vec<u8> = Vec::new();
            for chunk in chunks {
                buf.extend_from_slice(&chunk);
                loop {
                    match f.next(&buf) {
                        Frame::Line { len } => {
                            prop_assert!(len <= max && len <= buf.len());
                            buf.drain(..len);
                        }
                        Frame::TooLong { consumed } => { prop_assert!(consumed <= buf.len()); buf.drain(..consumed); }
                        Frame::Pending { consumed } => { prop_assert!(consumed <= buf.len()); buf.drain(..consumed); break; }
                    }
                }
                prop_assert!(buf.len() < max);
            }
        }
    }
}

//! The DATA body (RFC 5321 §4.1.1.4, §4.5.2): finds the `CRLF.CRLF` end,
//! undoes dot-stuffing, and notes what makes the message unacceptable
//! without stopping early, so that the whole body is always read and the
//! session stays in step with the client:
//!
//! - a bare LF or a bare CR (RFC 5321 §2.3.8: lines end with CRLF only).
//!   Cairn rejects such a message (`550 5.6.0`) after reading all of it;
//!   a lone `.` followed by a bare LF never ends the body (the "SMTP
//!   smuggling" family of attacks needs exactly that);
//! - a NUL byte;
//! - more than the size limit: bytes past the limit are not kept.

/// Where the reader is within the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    Start,
    /// Inside a line.
    Mid,
    /// After a CR inside a line (not yet known to be a CRLF).
    Cr,
    /// After a `.` at the start of a line.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
}

/// Reads a DATA body out of any number of input chunks.
#[derive(Debug, Clone)]
pub struct DataReader {
    state: State,
    max: usize,
    body: Vec<u8>,
    overflow: bool,
    bare_line_ending: bool,
    nul: bool,
    done: bool,
}

/// What was wrong with a body that was read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the size limit.
    TooBig,
    /// A bare CR or LF.
    BareLineEnding,
    /// A NUL byte.
    Nul,
}

impl DataReader {
    /// A reader that keeps at most `max` bytes of body.
    pub fn new(max: usize) -> Self {
        Self {
            state: State::Start,
            max,
            body: Vec::new(),
            overflow: false,
            bare_line_ending: false,
            nul: false,
            done: false,
        }
    }

    /// Takes input; returns how many bytes of it belong to the body (the
    /// rest, after the end, are the next commands).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && !self.done {
            if self.state == State::Mid {
                // Fast path: copy up to the next CR or LF at once.
                let run = input
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                if run > 0 {
                    let end = i + run;
                    self.emit_slice(input.get(i..end).unwrap_or_default());
                    i = end;
                    continue;
                }
            }
            let b = input.get(i).copied().unwrap_or_default();
            self.byte(b);
            i += 1;
        }
        i
    }

    /// Whether the end of the body was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The body, once done; or why it is refused.
    pub fn finish(self) -> Result<Vec<u8>, BodyError> {
        if self.overflow {
            Err(BodyError::TooBig)
        } else if self.nul {
            Err(BodyError::Nul)
        } else if self.bare_line_ending {
            Err(BodyError::BareLineEnding)
        } else {
            Ok(self.body)
        }
    }

    fn byte(&mut self, b: u8) {
        match (self.state, b) {
            (State::Start, b'.') => self.state = State::Dot,
            (State::Start | State::Mid, b'\r') => self.state = State::Cr,
            (State::Start | State::Mid, b'\n') => self.bare_lf(),
            (State::Start | State::Mid, b) => {
                self.emit(b);
                self.state = State::Mid;
            }
            (State::Cr, b'\n') => {
                self.emit_slice(b"\r\n");
                self.state = State::Start;
            }
            (State::DotCr, b'\n') => self.done = true,
            (State::Cr | State::DotCr, b) => {
                // The CR before `b` was bare.
                self.bare_line_ending = true;
                self.emit(b'\r');
                self.state = State::Mid;
                self.byte(b);
            }
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::Dot, b) => {
                // A stuffed dot: drop it, the rest is the line.
                self.state = State::Mid;
                if b == b'\n' {
                    self.bare_lf();
                } else {
                    self.byte(b);
                }
            }
        }
    }

    fn bare_lf(&mut self) {
        self.bare_line_ending = true;
        self.emit(b'\n');
        self.state = State::Start;
    }

    fn emit(&mut self, b: u8) {
        self.emit_slice(&[b]);
    }

    fn emit_slice(&mut self, bytes: &[u8]) {
        if bytes.contains(&0) {
            self.nul = true;
        }
        if self.overflow || self.body.len() + bytes.len() > self.max {
            self.overflow = true;
            return;
        }
        self.body.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(input: &[u8], max: usize) -> (Result<Vec<u8>, BodyError>, usize, bool) {
        let mut r = DataReader::new(max);
        let used = r.feed(input);
        let done = r.is_done();
        (r.finish(), used, done)
    }

    #[test]
    fn unstuffs_and_stops_at_the_end() {
        let (body, used, done) = read(b"Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n", 100);
        assert!(done);
        assert_eq!(used, 24);
        assert_eq!(body, Ok(b"Subject: x\r\n\r\n.dot\r\n".to_vec()));
        assert_eq!(read(b".\r\n", 100).0, Ok(Vec::new()));
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let input = b"a\r\n..b\r\n.c\r\n.\r\n";
        for split in 0..input.len() {
            let mut r = DataReader::new(100);
            let (a, b) = input.split_at(split);
            assert_eq!(r.feed(a), a.len());
            r.feed(b);
            assert!(r.is_done());
            assert_eq!(r.finish(), Ok(b"a\r\n.b\r\nc\r\n".to_vec()));
        }
    }

    #[test]
    fn refuses_bare_line_endings_nul_and_size() {
        assert_eq!(
            read(b"a\nb\r\n.\r\n", 100).0,
            Err(BodyError::BareLineEnding)
        );
        assert_eq!(
            read(b"a\rb\r\n.\r\n", 100).0,
            Err(BodyError::BareLineEnding)
        );
        assert_eq!(read(b"a\0b\r\n.\r\n", 100).0, Err(BodyError::Nul));
        let (r, _, done) = read(b"0123456789\r\n.\r\n", 5);
        assert_eq!(r, Err(BodyError::TooBig));
        assert!(done);
        // `.` + bare LF does not end the body (smuggling).
        let (r, _, done) = read(b"a\r\n.\nMAIL FROM:<x@y>\r\n", 100);
        assert!(!done);
        assert_eq!(r, Err(BodyError::BareLineEnding));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8), max in 0usize..200) {
            let mut r = DataReader::new(max);
            for c in &chunks {
                let used = r.feed(c);
                prop_assert!(used <= c.len());
                if r.is_done() { break; }
            }
            if let Ok(body) = r.finish() { prop_assert!(body.len() <= max); }
        }

        #[test]
        fn stuffed_bodies_round_trip(lines in proptest::collection::vec("[ -~]{0,40}", 0..20)) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for l in &lines {
                if l.starts_with('.') { wire.push(b'.'); }
                wire.extend_from_slice(l.as_bytes());
                wire.extend_from_slice(b"\r\n");
                want.extend_from_slice(l.as_bytes());
                want.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let (body, used, done) = read(&wire, 10_000);
            prop_assert!(done);
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(body, Ok(want));
        }
    }
}

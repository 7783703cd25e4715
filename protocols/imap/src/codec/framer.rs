//! Framing of client input into whole commands, sans-IO: lines up to
//! `max_line`, and literals (`{n}` synchronizing, `{n+}` LITERAL+), each
//! announced literal offered to the caller before a byte of it is kept.
//!
//! The caller feeds the unread input and gets back how much was used and
//! an [`Event`]. A literal the caller refuses is never buffered: for a
//! synchronizing one the client waits for a continuation that never
//! comes; a non-synchronizing one is skipped, with the rest of its command.
//! A line over the limit is dropped up to its end and reported once.

use memchr::memchr;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// All input is used; feed more.
    NeedMore,
    /// A whole command (its lines and literals, CRLFs included).
    Command(Vec<u8>),
    /// A line ends with a literal announcement: call
    /// [`Framer::accept_literal`] (and send `+` for a synchronizing one) or
    /// [`Framer::refuse_literal`]. [`Framer::pending`] holds the command
    /// so far.
    Literal { length: u32, sync: bool },
    /// A line was longer than the limit; it is skipped.
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a line.
    Line,
    /// A line ended with a literal announcement; waiting for the caller.
    Announced { length: u32, sync: bool },
    /// Collecting `remaining` literal bytes.
    Literal { remaining: u32 },
    /// Dropping `remaining` bytes of a refused literal, then the rest of
    /// its command.
    Skip { remaining: u32 },
    /// Dropping the lines of a refused command up to its end.
    Discard,
    /// Dropping a line that is too long, up to its LF.
    DropLine,
}

/// The framer of one connection.
#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    state: State,
    /// The command being collected.
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// The last bytes of a line being dropped (Discard), for its literal.
    tail: Vec<u8>,
}

/// Reads a literal announcement at the end of `line` (CRLF or LF
/// included): `{n}` or `{n+}`.
pub fn announcement(line: &[u8]) -> Option<(u32, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = line.get(open + 1..)?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse::<u32>().ok()?;
    Some((length, sync))
}

impl Framer {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(16),
            state: State::Line,
            buf: Vec::new(),
            line_start: 0,
            tail: Vec::new(),
        }
    }

    /// The command collected so far (for decoding its tag and checking it
    /// at a literal announcement).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the announced literal: its bytes are collected next.
    pub fn accept_literal(&mut self) {
        if let State::Announced { length, .. } = self.state {
            self.state = if length == 0 {
                self.line_start = self.buf.len();
                State::Line
            } else {
                State::Literal { remaining: length }
            };
        }
    }

    /// Refuses the announced literal: the command is dropped; a
    /// non-synchronizing literal's bytes, and the rest of its command,
    /// are skipped as they come.
    pub fn refuse_literal(&mut self) {
        if let State::Announced { length, sync } = self.state {
            self.reset();
            if !sync {
                self.state = State::Skip { remaining: length };
            }
        }
    }

    /// Drops the command being collected and starts over (after STARTTLS,
    /// or when a session moves).
    pub fn reset(&mut self) {
        self.state = State::Line;
        self.buf = Vec::new();
        self.line_start = 0;
        self.tail.clear();
    }

    /// Uses some of `input`; returns how many bytes, and what they made.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Event) {
        match self.state {
            State::Announced { length, sync } => (0, Event::Literal { length, sync }),
            State::Line => self.line(input),
            State::Literal { remaining } => {
                let n = input.len().min(remaining as usize);
                self.buf
                    .extend_from_slice(input.get(..n).unwrap_or_default());
                let left = remaining - n as u32;
                self.state = if left == 0 {
                    self.line_start = self.buf.len();
                    State::Line
                } else {
                    State::Literal { remaining: left }
                };
                (n, Event::NeedMore)
            }
            State::Skip { remaining } => {
                let n = input.len().min(remaining as usize);
                let left = remaining - n as u32;
                self.state = if left == 0 {
                    self.tail.clear();
                    State::Discard
                } else {
                    State::Skip { remaining: left }
                };
                (n, Event::NeedMore)
            }
            State::Discard | State::DropLine => self.drop_line(input),
        }
    }

    fn line(&mut self, input: &[u8]) -> (usize, Event) {
        let in_line = self.buf.len() - self.line_start;
        let room = self.max_line.saturating_sub(in_line);
        let window = input.get(..room.min(input.len())).unwrap_or_default();
        let Some(lf) = memchr(b'\n', window) else {
            if input.len() >= room {
                // No end of line within the limit.
                self.reset();
                self.state = State::DropLine;
                return (0, Event::LineTooLong);
            }
            self.buf.extend_from_slice(input);
            return (input.len(), Event::NeedMore);
        };
        self.buf
            .extend_from_slice(window.get(..=lf).unwrap_or_default());
        let line = self.buf.get(self.line_start..).unwrap_or_default();
        match announcement(line) {
            Some((length, sync)) => {
                self.state = State::Announced { length, sync };
                (lf + 1, Event::Literal { length, sync })
            }
            None => {
                let command = std::mem::take(&mut self.buf);
                self.reset();
                (lf + 1, Event::Command(command))
            }
        }
    }

    /// Drops bytes up to the end of a line; in Discard, a line that
    /// announces a non-synchronizing literal skips that literal too.
    fn drop_line(&mut self, input: &[u8]) -> (usize, Event) {
        let discarding = self.state == State::Discard;
        let Some(lf) = memchr(b'\n', input) else {
            if discarding {
                self.keep_tail(input);
            }
            return (input.len(), Event::NeedMore);
        };
        let line = input.get(..=lf).unwrap_or_default();
        self.keep_tail(line);
        let next = if discarding {
            match announcement(&self.tail) {
                Some((length, false)) if length > 0 => State::Skip { remaining: length },
                _ => State::Line,
            }
        } else {
            State::Line
        };
        self.reset();
        self.state = next;
        (lf + 1, Event::NeedMore)
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        const TAIL: usize = 16;
        self.tail.extend_from_slice(bytes);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds everything, accepting literals up to `max_literal`; returns
    /// the events other than NeedMore, and the bytes of accepted
    /// literals' continuations.
    fn run(framer: &mut Framer, mut input: &[u8], max_literal: u32) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let (n, event) = framer.feed(input);
            input = input.get(n..).unwrap_or_default();
            match event {
                Event::NeedMore if input.is_empty() => return events,
                Event::NeedMore => {}
                Event::Literal { length, .. } => {
                    if length <= max_literal {
                        framer.accept_literal();
                    } else {
                        framer.refuse_literal();
                    }
                    events.push(event);
                }
                other => events.push(other),
            }
        }
    }

    #[test]
    fn lines_and_literals() {
        let mut f = Framer::new(1024);
        let events = run(
            &mut f,
            b"a1 NOOP\r\na2 LOGIN {5}\r\nalice {3+}\r\npw!\r\na3 NOOP\n",
            100,
        );
        assert_eq!(
            events,
            vec![
                Event::Command(b"a1 NOOP\r\n".to_vec()),
                Event::Literal {
                    length: 5,
                    sync: true
                },
                Event::Literal {
                    length: 3,
                    sync: false
                },
                Event::Command(b"a2 LOGIN {5}\r\nalice {3+}\r\npw!\r\n".to_vec()),
                Event::Command(b"a3 NOOP\n".to_vec()),
            ]
        );
    }

    #[test]
    fn a_refused_literal_is_never_buffered() {
        // A non-synchronizing literal over the limit: its bytes, and the
        // rest of its command, are skipped; the next command is whole.
        let mut f = Framer::new(1024);
        let mut input = b"a1 APPEND INBOX {100000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b" more {2+}\r\nzz\r\na2 NOOP\r\n");
        let mut events = Vec::new();
        let mut rest = &input[..];
        let mut most = 0;
        while !rest.is_empty() {
            let (n, event) = f.feed(rest);
            most = most.max(f.pending().len());
            rest = &rest[n..];
            match event {
                Event::Literal { length, .. } if length > 10 => f.refuse_literal(),
                Event::Literal { .. } => f.accept_literal(),
                Event::NeedMore => {}
                other => events.push(other),
            }
        }
        assert!(most < 100, "buffered {most} bytes of a refused literal");
        assert_eq!(events, vec![Event::Command(b"a2 NOOP\r\n".to_vec())]);
        // A synchronizing one: the client sends nothing more for it.
        let mut f = Framer::new(1024);
        let events = run(&mut f, b"a1 APPEND INBOX {100000}\r\na2 NOOP\r\n", 10);
        assert_eq!(
            events.last(),
            Some(&Event::Command(b"a2 NOOP\r\n".to_vec()))
        );
    }

    #[test]
    fn a_long_line_is_reported_and_skipped() {
        let mut f = Framer::new(64);
        let mut input = b"a1 ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 500));
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        let events = run(&mut f, &input, 10);
        assert_eq!(
            events,
            vec![Event::LineTooLong, Event::Command(b"a2 NOOP\r\n".to_vec())]
        );
    }

    #[test]
    fn announcements() {
        assert_eq!(announcement(b"a {12}\r\n"), Some((12, true)));
        assert_eq!(announcement(b"a {0+}\n"), Some((0, false)));
        assert_eq!(announcement(b"a {}\r\n"), None);
        assert_eq!(announcement(b"a {99999999999}\r\n"), None);
        assert_eq!(announcement(b"a {1 }\r\n"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32),
            max_line in 16usize..128,
        ) {
            let mut f = Framer::new(max_line);
            for chunk in chunks {
                let mut rest = &chunk[..];
                for _ in 0..10_000 {
                    let (n, event) = f.feed(rest);
                    prop_assert!(n <= rest.len());
                    rest = &rest[n..];
                    match event {
                        Event::Literal { length, .. } if length > 32 || f.pending().len() > 256 => {
                            f.refuse_literal()
                        }
                        Event::Literal { .. } => f.accept_literal(),
                        Event::NeedMore if rest.is_empty() => break,
                        _ => {}
                    }
                    // What is kept stays within the limits.
                    prop_assert!(f.pending().len() <= 256 + max_line + 32);
                }
            }
        }
    }
}

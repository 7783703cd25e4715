//! A minimal blocking SMTP client for load generation: one session per
//! thread, transactions pipelined (MAIL, RCPT, DATA in one write), each
//! transaction's time from its MAIL to the final `250` recorded.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One SMTP session over TCP.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
}

impl Session {
    /// Connects, reads the greeting and says EHLO.
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut s = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            line: String::new(),
        };
        s.expect(220)?;
        s.writer.write_all(b"EHLO load.test\r\n")?;
        s.expect(250)?;
        Ok(s)
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    fn expect(&mut self, code: u16) -> io::Result<()> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            let got: u16 = self.line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if got != code {
                return Err(io::Error::other(format!(
                    "expected {code}, got {:?}",
                    self.line.trim_end()
                )));
            }
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }

    /// Sends one message (`body` already dot-stuffed, ending in CRLF) and
    /// returns the time from MAIL to the final `250`.
    pub fn send(&mut self, from: &str, to: &str, body: &[u8]) -> io::Result<Duration> {
        let started = Instant::now();
        let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
        self.writer.write_all(envelope.as_bytes())?;
        self.expect(250)?;
        self.expect(250)?;
        self.expect(354)?;
        self.writer.write_all(body)?;
        self.writer.write_all(b".\r\n")?;
        self.expect(250)?;
        Ok(started.elapsed())
    }

    /// Says QUIT.
    pub fn quit(mut self) -> io::Result<()> {
        self.writer.write_all(b"QUIT\r\n")?;
        self.expect(221)
    }
}

/// A message of about `size` bytes: headers, then 76-character lines.
pub fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: load@load.test\r\nTo: bench@example.org\r\nSubject: load\r\n\r\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

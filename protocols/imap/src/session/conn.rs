//! The socket of a session, its read buffer and framer, and the output
//! buffer's flushing: input is framed where it lies, replies collect and
//! are written when the input runs dry (so a pipelined batch gets one
//! write). A wait for input between commands (IDLE's included) also ends
//! when the appliance stops.

use std::io;
use std::time::Duration;

use cairn_shards::stream::Stream;
use cairn_shards::time::timeout;
use cairn_shards::Shutdown;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

use crate::codec::framer::{Event, Framer};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed, or we did (LOGOUT, too many errors).
    Closed,
    /// A read deadline passed.
    Timeout,
    /// The session moved to another shard.
    Moved,
    /// The appliance is stopping (seen between commands).
    Shutdown,
    Io(io::Error),
}

pub(crate) struct Conn {
    pub(crate) stream: Option<Stream>,
    buf: Vec<u8>,
    pos: usize,
    scratch: Vec<u8>,
    pub(crate) framer: Framer,
    /// Ends a wait for the next command when raised.
    shutdown: Option<Shutdown>,
}

impl Conn {
    pub(crate) fn new(
        stream: Stream,
        max_line: usize,
        pending: Vec<u8>,
        shutdown: Option<Shutdown>,
    ) -> Self {
        Self {
            stream: Some(stream),
            buf: pending,
            pos: 0,
            scratch: Vec::new(),
            framer: Framer::new(max_line),
            shutdown,
        }
    }

    /// The bytes read but not used yet (taken when the session moves).
    pub(crate) fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos.min(self.buf.len()));
        self.buf.clear();
        self.pos = 0;
        rest
    }

    /// Forgets everything read (after STARTTLS: RFC 9051 §11.1).
    pub(crate) fn discard_input(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.framer.reset();
    }

    pub(crate) fn has_unread(&self) -> bool {
        self.pos < self.buf.len()
    }

    pub(crate) async fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), End> {
        if out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Closed)?;
        stream.write_all(out).await.map_err(End::Io)?;
        stream.flush().await.map_err(End::Io)?;
        out.clear();
        Ok(())
    }

    /// Ends the connection now: writes what is pending (as far as the
    /// socket takes it) and closes the socket. For a reply that cannot be
    /// finished (a streamed FETCH literal whose body failed part-way).
    pub(crate) async fn abort(&mut self, out: &mut Vec<u8>) {
        let _ = self.flush(out).await;
        out.clear();
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.close().await;
        }
    }

    /// Writes what is pending, then reads more input within `wait`; with
    /// no command part-way in, the wait also ends when the appliance
    /// stops (a command being sent is let finish).
    pub(crate) async fn fill(&mut self, out: &mut Vec<u8>, wait: Duration) -> Result<(), End> {
        self.flush(out).await?;
        if self.pos > 0 {
            self.buf.drain(..self.pos.min(self.buf.len()));
            self.pos = 0;
        }
        // Read into scratch space, so that a read given up (IDLE woken
        // by a change) leaves the buffer as it was.
        self.scratch.resize(READ_CHUNK, 0);
        let between_commands = self.framer.pending().is_empty();
        let stream = self.stream.as_mut().ok_or(End::Closed)?;
        let read = async { Some(timeout(wait, stream.read(&mut self.scratch)).await) };
        let stopping = async {
            match (&self.shutdown, between_commands) {
                (Some(shutdown), true) => shutdown.wait().await,
                _ => future::pending().await,
            }
            None
        };
        match future::or(read, stopping).await {
            None => Err(End::Shutdown),
            Some(Ok(Ok(0))) => Err(End::Closed),
            Some(Ok(Ok(n))) => {
                self.buf
                    .extend_from_slice(self.scratch.get(..n).unwrap_or_default());
                Ok(())
            }
            Some(Ok(Err(e))) => Err(End::Io(e)),
            Some(Err(_)) => Err(End::Timeout),
        }
    }

    /// The next framing event from what is buffered, without reading.
    pub(crate) fn poll_event(&mut self) -> Event {
        loop {
            let unread = self.buf.get(self.pos..).unwrap_or_default();
            let (used, event) = self.framer.feed(unread);
            self.pos += used;
            match event {
                Event::NeedMore if used > 0 && self.has_unread() => continue,
                other => return other,
            }
        }
    }

    /// The next framing event, reading within `wait` as needed.
    pub(crate) async fn next_event(
        &mut self,
        out: &mut Vec<u8>,
        wait: Duration,
    ) -> Result<Event, End> {
        loop {
            match self.poll_event() {
                Event::NeedMore => self.fill(out, wait).await?,
                other => return Ok(other),
            }
        }
    }
}

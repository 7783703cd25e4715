//! The tiny request/response protocol of the runtime benchmarks: the client
//! sends `PING <n>\n`, the server answers `PONG <n>\n`. Sans-IO: both sides
//! call [`answer`] on what they have read so far.

/// The longest request line a server accepts.
pub const MAX_LINE: usize = 64;

/// What a server makes of its read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A complete request: write `reply`, then drop `consumed` bytes.
    Reply { reply: Vec<u8>, consumed: usize },
    /// Need more bytes.
    More,
    /// Not our protocol, or a line over [`MAX_LINE`]: close.
    Bad,
}

/// Answers the first complete request in `buf`.
pub fn answer(buf: &[u8]) -> Step {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE {
            Step::Bad
        } else {
            Step::More
        };
    };
    let line = &buf[..end];
    match line.strip_prefix(b"PING ") {
        Some(n) if n.iter().all(u8::is_ascii_digit) && !n.is_empty() => {
            let mut reply = Vec::with_capacity(n.len() + 6);
            reply.extend_from_slice(b"PONG ");
            reply.extend_from_slice(n);
            reply.push(b'\n');
            Step::Reply {
                reply,
                consumed: end + 1,
            }
        }
        _ => Step::Bad,
    }
}

/// Serves the protocol on `$stream` until the peer closes or misbehaves.
/// A macro, not a function, because the shard runtime's streams and
/// tokio's implement different read/write traits: the caller brings the
/// right `AsyncReadExt`/`AsyncWriteExt` into scope.
#[macro_export]
macro_rules! serve_rr {
    ($stream:expr) => {{
        let stream = &mut $stream;
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 128];
        loop {
            match $crate::rr_protocol::answer(&buf) {
                $crate::rr_protocol::Step::Reply { reply, consumed } => {
                    if stream.write_all(&reply).await.is_err() {
                        break;
                    }
                    buf.drain(..consumed);
                }
                $crate::rr_protocol::Step::Bad => break,
                $crate::rr_protocol::Step::More => match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_whole_lines_only() {
        assert_eq!(answer(b"PING 1"), Step::More);
        assert_eq!(
            answer(b"PING 12\nPING"),
            Step::Reply {
                reply: b"PONG 12\n".to_vec(),
                consumed: 8
            }
        );
        assert_eq!(answer(b"HELO\n"), Step::Bad);
        assert_eq!(answer(&[b'9'; 100]), Step::Bad);
    }
}

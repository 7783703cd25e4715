//! WebSocket (RFC 6455) on the HTTP listener: [`upgrade`] checks a
//! client's opening handshake and gives the `101` reply plus the pending
//! upgrade; [`WebSocket`] then speaks frames ([`codec`]) over the upgraded
//! connection: text out, pings answered, close honoured.

pub mod codec;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http_body_util::Full;
use hyper::rt::ReadBufCursor;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{header, Response, StatusCode};
use sha1::{Digest, Sha1};

use self::codec::{Frame, Opcode};
use crate::router::{json_error, Reply, Request};

/// RFC 6455 §1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest frame a client may send (this server reads only small ones).
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

fn header_has(req: &Request, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Checks the opening handshake: the `101` reply to send and the upgrade
/// to await, or a `400`/`426` naming what is missing.
pub fn upgrade(req: &mut Request) -> Result<(Reply, OnUpgrade), Box<Reply>> {
    let bad = |status, why: &str| Box::new(json_error(status, "not_websocket", why));
    if !header_has(req, header::UPGRADE, "websocket")
        || !header_has(req, header::CONNECTION, "upgrade")
    {
        return Err(bad(
            StatusCode::UPGRADE_REQUIRED,
            "this resource is a WebSocket: send Upgrade: websocket",
        ));
    }
    if !header_has(req, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .is_ok_and(|k| k.len() == 16)
        })
    else {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is missing or not 16 bytes of base64",
        ));
    };
    let accept = accept_key(key);
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    Ok((reply, hyper::upgrade::on(req)))
}

/// hyper's upgraded connection as a futures-io stream.
struct Io(Upgraded);

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        let cursor: ReadBufCursor<'_> = read.unfilled();
        match hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, cursor) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

/// What a client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    /// The client closed (and was answered).
    Closed,
}

/// A server's WebSocket connection.
pub struct WebSocket {
    io: Io,
    buf: Vec<u8>,
    /// A fragmented message being put together.
    partial: Option<(Opcode, Vec<u8>)>,
}

impl WebSocket {
    /// Waits for the upgrade the `101` reply started.
    pub async fn accept(upgrade: OnUpgrade) -> io::Result<Self> {
        let upgraded = upgrade.await.map_err(io::Error::other)?;
        Ok(Self {
            io: Io(upgraded),
            buf: Vec::new(),
            partial: None,
        })
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.io
            .write_all(&codec::encode(Opcode::Text, text.as_bytes()))
            .await?;
        self.io.flush().await
    }

    /// Sends a close frame with `code` and ends the connection.
    pub async fn close(mut self, code: u16) -> io::Result<()> {
        self.io.write_all(&codec::close(code)).await?;
        self.io.flush().await?;
        self.io.close().await
    }

    /// The next message (pings are answered on the way); `Closed` once the
    /// client closes or breaks the protocol (answered with 1002/1009).
    /// Cancel-safe: bytes read stay buffered for the next call.
    pub async fn recv(&mut self) -> io::Result<Message> {
        loop {
            match codec::decode(&mut self.buf, MAX_CLIENT_FRAME) {
                Ok(Some(frame)) => {
                    if let Some(message) = self.on_frame(frame).await? {
                        return Ok(message);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.io.write_all(&codec::close(e.close_code())).await?;
                    self.io.flush().await?;
                    return Ok(Message::Closed);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Message::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> io::Result<Option<Message>> {
        match frame.opcode {
            Opcode::Ping => {
                self.io
                    .write_all(&codec::encode(Opcode::Pong, &frame.payload))
                    .await?;
                self.io.flush().await?;
                Ok(None)
            }
            Opcode::Pong => Ok(None),
            Opcode::Close => {
                let code = frame
                    .payload
                    .get(..2)
                    .map_or(1000, |c| u16::from_be_bytes([c[0], c[1]]));
                self.io.write_all(&codec::close(code)).await?;
                self.io.flush().await?;
                Ok(Some(Message::Closed))
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                let (opcode, mut data) = match (frame.opcode, self.partial.take()) {
                    (Opcode::Continuation, Some(partial)) => partial,
                    (Opcode::Continuation, None) => {
                        self.io.write_all(&codec::close(1002)).await?;
                        return Ok(Some(Message::Closed));
                    }
                    (op, _) => (op, Vec::new()),
                };
                data.extend_from_slice(&frame.payload);
                if data.len() > MAX_CLIENT_FRAME {
                    self.io.write_all(&codec::close(1009)).await?;
                    return Ok(Some(Message::Closed));
                }
                if !frame.fin {
                    self.partial = Some((opcode, data));
                    return Ok(None);
                }
                Ok(Some(match opcode {
                    Opcode::Text => match String::from_utf8(data) {
                        Ok(text) => Message::Text(text),
                        Err(_) => {
                            self.io.write_all(&codec::close(1007)).await?;
                            Message::Closed
                        }
                    },
                    _ => Message::Binary(data),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_key_of_rfc_6455() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

//! WebSocket frames (RFC 6455 §5), sans-IO: the server's frames are
//! encoded unmasked and whole; the client's are decoded from a buffer with
//! the rules a server must enforce — masked, no reserved bits, control
//! frames short and unfragmented, a payload limit — each broken rule a
//! named error (the connection is then closed with 1002 or 1009).

use std::fmt;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// Why a client's frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// RSV bits set without an extension.
    Reserved,
    /// An opcode RFC 6455 does not define.
    UnknownOpcode(u8),
    /// A client frame without a mask.
    Unmasked,
    /// A control frame over 125 bytes or fragmented.
    BadControl,
    /// A payload above the limit.
    TooLarge(u64),
}

impl FrameError {
    /// The close code to answer with.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reserved => write!(f, "reserved bits set"),
            Self::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            Self::Unmasked => write!(f, "client frames must be masked"),
            Self::BadControl => write!(f, "control frames are at most 125 bytes and whole"),
            Self::TooLarge(n) => write!(f, "a {n}-byte frame is above the limit"),
        }
    }
}

/// A server frame: FIN set, no mask.
pub fn encode(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode.bits());
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame with a status code.
pub fn close(code: u16) -> Vec<u8> {
    encode(Opcode::Close, &code.to_be_bytes())
}

/// Takes the first whole frame off the front of `buf`: `Ok(None)` while
/// it is incomplete.
pub fn decode(buf: &mut Vec<u8>, max_payload: usize) -> Result<Option<Frame>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                (u64::from_be_bytes(n), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(FrameError::BadControl);
    }
    if len > max_payload as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let Some(mask) = buf.get(at..at + 4).map(|m| [m[0], m[1], m[2], m[3]]) else {
        return Ok(None);
    };
    at += 4;
    let len = len as usize;
    let Some(masked) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = masked
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    buf.drain(..at + len);
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A client frame: masked with `mask`.
    fn client(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = encode(opcode, payload);
        let header = frame.len() - payload.len();
        frame[1] |= 0x80;
        let body: Vec<u8> = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        frame.truncate(header);
        frame.extend_from_slice(&mask);
        frame.extend(body);
        frame
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        assert_eq!(encode(Opcode::Text, b"hi"), vec![0x81, 2, b'h', b'i']);
        assert_eq!(
            &encode(Opcode::Binary, &[0; 200])[..4],
            &[0x82, 126, 0, 200]
        );
        assert_eq!(&encode(Opcode::Binary, &[0; 70_000])[..2], &[0x82, 127]);
        assert_eq!(close(1000), vec![0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn broken_client_frames_are_named() {
        let mut unmasked = encode(Opcode::Text, b"x");
        assert_eq!(decode(&mut unmasked, 100), Err(FrameError::Unmasked));
        let mut rsv = client(Opcode::Text, b"x", [1, 2, 3, 4]);
        rsv[0] |= 0x40;
        assert_eq!(decode(&mut rsv, 100), Err(FrameError::Reserved));
        let mut op = client(Opcode::Text, b"x", [1, 2, 3, 4]);
        op[0] = 0x83;
        assert_eq!(decode(&mut op, 100), Err(FrameError::UnknownOpcode(3)));
        let mut ping = client(Opcode::Ping, &[0; 126], [1, 2, 3, 4]);
        assert_eq!(decode(&mut ping, 1000), Err(FrameError::BadControl));
        let mut big = client(Opcode::Text, &[0; 300], [1, 2, 3, 4]);
        assert_eq!(decode(&mut big, 100), Err(FrameError::TooLarge(300)));
        assert_eq!(FrameError::TooLarge(1).close_code(), 1009);
    }

    proptest! {
        #[test]
        fn client_frames_decode_whole_and_byte_by_byte(
            payload in proptest::collection::vec(any::<u8>(), 0..70_000usize),
            mask in any::<[u8; 4]>(),
        ) {
            let frame = client(Opcode::Binary, &payload, mask);
            let mut buf = frame.clone();
            let got = decode(&mut buf, 100_000).expect("valid").expect("whole");
            prop_assert_eq!(&got.payload, &payload);
            prop_assert!(buf.is_empty());
            let mut partial = frame[..frame.len() - 1].to_vec();
            prop_assert_eq!(decode(&mut partial, 100_000), Ok(None));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = bytes;
            let _ = decode(&mut buf, 128);
        }
    }
}

//! The LDAP wire, sans-IO: frames BER messages out of the connection's read
//! buffer (refusing oversized or indefinite-length ones before they are
//! buffered whole), decodes them with `ldap3_proto`, and encodes replies
//! into the write buffer. No runtime here: the session owns the socket.

use bytes::BytesMut;
use ldap3_proto::proto::{LdapExtendedResponse, LdapMsg, LdapOp, LdapResult, LdapResultCode};
use ldap3_proto::LdapCodec;
use tokio_util::codec::{Decoder, Encoder};

/// The OID of the unsolicited Notice of Disconnection (RFC 4511 §4.4.1).
pub const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";

/// Why the bytes from a client cannot be an LDAP message. Every case ends
/// the connection with a Notice of Disconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The message says it is larger than the limit.
    TooLarge { declared: u64, limit: usize },
    /// Not a BER SEQUENCE with a definite length, or not an LDAPMessage.
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge { declared, limit } => {
                write!(
                    f,
                    "message of {declared} bytes is over the {limit} byte limit"
                )
            }
            DecodeError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

/// Reads the outer tag and length of the message at the front of `buf`:
/// `Ok(None)` while the header is incomplete, else the whole message's
/// length in bytes (header included).
pub fn frame_len(buf: &[u8], limit: usize) -> Result<Option<usize>, DecodeError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if tag != 0x30 {
        return Err(DecodeError::Malformed("an LDAPMessage is a SEQUENCE"));
    }
    let Some(&first) = buf.get(1) else {
        return Ok(None);
    };
    let (header, len) = if first < 0x80 {
        (2usize, u64::from(first))
    } else if first == 0x80 {
        return Err(DecodeError::Malformed("indefinite length"));
    } else {
        let n = usize::from(first & 0x7f);
        if n > 8 {
            return Err(DecodeError::Malformed("length of length over 8 bytes"));
        }
        let Some(bytes) = buf.get(2..2 + n) else {
            return Ok(None);
        };
        let len = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        (2 + n, len)
    };
    let total = len.saturating_add(header as u64);
    if total > limit as u64 {
        return Err(DecodeError::TooLarge {
            declared: total,
            limit,
        });
    }
    Ok(Some(total as usize))
}

/// Decodes messages from a connection's read buffer.
pub struct MessageDecoder {
    inner: LdapCodec,
    limit: usize,
}

impl MessageDecoder {
    /// Messages of at most `limit` bytes, nested at most `max_depth` deep.
    pub fn new(limit: usize, max_depth: usize) -> Self {
        Self {
            inner: LdapCodec::new(Some(limit), Some(max_depth)),
            limit,
        }
    }

    /// Takes the next whole message off the front of `buf`, if one is
    /// there; `Ok(None)` asks for more bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LdapMsg>, DecodeError> {
        let Some(total) = frame_len(buf, self.limit)? else {
            return Ok(None);
        };
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        match self.inner.decode(&mut frame) {
            Ok(Some(msg)) if frame.is_empty() => Ok(Some(msg)),
            Ok(Some(_)) => Err(DecodeError::Malformed("trailing bytes inside the message")),
            Ok(None) => Err(DecodeError::Malformed("truncated message")),
            Err(_) => Err(DecodeError::Malformed("not an LDAPMessage")),
        }
    }
}

/// Appends `msg`, BER-encoded, to `out`.
pub fn encode(msg: LdapMsg, out: &mut BytesMut) {
    // Encoding into a BytesMut cannot fail: the error type is io::Error
    // only because of the trait.
    if let Err(e) = LdapCodec::default().encode(msg, out) {
        tracing::error!(error = %e, "cannot encode an LDAP message");
    }
}

/// An LDAPResult with `code` and a diagnostic message.
pub fn result(code: LdapResultCode, message: impl Into<String>) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

/// The unsolicited Notice of Disconnection, sent before the server closes
/// a connection it cannot go on with.
pub fn notice_of_disconnection(code: LdapResultCode, message: &str) -> LdapMsg {
    LdapMsg::new(
        0,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: result(code, message),
            name: Some(NOTICE_OF_DISCONNECTION.to_string()),
            value: None,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames() {
        assert_eq!(frame_len(&[], 100), Ok(None));
        assert_eq!(frame_len(&[0x30], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 5], 100), Ok(Some(7)));
        assert_eq!(frame_len(&[0x30, 0x82, 0x01], 1000), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x82, 0x01, 0x00], 1000), Ok(Some(260)));
        assert!(matches!(
            frame_len(&[0x30, 0x84, 0x7f, 0, 0, 0], 1000),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(frame_len(&[0x30, 0x80], 100).is_err());
        assert!(frame_len(&[0x02, 0x01], 100).is_err());
    }

    #[test]
    fn round_trip_and_garbage() {
        let mut out = BytesMut::new();
        encode(
            notice_of_disconnection(LdapResultCode::ProtocolError, "x"),
            &mut out,
        );
        let mut dec = MessageDecoder::new(1 << 20, 64);
        let mut buf = out.clone();
        let msg = dec.decode(&mut buf).expect("decodes").expect("whole");
        assert_eq!(msg.msgid, 0);
        assert!(buf.is_empty());
        let mut garbage = BytesMut::from(&[0x30u8, 0x03, 0xff, 0xff, 0xff][..]);
        assert!(dec.decode(&mut garbage).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = MessageDecoder::new(4096, 32);
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..8 {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }

        #[test]
        fn sequence_prefix_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut v = vec![0x30u8, bytes.len().min(127) as u8];
            v.extend_from_slice(&bytes);
            let mut dec = MessageDecoder::new(4096, 32);
            let _ = dec.decode(&mut BytesMut::from(&v[..]));
        }
    }
}

//! SASL mechanisms that carry a password, sans-IO, for every protocol's
//! AUTH: PLAIN (RFC 4616) and LOGIN (the de-facto two-step exchange). The
//! protocol moves the base64 lines; this module decodes them with limits,
//! and the result goes to the authentication service.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Longest identity or password accepted, in bytes.
pub const MAX_FIELD: usize = 1024;
/// Longest base64 client response accepted.
pub const MAX_RESPONSE: usize = 4 * (3 * MAX_FIELD + 2).div_ceil(3);

/// Decoded credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who to act as (PLAIN's authzid); empty means the same as `user`.
    pub authorize_as: String,
    /// Who is logging in.
    pub user: String,
    pub password: String,
}

/// Why a client response is refused (the protocol answers its own error:
/// SMTP `501 5.5.2`, IMAP `BAD`, POP3 `-ERR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the response is not valid base64")]
    Base64,
    #[error("the response is too long")]
    TooLong,
    #[error("the response is not UTF-8")]
    Utf8,
    #[error("the response is malformed: {0}")]
    Malformed(&'static str),
    #[error("the client cancelled the exchange")]
    Cancelled,
}

fn decode_b64(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line == "*" {
        return Err(SaslError::Cancelled);
    }
    if line.len() > MAX_RESPONSE {
        return Err(SaslError::TooLong);
    }
    STANDARD.decode(line).map_err(|_| SaslError::Base64)
}

fn field(bytes: &[u8], empty_ok: bool, name: &'static str) -> Result<String, SaslError> {
    if bytes.len() > MAX_FIELD {
        return Err(SaslError::TooLong);
    }
    if bytes.is_empty() && !empty_ok {
        return Err(SaslError::Malformed(name));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Utf8)
}

/// Decodes a PLAIN response: base64 of `authzid NUL authcid NUL passwd`.
pub fn plain(response_b64: &str) -> Result<Credentials, SaslError> {
    let bytes = decode_b64(response_b64)?;
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "expected authzid NUL authcid NUL password",
        ));
    };
    Ok(Credentials {
        authorize_as: field(authz, true, "authzid")?,
        user: field(user, false, "empty user")?,
        password: field(password, false, "empty password")?,
    })
}

/// The LOGIN exchange: the server asks for the user name, then the password.
#[derive(Debug, Default)]
pub struct Login {
    user: Option<String>,
}

/// What the server says next in a LOGIN exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginStep {
    /// Send this base64 challenge and wait for the next response.
    Challenge(&'static str),
    /// The exchange is complete.
    Done(Credentials),
}

impl Login {
    /// The first challenge ("Username:").
    pub const USERNAME: &'static str = "VXNlcm5hbWU6";
    /// The second challenge ("Password:").
    pub const PASSWORD: &'static str = "UGFzc3dvcmQ6";

    /// Takes the client's next base64 response.
    pub fn step(&mut self, response_b64: &str) -> Result<LoginStep, SaslError> {
        let bytes = decode_b64(response_b64)?;
        match self.user.take() {
            None => {
                self.user = Some(field(&bytes, false, "empty user")?);
                Ok(LoginStep::Challenge(Self::PASSWORD))
            }
            Some(user) => Ok(LoginStep::Done(Credentials {
                authorize_as: String::new(),
                user,
                password: field(&bytes, false, "empty password")?,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn plain_as_rfc_4616_shows_it() {
        // RFC 4616 §4: "\0tim\0tanstaaftanstaaf"
        let c = plain(&b64(b"\0tim\0tanstaaftanstaaf")).expect("valid");
        assert_eq!(
            (
                c.authorize_as.as_str(),
                c.user.as_str(),
                c.password.as_str()
            ),
            ("", "tim", "tanstaaftanstaaf")
        );
        let c = plain(&b64(b"Ursel\0Kurt\0xipj3plmq")).expect("valid");
        assert_eq!(c.authorize_as, "Ursel");
        assert_eq!(
            plain(&b64(b"tim\0secret")),
            Err(SaslError::Malformed(
                "expected authzid NUL authcid NUL password"
            ))
        );
        assert_eq!(
            plain(&b64(b"\0\0secret")),
            Err(SaslError::Malformed("empty user"))
        );
        assert_eq!(
            plain(&b64(b"\0tim\0")),
            Err(SaslError::Malformed("empty password"))
        );
        assert_eq!(
            plain(&b64(b"\0tim\0a\0b")).map(|_| ()),
            Err(SaslError::Malformed(
                "expected authzid NUL authcid NUL password"
            ))
        );
        assert_eq!(plain(&b64(b"\0\xff\0x")), Err(SaslError::Utf8));
        assert_eq!(plain("not base64!"), Err(SaslError::Base64));
        assert_eq!(plain("*"), Err(SaslError::Cancelled));
        assert_eq!(
            plain(&"A".repeat(MAX_RESPONSE + 4)),
            Err(SaslError::TooLong)
        );
    }

    #[test]
    fn login_asks_for_the_user_then_the_password() {
        let mut l = Login::default();
        assert_eq!(
            l.step(&b64(b"alice@example.org")),
            Ok(LoginStep::Challenge(Login::PASSWORD))
        );
        let done = l.step(&b64(b"correct horse"));
        assert_eq!(
            done,
            Ok(LoginStep::Done(Credentials {
                authorize_as: String::new(),
                user: "alice@example.org".into(),
                password: "correct horse".into()
            }))
        );
        assert_eq!(
            STANDARD.decode(Login::USERNAME).ok().as_deref(),
            Some(&b"Username:"[..])
        );
        assert_eq!(Login::default().step("*"), Err(SaslError::Cancelled));
    }

    proptest! {
        #[test]
        fn any_line_is_answered_without_panic(line in ".{0,300}") {
            let _ = plain(&line);
            let _ = Login::default().step(&line);
        }

        #[test]
        fn plain_round_trips(user in "[a-z@.]{1,40}", password in "[^\u{0}]{1,60}") {
            let wire = b64(format!("\0{user}\0{password}").as_bytes());
            let c = plain(&wire).expect("valid");
            prop_assert_eq!(c.user, user);
            prop_assert_eq!(c.password, password);
        }
    }
}

//! AUTH (RFC 4954), sans-IO: the PLAIN and LOGIN exchanges over
//! cairn-storage's SASL decoders, and the replies for every way a login
//! ends. The session moves the lines and calls the directory.

use cairn_storage::directory::auth::AuthError;
use cairn_storage::directory::sasl::{self, Credentials, Login, LoginStep, SaslError};

use crate::codec::command::Mechanism;
use crate::codec::reply::Reply;

/// An exchange in progress.
#[derive(Debug)]
pub enum Exchange {
    Plain,
    Login(Login),
}

/// What the server does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `334 <challenge>` and wait for the client's next line.
    Challenge(&'static str),
    /// The credentials are complete: check them.
    Done(Credentials),
}

impl Exchange {
    /// Starts an exchange for `AUTH <mechanism> [initial]`.
    pub fn start(mechanism: Mechanism, initial: Option<&str>) -> Result<(Self, Step), Reply> {
        match (mechanism, initial) {
            (Mechanism::Plain, None) => Ok((Exchange::Plain, Step::Challenge(""))),
            (Mechanism::Plain, Some(initial)) => {
                let mut ex = Exchange::Plain;
                let step = ex.next(initial)?;
                Ok((ex, step))
            }
            (Mechanism::Login, None) => Ok((
                Exchange::Login(Login::default()),
                Step::Challenge(Login::USERNAME),
            )),
            (Mechanism::Login, Some(initial)) => {
                let mut ex = Exchange::Login(Login::default());
                let step = ex.next(initial)?;
                Ok((ex, step))
            }
            (Mechanism::Other, _) => Err(Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication type; use PLAIN or LOGIN",
            )),
        }
    }

    /// Takes the client's next line (base64, or `*` to cancel).
    pub fn next(&mut self, line: &str) -> Result<Step, Reply> {
        // RFC 4954: `=` is an empty initial response.
        let line = if line == "=" { "" } else { line };
        match self {
            Exchange::Plain => sasl::plain(line).map(Step::Done).map_err(sasl_reply),
            Exchange::Login(login) => match login.step(line).map_err(sasl_reply)? {
                LoginStep::Challenge(c) => Ok(Step::Challenge(c)),
                LoginStep::Done(creds) => Ok(Step::Done(creds)),
            },
        }
    }
}

/// The reply for a response that could not be decoded.
pub fn sasl_reply(e: SaslError) -> Reply {
    match e {
        SaslError::Cancelled => Reply::new(501, "5.7.0", "Authentication cancelled"),
        SaslError::Base64 => Reply::new(501, "5.5.2", "Cannot decode the response (base64)"),
        SaslError::TooLong => Reply::new(500, "5.5.6", "Authentication response too long"),
        SaslError::Utf8 | SaslError::Malformed(_) => Reply::new(
            501,
            "5.5.2",
            format!("Malformed authentication response: {e}"),
        ),
    }
}

/// The reply for a refused login (`None` when it counts as a failure
/// towards the session's limit is decided by the caller).
pub fn refused_reply(e: &AuthError) -> Reply {
    match e {
        AuthError::Invalid | AuthError::Disabled => {
            Reply::new(535, "5.7.8", "Authentication credentials invalid")
        }
        AuthError::Throttled { retry_after } => Reply::new(
            454,
            "4.7.0",
            format!(
                "Too many failed logins; try again in {} seconds",
                retry_after.as_secs().max(1)
            ),
        ),
        AuthError::Unavailable(_) => Reply::new(454, "4.7.0", "Temporary authentication failure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_login() {
        // "\0alice@example.org\0pw"
        let (_, step) =
            Exchange::start(Mechanism::Plain, Some("AGFsaWNlQGV4YW1wbGUub3JnAHB3")).expect("plain");
        assert!(
            matches!(step, Step::Done(c) if c.user == "alice@example.org" && c.password == "pw")
        );
        let (mut ex, step) = Exchange::start(Mechanism::Login, None).expect("login");
        assert_eq!(step, Step::Challenge(Login::USERNAME));
        assert_eq!(ex.next("YWxpY2U="), Ok(Step::Challenge(Login::PASSWORD)));
        assert!(
            matches!(ex.next("cHc="), Ok(Step::Done(c)) if c.user == "alice" && c.password == "pw")
        );
        let (mut ex, _) = Exchange::start(Mechanism::Plain, None).expect("plain");
        assert_eq!(ex.next("*").map_err(|r| r.code), Err(501));
        assert_eq!(
            Exchange::start(Mechanism::Other, None)
                .map(|_| ())
                .map_err(|r| r.code),
            Err(504)
        );
    }
}

//! One SMTP command line parsed into a [`Command`] that borrows from the
//! read buffer. smtp-proto does the RFC 5321 grammar and the ESMTP
//! parameters (SIZE, BODY, SMTPUTF8, the DSN parameters RET/ENVID/NOTIFY/
//! ORCPT, …); this module adds the checks it leaves out (NUL bytes, bare
//! line endings inside the line) and maps its errors to replies.

use std::borrow::Cow;

use smtp_proto::{Error as ProtoError, Request};

pub use smtp_proto::{MailFrom, RcptTo};

use super::reply::Reply;

/// `BODY=8BITMIME` (RFC 6152).
pub const BODY_8BITMIME: u64 = smtp_proto::MAIL_BODY_8BITMIME;
/// `BODY=BINARYMIME` (RFC 3030): the body comes only with BDAT.
pub const BODY_BINARYMIME: u64 = smtp_proto::MAIL_BODY_BINARYMIME;
/// `SMTPUTF8` (RFC 6531).
pub const SMTPUTF8: u64 = smtp_proto::MAIL_SMTPUTF8;
/// `RET=FULL` / `RET=HDRS` (RFC 3461).
pub const RET_FULL: u64 = smtp_proto::MAIL_RET_FULL;
pub const RET_HDRS: u64 = smtp_proto::MAIL_RET_HDRS;
/// `NOTIFY=` values (RFC 3461).
pub const NOTIFY_SUCCESS: u64 = smtp_proto::RCPT_NOTIFY_SUCCESS;
pub const NOTIFY_FAILURE: u64 = smtp_proto::RCPT_NOTIFY_FAILURE;
pub const NOTIFY_DELAY: u64 = smtp_proto::RCPT_NOTIFY_DELAY;
pub const NOTIFY_NEVER: u64 = smtp_proto::RCPT_NOTIFY_NEVER;

/// The SASL mechanisms the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    /// Any other mechanism name: `504 5.5.4`.
    Other,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(Cow<'a, str>),
    Helo(Cow<'a, str>),
    Mail(MailFrom<Cow<'a, str>>),
    Rcpt(RcptTo<Cow<'a, str>>),
    Data,
    Bdat {
        size: usize,
        last: bool,
    },
    Auth {
        mechanism: Mechanism,
        /// The initial response (RFC 4954), `=` for an empty one.
        initial: Option<Cow<'a, str>>,
    },
    StartTls,
    Rset,
    Noop,
    Vrfy,
    Expn,
    Help,
    Quit,
    /// A command we know but do not offer (LHLO, ETRN, ATRN, BURL).
    NotImplemented(&'static str),
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know: `500 5.5.1`.
    Unknown,
    /// A NUL byte or a bare CR in the line: `500 5.5.2`.
    BadBytes,
    /// The command's syntax is wrong: `501 5.5.2`.
    Syntax(&'static str),
    /// The address is malformed: `501 5.1.7` (sender) / `501 5.1.3`.
    BadSender,
    BadRecipient,
    /// A parameter has a bad value: `501 5.5.4`.
    BadParameter(&'static str),
    /// A parameter we do not support: `555 5.5.4`.
    UnsupportedParameter(String),
}

impl CommandError {
    /// The reply for the error.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unknown => Reply::new(500, "5.5.1", "Command unrecognized"),
            CommandError::BadBytes => {
                Reply::new(500, "5.5.2", "Syntax error: NUL or bare CR in the command")
            }
            CommandError::Syntax(syntax) => {
                Reply::new(501, "5.5.2", format!("Syntax error, expected {syntax}"))
            }
            CommandError::BadSender => Reply::new(501, "5.1.7", "Bad sender address syntax"),
            CommandError::BadRecipient => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
            CommandError::BadParameter(p) => {
                Reply::new(501, "5.5.4", format!("Invalid value for the {p} parameter"))
            }
            CommandError::UnsupportedParameter(p) => {
                let p: String = p.chars().take(64).collect();
                Reply::new(555, "5.5.4", format!("Unsupported parameter {p}"))
            }
        }
    }
}

/// Parses one complete line, its CRLF (or LF) included.
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let body = cairn_lines::trim_eol(line);
    if body.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(CommandError::BadBytes);
    }
    if body.is_empty() {
        return Err(CommandError::Unknown);
    }
    // RFC 5321 §4.1.1.3: `RCPT TO:<Postmaster>` has no domain, which
    // smtp-proto refuses; it must be accepted.
    if body.eq_ignore_ascii_case(b"RCPT TO:<Postmaster>") {
        return Ok(Command::Rcpt(RcptTo {
            address: Cow::Borrowed("postmaster"),
            ..RcptTo::default()
        }));
    }
    // smtp-proto wants the line ending; a line without one (the framer
    // never gives one, but a caller might) gets it added by copy.
    let request = if line.ends_with(b"\n") {
        Request::parse(&mut line.iter())
    } else {
        return parse_owned(body);
    };
    convert(request)
}

fn parse_owned(body: &[u8]) -> Result<Command<'static>, CommandError> {
    let mut line = body.to_vec();
    line.extend_from_slice(b"\r\n");
    let parsed = convert(Request::parse(&mut line.iter()))?;
    Ok(into_owned(parsed))
}

fn into_owned(c: Command<'_>) -> Command<'static> {
    let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
    match c {
        Command::Ehlo(h) => Command::Ehlo(own(h)),
        Command::Helo(h) => Command::Helo(own(h)),
        Command::Mail(m) => Command::Mail(m.into_owned().map_cow()),
        Command::Rcpt(r) => Command::Rcpt(r.into_owned().map_cow()),
        Command::Auth { mechanism, initial } => Command::Auth {
            mechanism,
            initial: initial.map(own),
        },
        Command::Data => Command::Data,
        Command::Bdat { size, last } => Command::Bdat { size, last },
        Command::StartTls => Command::StartTls,
        Command::Rset => Command::Rset,
        Command::Noop => Command::Noop,
        Command::Vrfy => Command::Vrfy,
        Command::Expn => Command::Expn,
        Command::Help => Command::Help,
        Command::Quit => Command::Quit,
        Command::NotImplemented(n) => Command::NotImplemented(n),
    }
}

trait MapCow {
    type Out;
    fn map_cow(self) -> Self::Out;
}

impl MapCow for MailFrom<String> {
    type Out = MailFrom<Cow<'static, str>>;
    fn map_cow(self) -> Self::Out {
        MailFrom {
            address: Cow::Owned(self.address),
            flags: self.flags,
            size: self.size,
            trans_id: self.trans_id.map(Cow::Owned),
            by: self.by,
            env_id: self.env_id.map(Cow::Owned),
            solicit: self.solicit.map(Cow::Owned),
            mtrk: self.mtrk.map(|m| smtp_proto::Mtrk {
                certifier: Cow::Owned(m.certifier),
                timeout: m.timeout,
            }),
            auth: self.auth.map(Cow::Owned),
            hold_for: self.hold_for,
            hold_until: self.hold_until,
            mt_priority: self.mt_priority,
        }
    }
}

impl MapCow for RcptTo<String> {
    type Out = RcptTo<Cow<'static, str>>;
    fn map_cow(self) -> Self::Out {
        RcptTo {
            address: Cow::Owned(self.address),
            orcpt: self.orcpt.map(Cow::Owned),
            rrvs: self.rrvs,
            flags: self.flags,
        }
    }
}

fn convert(
    request: Result<Request<Cow<'_, str>>, ProtoError>,
) -> Result<Command<'_>, CommandError> {
    let request = request.map_err(|e| match e {
        ProtoError::UnknownCommand | ProtoError::NeedsMoreData { .. } => CommandError::Unknown,
        ProtoError::InvalidSenderAddress => CommandError::BadSender,
        ProtoError::InvalidRecipientAddress => CommandError::BadRecipient,
        ProtoError::SyntaxError { syntax } => CommandError::Syntax(syntax),
        ProtoError::InvalidParameter { param } => CommandError::BadParameter(param),
        ProtoError::UnsupportedParameter { param } => CommandError::UnsupportedParameter(param),
        ProtoError::ResponseTooLong | ProtoError::InvalidResponse { .. } => {
            CommandError::Syntax("a command")
        }
    })?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(host),
        Request::Helo { host } => Command::Helo(host),
        Request::Mail { from } => Command::Mail(from),
        Request::Rcpt { to } => Command::Rcpt(to),
        Request::Data => Command::Data,
        Request::Bdat {
            chunk_size,
            is_last,
        } => Command::Bdat {
            size: chunk_size,
            last: is_last,
        },
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: match mechanism {
                smtp_proto::AUTH_PLAIN => Mechanism::Plain,
                smtp_proto::AUTH_LOGIN => Mechanism::Login,
                _ => Mechanism::Other,
            },
            initial: (!initial_response.is_empty()).then_some(initial_response),
        },
        Request::StartTls => Command::StartTls,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::Help { .. } => Command::Help,
        Request::Quit => Command::Quit,
        Request::Lhlo { .. } => Command::NotImplemented("LHLO"),
        Request::Etrn { .. } => Command::NotImplemented("ETRN"),
        Request::Atrn { .. } => Command::NotImplemented("ATRN"),
        Request::Burl { .. } => Command::NotImplemented("BURL"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mail(line: &str) -> MailFrom<Cow<'_, str>> {
        match parse(line.as_bytes()) {
            Ok(Command::Mail(m)) => m,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn rcpt(line: &str) -> RcptTo<Cow<'_, str>> {
        match parse(line.as_bytes()) {
            Ok(Command::Rcpt(r)) => r,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn postmaster_without_a_domain() {
        assert_eq!(rcpt("RCPT TO:<Postmaster>\r\n").address, "postmaster");
        assert_eq!(rcpt("rcpt to:<POSTMASTER>\r\n").address, "postmaster");
    }

    #[test]
    fn mail_from_with_parameters() {
        let m = mail("MAIL FROM:<a@b.org> SIZE=10 BODY=8BITMIME\r\n");
        assert_eq!(m.address, "a@b.org");
        assert_eq!(m.size, 10);
        assert_ne!(m.flags & BODY_8BITMIME, 0);
        let m = mail("mail from:<> RET=HDRS ENVID=QQ314159\r\n");
        assert_eq!(m.address, "");
        assert_ne!(m.flags & RET_HDRS, 0);
        assert_eq!(m.env_id.as_deref(), Some("QQ314159"));
        let m = mail("MAIL FROM:<\"john doe\"@example.org>\r\n");
        assert_eq!(m.address, "john doe@example.org");
        let m = mail("MAIL FROM:<jösé@exämple.org> SMTPUTF8 BODY=8BITMIME\r\n");
        assert_eq!(m.address, "jösé@exämple.org");
        assert_ne!(m.flags & SMTPUTF8, 0);
        let m = mail("MAIL FROM:<a@b.org> BODY=BINARYMIME\r\n");
        assert_ne!(m.flags & BODY_BINARYMIME, 0);
    }

    #[test]
    fn rcpt_to_with_dsn_parameters() {
        let r = rcpt("RCPT TO:<x@y.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.org\r\n");
        assert_eq!(r.address, "x@y.org");
        assert_eq!(
            r.flags & (NOTIFY_SUCCESS | NOTIFY_FAILURE),
            NOTIFY_SUCCESS | NOTIFY_FAILURE
        );
        assert_eq!(r.orcpt.as_deref(), Some("x@y.org"));
        let r = rcpt("RCPT TO:<x@y.org> NOTIFY=NEVER\r\n");
        assert_ne!(r.flags & NOTIFY_NEVER, 0);
        let r = rcpt("RCPT TO:<@relay.org:x@y.org>\r\n");
        assert_eq!(r.address, "x@y.org");
        assert_eq!(
            parse(b"RCPT TO:<x@y.org> NOTIFY=BOGUS\r\n"),
            Err(CommandError::BadParameter("NOTIFY"))
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            parse(b"EHLO mx.example.org\r\n"),
            Ok(Command::Ehlo("mx.example.org".into()))
        );
        assert_eq!(
            parse(b"ehlo [127.0.0.1]\r\n"),
            Ok(Command::Ehlo("[127.0.0.1]".into()))
        );
        assert_eq!(parse(b"HELO x\r\n"), Ok(Command::Helo("x".into())));
        assert!(matches!(parse(b"EHLO\r\n"), Err(CommandError::Syntax(_))));
        assert_eq!(
            parse(b"BDAT 10 LAST\r\n"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(
            parse(b"BDAT 0\r\n"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert_eq!(
            parse(b"AUTH PLAIN AGFAYgBj\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial: Some("AGFAYgBj".into())
            })
        );
        assert_eq!(
            parse(b"AUTH LOGIN\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Login,
                initial: None
            })
        );
        assert!(matches!(
            parse(b"AUTH CRAM-MD5\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Other,
                ..
            })
        ));
        for (line, cmd) in [
            (&b"DATA\r\n"[..], Command::Data),
            (b"STARTTLS\r\n", Command::StartTls),
            (b"RSET\r\n", Command::Rset),
            (b"NOOP\r\n", Command::Noop),
            (b"noop hello\r\n", Command::Noop),
            (b"VRFY bob\r\n", Command::Vrfy),
            (b"HELP\r\n", Command::Help),
            (b"QUIT\r\n", Command::Quit),
            (b"QUIT", Command::Quit),
        ] {
            assert_eq!(parse(line), Ok(cmd), "{:?}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse(b"FOO\r\n"), Err(CommandError::Unknown));
        assert_eq!(parse(b"\r\n"), Err(CommandError::Unknown));
        assert_eq!(parse(b"NO\0OP\r\n"), Err(CommandError::BadBytes));
        assert_eq!(parse(b"NOOP\rX\r\n"), Err(CommandError::BadBytes));
        assert!(matches!(
            parse(b"MAIL FROM:a@b\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b> FOO=bar\r\n"),
            Err(CommandError::UnsupportedParameter(_))
        ));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=x\r\n"),
            Err(CommandError::BadParameter("SIZE"))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            let mut line = bytes.clone();
            line.extend_from_slice(b"\r\n");
            if let Err(e) = parse(&line) { let _ = e.reply(); }
        }

        #[test]
        fn arbitrary_commands_never_panic(
            verb in "(MAIL FROM:|RCPT TO:|EHLO |AUTH |BDAT |HELO )",
            rest in "[ -~]{0,200}",
        ) {
            let _ = parse(format!("{verb}{rest}\r\n").as_bytes());
        }

        #[test]
        fn well_formed_mail_round_trips(
            local in "[a-zA-Z0-9+_-]{1,10}(\\.[a-zA-Z0-9+_-]{1,10}){0,2}",
            domain in "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,6}",
            size in proptest::option::of(0usize..100_000_000),
            body in proptest::option::of(prop_oneof![Just("7BIT"), Just("8BITMIME"), Just("BINARYMIME")]),
            utf8 in any::<bool>(),
            envid in proptest::option::of("[A-Za-z0-9]{1,20}"),
        ) {
            let address = format!("{local}@{domain}");
            let mut line = format!("MAIL FROM:<{address}>");
            if let Some(size) = size { line += &format!(" SIZE={size}"); }
            if let Some(body) = body { line += &format!(" BODY={body}"); }
            if utf8 { line += " SMTPUTF8"; }
            if let Some(envid) = &envid { line += &format!(" ENVID={envid}"); }
            line += "\r\n";
            let m = mail(&line);
            prop_assert_eq!(m.address.as_ref(), address.as_str());
            prop_assert_eq!(m.size, size.unwrap_or(0));
            prop_assert_eq!(m.flags & SMTPUTF8 != 0, utf8);
            prop_assert_eq!(m.flags & BODY_8BITMIME != 0, body == Some("8BITMIME"));
            prop_assert_eq!(m.flags & BODY_BINARYMIME != 0, body == Some("BINARYMIME"));
            prop_assert_eq!(m.env_id.as_deref(), envid.as_deref());
        }

        #[test]
        fn well_formed_rcpt_round_trips(
            local in "[a-zA-Z0-9+_-]{1,10}(\\.[a-zA-Z0-9+_-]{1,10}){0,2}",
            domain in "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,6}",
            notify in proptest::option::of(prop_oneof![Just("NEVER"), Just("SUCCESS"), Just("SUCCESS,FAILURE,DELAY")]),
            orcpt in any::<bool>(),
        ) {
            let address = format!("{local}@{domain}");
            let mut line = format!("RCPT TO:<{address}>");
            if let Some(n) = notify { line += &format!(" NOTIFY={n}"); }
            if orcpt { line += &format!(" ORCPT=rfc822;{address}"); }
            line += "\r\n";
            let r = rcpt(&line);
            prop_assert_eq!(r.address.as_ref(), address.as_str());
            prop_assert_eq!(r.flags & NOTIFY_NEVER != 0, notify == Some("NEVER"));
            prop_assert_eq!(r.flags & NOTIFY_DELAY != 0, notify == Some("SUCCESS,FAILURE,DELAY"));
            prop_assert_eq!(r.orcpt.is_some(), orcpt);
        }

        #[test]
        fn ehlo_round_trips(host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){0,3}") {
            let line = format!("EHLO {host}\r\n");
            prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Ehlo(host.clone().into())));
        }
    }
}

//! One POP3 session's state machine, sans-IO (DESIGN.md §7): lines in,
//! reply bytes and [`Next`] steps out. AUTHORIZATION (USER/PASS, AUTH
//! PLAIN, STLS, CAPA), TRANSACTION over a [`Maildrop`] snapshot (STAT,
//! LIST, UIDL, TOP, RETR, DELE, RSET, NOOP) and the QUIT that enters
//! UPDATE. What needs the network or storage (checking credentials, the
//! TLS handshake, reading a body, expunging) is handed to the caller as a
//! [`Next`] step, and its outcome comes back through a method here.

use cairn_storage::directory::auth::AuthError;
use cairn_storage::directory::sasl::{self, Credentials, SaslError};
use cairn_storage::mailbox::BlobRef;

use crate::codec::{self, err, line, ok, parse, trim_eol, Command, RespCode};
use crate::maildrop::{LockGuard, Maildrop, NoSuchMessage};
use crate::Pop3Options;

/// What the caller does after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Write what is pending, read the next line.
    Continue,
    /// Write what is pending and close.
    Close,
    /// Write what is pending (the `+OK`), drop unread input, and run the
    /// TLS handshake; then [`Session::tls_started`].
    StartTls,
    /// Check the credentials; then [`Session::login_refused`],
    /// [`Session::refuse_login`] or [`Session::logged_in`].
    Login(Credentials),
    /// Write `+OK`, then the message (all of it, or its header and
    /// `lines` body lines), byte-stuffed and terminated.
    Retrieve {
        blob: BlobRef,
        size: u64,
        lines: Option<u32>,
    },
    /// QUIT in TRANSACTION: expunge these UIDs durably, then answer and
    /// close ([`Session::updated`]).
    Update(Vec<u32>),
}

/// Where the session is.
enum Phase {
    Authorization {
        user: Option<String>,
    },
    /// `AUTH PLAIN` sent `+ `; the next line is the client's response.
    SaslPlain,
    Transaction {
        maildrop: Maildrop,
        _lock: LockGuard,
    },
    /// QUIT was answered (or is being): nothing more is read.
    Done,
}

/// A session's state apart from the socket.
pub struct Session {
    phase: Phase,
    hostname: String,
    allow_plaintext_auth: bool,
    /// The listener can start TLS.
    tls_available: bool,
    /// The connection is encrypted.
    tls: bool,
    max_auth_failures: u32,
    max_bad_commands: u32,
    auth_failures: u32,
    bad_commands: u32,
}

impl Session {
    /// A session in AUTHORIZATION state.
    pub fn new(options: &Pop3Options, tls_available: bool, tls: bool) -> Self {
        Self {
            phase: Phase::Authorization { user: None },
            hostname: options.hostname.clone(),
            allow_plaintext_auth: options.allow_plaintext_auth,
            tls_available,
            tls,
            max_auth_failures: options.max_auth_failures,
            max_bad_commands: options.max_bad_commands,
            auth_failures: 0,
            bad_commands: 0,
        }
    }

    /// The counters that travel with a session moving to another shard.
    pub fn counters(&self) -> (u32, u32) {
        (self.auth_failures, self.bad_commands)
    }

    /// Takes over the counters of the shard the session came from.
    pub fn restore_counters(&mut self, (auth_failures, bad_commands): (u32, u32)) {
        self.auth_failures = auth_failures;
        self.bad_commands = bad_commands;
    }

    /// The account whose maildrop the session holds (TRANSACTION).
    pub fn account(&self) -> Option<&str> {
        match &self.phase {
            Phase::Transaction { _lock, .. } => Some(_lock.account()),
            _ => None,
        }
    }

    /// Whether the session is in TRANSACTION state.
    pub fn in_transaction(&self) -> bool {
        matches!(self.phase, Phase::Transaction { .. })
    }

    /// The greeting (no APOP timestamp: APOP is not offered).
    pub fn greeting(&self, out: &mut Vec<u8>) {
        ok(out, &format!("{} Cairn POP3 server ready", self.hostname));
    }

    /// Whether USER/PASS and AUTH may be used now.
    fn auth_allowed(&self) -> bool {
        self.tls || self.allow_plaintext_auth
    }

    fn bad_command(&mut self, out: &mut Vec<u8>, reason: &str) -> Next {
        err(out, None, reason);
        self.bad_commands += 1;
        if self.bad_commands >= self.max_bad_commands {
            err(out, None, "Too many bad commands; closing connection");
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// Takes one line (`None`: a line over the limit, already skipped).
    pub fn input(&mut self, bytes: Option<&[u8]>, out: &mut Vec<u8>) -> Next {
        if matches!(self.phase, Phase::SaslPlain) {
            self.phase = Phase::Authorization { user: None };
            let Some(bytes) = bytes else {
                return self.bad_command(out, "Authentication response too long");
            };
            let response = String::from_utf8_lossy(trim_eol(bytes)).into_owned();
            return self.sasl_response(&response, out);
        }
        let Some(bytes) = bytes else {
            return self.bad_command(out, "Line too long");
        };
        match parse(bytes) {
            Err(e) => self.bad_command(out, &e.to_string()),
            Ok(cmd) => self.command(cmd, out),
        }
    }

    fn command(&mut self, cmd: Command<'_>, out: &mut Vec<u8>) -> Next {
        match cmd {
            Command::Capa => {
                self.capa(out);
                Next::Continue
            }
            Command::Noop if self.in_transaction() => {
                ok(out, "");
                Next::Continue
            }
            Command::Quit => self.quit(out),
            Command::User(user) => self.user(user, out),
            Command::Pass(password) => self.pass(password, out),
            Command::Auth(request) => self.auth(request, out),
            Command::Stls => self.stls(out),
            Command::Apop => self.bad_command(out, "APOP is not offered; use USER/PASS or AUTH"),
            other => self.transaction(other, out),
        }
    }

    fn capa(&self, out: &mut Vec<u8>) {
        ok(out, "Capability list follows");
        for cap in [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",
            "LOGIN-DELAY 0",
        ] {
            line(out, cap);
        }
        let authorization = matches!(self.phase, Phase::Authorization { .. });
        if authorization && self.auth_allowed() {
            line(out, "USER");
            line(out, "SASL PLAIN");
        }
        if authorization && self.tls_available && !self.tls {
            line(out, "STLS");
        }
        line(out, "IMPLEMENTATION Cairn");
        codec::end(out);
    }

    fn quit(&mut self, out: &mut Vec<u8>) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Transaction { maildrop, _lock } => {
                // The lock is held until the caller has expunged: put it
                // back until `updated`.
                let uids = maildrop.deleted_uids();
                self.phase = Phase::Transaction { maildrop, _lock };
                Next::Update(uids)
            }
            _ => {
                ok(
                    out,
                    &format!("{} Cairn POP3 server signing off", self.hostname),
                );
                Next::Close
            }
        }
    }

    /// The UPDATE state ended: `Ok(n)` when the `n` marked messages are
    /// gone, `Err` when they could not be removed. Releases the lock.
    pub fn updated(&mut self, result: Result<usize, String>, out: &mut Vec<u8>) -> Next {
        self.phase = Phase::Done;
        match result {
            Ok(0) => ok(
                out,
                &format!("{} Cairn POP3 server signing off", self.hostname),
            ),
            Ok(n) => ok(
                out,
                &format!(
                    "{} Cairn POP3 server signing off ({n} messages deleted)",
                    self.hostname
                ),
            ),
            Err(e) => err(
                out,
                Some(RespCode::SysTemp),
                &format!("Some deleted messages not removed: {e}"),
            ),
        }
        Next::Close
    }

    fn not_in_authorization(&mut self, out: &mut Vec<u8>) -> Option<Next> {
        match self.phase {
            Phase::Authorization { .. } => None,
            _ => Some(self.bad_command(out, "Already authenticated")),
        }
    }

    fn plaintext_refused(&self, out: &mut Vec<u8>) -> bool {
        if self.auth_allowed() {
            return false;
        }
        err(
            out,
            Some(RespCode::Auth),
            "Plaintext authentication disallowed on non-secure connections; use STLS first",
        );
        true
    }

    fn user(&mut self, user: &str, out: &mut Vec<u8>) -> Next {
        if let Some(next) = self.not_in_authorization(out) {
            return next;
        }
        if self.plaintext_refused(out) {
            return Next::Continue;
        }
        self.phase = Phase::Authorization {
            user: Some(user.to_string()),
        };
        ok(out, "Send your password");
        Next::Continue
    }

    fn pass(&mut self, password: &str, out: &mut Vec<u8>) -> Next {
        if let Some(next) = self.not_in_authorization(out) {
            return next;
        }
        if self.plaintext_refused(out) {
            return Next::Continue;
        }
        let Phase::Authorization { user } = &mut self.phase else {
            return Next::Continue;
        };
        let Some(user) = user.take() else {
            return self.bad_command(out, "USER first");
        };
        Next::Login(Credentials {
            authorize_as: String::new(),
            user,
            password: password.to_string(),
        })
    }

    fn auth(&mut self, request: Option<(&str, Option<&str>)>, out: &mut Vec<u8>) -> Next {
        if let Some(next) = self.not_in_authorization(out) {
            return next;
        }
        let Some((mechanism, initial)) = request else {
            // The pre-RFC 5034 listing that some clients still ask for.
            ok(out, "Supported mechanisms follow");
            if self.auth_allowed() {
                line(out, "PLAIN");
            }
            codec::end(out);
            return Next::Continue;
        };
        if self.plaintext_refused(out) {
            return Next::Continue;
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            err(out, None, "Unrecognized authentication type; use PLAIN");
            return Next::Continue;
        }
        self.phase = Phase::Authorization { user: None };
        match initial {
            Some(initial) => self.sasl_response(initial, out),
            None => {
                out.extend_from_slice(b"+ \r\n");
                self.phase = Phase::SaslPlain;
                Next::Continue
            }
        }
    }

    fn sasl_response(&mut self, response: &str, out: &mut Vec<u8>) -> Next {
        // RFC 5034 §4: `=` is an empty initial response.
        let response = if response == "=" { "" } else { response };
        match sasl::plain(response) {
            Ok(c)
                if !c.authorize_as.is_empty() && !c.authorize_as.eq_ignore_ascii_case(&c.user) =>
            {
                self.auth_failed(out, "Cannot authorize as another user")
            }
            Ok(c) => Next::Login(c),
            Err(SaslError::Cancelled) => {
                err(out, None, "Authentication cancelled");
                Next::Continue
            }
            Err(e) => self.bad_command(out, &format!("Malformed authentication response: {e}")),
        }
    }

    /// The credentials were refused.
    pub fn login_refused(&mut self, e: &AuthError, out: &mut Vec<u8>) -> Next {
        match e {
            AuthError::Invalid | AuthError::Disabled => {
                self.auth_failed(out, "Invalid credentials")
            }
            AuthError::Throttled { retry_after } => {
                err(
                    out,
                    Some(RespCode::SysTemp),
                    &format!(
                        "Too many failed logins; try again in {} seconds",
                        retry_after.as_secs().max(1)
                    ),
                );
                Next::Continue
            }
            AuthError::Unavailable(_) => {
                err(
                    out,
                    Some(RespCode::SysTemp),
                    "Temporary authentication failure",
                );
                Next::Continue
            }
        }
    }

    fn auth_failed(&mut self, out: &mut Vec<u8>, reason: &str) -> Next {
        self.auth_failures += 1;
        if self.auth_failures >= self.max_auth_failures {
            err(
                out,
                Some(RespCode::Auth),
                "Too many authentication failures; closing connection",
            );
            Next::Close
        } else {
            err(out, Some(RespCode::Auth), reason);
            Next::Continue
        }
    }

    /// The credentials were good but the session cannot go on to
    /// TRANSACTION (the maildrop is locked, POP3 is off for the account,
    /// storage failed): the session stays in AUTHORIZATION.
    pub fn refuse_login(&mut self, code: RespCode, reason: &str, out: &mut Vec<u8>) {
        self.phase = Phase::Authorization { user: None };
        err(out, Some(code), reason);
    }

    /// The maildrop is locked and read: TRANSACTION state.
    pub fn logged_in(&mut self, maildrop: Maildrop, lock: LockGuard, out: &mut Vec<u8>) {
        let (n, octets) = maildrop.stat();
        ok(
            out,
            &format!("Logged in; maildrop has {n} messages ({octets} octets)"),
        );
        self.phase = Phase::Transaction {
            maildrop,
            _lock: lock,
        };
    }

    fn stls(&mut self, out: &mut Vec<u8>) -> Next {
        if let Some(next) = self.not_in_authorization(out) {
            return next;
        }
        if self.tls {
            return self.bad_command(out, "Already using TLS");
        }
        if !self.tls_available {
            return self.bad_command(out, "STLS not available");
        }
        ok(out, "Begin TLS negotiation");
        Next::StartTls
    }

    /// The TLS handshake after STLS succeeded: back to the start of
    /// AUTHORIZATION, encrypted (RFC 2595 §4).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.phase = Phase::Authorization { user: None };
    }

    fn transaction(&mut self, cmd: Command<'_>, out: &mut Vec<u8>) -> Next {
        let Phase::Transaction { maildrop, .. } = &mut self.phase else {
            return self.bad_command(out, "Not logged in; use USER/PASS or AUTH");
        };
        let no_such = |out: &mut Vec<u8>| {
            err(out, None, "no such message");
            Next::Continue
        };
        match cmd {
            Command::Stat => {
                let (n, octets) = maildrop.stat();
                ok(out, &format!("{n} {octets}"));
            }
            Command::List(Some(n)) => match maildrop.get(n) {
                Ok(e) => ok(out, &format!("{n} {}", e.size)),
                Err(NoSuchMessage) => return no_such(out),
            },
            Command::List(None) => {
                let (count, octets) = maildrop.stat();
                ok(out, &format!("{count} messages ({octets} octets)"));
                for (n, e) in maildrop.live() {
                    line(out, &format!("{n} {}", e.size));
                }
                codec::end(out);
            }
            Command::Uidl(Some(n)) => match maildrop.get(n) {
                Ok(e) => ok(out, &format!("{n} {}", maildrop.unique_id(e))),
                Err(NoSuchMessage) => return no_such(out),
            },
            Command::Uidl(None) => {
                ok(out, "Unique-ID listing follows");
                for (n, e) in maildrop.live() {
                    line(out, &format!("{n} {}", maildrop.unique_id(e)));
                }
                codec::end(out);
            }
            Command::Retr(n) => match maildrop.get(n) {
                Ok(e) => {
                    return Next::Retrieve {
                        blob: e.blob,
                        size: e.size,
                        lines: None,
                    }
                }
                Err(NoSuchMessage) => return no_such(out),
            },
            Command::Top(n, lines) => match maildrop.get(n) {
                Ok(e) => {
                    return Next::Retrieve {
                        blob: e.blob,
                        size: e.size,
                        lines: Some(lines),
                    }
                }
                Err(NoSuchMessage) => return no_such(out),
            },
            Command::Dele(n) => match maildrop.delete(n) {
                Ok(()) => ok(out, &format!("message {n} deleted")),
                Err(NoSuchMessage) => return no_such(out),
            },
            Command::Rset => {
                maildrop.reset();
                let (n, octets) = maildrop.stat();
                ok(out, &format!("maildrop has {n} messages ({octets} octets)"));
            }
            Command::Noop => ok(out, ""),
            // Handled in `command`.
            Command::User(_)
            | Command::Pass(_)
            | Command::Auth(_)
            | Command::Apop
            | Command::Stls
            | Command::Capa
            | Command::Quit => {}
        }
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::Locks;

    fn blob(seq: u64) -> BlobRef {
        BlobRef {
            hash: [0; 32],
            segment: 0,
            offset: 0,
            seq,
            len: 0,
        }
    }

    fn session(plaintext: bool) -> Session {
        let options = Pop3Options {
            allow_plaintext_auth: plaintext,
            max_bad_commands: 3,
            max_auth_failures: 2,
            ..Pop3Options::default()
        };
        Session::new(&options, true, false)
    }

    fn run(s: &mut Session, line: &str) -> (Next, String) {
        let mut out = Vec::new();
        let next = s.input(Some(line.as_bytes()), &mut out);
        (next, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn user_pass_then_transaction() {
        let mut s = session(true);
        let (next, out) = run(&mut s, "PASS x\r\n");
        assert_eq!(
            (next, out.as_str()),
            (Next::Continue, "-ERR USER first\r\n")
        );
        assert_eq!(run(&mut s, "USER alice\r\n").0, Next::Continue);
        let (next, _) = run(&mut s, "PASS pass word\r\n");
        let Next::Login(c) = next else {
            panic!("login expected")
        };
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("alice", "pass word")
        );
        let locks = Locks::new();
        let drop_ = Maildrop::from_parts(9, vec![(1, 100, blob(1)), (2, 50, blob(2))]);
        let mut out = Vec::new();
        s.logged_in(drop_, locks.try_lock("alice").expect("lock"), &mut out);
        assert!(out.starts_with(b"+OK Logged in; maildrop has 2 messages (150 octets)"));
        assert_eq!(run(&mut s, "STAT\r\n").1, "+OK 2 150\r\n");
        assert_eq!(
            run(&mut s, "LIST\r\n").1,
            "+OK 2 messages (150 octets)\r\n1 100\r\n2 50\r\n.\r\n"
        );
        assert_eq!(run(&mut s, "UIDL 2\r\n").1, "+OK 2 9.2\r\n");
        assert_eq!(run(&mut s, "DELE 1\r\n").1, "+OK message 1 deleted\r\n");
        assert_eq!(run(&mut s, "RETR 1\r\n").1, "-ERR no such message\r\n");
        assert_eq!(run(&mut s, "LIST 7\r\n").1, "-ERR no such message\r\n");
        assert_eq!(
            run(&mut s, "TOP 2 5\r\n").0,
            Next::Retrieve {
                blob: blob(2),
                size: 50,
                lines: Some(5)
            }
        );
        assert_eq!(
            run(&mut s, "UIDL\r\n").1,
            "+OK Unique-ID listing follows\r\n2 9.2\r\n.\r\n"
        );
        assert_eq!(
            run(&mut s, "USER bob\r\n").1,
            "-ERR Already authenticated\r\n"
        );
        assert!(locks.is_locked("alice"));
        assert_eq!(run(&mut s, "QUIT\r\n").0, Next::Update(vec![1]));
        assert!(locks.is_locked("alice"));
        let mut out = Vec::new();
        assert_eq!(s.updated(Ok(1), &mut out), Next::Close);
        assert!(!locks.is_locked("alice"));
    }

    #[test]
    fn rset_unmarks() {
        let mut s = session(true);
        let locks = Locks::new();
        let mut out = Vec::new();
        let drop_ = Maildrop::from_parts(1, vec![(1, 10, blob(1))]);
        s.logged_in(drop_, locks.try_lock("a").expect("lock"), &mut out);
        run(&mut s, "DELE 1\r\n");
        assert_eq!(run(&mut s, "STAT\r\n").1, "+OK 0 0\r\n");
        assert_eq!(
            run(&mut s, "RSET\r\n").1,
            "+OK maildrop has 1 messages (10 octets)\r\n"
        );
        assert_eq!(run(&mut s, "QUIT\r\n").0, Next::Update(vec![]));
    }

    #[test]
    fn plaintext_refused_before_tls() {
        let mut s = session(false);
        let (_, capa) = run(&mut s, "CAPA\r\n");
        assert!(capa.contains("STLS\r\n") && !capa.contains("USER\r\n") && !capa.contains("SASL"));
        assert!(run(&mut s, "USER a\r\n")
            .1
            .starts_with("-ERR [AUTH] Plaintext"));
        assert!(run(&mut s, "AUTH PLAIN AGEAYg==\r\n")
            .1
            .starts_with("-ERR [AUTH] Plaintext"));
        assert_eq!(run(&mut s, "STLS\r\n").0, Next::StartTls);
        s.tls_started();
        let (_, capa) = run(&mut s, "CAPA\r\n");
        assert!(
            !capa.contains("STLS") && capa.contains("USER\r\n") && capa.contains("SASL PLAIN\r\n")
        );
        assert_eq!(run(&mut s, "STLS\r\n").1, "-ERR Already using TLS\r\n");
    }

    #[test]
    fn sasl_plain_both_forms() {
        let mut s = session(true);
        // "\0a\0b"
        assert!(
            matches!(run(&mut s, "AUTH PLAIN AGEAYg==\r\n").0, Next::Login(c) if c.user == "a" && c.password == "b")
        );
        let (next, out) = run(&mut s, "AUTH PLAIN\r\n");
        assert_eq!((next, out.as_str()), (Next::Continue, "+ \r\n"));
        assert!(matches!(run(&mut s, "AGEAYg==\r\n").0, Next::Login(c) if c.user == "a"));
        run(&mut s, "AUTH PLAIN\r\n");
        assert_eq!(run(&mut s, "*\r\n").1, "-ERR Authentication cancelled\r\n");
        assert_eq!(
            run(&mut s, "AUTH\r\n").1,
            "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"
        );
        assert!(run(&mut s, "AUTH CRAM-MD5\r\n")
            .1
            .starts_with("-ERR Unrecognized"));
    }

    #[test]
    fn failures_close_the_session() {
        let mut s = session(true);
        let mut out = Vec::new();
        assert_eq!(
            s.login_refused(&AuthError::Invalid, &mut out),
            Next::Continue
        );
        assert_eq!(out, b"-ERR [AUTH] Invalid credentials\r\n");
        assert_eq!(s.login_refused(&AuthError::Invalid, &mut out), Next::Close);
        let mut s = session(true);
        assert_eq!(run(&mut s, "BOGUS\r\n").1, "-ERR Unknown command\r\n");
        assert_eq!(run(&mut s, "STAT\r\n").0, Next::Continue);
        let (next, out) = run(&mut s, "RETR x\r\n");
        assert_eq!(next, Next::Close);
        assert!(out.ends_with("-ERR Too many bad commands; closing connection\r\n"));
        let mut s = session(true);
        assert!(run(&mut s, "QUIT\r\n").1.starts_with("+OK"));
    }

    #[test]
    fn too_long_lines_are_bad_commands() {
        let mut s = session(true);
        let mut out = Vec::new();
        assert_eq!(s.input(None, &mut out), Next::Continue);
        assert_eq!(out, b"-ERR Line too long\r\n");
    }
}

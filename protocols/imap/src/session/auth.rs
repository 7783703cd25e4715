//! The Not Authenticated state: STARTTLS, LOGIN and AUTHENTICATE PLAIN
//! (with SASL-IR), the class-of-service check, and the move of a
//! logged-in session to the shard that owns its account.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_storage::directory::auth::AuthError;
use cairn_storage::directory::sasl::{self, Credentials};
use imap_types::auth::AuthMechanism;
use imap_types::command::CommandBody;

use super::conn::{Conn, End};
use super::{Next, Reply, Session};
use crate::codec::framer::Event;
use crate::codec::response;
use crate::Moved;

impl Session<'_> {
    /// Commands before login.
    pub(super) async fn not_authenticated(
        &mut self,
        body: CommandBody<'_>,
        tag: String,
    ) -> (Option<Reply>, Next) {
        let reply = match body {
            CommandBody::StartTLS => {
                if self.tls {
                    Reply::bad("TLS is already active")
                } else if self.inner.tls.is_none() {
                    Reply::no("CANNOT", "TLS is not available")
                } else {
                    return (Some(Reply::ok("Begin TLS negotiation now")), Next::StartTls);
                }
            }
            CommandBody::Login { username, password } => {
                if !self.auth_allowed() {
                    Reply::no("PRIVACYREQUIRED", "LOGIN is disabled before STARTTLS")
                } else {
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let password =
                        String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    let credentials = Credentials {
                        user,
                        password,
                        authorize_as: String::new(),
                    };
                    return self.login(credentials, tag).await;
                }
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if !self.auth_allowed() {
                    Reply::no(
                        "PRIVACYREQUIRED",
                        "Authentication is disabled before STARTTLS",
                    )
                } else if mechanism != AuthMechanism::Plain {
                    Reply::no("CANNOT", "Only the PLAIN mechanism is supported")
                } else if let Some(initial) = initial_response {
                    let b64 = STANDARD.encode(initial.declassify().as_ref());
                    return self.plain(&b64, tag).await;
                } else {
                    self.out.extend_from_slice(b"+ \r\n");
                    return (None, Next::AuthLine { tag });
                }
            }
            CommandBody::Enable { .. } | CommandBody::Namespace | CommandBody::Idle => {
                Reply::bad("Log in first")
            }
            _ => Reply::bad("Log in first"),
        };
        (Some(reply), Next::Continue)
    }

    fn auth_allowed(&self) -> bool {
        self.tls || self.inner.options.allow_plaintext_auth
    }

    /// The client's answer to the AUTHENTICATE continuation.
    pub(super) async fn auth_line(&mut self, conn: &mut Conn, tag: &str) -> Result<(), End> {
        let wait = self.wait();
        let line = match conn.next_event(&mut self.out, wait).await? {
            Event::Command(line) => line,
            Event::Literal { .. } => {
                conn.framer.refuse_literal();
                Vec::new()
            }
            Event::LineTooLong | Event::NeedMore => Vec::new(),
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (reply, next) = if text == "*" {
            (Some(Reply::bad("Authentication cancelled")), Next::Continue)
        } else {
            self.plain(text, tag.to_string()).await
        };
        if let Some(reply) = reply {
            self.tagged(tag, &reply);
        }
        match next {
            Next::Close => Err(End::Closed),
            Next::Move { account, tag } => Err(self.move_to_owner(conn, account, tag).await),
            _ => Ok(()),
        }
    }

    async fn plain(&mut self, b64: &str, tag: String) -> (Option<Reply>, Next) {
        match sasl::plain(b64) {
            Ok(credentials) => self.login(credentials, tag).await,
            Err(e) => (
                Some(Reply::bad(format!("Malformed PLAIN response: {e}"))),
                Next::Continue,
            ),
        }
    }

    /// Checks credentials: on success the session is logged in here, or
    /// moves to the owner of the account.
    async fn login(&mut self, c: Credentials, tag: String) -> (Option<Reply>, Next) {
        if !c.authorize_as.is_empty() && !c.authorize_as.eq_ignore_ascii_case(&c.user) {
            return self.auth_failed(Reply::no(
                "AUTHORIZATIONFAILED",
                "Cannot authorize as another user",
            ));
        }
        let directory = &self.inner.services.directory;
        let principal = match directory
            .authenticate_via(c.user, c.password, self.peer.ip(), Some("imap".into()))
            .await
        {
            Ok(p) => p,
            Err(AuthError::Invalid | AuthError::Disabled) => {
                return self.auth_failed(Reply::no("AUTHENTICATIONFAILED", "Authentication failed"))
            }
            Err(AuthError::Throttled { retry_after }) => {
                let text = format!(
                    "Too many failed logins; try again in {} seconds",
                    retry_after.as_secs().max(1)
                );
                return (Some(Reply::no("UNAVAILABLE", text)), Next::Continue);
            }
            Err(AuthError::Unavailable(_)) => {
                return (
                    Some(Reply::no("UNAVAILABLE", "Authentication is unavailable")),
                    Next::Continue,
                )
            }
        };
        match directory.class_of(principal.address.clone()).await {
            Ok(class) if !class.features.imap => {
                return (
                    Some(Reply::no(
                        "AUTHORIZATIONFAILED",
                        "IMAP is not enabled for this account",
                    )),
                    Next::Continue,
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "imap: cannot read the class of service");
                return (
                    Some(Reply::no("UNAVAILABLE", "Authentication is unavailable")),
                    Next::Continue,
                );
            }
        }
        let account = principal.address;
        if self.inner.services.mail.owner(&account) != self.inner.services.shard {
            return (None, Next::Move { account, tag });
        }
        self.logged_in(&tag, account);
        (None, Next::Continue)
    }

    fn auth_failed(&mut self, reply: Reply) -> (Option<Reply>, Next) {
        self.auth_failures += 1;
        if self.auth_failures >= self.inner.options.max_auth_failures {
            response::untagged(&mut self.out, "BYE Too many authentication failures");
            return (Some(reply), Next::Close);
        }
        (Some(reply), Next::Continue)
    }

    /// Enters the Authenticated state and answers the login.
    pub(super) fn logged_in(&mut self, tag: &str, account: String) {
        tracing::debug!(peer = %self.peer, %account, shard = self.inner.services.shard, "imap: logged in");
        self.account = Some(account);
        let caps = self.capabilities();
        self.tagged(
            tag,
            &Reply::ok_code(format!("CAPABILITY {caps}"), "Logged in"),
        );
    }

    /// Hands the connection to the shard that owns `account`.
    pub(super) async fn move_to_owner(
        &mut self,
        conn: &mut Conn,
        account: String,
        tag: String,
    ) -> End {
        if let Err(end) = conn.flush(&mut self.out).await {
            return end;
        }
        let owner = self.inner.services.mail.owner(&account);
        let Some(stream) = conn.stream.take() else {
            return End::Closed;
        };
        let moved = match stream.detach() {
            Ok(moved) => moved,
            Err(e) => {
                tracing::warn!(error = %e, "imap: cannot move a session");
                return End::Io(e);
            }
        };
        let moved = Moved {
            stream: moved,
            peer: self.peer,
            account,
            tag,
            tls: self.tls,
            enabled: self.enabled,
            pending: conn.take_unread(),
        };
        match self.inner.mesh.send(owner, moved).await {
            Ok(()) => End::Moved,
            Err(e) => {
                tracing::warn!(error = %e, owner, "imap: cannot move a session");
                End::Closed
            }
        }
    }

    pub(super) async fn starttls(&mut self, conn: &mut Conn) -> Result<(), End> {
        conn.flush(&mut self.out).await?;
        let Some(config) = self.inner.tls.clone() else {
            return Err(End::Closed);
        };
        conn.discard_input();
        let stream = conn.stream.take().ok_or(End::Closed)?;
        match stream.accept_tls(config).await {
            Ok(tls) => {
                conn.stream = Some(tls);
                self.tls = true;
                Ok(())
            }
            Err(e) => {
                self.inner.metrics.tls_failures.inc();
                tracing::debug!(peer = %self.peer, error = %e, "imap: STARTTLS handshake failed");
                Err(End::Closed)
            }
        }
    }
}

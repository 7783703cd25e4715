//! One IMAP connection: the state machine (Not Authenticated,
//! Authenticated, Selected, Logout) over a [`Stream`], one file per group
//! of commands, and the selected mailbox's [`view::View`].
//!
//! After each command in the Selected state the view is brought up to
//! date with the store, and what others changed (new messages, expunges,
//! flag changes) is reported before the tagged reply.

mod append;
mod auth;
mod catenate;
mod conn;
mod copy_move;
mod fetch;
mod fetch_stream;
mod idle;
mod mailboxes;
mod objects;
pub mod recent;
pub(crate) mod search;
mod select;
mod shard_cache;
mod store;
pub mod summaries;
mod view;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_shards::metrics::Outcome;
use cairn_shards::stream::Stream;
use cairn_storage::mailbox::{canonical, MailError};
use imap_types::command::{Command, CommandBody};
use imap_types::core::Charset;
use imap_types::fetch::MacroOrMessageDataItemNames;
use imap_types::mailbox::Mailbox;

use crate::codec::command::{self, Malformed};
use crate::codec::extended::{self, Extended, FetchObjects, Pre, StatusItems};
use crate::codec::framer::Event;
use crate::codec::response::{self, string, Kind};
use crate::codec::utf7;
use crate::{Inner, Moved};
use conn::{Conn, End};
use view::View;

/// Extensions the client ENABLEd (RFC 5161).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    /// IMAP4rev2 (RFC 9051): no `\Recent`, ESEARCH answers to SEARCH,
    /// mailbox names in UTF-8.
    pub rev2: bool,
    /// UTF8=ACCEPT (RFC 6855): mailbox names in UTF-8, APPEND's `UTF8`
    /// data, no SEARCH CHARSET.
    pub utf8: bool,
}

/// The capabilities a session advertises in its state.
pub fn capabilities(
    inner_tls: bool,
    tls: bool,
    logged_in: bool,
    plaintext_ok: bool,
    max_literal: u64,
) -> String {
    let mut caps = vec!["IMAP4rev1".to_string(), "IMAP4rev2".to_string()];
    if !logged_in {
        if inner_tls && !tls {
            caps.push("STARTTLS".into());
        }
        if tls || plaintext_ok {
            caps.push("AUTH=PLAIN".into());
        } else {
            caps.push("LOGINDISABLED".into());
        }
    }
    caps.extend(
        [
            "SASL-IR",
            // LITERAL+ (any size) covers IMAP4rev2's LITERAL-; RFC 7888
            // §4 rules out advertising both.
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "SPECIAL-USE",
            "CONDSTORE",
            "QRESYNC",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE",
            "STATUS=SIZE",
            "BINARY",
            "SORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "ESEARCH",
            "SEARCHRES",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "CREATE-SPECIAL-USE",
            "MULTIAPPEND",
            "CATENATE",
            "OBJECTID",
            "UTF8=ACCEPT",
        ]
        .map(String::from),
    );
    caps.push(format!("APPENDLIMIT={max_literal}"));
    caps.join(" ")
}

/// A tagged reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    kind: Kind,
    code: Option<String>,
    text: String,
}

impl Reply {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: Kind::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub(crate) fn ok_code(code: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            kind: Kind::Ok,
            code: Some(code.into()),
            text: text.into(),
        }
    }

    pub(crate) fn no(code: &str, text: impl Into<String>) -> Self {
        Self {
            kind: Kind::No,
            code: Some(code.to_string()),
            text: text.into(),
        }
    }

    pub(crate) fn bad(text: impl Into<String>) -> Self {
        Self {
            kind: Kind::Bad,
            code: None,
            text: text.into(),
        }
    }

    /// The reply for a refused storage operation.
    pub(crate) fn mail(e: &MailError) -> Self {
        match e {
            MailError::NoSuchMailbox(_) => Self::no("NONEXISTENT", e.to_string()),
            MailError::MailboxExists(_) => Self::no("ALREADYEXISTS", e.to_string()),
            MailError::OverQuota { .. } => Self::no("OVERQUOTA", e.to_string()),
            MailError::Protected(_) | MailError::InvalidName { .. } => {
                Self::no("CANNOT", e.to_string())
            }
            MailError::TooManyKeywords(_) => Self::no("LIMIT", e.to_string()),
            MailError::NoSuchMessage(_) => Self::no("NONEXISTENT", e.to_string()),
            _ => {
                tracing::warn!(error = %e, "imap: storage error");
                Self::no("UNAVAILABLE", "Temporary storage failure; try again")
            }
        }
    }
}

/// What the session does after a command.
pub(crate) enum Next {
    Continue,
    Close,
    StartTls,
    /// Logged in as an account another shard owns.
    Move {
        account: String,
        tag: String,
    },
    /// AUTHENTICATE PLAIN without an initial response: read one line.
    AuthLine {
        tag: String,
    },
    Idle {
        tag: String,
    },
}

/// The state of a session, everything but the socket.
pub(crate) struct Session<'a> {
    inner: &'a Inner,
    out: Vec<u8>,
    peer: SocketAddr,
    tls: bool,
    /// The logged-in account.
    account: Option<String>,
    selected: Option<View>,
    enabled: Enabled,
    bad_commands: u32,
    auth_failures: u32,
}

/// Serves a new connection.
pub(crate) async fn run(inner: &Inner, stream: Stream, peer: SocketAddr) {
    let mut s = Session::new(inner, peer, stream.is_tls());
    let caps = s.capabilities();
    response::status(
        &mut s.out,
        None,
        Kind::Ok,
        Some(&format!("CAPABILITY {caps}")),
        &format!("{} Cairn IMAP ready", inner.options.hostname),
    );
    let conn = Conn::new(stream, inner.options.max_line, Vec::new(), inner.shutdown());
    drive(s, conn).await
}

/// Resumes a session moved here after its login.
pub(crate) async fn resume(inner: &Inner, moved: Moved) {
    let Moved {
        stream,
        peer,
        account,
        tag,
        tls,
        enabled,
        pending,
    } = moved;
    let mut s = Session::new(inner, peer, tls);
    s.enabled = enabled;
    s.logged_in(&tag, account);
    let conn = Conn::new(
        stream.attach(),
        inner.options.max_line,
        pending,
        inner.shutdown(),
    );
    drive(s, conn).await
}

async fn drive(mut s: Session<'_>, mut conn: Conn) {
    s.inner.metrics.active.inc();
    let ended = s.serve(&mut conn).await;
    s.inner.metrics.active.dec();
    let bye = match ended {
        End::Timeout => Some("BYE Autologout; idle for too long"),
        // RFC 9051 §7.1.5: the server is closing the connection.
        End::Shutdown => Some("BYE Server shutting down"),
        End::Closed => None,
        End::Moved => return,
        End::Io(e) => {
            tracing::debug!(peer = %s.peer, error = %e, "imap: connection error");
            s.out.clear();
            None
        }
    };
    if let Some(bye) = bye {
        response::untagged(&mut s.out, bye);
    }
    let _ = conn.flush(&mut s.out).await;
    if let Some(mut stream) = conn.stream.take() {
        let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
    }
}

impl<'a> Session<'a> {
    fn new(inner: &'a Inner, peer: SocketAddr, tls: bool) -> Self {
        Self {
            inner,
            out: Vec::with_capacity(4096),
            peer,
            tls,
            account: None,
            selected: None,
            enabled: Enabled::default(),
            bad_commands: 0,
            auth_failures: 0,
        }
    }

    fn capabilities(&self) -> String {
        let o = &self.inner.options;
        capabilities(
            self.inner.tls.is_some(),
            self.tls,
            self.account.is_some(),
            o.allow_plaintext_auth,
            o.max_literal,
        )
    }

    fn tagged(&mut self, tag: &str, reply: &Reply) {
        response::status(
            &mut self.out,
            Some(tag),
            reply.kind,
            reply.code.as_deref(),
            &reply.text,
        );
    }

    /// Counts a malformed command; false once there were too many.
    fn bad_command(&mut self, tag: Option<&str>, text: &str) -> bool {
        response::status(&mut self.out, tag, Kind::Bad, None, text);
        self.bad_commands += 1;
        if self.bad_commands >= self.inner.options.max_bad_commands {
            response::untagged(&mut self.out, "BYE Too many invalid commands");
            return false;
        }
        true
    }

    fn wait(&self) -> Duration {
        if self.account.is_some() {
            self.inner.options.command_timeout
        } else {
            self.inner.options.login_timeout
        }
    }

    async fn serve(&mut self, conn: &mut Conn) -> End {
        loop {
            let wait = self.wait();
            let event = match conn.next_event(&mut self.out, wait).await {
                Ok(event) => event,
                Err(end) => return end,
            };
            let next = match event {
                Event::NeedMore => Next::Continue,
                Event::LineTooLong => {
                    if self.bad_command(None, "Command line too long") {
                        Next::Continue
                    } else {
                        Next::Close
                    }
                }
                Event::Literal { length, sync } => {
                    self.literal(conn, length, sync);
                    if self.bad_commands >= self.inner.options.max_bad_commands {
                        Next::Close
                    } else {
                        Next::Continue
                    }
                }
                Event::Command(bytes) => self.command(&bytes, conn).await,
            };
            let step = match next {
                Next::Continue => Ok(()),
                Next::Close => return End::Closed,
                Next::StartTls => self.starttls(conn).await,
                Next::Move { account, tag } => return self.move_to_owner(conn, account, tag).await,
                Next::AuthLine { tag } => self.auth_line(conn, &tag).await,
                Next::Idle { tag } => self.idle(conn, &tag).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Accepts or refuses a literal the client announced.
    fn literal(&mut self, conn: &mut Conn, length: u32, sync: bool) {
        let total = conn.framer.pending().len() as u64 + u64::from(length);
        let limit = self.inner.options.max_literal + self.inner.options.max_line as u64;
        let checked = command::check_literal(conn.framer.pending()).or_else(|refused| {
            match extended::check_literal(conn.framer.pending()) {
                Some(Ok(tag)) => Ok(tag),
                Some(Err(_)) | None => Err(refused),
            }
        });
        match checked {
            Ok(tag) if u64::from(length) > self.inner.options.max_literal || total > limit => {
                conn.framer.refuse_literal();
                let text = format!(
                    "Literal of {length} bytes is over the limit of {}",
                    self.inner.options.max_literal
                );
                response::status(&mut self.out, Some(&tag), Kind::No, Some("TOOBIG"), &text);
            }
            Ok(_) => {
                conn.framer.accept_literal();
                if sync {
                    self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                }
            }
            Err(Malformed { tag }) => {
                conn.framer.refuse_literal();
                self.bad_command(tag.as_deref(), "Syntax error in command");
            }
        }
    }

    async fn command(&mut self, bytes: &[u8], conn: &mut Conn) -> Next {
        let started = Instant::now();
        if self.moved_away() {
            response::untagged(
                &mut self.out,
                "BYE [UNAVAILABLE] This mailbox has moved; please reconnect",
            );
            return Next::Close;
        }
        // `$` (RFC 5182) and the object id search keys (RFC 8474) become
        // their sets of messages before anything decodes.
        let filled = match self.fill_slots(bytes).await {
            Ok(filled) => filled,
            Err(refused) => {
                // Slots are found only after a valid tag.
                let tag = command::tag(bytes).unwrap_or_else(|| "*".into());
                return self.finish(&tag, Some(refused), Next::Continue, started);
            }
        };
        let bytes = filled.as_deref().unwrap_or(bytes);
        let refused = match extended::pre_decode(bytes) {
            extended::Outcome::Pass => None,
            extended::Outcome::Pre(pre) => {
                let tag = pre.tag.clone();
                let (reply, next) = self.extended(pre, conn).await;
                return self.finish(&tag, reply, next, started);
            }
            extended::Outcome::Bad { tag, reason } => Some((tag, reason)),
        };
        let cmd = match command::decode(bytes) {
            Ok(cmd) => cmd,
            Err(Malformed { tag }) => {
                let name = command::name(bytes);
                let text = if let Some((_, reason)) = refused {
                    format!("{name}: {reason}")
                } else if name.is_empty() {
                    "Missing command".to_string()
                } else {
                    format!("Syntax error in {name} or unknown command")
                };
                self.inner
                    .metrics
                    .request(Outcome::ClientError, started.elapsed());
                return if self.bad_command(tag.as_deref(), &text) {
                    Next::Continue
                } else {
                    Next::Close
                };
            }
        };
        let tag = cmd.tag.inner().to_string();
        let (reply, next) = self.dispatch(cmd, conn, FetchObjects::default()).await;
        self.finish(&tag, reply, next, started)
    }

    /// Whether the logged-in account is now owned by another shard (an
    /// administrator moved it while this session was open): its mail is
    /// no longer here, and a new connection finds it.
    fn moved_away(&self) -> bool {
        let services = &self.inner.services;
        self.account
            .as_deref()
            .is_some_and(|account| services.mail.owner(account) != services.shard)
    }

    /// Sends a command's tagged reply, counting it.
    fn finish(&mut self, tag: &str, reply: Option<Reply>, next: Next, started: Instant) -> Next {
        if let Some(reply) = reply {
            let outcome = match reply.kind {
                Kind::Ok => Outcome::Ok,
                Kind::Bad => Outcome::ClientError,
                Kind::No if reply.code.as_deref() == Some("UNAVAILABLE") => Outcome::ServerError,
                Kind::No => Outcome::ClientError,
            };
            self.inner.metrics.request(outcome, started.elapsed());
            if reply.kind == Kind::Bad {
                self.bad_command(Some(tag), &reply.text);
                if self.bad_commands >= self.inner.options.max_bad_commands {
                    return Next::Close;
                }
            } else {
                self.tagged(tag, &reply);
            }
        }
        next
    }

    /// Runs a decoded command (a FETCH also asking for `objects`): its
    /// tagged reply (none when the command goes on, e.g. IDLE) and what
    /// follows.
    async fn dispatch(
        &mut self,
        cmd: Command<'_>,
        conn: &mut Conn,
        objects: FetchObjects,
    ) -> (Option<Reply>, Next) {
        let tag = cmd.tag.inner().to_string();
        let done = |reply: Reply| (Some(reply), Next::Continue);
        // Commands valid in every state.
        match cmd.body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                response::untagged(&mut self.out, &format!("CAPABILITY {caps}"));
                return done(self.with_updates(Reply::ok("CAPABILITY completed"), true));
            }
            CommandBody::Noop => return done(self.with_updates(Reply::ok("NOOP completed"), true)),
            CommandBody::Logout => {
                response::untagged(&mut self.out, "BYE Logging out");
                return (Some(Reply::ok("LOGOUT completed")), Next::Close);
            }
            CommandBody::Id { .. } => {
                response::untagged(
                    &mut self.out,
                    "ID (\"name\" \"Cairn\" \"vendor\" \"Cairn\")",
                );
                return done(Reply::ok("ID completed"));
            }
            _ => {}
        }
        let Some(account) = self.account.clone() else {
            return self.not_authenticated(cmd.body, tag).await;
        };
        let reply = match cmd.body {
            CommandBody::StartTLS
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => Reply::bad("Already authenticated"),
            CommandBody::Enable { capabilities } => self.enable(capabilities.as_ref()),
            CommandBody::Namespace => {
                response::untagged(&mut self.out, "NAMESPACE ((\"\" \"/\")) NIL NIL");
                Reply::ok("NAMESPACE completed")
            }
            CommandBody::Create { mailbox } => self.create(&account, &mailbox, &[]).await,
            CommandBody::Delete { mailbox } => self.delete(&account, &mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&account, &from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&account, &mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&account, &mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(&account, &reference, &mailbox_wildcard, false),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&account, &reference, &mailbox_wildcard, true),
            CommandBody::Status {
                mailbox,
                item_names,
            } => match self.mailbox_name(&mailbox) {
                Ok(name) => {
                    let items = StatusItems {
                        names: item_names.into_owned(),
                        mailboxid: false,
                    };
                    self.status(&account, &name, &items)
                }
                Err(r) => r,
            },
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(&account, &mailbox, &parameters, false),
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(&account, &mailbox, &parameters, true),
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                self.append(&account, &mailbox, &flags, date.as_ref(), &message)
                    .await
            }
            CommandBody::GetQuota { root } => self.get_quota(&account, root.as_ref()),
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(&account, &mailbox),
            CommandBody::SetQuota { .. } => {
                Reply::no("NOPERM", "Quotas are set by the administrator")
            }
            CommandBody::Idle => {
                return (None, Next::Idle { tag });
            }
            body => {
                return self
                    .selected_command(&account, &tag, body, conn, objects)
                    .await
            }
        };
        let allow_expunge = true;
        done(self.with_updates(reply, allow_expunge))
    }

    /// Commands of the Selected state.
    async fn selected_command(
        &mut self,
        account: &str,
        tag: &str,
        body: CommandBody<'_>,
        conn: &mut Conn,
        objects: FetchObjects,
    ) -> (Option<Reply>, Next) {
        if self.selected.is_none() {
            let reply = match body {
                CommandBody::Check
                | CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Thread { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. } => Reply::bad("No mailbox selected"),
                _ => Reply::bad("Command not supported"),
            };
            return (Some(reply), Next::Continue);
        }
        let refused = match &body {
            CommandBody::Search { charset, .. } => self.charset_refusal(charset.as_ref(), true),
            CommandBody::Sort { charset, .. } | CommandBody::Thread { charset, .. } => {
                self.charset_refusal(Some(charset), false)
            }
            _ => None,
        };
        if let Some(refused) = refused {
            return (Some(refused), Next::Continue);
        }
        let (reply, allow_expunge) = match body {
            CommandBody::Check => (Reply::ok("CHECK completed"), true),
            CommandBody::Close => (self.close(account, true).await, false),
            CommandBody::Unselect => (self.close(account, false).await, false),
            CommandBody::Expunge => (self.expunge(account, None).await, true),
            CommandBody::ExpungeUid { sequence_set } => {
                (self.expunge(account, Some(&sequence_set)).await, true)
            }
            CommandBody::Search { criteria, uid, .. } => {
                (self.search(account, tag, criteria.as_ref(), uid).await, uid)
            }
            CommandBody::Sort {
                sort_criteria,
                search_criteria,
                uid,
                ..
            } => (
                self.sort(
                    account,
                    sort_criteria.as_ref(),
                    search_criteria.as_ref(),
                    uid,
                )
                .await,
                uid,
            ),
            CommandBody::Thread {
                algorithm,
                search_criteria,
                uid,
                ..
            } => (
                self.thread(account, &algorithm, search_criteria.as_ref(), uid)
                    .await,
                uid,
            ),
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => (
                self.fetch(
                    account,
                    &sequence_set,
                    macro_or_item_names,
                    objects,
                    uid,
                    &modifiers,
                    conn,
                )
                .await,
                uid,
            ),
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => (
                self.store(
                    account,
                    &sequence_set,
                    kind,
                    response,
                    &flags,
                    uid,
                    &modifiers,
                )
                .await,
                uid,
            ),
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => (
                self.copy(account, &sequence_set, &mailbox, uid, false)
                    .await,
                true,
            ),
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => (
                self.copy(account, &sequence_set, &mailbox, uid, true).await,
                true,
            ),
            _ => (Reply::bad("Command not supported"), true),
        };
        (
            Some(self.with_updates(reply, allow_expunge)),
            Next::Continue,
        )
    }

    /// Runs a pre-decoded extended command (see [`extended`]).
    async fn extended(&mut self, pre: Pre, conn: &mut Conn) -> (Option<Reply>, Next) {
        let Some(account) = self.account.clone() else {
            return (Some(Reply::bad("Log in first")), Next::Continue);
        };
        let mut allow_expunge = true;
        let reply = match pre.command {
            Extended::Search { uid, ret, plain } => {
                allow_expunge = uid;
                match command::decode(&plain).map(|c| c.body) {
                    Ok(CommandBody::Search {
                        charset, criteria, ..
                    }) => match self.charset_refusal(charset.as_ref(), true) {
                        Some(refused) => refused,
                        None => {
                            self.esearch(&account, &pre.tag, criteria.as_ref(), uid, ret)
                                .await
                        }
                    },
                    _ => Reply::bad("Syntax error in SEARCH criteria"),
                }
            }
            Extended::List {
                selection,
                reference,
                patterns,
                ret,
            } => self.list_extended(&account, selection, &reference, &patterns, &ret),
            Extended::Create { plain, uses } => match command::decode(&plain).map(|c| c.body) {
                Ok(CommandBody::Create { mailbox }) => self.create(&account, &mailbox, &uses).await,
                _ => Reply::bad("Syntax error in CREATE"),
            },
            Extended::Append { utf8: true, .. } if !self.enabled.utf8 => {
                Reply::bad("APPEND with UTF8 data needs ENABLE UTF8=ACCEPT")
            }
            Extended::Append { messages, .. } => self.multiappend(&account, &messages).await,
            Extended::Fetch {
                plain,
                objects,
                stand_in,
            } => match command::decode(&plain) {
                Ok(mut cmd) => {
                    if let (
                        true,
                        CommandBody::Fetch {
                            macro_or_item_names,
                            ..
                        },
                    ) = (stand_in, &mut cmd.body)
                    {
                        // `UID` only stood in for the object id items.
                        *macro_or_item_names =
                            MacroOrMessageDataItemNames::MessageDataItemNames(Vec::new());
                    }
                    return self.dispatch(cmd, conn, objects).await;
                }
                Err(_) => Reply::bad("Syntax error in FETCH"),
            },
            Extended::Status { mailbox, items } => match self.wire_name(&mailbox) {
                Ok(name) => self.status(&account, &canonical(&name), &items),
                Err(r) => r,
            },
        };
        (
            Some(self.with_updates(reply, allow_expunge)),
            Next::Continue,
        )
    }

    /// Reports what changed in the selected mailbox before `reply`.
    fn with_updates(&mut self, reply: Reply, allow_expunge: bool) -> Reply {
        if let (Some(account), Some(view)) = (&self.account, &mut self.selected) {
            let recent = &self.inner.recent;
            let name = view.mailbox.clone();
            let synced = self
                .inner
                .services
                .mailstore
                .read_mailbox(account, &name, |mb| {
                    view.sync(
                        mb,
                        allow_expunge,
                        self.enabled,
                        recent,
                        account,
                        &mut self.out,
                    )
                });
            if synced.is_err() {
                // The mailbox went away (deleted or renamed by another
                // session): RFC 9051 lets the server end the session.
                self.selected = None;
                response::untagged(&mut self.out, "BYE The selected mailbox was deleted");
            }
        }
        reply
    }

    /// The refusal of a SEARCH (`optional` charset) or SORT/THREAD
    /// charset: with UTF8=ACCEPT enabled, any SEARCH CHARSET and a
    /// SORT/THREAD charset other than UTF-8 are BAD (RFC 6855 §3 with
    /// erratum 4029); otherwise one other than the two the text keys are
    /// matched in is `NO [BADCHARSET]` naming those (RFC 9051 §6.4.4).
    fn charset_refusal(&self, charset: Option<&Charset<'_>>, optional: bool) -> Option<Reply> {
        let name = charset?.as_ref();
        if self.enabled.utf8 && (optional || !name.eq_ignore_ascii_case("UTF-8")) {
            return Some(Reply::bad(format!(
                "Charset {name} after ENABLE UTF8=ACCEPT: strings are UTF-8"
            )));
        }
        let known = ["UTF-8", "US-ASCII"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name));
        (!known).then(|| {
            Reply::no(
                "BADCHARSET (UTF-8 US-ASCII)",
                format!("Charset {name} is not supported"),
            )
        })
    }

    /// Whether mailbox names travel in UTF-8 (after ENABLE UTF8=ACCEPT,
    /// RFC 6855 §3, or IMAP4rev2, RFC 9051 §5.1) rather than in modified
    /// UTF-7.
    fn utf8_names(&self) -> bool {
        self.enabled.utf8 || self.enabled.rev2
    }

    /// A mailbox name or pattern from the wire, as UTF-8 text in
    /// Normalization Form C (RFC 9051 §5.1 names are Net-Unicode, RFC 5198:
    /// a name a client sends decomposed finds the same mailbox).
    fn wire_name(&self, raw: &[u8]) -> Result<String, Reply> {
        let text = std::str::from_utf8(raw).map_err(|_| Reply::bad("Mailbox name is not valid"))?;
        let name = if self.utf8_names() {
            text.to_string()
        } else {
            utf7::decode(text).map_err(|e| Reply::bad(e.to_string()))?
        };
        Ok(utf7::nfc(name))
    }

    /// A mailbox name as the wire writes it: an IMAP string.
    fn name_string(&self, name: &str) -> String {
        if self.utf8_names() {
            string(name)
        } else {
            string(&utf7::encode(name))
        }
    }

    /// A mailbox name from the wire as the store names it.
    fn mailbox_name(&self, mailbox: &Mailbox<'_>) -> Result<String, Reply> {
        match mailbox {
            Mailbox::Inbox => Ok("INBOX".to_string()),
            Mailbox::Other(other) => Ok(canonical(&self.wire_name(other.inner().as_ref())?)),
        }
    }

    fn enable(&mut self, caps: &[imap_types::extensions::enable::CapabilityEnable<'_>]) -> Reply {
        let mut enabled = Vec::new();
        for cap in caps {
            let name = cap.to_string().to_ascii_uppercase();
            match name.as_str() {
                "CONDSTORE" if !self.enabled.condstore => {
                    self.enabled.condstore = true;
                    enabled.push("CONDSTORE");
                }
                "QRESYNC" if !self.enabled.qresync => {
                    self.enabled.qresync = true;
                    self.enabled.condstore = true;
                    enabled.push("QRESYNC");
                }
                "IMAP4REV2" if !self.enabled.rev2 => {
                    self.enabled.rev2 = true;
                    if let Some(view) = &mut self.selected {
                        view.rev2 = true;
                    }
                    enabled.push("IMAP4rev2");
                }
                "UTF8=ACCEPT" if !self.enabled.utf8 => {
                    self.enabled.utf8 = true;
                    enabled.push("UTF8=ACCEPT");
                }
                _ => {}
            }
        }
        let mut line = "ENABLED".to_string();
        for e in enabled {
            line.push(' ');
            line.push_str(e);
        }
        response::untagged(&mut self.out, &line);
        Reply::ok("ENABLE completed")
    }
}

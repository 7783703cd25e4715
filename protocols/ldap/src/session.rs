//! One LDAP connection: reads messages off the [`Stream`] (with the idle
//! timeout), answers each in order (bind, search, compare, extended
//! operations; write operations refused), upgrades to TLS on StartTLS, and
//! records every operation in the metrics. Protocol violations end the
//! connection with a Notice of Disconnection.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cairn_shards::metrics::Outcome;
use cairn_shards::stream::Stream;
use cairn_shards::time::timeout;
use cairn_storage::directory::auth::AuthError;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapCompareRequest, LdapExtendedRequest,
    LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp, LdapResult, LdapResultCode,
    LdapSearchRequest, LdapSearchScope,
};

use crate::codec::{self, MessageDecoder};
use crate::dit::{bind_address, bind_service, canonical, Dit, STARTTLS_OID, WHOAMI_OID};
use crate::dn::Dn;
use crate::filter::{self, Tri};
use crate::search::{in_scope, result_entry, root_dse, Cookie, Selection};
use crate::Inner;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Encoded replies are written out once this many bytes are pending.
const FLUSH_AT: usize = 64 * 1024;
/// Entries examined between chances for other tasks to run.
const YIELD_EVERY: usize = 256;
/// Added to the filter depth for the BER nesting of the message itself.
const MESSAGE_NESTING: usize = 16;

const READ_ONLY: &str = "the directory is read-only over LDAP; use the admin API";

/// What the loop does after an operation.
enum Next {
    Continue,
    Close,
    StartTls,
}

/// A paged search in progress (RFC 2696): the request it was, the tree it
/// runs over (the same snapshot for every page), and where it stands.
struct Paging {
    search: u64,
    request: LdapSearchRequest,
    dit: Rc<Dit>,
    next: usize,
    returned: usize,
}

struct Session<'a> {
    server: &'a Inner,
    peer: SocketAddr,
    /// Who is bound, as a whoami authorization id (`u:<address>` for an
    /// account, `dn:<dn>` for a service account); `None` is anonymous.
    bound: Option<String>,
    paging: Option<Paging>,
    out: BytesMut,
}

pub(crate) async fn run(server: &Inner, mut stream: Stream, peer: SocketAddr) {
    let options = &server.options;
    let mut decoder = MessageDecoder::new(
        options.max_message_bytes,
        options.max_filter_depth.saturating_add(MESSAGE_NESTING),
    );
    let mut session = Session {
        server,
        peer,
        bound: None,
        paging: None,
        out: BytesMut::new(),
    };
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let msg = match decoder.decode(&mut input) {
            Ok(Some(msg)) => msg,
            Ok(None) => {
                match timeout(options.idle_timeout, stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => input.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    Err(_) => {
                        tracing::debug!(%peer, "ldap connection idle; closing");
                        session
                            .disconnect(&mut stream, LdapResultCode::Unavailable, "idle timeout")
                            .await;
                        return;
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "ldap protocol error; disconnecting");
                server.metrics.request(Outcome::ClientError, Duration::ZERO);
                session
                    .disconnect(&mut stream, LdapResultCode::ProtocolError, &e.to_string())
                    .await;
                return;
            }
        };
        let started = Instant::now();
        let (outcome, next) = session.handle(&mut stream, msg).await;
        if let Some(outcome) = outcome {
            server.metrics.request(outcome, started.elapsed());
        }
        if session.flush(&mut stream).await.is_err() {
            return;
        }
        match next {
            Next::Continue => {}
            Next::Close => {
                let _ = stream.close().await;
                return;
            }
            Next::StartTls => {
                let Some(config) = server.tls.clone() else {
                    return;
                };
                // Bytes sent before the handshake are not trusted after it.
                input.clear();
                session.paging = None;
                stream = match stream.accept_tls(config).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        server.metrics.tls_failures.inc();
                        tracing::debug!(%peer, error = %e, "ldap StartTLS handshake failed");
                        return;
                    }
                };
            }
        }
    }
}

/// The metrics outcome of a result code.
fn outcome_of(code: &LdapResultCode) -> Outcome {
    match code {
        LdapResultCode::Success
        | LdapResultCode::CompareTrue
        | LdapResultCode::CompareFalse
        | LdapResultCode::SizeLimitExceeded
        | LdapResultCode::TimeLimitExceeded => Outcome::Ok,
        LdapResultCode::Unavailable
        | LdapResultCode::Busy
        | LdapResultCode::OperationsError
        | LdapResultCode::Other => Outcome::ServerError,
        _ => Outcome::ClientError,
    }
}

fn res(code: LdapResultCode, message: &str) -> LdapResult {
    codec::result(code, message)
}

impl Session<'_> {
    fn send(&mut self, msgid: i32, op: LdapOp) {
        codec::encode(LdapMsg::new(msgid, op), &mut self.out);
    }

    fn send_with(&mut self, msgid: i32, op: LdapOp, ctrl: Vec<LdapControl>) {
        codec::encode(LdapMsg::new_with_ctrls(msgid, op, ctrl), &mut self.out);
    }

    async fn flush(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = timeout(self.server.options.idle_timeout, async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        })
        .await;
        self.out.clear();
        match written {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    async fn disconnect(&mut self, stream: &mut Stream, code: LdapResultCode, message: &str) {
        codec::encode(codec::notice_of_disconnection(code, message), &mut self.out);
        let _ = self.flush(stream).await;
        let _ = stream.close().await;
    }

    /// Answers one message; `None` as the outcome for messages that have
    /// no reply (abandon, unbind).
    async fn handle(&mut self, stream: &mut Stream, msg: LdapMsg) -> (Option<Outcome>, Next) {
        let LdapMsg { msgid, op, ctrl } = msg;
        let critical = ctrl.iter().any(|c| {
            matches!(
                c,
                LdapControl::Unknown {
                    criticality: true,
                    ..
                } | LdapControl::SyncRequest {
                    criticality: true,
                    ..
                }
            )
        });
        if critical {
            let r = res(
                LdapResultCode::UnavailableCriticalExtension,
                "a critical control is not supported",
            );
            if let Some(reply) = reply_op(&op, r) {
                self.send(msgid, reply);
                return (Some(Outcome::ClientError), Next::Continue);
            }
        }
        match op {
            LdapOp::BindRequest(req) => {
                let r = self.bind(req).await;
                let outcome = outcome_of(&r.code);
                self.send(
                    msgid,
                    LdapOp::BindResponse(LdapBindResponse {
                        res: r,
                        saslcreds: None,
                    }),
                );
                (Some(outcome), Next::Continue)
            }
            LdapOp::UnbindRequest => (None, Next::Close),
            LdapOp::AbandonRequest(_) => (None, Next::Continue),
            LdapOp::SearchRequest(req) => {
                let code = self.search(stream, msgid, req, &ctrl).await;
                (Some(outcome_of(&code)), Next::Continue)
            }
            LdapOp::CompareRequest(req) => {
                let r = self.compare(req).await;
                let outcome = outcome_of(&r.code);
                self.send(msgid, LdapOp::CompareResult(r));
                (Some(outcome), Next::Continue)
            }
            LdapOp::ExtendedRequest(req) => self.extended(stream, msgid, req).await,
            op @ (LdapOp::ModifyRequest(_)
            | LdapOp::AddRequest(_)
            | LdapOp::DelRequest(_)
            | LdapOp::ModifyDNRequest(_)) => {
                let r = res(LdapResultCode::UnwillingToPerform, READ_ONLY);
                if let Some(reply) = reply_op(&op, r) {
                    self.send(msgid, reply);
                }
                (Some(Outcome::ClientError), Next::Continue)
            }
            _ => {
                // A response, or an intermediate: not something a client sends.
                self.server
                    .metrics
                    .request(Outcome::ClientError, Duration::ZERO);
                codec::encode(
                    codec::notice_of_disconnection(
                        LdapResultCode::ProtocolError,
                        "unexpected operation from a client",
                    ),
                    &mut self.out,
                );
                (None, Next::Close)
            }
        }
    }

    async fn bind(&mut self, req: LdapBindRequest) -> LdapResult {
        // Whatever happens, the connection is anonymous until this succeeds.
        self.bound = None;
        self.paging = None;
        if req.version != 3 {
            return res(LdapResultCode::ProtocolError, "only LDAPv3 is supported");
        }
        let password = match req.cred {
            LdapBindCred::Simple(p) => p,
            LdapBindCred::SASL(_) | LdapBindCred::Unsupported => {
                return res(
                    LdapResultCode::AuthMethodNotSupported,
                    "only simple binds are supported",
                )
            }
        };
        if req.dn.is_empty() && password.is_empty() {
            return if self.server.options.allow_anonymous {
                res(LdapResultCode::Success, "")
            } else {
                res(
                    LdapResultCode::InappropriateAuthentication,
                    "anonymous binds are not allowed",
                )
            };
        }
        if password.is_empty() {
            return res(
                LdapResultCode::UnwillingToPerform,
                "unauthenticated binds (a name without a password) are refused",
            );
        }
        let directory = &self.server.services.directory;
        let ip = self.peer.ip();
        let protocol = Some("ldap".to_string());
        let outcome = if let Some((name, domain)) = bind_service(&req.dn) {
            // A service account, under the base of a served domain.
            match directory.domain(domain).await {
                Ok(Some(_)) => directory
                    .authenticate_service(name, password, ip, protocol)
                    .await
                    .map(|name| format!("dn:cn={name},ou=services,{}", base_of(&req.dn))),
                Ok(None) => Err(AuthError::Invalid),
                Err(e) => Err(AuthError::Unavailable(e.to_string())),
            }
        } else if let Some(address) = bind_address(&req.dn) {
            directory
                .authenticate_via(address, password, ip, protocol)
                .await
                .map(|p| format!("u:{}", p.address))
        } else {
            Err(AuthError::Invalid)
        };
        match outcome {
            Ok(authz) => {
                self.bound = Some(authz);
                res(LdapResultCode::Success, "")
            }
            Err(AuthError::Invalid) => {
                res(LdapResultCode::InvalidCredentials, "invalid credentials")
            }
            Err(e @ (AuthError::Disabled | AuthError::Throttled { .. })) => {
                res(LdapResultCode::InvalidCredentials, &e.to_string())
            }
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(error = %e, "ldap bind: authentication unavailable");
                res(LdapResultCode::Unavailable, "authentication is unavailable")
            }
        }
    }

    fn may_read(&self) -> bool {
        self.bound.is_some() || self.server.options.allow_anonymous
    }

    async fn compare(&mut self, req: LdapCompareRequest) -> LdapResult {
        if !self.may_read() {
            return res(LdapResultCode::InsufficentAccessRights, "bind first");
        }
        let Ok(dn) = Dn::parse(&req.dn) else {
            return res(LdapResultCode::InvalidDNSyntax, "invalid DN");
        };
        let dit = match self.server.dit().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "ldap: directory unavailable");
                return res(LdapResultCode::Unavailable, "the directory is unavailable");
            }
        };
        let rdns = dn.normalized();
        let Some(entry) = dit.find(&rdns) else {
            let mut r = res(LdapResultCode::NoSuchObject, "no such entry");
            r.matcheddn = dit.matched(&rdns);
            return r;
        };
        let Some(name) = canonical(&req.atype) else {
            return res(
                LdapResultCode::UndefinedAttributeType,
                "unknown attribute type",
            );
        };
        let value = String::from_utf8_lossy(&req.val).to_lowercase();
        let found = entry.attr(name).is_some_and(|a| a.lower.contains(&value));
        if found {
            res(LdapResultCode::CompareTrue, "")
        } else {
            res(LdapResultCode::CompareFalse, "")
        }
    }

    async fn extended(
        &mut self,
        stream: &mut Stream,
        msgid: i32,
        req: LdapExtendedRequest,
    ) -> (Option<Outcome>, Next) {
        let (r, name, value, next) = match req.name.as_str() {
            STARTTLS_OID if stream.is_tls() => (
                res(
                    LdapResultCode::OperationsError,
                    "TLS is already established",
                ),
                Some(STARTTLS_OID.to_string()),
                None,
                Next::Continue,
            ),
            STARTTLS_OID if self.server.tls.is_none() => (
                res(LdapResultCode::ProtocolError, "StartTLS is not available"),
                Some(STARTTLS_OID.to_string()),
                None,
                Next::Continue,
            ),
            STARTTLS_OID => (
                res(LdapResultCode::Success, ""),
                Some(STARTTLS_OID.to_string()),
                None,
                Next::StartTls,
            ),
            WHOAMI_OID => {
                let authz = self.bound.clone().unwrap_or_default();
                (
                    res(LdapResultCode::Success, ""),
                    None,
                    Some(authz.into_bytes()),
                    Next::Continue,
                )
            }
            _ => (
                res(
                    LdapResultCode::ProtocolError,
                    "unsupported extended operation",
                ),
                None,
                None,
                Next::Continue,
            ),
        };
        let outcome = outcome_of(&r.code);
        self.send(
            msgid,
            LdapOp::ExtendedResponse(LdapExtendedResponse {
                res: r,
                name,
                value,
            }),
        );
        (Some(outcome), next)
    }

    fn done(&mut self, msgid: i32, r: LdapResult, ctrl: Vec<LdapControl>) -> LdapResultCode {
        let code = r.code.clone();
        self.send_with(msgid, LdapOp::SearchResultDone(r), ctrl);
        code
    }

    /// Runs a search, sends its entries and its result; returns the code.
    async fn search(
        &mut self,
        stream: &mut Stream,
        msgid: i32,
        req: LdapSearchRequest,
        ctrl: &[LdapControl],
    ) -> LdapResultCode {
        let options = &self.server.options;
        if let Err(e) = filter::check(&req.filter, options.max_filter_depth) {
            return self.done(
                msgid,
                res(LdapResultCode::UnwillingToPerform, &e.to_string()),
                vec![],
            );
        }
        let Ok(base) = Dn::parse(&req.base) else {
            return self.done(
                msgid,
                res(LdapResultCode::InvalidDNSyntax, "invalid base DN"),
                vec![],
            );
        };
        let base = base.normalized();
        let sel = Selection::new(&req.attrs);
        if base.is_empty() && req.scope == LdapSearchScope::Base {
            // The root DSE: readable before a bind, for StartTLS discovery.
            let dit = match self.server.dit().await {
                Ok(d) => d,
                Err(e) => return self.unavailable(msgid, &e.to_string()),
            };
            if matches!(req.filter, LdapFilter::Present(_)) {
                let entry = root_dse(
                    &dit,
                    self.server.tls.is_some() && !stream.is_tls(),
                    &sel,
                    req.typesonly,
                );
                self.send(msgid, LdapOp::SearchResultEntry(entry));
            }
            return self.done(msgid, res(LdapResultCode::Success, ""), vec![]);
        }
        if !self.may_read() {
            return self.done(
                msgid,
                res(LdapResultCode::InsufficentAccessRights, "bind first"),
                vec![],
            );
        }
        let paged = ctrl.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
            _ => None,
        });
        // Where to start, over which snapshot, and how many were sent before.
        let (dit, start, returned_before, search_id) = match &paged {
            Some((_, cookie)) if !cookie.is_empty() => {
                let valid = Cookie::decode(cookie).and_then(|c| {
                    self.paging.as_ref().filter(|p| {
                        p.search == c.search && p.next as u64 == c.next && p.request == req
                    })
                });
                match valid {
                    Some(p) => (p.dit.clone(), p.next, p.returned, p.search),
                    None => {
                        self.paging = None;
                        return self.done(
                            msgid,
                            res(
                                LdapResultCode::UnwillingToPerform,
                                "unknown or stale paged results cookie",
                            ),
                            vec![],
                        );
                    }
                }
            }
            _ => {
                let dit = match self.server.dit().await {
                    Ok(d) => d,
                    Err(e) => return self.unavailable(msgid, &e.to_string()),
                };
                let id = if paged.is_some() {
                    self.server.next_search()
                } else {
                    0
                };
                (dit, 0, 0, id)
            }
        };
        if let Some((size, cookie)) = &paged {
            if *size <= 0 && !cookie.is_empty() {
                // RFC 2696 §3: a page size of 0 abandons the paged search.
                self.paging = None;
                return self.done(
                    msgid,
                    res(LdapResultCode::Success, ""),
                    vec![LdapControl::SimplePagedResults {
                        size: 0,
                        cookie: vec![],
                    }],
                );
            }
        }
        if !base.is_empty() && dit.find(&base).is_none() {
            let mut r = res(LdapResultCode::NoSuchObject, "no such base entry");
            r.matcheddn = dit.matched(&base);
            return self.done(msgid, r, vec![]);
        }

        // Limits: the client's over the whole search, the server's per page.
        let client_limit = usize::try_from(req.sizelimit).unwrap_or(0);
        let server_limit = options.default_size_limit;
        let remaining_for_client = match client_limit {
            0 => usize::MAX,
            n => n.saturating_sub(returned_before),
        };
        let page = match &paged {
            Some((size, _)) => usize::try_from(*size).unwrap_or(0).max(1),
            None => usize::MAX,
        };
        let server_cap = if server_limit == 0 {
            usize::MAX
        } else {
            server_limit
        };
        let page_cap = page.min(server_cap);
        let limit = remaining_for_client.min(page_cap);
        // Whether stopping at `limit` with more to come is the end of a
        // page (paged) or an exceeded size limit.
        let limit_is_page = paged.is_some() && page_cap <= remaining_for_client;
        let deadline = match u64::try_from(req.timelimit) {
            Ok(s) if s > 0 => Some(Instant::now() + Duration::from_secs(s)),
            _ => None,
        };

        // Only the entries the index cannot rule out, in entry order (so a
        // cookie's position means the same thing on every page); the real
        // filter decides.
        let filter = filter::compile(&req.filter);
        let candidates = dit.search.candidates(&filter);
        let mut sent = 0usize;
        let mut more_at = None;
        let mut timed_out = false;
        for (n, i) in candidates.iter_from(start, dit.entries.len()).enumerate() {
            let Some(entry) = dit.entries.get(i) else {
                break;
            };
            if n % YIELD_EVERY == 0 {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    break;
                }
                cairn_shards::yield_if_needed().await;
                if self.out.len() >= FLUSH_AT && self.flush(stream).await.is_err() {
                    return LdapResultCode::Other;
                }
            }
            if !in_scope(&entry.rdns, &base, &req.scope) || filter.eval(entry) != Tri::True {
                continue;
            }
            if sent >= limit {
                more_at = Some(i);
                break;
            }
            self.send(
                msgid,
                LdapOp::SearchResultEntry(result_entry(entry, &sel, req.typesonly)),
            );
            sent += 1;
        }
        let returned = returned_before + sent;
        if timed_out {
            self.paging = None;
            let ctrl = paged_done(&paged);
            return self.done(
                msgid,
                res(LdapResultCode::TimeLimitExceeded, "time limit exceeded"),
                ctrl,
            );
        }
        match (more_at, limit_is_page) {
            (Some(next), true) => {
                let cookie = Cookie {
                    search: search_id,
                    next: next as u64,
                };
                self.paging = Some(Paging {
                    search: search_id,
                    request: req,
                    dit,
                    next,
                    returned,
                });
                self.done(
                    msgid,
                    res(LdapResultCode::Success, ""),
                    vec![LdapControl::SimplePagedResults {
                        size: 0,
                        cookie: cookie.encode(),
                    }],
                )
            }
            (Some(_), false) => {
                self.paging = None;
                let ctrl = paged_done(&paged);
                self.done(
                    msgid,
                    res(LdapResultCode::SizeLimitExceeded, "size limit exceeded"),
                    ctrl,
                )
            }
            (None, _) => {
                self.paging = None;
                let ctrl = paged_done(&paged);
                self.done(msgid, res(LdapResultCode::Success, ""), ctrl)
            }
        }
    }

    fn unavailable(&mut self, msgid: i32, error: &str) -> LdapResultCode {
        tracing::warn!(error, "ldap: directory unavailable");
        self.done(
            msgid,
            res(LdapResultCode::Unavailable, "the directory is unavailable"),
            vec![],
        )
    }
}

/// The final paged-results control (empty cookie) when the search was paged.
fn paged_done(paged: &Option<(i64, Vec<u8>)>) -> Vec<LdapControl> {
    match paged {
        Some(_) => vec![LdapControl::SimplePagedResults {
            size: 0,
            cookie: vec![],
        }],
        None => vec![],
    }
}

/// The response operation that answers `op` with `r`, if it has one.
fn reply_op(op: &LdapOp, r: LdapResult) -> Option<LdapOp> {
    Some(match op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
            res: r,
            saslcreds: None,
        }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(r),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(r),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(r),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(r),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(r),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(r),
        LdapOp::ExtendedRequest(_) => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: r,
            name: None,
            value: None,
        }),
        _ => return None,
    })
}

/// The `dc=…` part of a service account's bind DN, lower-cased.
fn base_of(dn: &str) -> String {
    match Dn::parse(dn) {
        Ok(dn) => dn
            .normalized()
            .into_iter()
            .skip(2)
            .collect::<Vec<_>>()
            .join(","),
        Err(_) => String::new(),
    }
}

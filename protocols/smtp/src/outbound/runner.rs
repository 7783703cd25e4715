//! The delivery loop of one shard's outbound queue. It sleeps until a
//! message is due (or one is queued, or an administrator asks for a
//! retry), then attempts each due message in a task of its own: the
//! message's pending recipients are grouped by domain, each group goes to
//! its smarthost or MX hosts (local domains, for reports to local senders,
//! are delivered straight into the mailbox), and the outcome is written
//! back durably. Recipients answered with `5xx` fail at once; `4xx` and
//! unreachable hosts defer the recipient to the next attempt, until the
//! message's lifetime is over. Failures, delays (once) and requested
//! successes are reported to the sender ([`super::dsn`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_dns::Resolver;
use cairn_shards::Shutdown;
use cairn_storage::queue::{NewMessage, Notify, QueuedMessage, RecipientState};
use cairn_storage::services::Services;
use futures_lite::future;

use super::metrics::Result as Counted;
use super::pool::Pool;
use super::route::{self, Host, NoRoute};
use super::{dsn, OutboundOptions};
use crate::client::{ClientError, ClientOptions, ClientTimeouts, Envelope, Outcome};
use crate::delivery;
use crate::headers::now;

/// Messages attempted at once on one shard.
const MAX_IN_FLIGHT: usize = 200;
/// The longest the loop sleeps without looking at the queue.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Reply texts kept per recipient.
const MAX_REPLY: usize = 512;

/// One recipient's outcome in one attempt.
#[derive(Debug, Clone)]
enum Verdict {
    /// `relayed`: the remote server took over the DSN duty (it offered
    /// DSN and got the recipient's NOTIFY), so no success report is ours.
    Delivered {
        reply: String,
        host: String,
        relayed: bool,
    },
    Failed {
        reply: String,
        host: String,
    },
    Deferred {
        reply: String,
    },
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REPLY {
        let mut end = MAX_REPLY;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn notify_param(n: &Notify) -> Option<String> {
    let mut parts = Vec::new();
    if n.success {
        parts.push("SUCCESS");
    }
    if n.failure {
        parts.push("FAILURE");
    }
    if n.delay {
        parts.push("DELAY");
    }
    Some(if parts.is_empty() {
        "NEVER".to_string()
    } else {
        parts.join(",")
    })
}

/// The runner of one shard. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Rc<Inner>,
}

struct Inner {
    services: Services,
    options: OutboundOptions,
    resolver: Resolver,
    pool: Pool,
    mx: ClientOptions,
    smarthost: ClientOptions,
    in_flight: RefCell<HashSet<u64>>,
}

fn client_options(
    options: &OutboundOptions,
    tls: crate::client::TlsMode,
    verify: bool,
    auth: Option<(String, String)>,
) -> std::io::Result<ClientOptions> {
    use cairn_shards::stream::{client_config, ClientVerify};
    let verify = if verify {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        ClientVerify::Roots(roots)
    } else {
        ClientVerify::Any
    };
    let tls_config = client_config(verify).map_err(std::io::Error::other)?;
    Ok(ClientOptions {
        helo: options.hostname.clone(),
        tls,
        tls_config,
        auth,
        allow_plain_auth: false,
        timeouts: ClientTimeouts::default(),
    })
}

impl Runner {
    /// The runner of the current shard; [`Runner::run`] starts it.
    pub fn new(services: Services, options: OutboundOptions) -> std::io::Result<Self> {
        let mx = client_options(&options, options.mx_tls, false, None)?;
        let smarthost = client_options(
            &options,
            options.smarthost_tls,
            options.smarthost_verify,
            options.smarthost_auth.clone(),
        )?;
        Ok(Runner {
            inner: Rc::new(Inner {
                resolver: Resolver::new(options.resolver.clone()),
                pool: Pool::new(
                    options.max_connections,
                    options.max_connections_per_destination,
                ),
                services,
                options,
                mx,
                smarthost,
                in_flight: RefCell::new(HashSet::new()),
            }),
        })
    }

    /// Delivers due messages until `shutdown`; messages in flight then
    /// finish their attempt in their own tasks.
    pub async fn run(self, shutdown: Shutdown) {
        let store = self.inner.services.queue.local().clone();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let changed = store.changed();
            self.start_due();
            self.close_idle();
            if let Some(m) = &self.inner.options.metrics {
                m.queued(self.inner.services.shard, store.len());
            }
            let wait = self.wait();
            future::or(future::or(changed, shutdown.wait()), async {
                cairn_shards::time::sleep(wait).await;
            })
            .await;
        }
        for connection in self.inner.pool.drain() {
            connection.quit().await;
        }
    }

    /// How long to sleep: until the next message not in flight is due.
    fn wait(&self) -> Duration {
        let store = self.inner.services.queue.local();
        let in_flight = self.inner.in_flight.borrow();
        let now = now();
        let next = if in_flight.is_empty() {
            store.next_due()
        } else {
            store
                .due(now, in_flight.len() + 1)
                .iter()
                .find(|m| !in_flight.contains(&m.id))
                .map(|m| m.next_attempt)
                .or(Some(now + 1))
        };
        match next {
            Some(at) if at <= now => Duration::ZERO,
            Some(at) => Duration::from_secs((at - now) as u64).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    fn start_due(&self) {
        let store = self.inner.services.queue.local();
        let room = MAX_IN_FLIGHT.saturating_sub(self.inner.in_flight.borrow().len());
        if room == 0 {
            return;
        }
        let busy = self.inner.in_flight.borrow().len();
        for message in store.due(now(), busy + room) {
            if !self.inner.in_flight.borrow_mut().insert(message.id) {
                continue;
            }
            let runner = self.clone();
            cairn_shards::spawn_detached(async move {
                let id = message.id;
                runner.attempt(message).await;
                runner.inner.in_flight.borrow_mut().remove(&id);
            });
        }
    }

    fn close_idle(&self) {
        for connection in self.inner.pool.expired() {
            cairn_shards::spawn_detached(connection.quit());
        }
    }

    /// One attempt at one message, its outcome written back.
    async fn attempt(&self, mut message: QueuedMessage) {
        let store = self.inner.services.queue.local();
        let started = now();
        let body = match store.body(&message).await {
            Ok(body) => Arc::<[u8]>::from(body),
            Err(e) => {
                tracing::error!(id = message.id, error = %e, "outbound: cannot read a queued body");
                message.attempts += 1;
                message.last_error = Some(clip(format!("4.3.0 cannot read the body: {e}")));
                message.next_attempt = self.inner.options.schedule.next_attempt(
                    message.created,
                    message.attempts,
                    started,
                );
                let _ = store.update(message).await;
                return;
            }
        };
        let mut groups: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
        for (i, r) in message.recipients.iter().enumerate() {
            if r.state == RecipientState::Pending {
                let key = (route::domain_of(&r.address), notify_param(&r.notify));
                groups.entry(key).or_default().push(i);
            }
        }
        let attempts = groups
            .into_iter()
            .map(|((domain, notify), indexes)| {
                let message = &message;
                let body = body.clone();
                async move {
                    let verdicts = self
                        .deliver_group(message, &domain, notify, &indexes, body)
                        .await;
                    indexes.into_iter().zip(verdicts).collect::<Vec<_>>()
                }
            })
            .collect::<Vec<_>>();
        let verdicts: Vec<(usize, Verdict)> = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .collect();
        self.record(message, verdicts, &body).await;
    }

    /// Delivers one group (same domain, same NOTIFY) of a message.
    async fn deliver_group(
        &self,
        message: &QueuedMessage,
        domain: &str,
        notify: Option<String>,
        indexes: &[usize],
        body: Arc<[u8]>,
    ) -> Vec<Verdict> {
        let addresses: Vec<String> = indexes
            .iter()
            .map(|&i| message.recipients[i].address.clone())
            .collect();
        if self.is_local(&addresses[0]).await {
            let mut out = Vec::with_capacity(addresses.len());
            for address in &addresses {
                out.push(
                    self.deliver_local(&message.sender, address, body.clone())
                        .await,
                );
            }
            return out;
        }
        let (hosts, client) = match &self.inner.options.smarthost {
            Some((host, port)) => (
                route::smarthost(&self.inner.resolver, host, *port).await,
                &self.inner.smarthost,
            ),
            None => (
                route::mx_hosts(&self.inner.resolver, domain, self.inner.options.mx_port).await,
                &self.inner.mx,
            ),
        };
        let hosts = match hosts {
            Ok(hosts) => hosts,
            Err(NoRoute { permanent, reason }) => {
                let verdict = if permanent {
                    Verdict::Failed {
                        reply: reason,
                        host: String::new(),
                    }
                } else {
                    Verdict::Deferred { reply: reason }
                };
                return vec![verdict; addresses.len()];
            }
        };
        let envelope = Envelope {
            from: message.sender.clone(),
            recipients: addresses.clone(),
            envid: message.envid.clone(),
            ret_full: Some(message.ret_full),
            notify,
        };
        self.try_hosts(&hosts, client, &envelope, &body).await
    }

    /// Tries each host's addresses in order until one takes the
    /// transaction (whatever it answers); connection failures move on.
    async fn try_hosts(
        &self,
        hosts: &[Host],
        client: &ClientOptions,
        envelope: &Envelope,
        body: &[u8],
    ) -> Vec<Verdict> {
        let n = envelope.recipients.len();
        let mut last = String::from("4.4.1 No answer from any host");
        for host in hosts {
            for &addr in &host.addresses {
                let mut lease = match self.inner.pool.get(addr, &host.name, client).await {
                    Ok(lease) => lease,
                    Err(e) => {
                        tracing::info!(host = %host.name, %addr, error = %e, "outbound: connection failed");
                        last = format!("4.4.1 {} [{addr}]: {e}", host.name);
                        continue;
                    }
                };
                let Some(mut connection) = lease.connection.take() else {
                    continue;
                };
                let mut sent = connection.send(envelope, body).await;
                if lease.reused && matches!(sent, Err(ClientError::Io(_) | ClientError::Timeout(_)))
                {
                    // The idle session had been closed by the server.
                    match crate::client::Connection::open(addr, &host.name, client).await {
                        Ok(fresh) => {
                            connection = fresh;
                            sent = connection.send(envelope, body).await;
                        }
                        Err(e) => {
                            last = format!("4.4.1 {} [{addr}]: {e}", host.name);
                            continue;
                        }
                    }
                }
                let relays_dsn = connection.capabilities().dsn && envelope.notify.is_some();
                match sent {
                    Ok(outcome) => {
                        lease.connection = Some(connection);
                        lease.keep();
                        return verdicts(&host.name, outcome, relays_dsn, n);
                    }
                    Err(ClientError::Refused(reply)) => {
                        lease.connection = Some(connection);
                        lease.keep();
                        let reply = clip(format!("smtp; {reply}"));
                        let verdict = if reply_is_permanent(&reply) {
                            Verdict::Failed {
                                reply,
                                host: host.name.clone(),
                            }
                        } else {
                            Verdict::Deferred { reply }
                        };
                        return vec![verdict; n];
                    }
                    Err(e) => {
                        tracing::info!(host = %host.name, %addr, error = %e, "outbound: delivery failed");
                        last = format!("4.4.2 {} [{addr}]: {e}", host.name);
                    }
                }
            }
        }
        vec![Verdict::Deferred { reply: clip(last) }; n]
    }

    async fn is_local(&self, address: &str) -> bool {
        matches!(
            self.inner.services.directory.route(address.to_string()).await,
            Ok(route) if route.served
        )
    }

    /// A report (or a message) for a local recipient: straight into the
    /// mailbox, as the MX listener would deliver it.
    async fn deliver_local(&self, sender: &str, address: &str, body: Arc<[u8]>) -> Verdict {
        let services = &self.inner.services;
        let host = self.inner.options.hostname.clone();
        let size = body.len() as u64;
        let resolved = match delivery::recipient(services, false, sender, address, size).await {
            Ok(resolved) => resolved,
            Err(reply) if reply.is_permanent() => {
                return Verdict::Failed {
                    reply: local_text(&reply),
                    host,
                }
            }
            Err(reply) => {
                return Verdict::Deferred {
                    reply: local_text(&reply),
                }
            }
        };
        match delivery::deliver(services, &resolved.accounts, "INBOX", body, now()).await {
            Ok(()) => Verdict::Delivered {
                reply: "250 2.0.0 delivered locally".to_string(),
                host,
                relayed: false,
            },
            Err(reply) if reply.is_permanent() => Verdict::Failed {
                reply: local_text(&reply),
                host,
            },
            Err(reply) => Verdict::Deferred {
                reply: local_text(&reply),
            },
        }
    }

    /// Writes an attempt's outcome back: the message leaves the queue when
    /// no recipient is pending (or its time is up), else waits for its
    /// next attempt. Reports go to the sender first, so that a crash can
    /// repeat a report but never lose one.
    async fn record(
        &self,
        mut message: QueuedMessage,
        verdicts: Vec<(usize, Verdict)>,
        body: &[u8],
    ) {
        let store = self.inner.services.queue.local();
        let schedule = self.inner.options.schedule;
        let now = now();
        let metrics = self.inner.options.metrics.clone();
        let mut failed = Vec::new();
        let mut delivered = Vec::new();
        let mut last_error = None;
        for (i, verdict) in verdicts {
            let Some(r) = message.recipients.get_mut(i) else {
                continue;
            };
            let counted = match verdict {
                Verdict::Delivered {
                    reply,
                    host,
                    relayed,
                } => {
                    if r.notify.success && !relayed {
                        delivered.push(i);
                    }
                    r.state = RecipientState::Delivered {
                        at: now,
                        reply: clip(reply),
                        mx: host,
                    };
                    Counted::Delivered
                }
                Verdict::Failed { reply, host } => {
                    if r.notify.failure {
                        failed.push(i);
                    }
                    r.state = RecipientState::Failed {
                        at: now,
                        reply: clip(reply),
                        mx: host,
                    };
                    Counted::Failed
                }
                Verdict::Deferred { reply } => {
                    last_error = Some(clip(reply));
                    Counted::Deferred
                }
            };
            if let Some(m) = &metrics {
                m.recipient(counted);
            }
        }
        let pending: Vec<usize> = (0..message.recipients.len())
            .filter(|&i| message.recipients[i].state == RecipientState::Pending)
            .collect();
        let expired = !pending.is_empty() && now >= schedule.expires(message.created);
        if expired {
            let reason = format!(
                "{}; 4.4.7 delivery time expired",
                last_error.as_deref().unwrap_or("no answer")
            );
            for &i in &pending {
                let r = &mut message.recipients[i];
                if r.notify.failure {
                    failed.push(i);
                }
                r.state = RecipientState::Failed {
                    at: now,
                    reply: clip(reason.clone()),
                    mx: String::new(),
                };
            }
        }
        self.report(&message, &failed, dsn::Action::Failed, body, None)
            .await;
        self.report(&message, &delivered, dsn::Action::Delivered, body, None)
            .await;
        let done = pending.is_empty() || expired;
        let result = if done {
            store.remove(message.id).await
        } else {
            message.attempts += 1;
            message.last_error = last_error;
            message.next_attempt = schedule.next_attempt(message.created, message.attempts, now);
            if !message.delay_notified && schedule.delay_notice_due(message.created, now) {
                let delayed: Vec<usize> = pending
                    .iter()
                    .copied()
                    .filter(|&i| message.recipients[i].notify.delay)
                    .collect();
                let until = schedule.expires(message.created);
                self.report(&message, &delayed, dsn::Action::Delayed, body, Some(until))
                    .await;
                message.delay_notified = true;
            }
            store.update(message).await
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "outbound: cannot record a delivery attempt; it will be repeated");
        }
    }

    /// Sends the sender a report about `indexes` (none: nothing to say; a
    /// bounce itself is never reported on).
    async fn report(
        &self,
        message: &QueuedMessage,
        indexes: &[usize],
        action: dsn::Action,
        body: &[u8],
        retry_until: Option<i64>,
    ) {
        if indexes.is_empty() || message.sender.is_empty() {
            return;
        }
        let now = now();
        let token = format!("{}.{}.{now}", self.inner.services.shard, message.id);
        let recipients = indexes
            .iter()
            .filter_map(|&i| message.recipients.get(i))
            .map(|r| {
                let (reply, host, at) = match &r.state {
                    RecipientState::Delivered { at, reply, mx }
                    | RecipientState::Failed { at, reply, mx } => {
                        (reply.as_str(), Some(mx.as_str()), *at)
                    }
                    RecipientState::Pending => {
                        (message.last_error.as_deref().unwrap_or(""), None, now)
                    }
                };
                dsn::Recipient {
                    address: &r.address,
                    orcpt: r.orcpt.as_deref(),
                    action,
                    status: dsn::status_of(
                        reply.trim_start_matches("smtp; "),
                        action == dsn::Action::Failed,
                    ),
                    remote_mta: host.filter(|h| !h.is_empty()),
                    diagnostic: reply,
                    last_attempt: at,
                }
            })
            .collect();
        let report = dsn::build(&dsn::Report {
            reporting_mta: &self.inner.options.hostname,
            to: &message.sender,
            envid: message.envid.as_deref(),
            arrival: message.created,
            now,
            retry_until,
            recipients,
            original: body,
            full: message.ret_full,
            token: &token,
        });
        let queued = self
            .inner
            .services
            .queue
            .local()
            .enqueue(
                NewMessage {
                    sender: String::new(),
                    recipients: vec![(message.sender.clone(), None, Notify::never())],
                    envid: None,
                    ret_full: false,
                    now,
                },
                Arc::from(report),
            )
            .await;
        match queued {
            Ok(_) => {
                if let Some(m) = &self.inner.options.metrics {
                    m.report(match action {
                        dsn::Action::Failed => "failed",
                        dsn::Action::Delayed => "delayed",
                        dsn::Action::Delivered => "delivered",
                    });
                }
            }
            Err(e) => {
                tracing::error!(id = message.id, error = %e, "outbound: cannot queue a delivery report")
            }
        }
    }
}

/// A local refusal as a report line: `550 5.1.1 No such user here`.
fn local_text(reply: &crate::codec::reply::Reply) -> String {
    format!("{} {} {}", reply.code, reply.status, reply.text)
}

/// Whether a recorded reply (`smtp; 550 …`) is a permanent failure.
fn reply_is_permanent(reply: &str) -> bool {
    reply.trim_start_matches("smtp; ").starts_with('5')
}

/// Each recipient's verdict from one transaction's outcome.
fn verdicts(host: &str, outcome: Outcome, relays_dsn: bool, n: usize) -> Vec<Verdict> {
    let data = outcome.data;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let verdict = match outcome.recipients.get(i) {
            Some(Err(reply)) => {
                let text = clip(format!("smtp; {reply}"));
                if reply.is_permanent() {
                    Verdict::Failed {
                        reply: text,
                        host: host.to_string(),
                    }
                } else {
                    Verdict::Deferred { reply: text }
                }
            }
            Some(Ok(_)) => match &data {
                Some(Ok(reply)) => Verdict::Delivered {
                    reply: clip(format!("smtp; {reply}")),
                    host: host.to_string(),
                    relayed: relays_dsn,
                },
                Some(Err(reply)) if reply.is_permanent() => Verdict::Failed {
                    reply: clip(format!("smtp; {reply}")),
                    host: host.to_string(),
                },
                Some(Err(reply)) => Verdict::Deferred {
                    reply: clip(format!("smtp; {reply}")),
                },
                None => Verdict::Deferred {
                    reply: "4.4.2 the transaction ended before the message was sent".into(),
                },
            },
            None => Verdict::Deferred {
                reply: "4.4.2 no answer for this recipient".into(),
            },
        };
        out.push(verdict);
    }
    out
}

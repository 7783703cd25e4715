//! Who a message goes to and whether it may: recipients resolved through
//! the directory (accounts, aliases, alias domains, catch-alls, lists
//! expanded to their local members), the relay rule, list sender
//! restrictions, the submission sender rule, and the final delivery into
//! the recipients' INBOXes with its reply — for mail from other servers
//! that the spam score accepted, each recipient's own Bayes classifier
//! may file its copy into Junk instead ([`deliver_classified`]).
//!
//! Recipients in other domains (on submission, and the external members
//! of lists) go to the outbound queue. A delivery that fails
//! for some recipients after others succeeded answers `451` so that the
//! client retries: the recipients that had it get it twice rather than
//! anyone losing it.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_storage::bayes::Classification;
use cairn_storage::directory::{names, List, Recipient, Route, Status};
use cairn_storage::mailbox::{Delivered, MailError};
use cairn_storage::service::ServiceError;
use cairn_storage::services::Services;

use crate::codec::reply::Reply;
use crate::spam::BayesPolicy;

/// How deep lists may nest inside lists.
const MAX_LIST_DEPTH: usize = 4;
/// The most recipients one RCPT may expand to.
const MAX_EXPANSION: usize = 10_000;

/// Where one RCPT goes.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Primary addresses of local accounts.
    pub accounts: Vec<String>,
    /// Addresses in other domains, for the outbound queue.
    pub remote: Vec<String>,
    /// The smallest class-of-service message limit among the accounts
    /// (0 = none beyond the listener's).
    pub max_message_size: u64,
}

fn temp_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary directory failure; try again later")
}

fn same_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn may_send_to(list: &List, sender: &str) -> bool {
    list.senders.is_empty() || list.senders.iter().any(|s| same_address(s, sender))
}

/// Where `address` goes, its domain, and its account's status and class
/// limit: one cross-shard call.
async fn route(services: &Services, address: &str) -> Result<Route, Reply> {
    services
        .directory
        .route(address.to_string())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "smtp: directory unavailable");
            temp_failure()
        })
}

/// `postmaster@` the first domain served.
async fn postmaster(services: &Services) -> Result<String, Reply> {
    match services.directory.domains(None, 1, None).await {
        Ok(domains) => domains
            .first()
            .map(|d| format!("postmaster@{}", d.name))
            .ok_or_else(|| Reply::new(550, "5.1.1", "No such user here")),
        Err(_) => Err(temp_failure()),
    }
}

/// The smaller of two size limits, 0 meaning none.
pub fn tighter(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Resolves `RCPT TO:<address>` for a message from `sender` of `size`
/// bytes (as declared with SIZE=; 0 when unknown); `may_relay` lets an
/// address in another domain through to the outbound queue (submission,
/// and MX clients in the relay networks).
pub async fn recipient(
    services: &Services,
    may_relay: bool,
    sender: &str,
    address: &str,
    size: u64,
) -> Result<Resolved, Reply> {
    // RFC 5321 §4.5.1: `<Postmaster>` without a domain must be accepted;
    // it is the postmaster of the first domain we serve.
    let address = if address.eq_ignore_ascii_case("postmaster") {
        postmaster(services).await?
    } else {
        address.to_string()
    };
    let route = route(services, &address).await?;
    if !route.served {
        return if may_relay {
            Ok(Resolved {
                remote: vec![address],
                ..Resolved::default()
            })
        } else {
            Err(Reply::new(550, "5.7.1", "Relaying denied"))
        };
    }
    match route.recipient {
        Recipient::Unknown => Err(Reply::new(550, "5.1.1", "No such user here")),
        Recipient::Account(primary) => match route.status {
            Some(Status::Active) => {
                room_for(services, &primary, size).await?;
                Ok(Resolved {
                    accounts: vec![primary],
                    remote: Vec::new(),
                    max_message_size: route.max_message_size,
                })
            }
            Some(_) => Err(Reply::new(
                550,
                "5.2.1",
                "Mailbox disabled, not accepting messages",
            )),
            None => Err(Reply::new(550, "5.1.1", "No such user here")),
        },
        Recipient::List(list) => {
            if !may_send_to(&list, sender) {
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    "Sender not allowed to post to this list",
                ));
            }
            expand(services, list).await
        }
    }
}

/// Refuses a recipient whose mailbox is full (`452 4.2.2`: it may have
/// room later) or would be over quota with the declared size (`552
/// 5.2.2`). The delivery checks again: this only spares the transfer.
async fn room_for(services: &Services, account: &str, size: u64) -> Result<(), Reply> {
    let (used_bytes, quota_bytes, used_messages, quota_messages) =
        services.mail.quota(account).await.map_err(|e| {
            tracing::warn!(%account, error = %e, "smtp: cannot read the quota");
            temp_failure()
        })?;
    let full = (quota_bytes > 0 && used_bytes >= quota_bytes)
        || (quota_messages > 0 && used_messages >= quota_messages);
    if full {
        return Err(Reply::new(452, "4.2.2", "Mailbox full: over quota"));
    }
    if quota_bytes > 0 && used_bytes.saturating_add(size) > quota_bytes {
        return Err(Reply::new(
            552,
            "5.2.2",
            "Message too big for the recipient's remaining quota",
        ));
    }
    Ok(())
}

/// The local accounts of a list, nested lists included; members whose
/// accounts are disabled are skipped.
async fn expand(services: &Services, list: List) -> Result<Resolved, Reply> {
    let mut out = Resolved::default();
    let mut seen_lists: HashSet<String> = HashSet::new();
    let mut seen_accounts: HashSet<String> = HashSet::new();
    seen_lists.insert(list.address.to_ascii_lowercase());
    let mut stack = vec![(list, 0usize)];
    while let Some((list, depth)) = stack.pop() {
        for member in list.members {
            if out.accounts.len() + out.remote.len() >= MAX_EXPANSION {
                tracing::warn!(list = %list.address, "smtp: list expansion truncated");
                return Ok(out);
            }
            let route = route(services, &member).await?;
            match route.recipient {
                Recipient::Account(primary) if route.status == Some(Status::Active) => {
                    if seen_accounts.insert(primary.clone()) {
                        out.max_message_size =
                            tighter(out.max_message_size, route.max_message_size);
                        out.accounts.push(primary);
                    }
                }
                Recipient::Account(primary) => {
                    tracing::warn!(list = %list.address, %primary, "smtp: list member's account is disabled; skipped");
                }
                Recipient::List(inner) if depth + 1 < MAX_LIST_DEPTH => {
                    if seen_lists.insert(inner.address.to_ascii_lowercase()) {
                        stack.push((inner, depth + 1));
                    }
                }
                Recipient::List(inner) => {
                    tracing::warn!(list = %list.address, nested = %inner.address, "smtp: lists nested too deep; skipped");
                }
                Recipient::Unknown if route.served => {
                    tracing::warn!(list = %list.address, %member, "smtp: list member does not exist; skipped");
                }
                Recipient::Unknown => out.remote.push(member),
            }
        }
    }
    Ok(out)
}

/// Checks that the authenticated `user` may use `from` as the envelope
/// sender: its own address, one of its aliases, or a list that lets it
/// post.
pub async fn check_sender(services: &Services, user: &str, from: &str) -> Result<(), Reply> {
    let refused = || {
        Reply::new(
            553,
            "5.7.1",
            format!("Sender address rejected: not owned by user {user}"),
        )
    };
    let Ok((from, _)) = names::address(from) else {
        return Err(refused());
    };
    if same_address(&from, user) {
        return Ok(());
    }
    let account = services
        .directory
        .account(user.to_string())
        .await
        .map_err(|_| temp_failure())?;
    let aliases = account.map(|a| a.aliases).unwrap_or_default();
    if aliases.iter().any(|a| same_address(a, &from)) {
        return Ok(());
    }
    match services.directory.resolve(from.clone()).await {
        Ok(Recipient::List(list))
            if !list.senders.is_empty()
                && list.senders.iter().any(|s| {
                    same_address(s, user) || aliases.iter().any(|a| same_address(a, s))
                }) =>
        {
            Ok(())
        }
        Ok(_) => Err(refused()),
        Err(_) => Err(temp_failure()),
    }
}

/// Stores `body` in `mailbox` (INBOX, or Junk for tagged spam) of every
/// account; durable when it returns `Ok`.
pub async fn deliver(
    services: &Services,
    accounts: &[String],
    mailbox: &str,
    body: Arc<[u8]>,
    now: i64,
) -> Result<(), Reply> {
    let mut outcome = Outcome::default();
    store_in(services, accounts, mailbox, body, now, &mut outcome).await;
    outcome.reply()
}

/// Stores mail from another server that the spam score accepted: each
/// account's own Bayes classifier (under `policy`) decides between its
/// INBOX and its Junk, where its copy starts with `X-Spam-Bayes: P` (the
/// probability, two decimals). An account whose classifier cannot be
/// asked gets it in INBOX. Durable when it returns `Ok`.
pub async fn deliver_classified(
    services: &Services,
    accounts: &[String],
    body: Arc<[u8]>,
    now: i64,
    policy: &BayesPolicy,
) -> Result<(), Reply> {
    let verdicts = services
        .bayes
        .classify(accounts, body.clone(), *policy)
        .await;
    // The accounts by where their copy goes: INBOX (`None`), or Junk with
    // this probability.
    let mut groups: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (account, verdict) in accounts.iter().zip(verdicts) {
        let junk = match verdict {
            Ok(Classification::Spam(p)) => {
                tracing::info!(%account, probability = p, "smtp: filed into Junk by the account's Bayes classifier");
                Some(format!("{p:.2}"))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(%account, error = %e, "smtp: the Bayes classifier did not answer; delivered to INBOX");
                None
            }
        };
        match groups.iter_mut().find(|(j, _)| *j == junk) {
            Some((_, group)) => group.push(account.clone()),
            None => groups.push((junk, vec![account.clone()])),
        }
    }
    let mut outcome = Outcome::default();
    for (junk, group) in groups {
        let (mailbox, copy) = match junk {
            Some(p) => {
                let mut tagged = format!("X-Spam-Bayes: {p}\r\n").into_bytes();
                tagged.extend_from_slice(&body);
                ("Junk", Arc::from(tagged))
            }
            None => ("INBOX", body.clone()),
        };
        store_in(services, &group, mailbox, copy, now, &mut outcome).await;
    }
    outcome.reply()
}

/// Stores `body` in `mailbox` of every account, noting how it went.
async fn store_in(
    services: &Services,
    accounts: &[String],
    mailbox: &str,
    body: Arc<[u8]>,
    now: i64,
    outcome: &mut Outcome,
) {
    let targets: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.clone(), mailbox.to_string()))
        .collect();
    let results = services.mail.deliver(&targets, body, now).await;
    outcome.add(accounts, &results);
}

/// How the deliveries of one message went, over all its recipients.
#[derive(Default)]
struct Outcome {
    over_quota: bool,
    failed: bool,
}

impl Outcome {
    fn add(&mut self, accounts: &[String], results: &[Result<Delivered, ServiceError>]) {
        if results.len() != accounts.len() {
            self.failed = true;
        }
        for (account, result) in accounts.iter().zip(results) {
            match result {
                Ok(_) => {}
                Err(ServiceError::Mail(MailError::OverQuota { .. })) => {
                    tracing::info!(%account, "smtp: mailbox over quota");
                    self.over_quota = true;
                }
                Err(e) => {
                    tracing::warn!(%account, error = %e, "smtp: delivery failed");
                    self.failed = true;
                }
            }
        }
    }

    /// The reply: `451` if any failed (the client retries; those that had
    /// it get it twice rather than anyone losing it), else `552` if any
    /// mailbox was full.
    fn reply(self) -> Result<(), Reply> {
        if self.failed {
            Err(Reply::new(
                451,
                "4.3.0",
                "Temporary failure storing the message; try again later",
            ))
        } else if self.over_quota {
            Err(Reply::new(552, "5.2.2", "Mailbox full: over quota"))
        } else {
            Ok(())
        }
    }
}

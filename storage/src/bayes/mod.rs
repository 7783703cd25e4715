//! The naive-Bayes spam classifier of each account, trained from what its
//! user files: a message moved or copied into Junk is spam, one taken out
//! of Junk (or filed from INBOX into another mailbox, see
//! `mailbox::learn`) is ham. Mail from other servers is then classified
//! at delivery against the counts of the recipient's own account.
//!
//! - [`tokens`]: the tokens of a message, sans-IO;
//! - [`combine`]: Robinson's token probabilities and Fisher's chi-square
//!   combining, sans-IO;
//! - [`service`]: classification from any shard, on the shard that owns
//!   the account.
//!
//! The counts live in the account's shard's tables, so they are durable
//! like everything else (one log record per commit, replayed at start,
//! kept in checkpoints): [`Tokens`] (account, token) → spam and ham counts,
//! [`Totals`] account → trained messages per class and distinct tokens,
//! and [`Lessons`] (account, message) → the class a message was trained
//! as, the message named by the first 8 bytes of its body's SHA-256
//! ([`message_id`]). A message trained again as the same class changes
//! nothing; trained as the other class, its tokens move over (it is
//! untrained, then trained), so no message ever counts twice.
//!
//! Limits: at most [`tokens::MAX_TOKENS`] tokens per message,
//! [`MAX_ACCOUNT_TOKENS`] distinct tokens and [`MAX_ACCOUNT_MESSAGES`]
//! trained messages per account (past them, new tokens and new messages
//! are not learned; messages already learned can still change class).
//! Learning on a shard runs one commit at a time, each for at most
//! [`LEARN_BATCH`] messages; classifying only reads.

pub mod combine;
pub mod service;
pub mod tokens;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use cairn_shards::sync::LocalMutex;
use serde::{Deserialize, Serialize};

use crate::metrics::BayesMetrics;
use crate::table::{Batch, Table, TableError, Tables};
pub use service::{BayesMesh, BayesService, Classify};
pub use tokens::{tokenize, Token};

/// The default number of trained spam, and of trained ham, messages an
/// account needs before its classifier says anything.
pub const DEFAULT_MIN_MESSAGES: u32 = 20;
/// The default probability from which a message is spam.
pub const DEFAULT_SPAM_PROBABILITY: f64 = 0.9;
/// The most distinct tokens counted per account.
pub const MAX_ACCOUNT_TOKENS: u32 = 100_000;
/// The most messages trained per account.
pub const MAX_ACCOUNT_MESSAGES: u32 = 1_000_000;
/// The most messages learned in one commit.
pub const LEARN_BATCH: usize = 8;
/// The most entries removed in one commit when an account is forgotten.
const FORGET_BATCH: usize = 4096;

/// How often a token was seen in the trained messages of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

/// What an account's classifier was trained with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trained {
    /// Messages trained as spam.
    pub spam: u32,
    /// Messages trained as ham.
    pub ham: u32,
    /// Distinct tokens counted.
    pub tokens: u32,
}

/// A class a message is trained as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// The token counts of each account, by (account, token).
pub struct Tokens;

impl Table for Tokens {
    const NAME: &'static str = "bayes.tokens";
    type Key = (String, u64);
    type Value = Counts;
}

/// What each account's classifier was trained with.
pub struct Totals;

impl Table for Totals {
    const NAME: &'static str = "bayes.totals";
    type Key = String;
    type Value = Trained;
}

/// The class each trained message was trained as, by (account,
/// [`message_id`]).
pub struct Lessons;

impl Table for Lessons {
    const NAME: &'static str = "bayes.lessons";
    type Key = (String, u64);
    type Value = Class;
}

/// When the classifier decides, and what it calls spam.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Trained spam messages, and trained ham messages, an account needs
    /// before its classifier says anything (at least 1).
    pub min_messages: u32,
    /// From this probability on, a message is spam.
    pub spam_probability: f64,
}

impl Policy {
    /// Whether a classifier trained with `trained` may decide.
    fn allows(&self, trained: &Trained) -> bool {
        let min = self.min_messages.max(1);
        trained.spam >= min && trained.ham >= min
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_messages: DEFAULT_MIN_MESSAGES,
            spam_probability: DEFAULT_SPAM_PROBABILITY,
        }
    }
}

/// What an account's classifier says of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Classification {
    /// Too few trained messages to say anything.
    Untrained,
    /// Below the spam probability: the probability.
    Ham(f64),
    /// At or above it: the probability.
    Spam(f64),
}

impl Classification {
    /// Its name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Classification::Untrained => "untrained",
            Classification::Ham(_) => "ham",
            Classification::Spam(_) => "spam",
        }
    }
}

/// One message to learn: its [`message_id`] and its [`tokenize`]d tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub message: u64,
    pub tokens: Vec<Token>,
}

/// What learning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learned {
    /// Messages learned for the first time.
    pub added: u32,
    /// Messages that changed class.
    pub flipped: u32,
    /// Messages learned as this class already.
    pub unchanged: u32,
    /// Messages not learned: the account is at [`MAX_ACCOUNT_MESSAGES`].
    pub skipped: u32,
}

/// The name of a message in [`Lessons`]: the first 8 bytes of its body's
/// SHA-256.
pub fn message_id(hash: &[u8; 32]) -> u64 {
    let (head, _) = hash.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    u64::from_be_bytes(*head)
}

impl Trained {
    fn messages(&self) -> u32 {
        self.spam.saturating_add(self.ham)
    }

    fn count(&mut self, class: Class, delta: i64) {
        let n = match class {
            Class::Spam => &mut self.spam,
            Class::Ham => &mut self.ham,
        };
        *n = shift(*n, delta);
    }
}

/// `n` moved by `delta`, within `u32`.
fn shift(n: u32, delta: i64) -> u32 {
    (i64::from(n) + delta).clamp(0, i64::from(u32::MAX)) as u32
}

/// The token changes of a commit: (spam, ham) deltas by token.
type Deltas = BTreeMap<Token, (i64, i64)>;

fn count_tokens(deltas: &mut Deltas, tokens: &[Token], class: Class, delta: i64) {
    for &token in tokens.iter().take(tokens::MAX_TOKENS) {
        let entry = deltas.entry(token).or_default();
        match class {
            Class::Spam => entry.0 += delta,
            Class::Ham => entry.1 += delta,
        }
    }
}

/// The classifiers of the accounts of one shard, over its tables. Cheap
/// to clone; every clone sees the same counts.
#[derive(Clone)]
pub struct BayesStore {
    inner: Rc<Inner>,
}

struct Inner {
    tables: Tables,
    /// Learning reads counts and writes them back: one commit at a time.
    writing: LocalMutex,
    metrics: RefCell<Option<BayesMetrics>>,
}

impl BayesStore {
    /// The classifiers held in `tables`.
    pub(crate) fn new(tables: Tables) -> Self {
        Self {
            inner: Rc::new(Inner {
                tables,
                writing: LocalMutex::new(),
                metrics: RefCell::new(None),
            }),
        }
    }

    /// Counts training and classification in `metrics`
    /// (`cairn_spam_bayes_trained_total`, `cairn_spam_bayes_classified_total`).
    pub fn observe(&self, metrics: Option<BayesMetrics>) {
        *self.inner.metrics.borrow_mut() = metrics;
    }

    /// What `account`'s classifier was trained with.
    pub fn trained(&self, account: &str) -> Result<Trained, TableError> {
        Ok(self
            .inner
            .tables
            .get::<Totals>(&account.to_string())?
            .unwrap_or_default())
    }

    /// The class message `message` of `account` was trained as.
    pub fn lesson(&self, account: &str, message: u64) -> Result<Option<Class>, TableError> {
        self.inner
            .tables
            .get::<Lessons>(&(account.to_string(), message))
    }

    /// Learns `samples` as `class` for `account`, durably (one commit per
    /// [`LEARN_BATCH`] samples): new messages are added, messages learned
    /// as the other class move over, the others are left alone.
    pub async fn learn(
        &self,
        account: &str,
        class: Class,
        samples: &[Sample],
    ) -> Result<Learned, TableError> {
        let mut learned = Learned::default();
        for chunk in samples.chunks(LEARN_BATCH) {
            let _writing = self.inner.writing.lock().await;
            let (batch, done) = self.plan(account, class, chunk)?;
            self.inner.tables.commit(batch).await?;
            learned.added += done.added;
            learned.flipped += done.flipped;
            learned.unchanged += done.unchanged;
            learned.skipped += done.skipped;
            if let Some(metrics) = &*self.inner.metrics.borrow() {
                metrics.trained(class, u64::from(done.added + done.flipped));
            }
        }
        Ok(learned)
    }

    /// The batch that learns `samples` as `class`, and what it does.
    fn plan(
        &self,
        account: &str,
        class: Class,
        samples: &[Sample],
    ) -> Result<(Batch, Learned), TableError> {
        let tables = &self.inner.tables;
        let mut trained = self.trained(account)?;
        let mut learned = Learned::default();
        let mut batch = Batch::new();
        let mut deltas = Deltas::new();
        // Messages decided in this batch (a message twice in `samples`).
        let mut decided: HashMap<u64, Class> = HashMap::new();
        for sample in samples {
            let key = (account.to_string(), sample.message);
            let before = match decided.get(&sample.message) {
                Some(class) => Some(*class),
                None => tables.get::<Lessons>(&key)?,
            };
            match before {
                Some(old) if old == class => {
                    learned.unchanged += 1;
                    continue;
                }
                Some(old) => {
                    trained.count(old, -1);
                    count_tokens(&mut deltas, &sample.tokens, old, -1);
                    learned.flipped += 1;
                }
                None if trained.messages() >= MAX_ACCOUNT_MESSAGES => {
                    learned.skipped += 1;
                    continue;
                }
                None => learned.added += 1,
            }
            trained.count(class, 1);
            count_tokens(&mut deltas, &sample.tokens, class, 1);
            decided.insert(sample.message, class);
            batch.put::<Lessons>(&key, &class);
        }
        for (token, (spam, ham)) in deltas {
            if spam == 0 && ham == 0 {
                continue;
            }
            let key = (account.to_string(), token);
            let old = tables.get::<Tokens>(&key)?;
            let base = old.unwrap_or_default();
            let counts = Counts {
                spam: shift(base.spam, spam),
                ham: shift(base.ham, ham),
            };
            let empty = counts == Counts::default();
            match (old.is_some(), empty) {
                (true, true) => {
                    batch.delete::<Tokens>(&key);
                    trained.tokens = trained.tokens.saturating_sub(1);
                }
                (true, false) => {
                    batch.put::<Tokens>(&key, &counts);
                }
                (false, false) if trained.tokens < MAX_ACCOUNT_TOKENS => {
                    batch.put::<Tokens>(&key, &counts);
                    trained.tokens += 1;
                }
                // Nothing to keep, or no room for a new token.
                (false, _) => {}
            }
        }
        batch.put::<Totals>(&account.to_string(), &trained);
        Ok((batch, learned))
    }

    /// Whether `account`'s classifier is trained enough to classify under
    /// `policy` (`policy.min_messages` of each class, at least one).
    pub fn ready(&self, account: &str, policy: &Policy) -> bool {
        match self.trained(account) {
            Ok(trained) => policy.allows(&trained),
            Err(error) => {
                tracing::error!(%account, %error, "bayes: the totals do not read back");
                false
            }
        }
    }

    /// What `account`'s classifier says of a message with `tokens` under
    /// `policy`. Only reads; a count that does not read back is logged and
    /// the message left unclassified.
    pub fn classify(&self, account: &str, tokens: &[Token], policy: &Policy) -> Classification {
        self.score(account, tokens, policy).unwrap_or_else(|error| {
            tracing::error!(%account, %error, "bayes: the counts do not read back");
            Classification::Untrained
        })
    }

    /// Counts a classification of a delivered message in the metrics.
    fn count(&self, verdict: &Classification) {
        if let Some(metrics) = &*self.inner.metrics.borrow() {
            metrics.classified(verdict);
        }
    }

    fn score(
        &self,
        account: &str,
        tokens: &[Token],
        policy: &Policy,
    ) -> Result<Classification, TableError> {
        let trained = self.trained(account)?;
        if !policy.allows(&trained) {
            return Ok(Classification::Untrained);
        }
        let mut key = (account.to_string(), 0);
        let mut probabilities = Vec::with_capacity(tokens.len().min(tokens::MAX_TOKENS));
        for &token in tokens.iter().take(tokens::MAX_TOKENS) {
            key.1 = token;
            if let Some(c) = self.inner.tables.get::<Tokens>(&key)? {
                probabilities.push(combine::token_probability(
                    c.spam,
                    c.ham,
                    trained.spam,
                    trained.ham,
                ));
            }
        }
        let p = combine::combine(probabilities);
        Ok(if p >= policy.spam_probability {
            Classification::Spam(p)
        } else {
            Classification::Ham(p)
        })
    }

    /// Removes everything `account`'s classifier learned (the account is
    /// gone), durably, in commits of a bounded size.
    pub async fn forget(&self, account: &str) -> Result<(), TableError> {
        let _writing = self.inner.writing.lock().await;
        let tables = &self.inner.tables;
        let account = account.to_string();
        loop {
            let tokens = tables.scan_prefix::<Tokens, String>(&account, None, FORGET_BATCH)?;
            let lessons = tables.scan_prefix::<Lessons, String>(&account, None, FORGET_BATCH)?;
            if tokens.is_empty() && lessons.is_empty() {
                break;
            }
            let mut batch = Batch::new();
            for (key, _) in &tokens {
                batch.delete::<Tokens>(key);
            }
            for (key, _) in &lessons {
                batch.delete::<Lessons>(key);
            }
            tables.commit(batch).await?;
        }
        if tables.contains::<Totals>(&account) {
            let mut batch = Batch::new();
            batch.delete::<Totals>(&account);
            tables.commit(batch).await?;
        }
        Ok(())
    }
}

/// Everything one account's classifier learned, to carry it to another
/// shard ([`BayesStore::export`], [`BayesStore::import`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BayesExport {
    pub totals: Option<Trained>,
    pub tokens: Vec<(u64, Counts)>,
    pub lessons: Vec<(u64, Class)>,
}

impl BayesStore {
    /// A copy of what `account`'s classifier learned.
    pub fn export(&self, account: &str) -> Result<BayesExport, TableError> {
        let tables = &self.inner.tables;
        let account = account.to_string();
        let mut out = BayesExport {
            totals: tables.get::<Totals>(&account)?,
            ..BayesExport::default()
        };
        let mut after = None;
        loop {
            let page =
                tables.scan_prefix::<Tokens, String>(&account, after.as_ref(), FORGET_BATCH)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            out.tokens
                .extend(page.into_iter().map(|((_, t), c)| (t, c)));
        }
        let mut after = None;
        loop {
            let page =
                tables.scan_prefix::<Lessons, String>(&account, after.as_ref(), FORGET_BATCH)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            out.lessons
                .extend(page.into_iter().map(|((_, m), c)| (m, c)));
        }
        Ok(out)
    }

    /// Writes `learned` as `account`'s classifier, durably, in commits of
    /// a bounded size (the account has learned nothing here: it is moving
    /// in).
    pub async fn import(&self, account: &str, learned: &BayesExport) -> Result<(), TableError> {
        let _writing = self.inner.writing.lock().await;
        let tables = &self.inner.tables;
        let account = account.to_string();
        for chunk in learned.tokens.chunks(FORGET_BATCH) {
            let mut batch = Batch::new();
            for (token, counts) in chunk {
                batch.put::<Tokens>(&(account.clone(), *token), counts);
            }
            tables.commit(batch).await?;
        }
        for chunk in learned.lessons.chunks(FORGET_BATCH) {
            let mut batch = Batch::new();
            for (message, class) in chunk {
                batch.put::<Lessons>(&(account.clone(), *message), class);
            }
            tables.commit(batch).await?;
        }
        if let Some(totals) = &learned.totals {
            let mut batch = Batch::new();
            batch.put::<Totals>(&account, totals);
            tables.commit(batch).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The Bayes classifier end to end, with real clients against the real
//! appliance: an IMAP client (async-imap) APPENDs a realistic corpus,
//! MOVEs the spam into Junk and files the ham into Archive, rescues hammy
//! messages out of Junk and moves one spam message out and back in (a
//! flip, not a double count); then lettre delivers new messages to the MX
//! listener: the spammy one lands in the recipient's Junk with
//! `X-Spam-Bayes:`, the hammy one in INBOX without it, and `/metrics`
//! counts exactly what was learned and judged.

use std::time::Duration;

use async_imap::Session;
use cairn_config::Service;
use cairn_tests::{async_imap_login, AdminApi, Appliance, TestConfig};
use futures_lite::StreamExt;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use tokio::net::TcpStream;

const USER: &str = "carol@example.org";
const PASSWORD: &str = "a long enough password";
/// Messages of each class trained (the default minimum is 20).
const TRAINING: usize = 25;
/// Hammy messages appended to Junk and rescued out of it.
const RESCUED: usize = 3;

/// Words of pharmacy and lottery spam (none of them one of the score's
/// spam phrases: the score alone accepts these messages).
const SPAM_WORDS: &[&str] = &[
    "pharmacy",
    "pills",
    "discount",
    "tablets",
    "prescription",
    "refill",
    "generic",
    "dosage",
    "lottery",
    "jackpot",
    "sweepstakes",
    "payout",
    "wholesale",
    "overnight",
    "bargain",
    "exclusive",
    "reward",
    "savings",
    "cheapest",
    "shipping",
    "bonus",
    "order",
];
/// Words of work mail.
const HAM_WORDS: &[&str] = &[
    "meeting",
    "project",
    "agenda",
    "quarterly",
    "review",
    "budget",
    "deadline",
    "roadmap",
    "milestone",
    "design",
    "document",
    "schedule",
    "minutes",
    "release",
    "sprint",
    "planning",
    "customer",
    "feedback",
    "deployment",
    "architecture",
    "estimate",
    "report",
];
/// Words of any mail.
const COMMON: &[&str] = &[
    "the", "and", "for", "with", "this", "please", "thanks", "today", "week", "about", "will",
    "have", "you", "our",
];
const SPAM_SENDERS: &[(&str, &str)] = &[
    ("Pharma Outlet", "deals@pharma-outlet.example"),
    ("Lucky Draw Office", "office@lucky-draw.example"),
    ("Wholesale Meds", "sales@wholesale-meds.example"),
];
const HAM_SENDERS: &[(&str, &str)] = &[
    ("Dana Whitfield", "dana@partner.example"),
    ("Omar Haddad", "omar@partner.example"),
    ("Lena Fischer", "lena@supplier.example"),
];

/// One generated message.
struct Mail {
    name: &'static str,
    from: &'static str,
    subject: String,
    body: String,
}

/// A deterministic message of `i` from `words` (two in three) and
/// [`COMMON`] words.
fn generate(words: &[&str], senders: &[(&'static str, &'static str)], i: usize) -> Mail {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let subject: Vec<&str> = (0..4).map(|_| words[next(words.len())]).collect();
    let mut body = String::new();
    for n in 0..40 + next(20) {
        let word = if n % 3 == 2 {
            COMMON[next(COMMON.len())]
        } else {
            words[next(words.len())]
        };
        body.push_str(word);
        body.push_str(if n % 10 == 9 { ".\r\n" } else { " " });
    }
    let (name, from) = senders[i % senders.len()];
    Mail {
        name,
        from,
        subject: format!("{} {i}", subject.join(" ")),
        body,
    }
}

fn spam(i: usize) -> Mail {
    generate(SPAM_WORDS, SPAM_SENDERS, i)
}

fn ham(i: usize) -> Mail {
    generate(HAM_WORDS, HAM_SENDERS, 1000 + i)
}

impl Mail {
    /// The message as an IMAP client APPENDs it.
    fn raw(&self, i: usize) -> String {
        format!(
            "From: {} <{}>\r\nTo: Carol <{USER}>\r\nSubject: {}\r\nDate: Mon, 3 Mar 2025 10:{:02}:00 +0000\r\nMessage-ID: <m{i}@sender.example>\r\n\r\n{}\r\n",
            self.name,
            self.from,
            self.subject,
            i % 60,
            self.body
        )
    }
}

/// The UID of the message with `subject` in the selected mailbox.
async fn uid_of(s: &mut Session<TcpStream>, subject: &str) -> u32 {
    let found = s
        .uid_search(format!("SUBJECT \"{subject}\""))
        .await
        .expect("search");
    assert_eq!(found.len(), 1, "{subject}: {found:?}");
    found.into_iter().next().unwrap_or_default()
}

/// The whole messages of the selected mailbox.
async fn messages(s: &mut Session<TcpStream>) -> Vec<String> {
    let fetched: Vec<_> = s
        .uid_fetch("1:*", "BODY.PEEK[]")
        .await
        .expect("fetch")
        .collect()
        .await;
    fetched
        .into_iter()
        .map(|f| String::from_utf8_lossy(f.expect("fetch").body().unwrap_or_default()).into_owned())
        .collect()
}

/// Teaches the classifier through IMAP the way a user does.
async fn train(port: u16) {
    let mut s = async_imap_login(port, USER, PASSWORD).await;
    for i in 0..TRAINING {
        s.append("INBOX", None, None, spam(i).raw(i))
            .await
            .expect("append");
        s.append("INBOX", None, None, ham(i).raw(100 + i))
            .await
            .expect("append");
    }
    for i in 0..RESCUED {
        let rescued = ham(TRAINING + i);
        s.append("Junk", None, None, rescued.raw(200 + i))
            .await
            .expect("append");
    }
    s.select("INBOX").await.expect("select");
    // Spam appended at odd UIDs, ham at even ones.
    let spam_uids: Vec<String> = (0..TRAINING).map(|i| (2 * i + 1).to_string()).collect();
    let ham_uids: Vec<String> = (0..TRAINING).map(|i| (2 * i + 2).to_string()).collect();
    s.uid_mv(spam_uids.join(","), "Junk").await.expect("move");
    s.uid_mv(ham_uids.join(","), "Archive").await.expect("move");
    s.select("Junk").await.expect("select");
    for i in 0..RESCUED {
        let uid = uid_of(&mut s, &ham(TRAINING + i).subject).await;
        s.uid_mv(uid.to_string(), "INBOX").await.expect("move");
    }
    // One spam message out of Junk and back: it flips twice.
    let flipped = spam(0).subject;
    let uid = uid_of(&mut s, &flipped).await;
    s.uid_mv(uid.to_string(), "INBOX").await.expect("move");
    s.select("INBOX").await.expect("select");
    let uid = uid_of(&mut s, &flipped).await;
    s.uid_mv(uid.to_string(), "Junk").await.expect("move");
    s.logout().await.expect("logout");
}

/// Delivers `mail` to the MX listener.
fn deliver(port: u16, mail: &Mail, i: usize) {
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .hello_name(ClientId::Domain("mail.sender.example".into()))
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let message = Message::builder()
        .from(
            format!("{} <{}>", mail.name, mail.from)
                .parse()
                .expect("from"),
        )
        .to(format!("Carol <{USER}>").parse().expect("to"))
        .subject(mail.subject.clone())
        .message_id(Some(format!("<mx{i}@sender.example>")))
        .body(mail.body.clone())
        .expect("message");
    mailer.send(&message).expect("delivered");
}

/// The value of the metric line `series` in `text`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn moves_into_and_out_of_junk_teach_each_recipients_classifier() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = TestConfig::new(
        &data,
        "[mail_access]\nallow_plaintext_auth = true\n\n[antispam]\nverify_senders = false\n",
    );
    let path = tmp.path().join("appliance.toml");
    std::fs::write(&path, &config.text).expect("write config");
    let (imap, smtp) = (config.port(Service::Imap), config.port(Service::Smtp));
    let appliance = Appliance::start(&path, &config);
    AdminApi::new(&appliance, &data).provision("example.org", &[USER.to_string()], PASSWORD);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    rt.block_on(train(imap));
    let (offer, agenda) = (spam(500), ham(500));
    deliver(smtp, &offer, 1);
    deliver(smtp, &agenda, 2);

    rt.block_on(async {
        let mut s = async_imap_login(imap, USER, PASSWORD).await;
        s.select("Junk").await.expect("select");
        let junk = messages(&mut s).await;
        let tagged: Vec<&String> = junk
            .iter()
            .filter(|m| m.contains("X-Spam-Bayes:"))
            .collect();
        assert_eq!(tagged.len(), 1, "{junk:#?}");
        let first = tagged[0].lines().next().unwrap_or_default();
        let p: f64 = first
            .strip_prefix("X-Spam-Bayes: ")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{first}"));
        assert!(p >= 0.9, "{first}");
        assert!(tagged[0].contains(&offer.subject), "{}", tagged[0]);
        // The score alone accepted it.
        assert!(tagged[0].contains("X-Spam-Status: No"), "{}", tagged[0]);

        s.select("INBOX").await.expect("select");
        let inbox = messages(&mut s).await;
        let kept: Vec<&String> = inbox
            .iter()
            .filter(|m| m.contains(&agenda.subject))
            .collect();
        assert_eq!(kept.len(), 1, "{inbox:#?}");
        assert!(!kept[0].contains("X-Spam-Bayes"), "{}", kept[0]);
        assert!(!inbox.iter().any(|m| m.contains(&offer.subject)));
        s.logout().await.expect("logout");
    });

    let text = reqwest::blocking::get(format!("http://{}/metrics", appliance.http))
        .and_then(|r| r.text())
        .expect("metrics");
    let series = |s: &str| metric(&text, s);
    // Every spam once plus one flip back; every ham (filed or rescued)
    // once plus the flip out.
    assert_eq!(
        series("cairn_spam_bayes_trained_total{class=\"spam\"}"),
        Some((TRAINING + 1) as f64),
        "{text}"
    );
    assert_eq!(
        series("cairn_spam_bayes_trained_total{class=\"ham\"}"),
        Some((TRAINING + RESCUED + 1) as f64)
    );
    assert_eq!(
        series("cairn_spam_bayes_classified_total{result=\"spam\"}"),
        Some(1.0)
    );
    assert_eq!(
        series("cairn_spam_bayes_classified_total{result=\"ham\"}"),
        Some(1.0)
    );
    assert_eq!(
        series("cairn_spam_bayes_classified_total{result=\"untrained\"}"),
        Some(0.0)
    );
}

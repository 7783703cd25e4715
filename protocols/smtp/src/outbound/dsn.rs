//! Delivery status notifications (RFC 3464), sans-IO: the
//! `multipart/report` message Cairn sends back to a sender when a queued
//! message failed for some recipients, was delayed, or (when the sender
//! asked with `NOTIFY=SUCCESS`) was delivered. The report carries a short
//! human-readable part, the machine-readable `message/delivery-status`
//! part, and the original message (`RET=FULL`) or its header
//! (`RET=HDRS`, the default).

use std::fmt::Write as _;

use crate::headers::rfc5322_date;

/// What happened to one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
        }
    }
}

/// One recipient's line in the report.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub address: &'a str,
    /// The original recipient the client gave with `ORCPT=` (already in
    /// `type;address` form), if any.
    pub orcpt: Option<&'a str>,
    pub action: Action,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// The host that answered, if one did.
    pub remote_mta: Option<&'a str>,
    /// The remote server's reply (`smtp; 550 5.1.1 …`), or our own reason.
    pub diagnostic: &'a str,
    /// Unix seconds of the last attempt.
    pub last_attempt: i64,
}

/// A report about one queued message.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Our host name (`Reporting-MTA`, the `From:` domain).
    pub reporting_mta: &'a str,
    /// Who the report goes to: the original envelope sender.
    pub to: &'a str,
    /// The sender's `ENVID=`, if any.
    pub envid: Option<&'a str>,
    /// When the message reached the queue, and now (unix seconds).
    pub arrival: i64,
    pub now: i64,
    /// For a delay notice: until when delivery will be retried.
    pub retry_until: Option<i64>,
    pub recipients: Vec<Recipient<'a>>,
    /// The original message, whole.
    pub original: &'a [u8],
    /// Return the whole message (`RET=FULL`) rather than its header.
    pub full: bool,
    /// A unique token for the MIME boundary and Message-ID.
    pub token: &'a str,
}

/// The enhanced status code in a server reply's text (`550 5.1.1 …`),
/// else the class's generic code (`5.0.0` / `4.0.0`).
pub fn status_of(reply: &str, permanent: bool) -> String {
    let code = reply
        .split_whitespace()
        .nth(1)
        .filter(|c| is_enhanced(c))
        .map(str::to_string);
    code.unwrap_or_else(|| if permanent { "5.0.0" } else { "4.0.0" }.to_string())
}

fn is_enhanced(code: &str) -> bool {
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Keeps a header value on one line and printable.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The header of a message: everything before the first empty line.
fn header_of(message: &[u8]) -> &[u8] {
    memchr::memmem::find(message, b"\r\n\r\n")
        .map(|at| &message[..at + 2])
        .unwrap_or(message)
}

fn subject(report: &Report<'_>) -> &'static str {
    let failed = report.recipients.iter().any(|r| r.action == Action::Failed);
    let delayed = report
        .recipients
        .iter()
        .any(|r| r.action == Action::Delayed);
    match (failed, delayed) {
        (true, _) => "Undelivered Mail Returned to Sender",
        (false, true) => "Delayed Mail (still being retried)",
        (false, false) => "Successful Mail Delivery Report",
    }
}

fn human_part(report: &Report<'_>, out: &mut String) {
    let _ = write!(
        out,
        "This is the mail system at host {}.\r\n\r\n",
        clean(report.reporting_mta)
    );
    for action in [Action::Failed, Action::Delayed, Action::Delivered] {
        let rcpts: Vec<_> = report
            .recipients
            .iter()
            .filter(|r| r.action == action)
            .collect();
        if rcpts.is_empty() {
            continue;
        }
        out.push_str(match action {
            Action::Failed => {
                "Your message could not be delivered to the recipients below. \
                 This is a permanent error.\r\n\r\n"
            }
            Action::Delayed => {
                "Your message could not be delivered yet to the recipients below. \
                 Delivery will be retried; you need not send it again.\r\n\r\n"
            }
            Action::Delivered => "Your message was delivered to the recipients below.\r\n\r\n",
        });
        for r in rcpts {
            let _ = write!(out, "<{}>: {}\r\n", clean(r.address), clean(r.diagnostic));
        }
        out.push_str("\r\n");
    }
    if let Some(until) = report.retry_until {
        let _ = write!(out, "Retries end: {}\r\n", rfc5322_date(until));
    }
}

fn status_part(report: &Report<'_>, out: &mut String) {
    let _ = write!(
        out,
        "Reporting-MTA: dns; {}\r\n",
        clean(report.reporting_mta)
    );
    if let Some(envid) = report.envid {
        let _ = write!(out, "Original-Envelope-Id: {}\r\n", clean(envid));
    }
    let _ = write!(out, "Arrival-Date: {}\r\n", rfc5322_date(report.arrival));
    for r in &report.recipients {
        out.push_str("\r\n");
        if let Some(orcpt) = r.orcpt {
            let _ = write!(out, "Original-Recipient: {}\r\n", clean(orcpt));
        }
        let _ = write!(out, "Final-Recipient: rfc822; {}\r\n", clean(r.address));
        let _ = write!(out, "Action: {}\r\n", r.action.name());
        let _ = write!(out, "Status: {}\r\n", clean(&r.status));
        if let Some(mta) = r.remote_mta {
            let _ = write!(out, "Remote-MTA: dns; {}\r\n", clean(mta));
        }
        let _ = write!(out, "Diagnostic-Code: {}\r\n", clean(r.diagnostic));
        let _ = write!(
            out,
            "Last-Attempt-Date: {}\r\n",
            rfc5322_date(r.last_attempt)
        );
        if let (Action::Delayed, Some(until)) = (r.action, report.retry_until) {
            let _ = write!(out, "Will-Retry-Until: {}\r\n", rfc5322_date(until));
        }
    }
}

/// The whole report message, CRLF line ends, ready to deliver or queue
/// with the null reverse path (`MAIL FROM:<>`).
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let host = clean(report.reporting_mta);
    let boundary = format!("{}/{}", clean(report.token), host);
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{}>\r\n\
         Subject: {}\r\n\
         Date: {}\r\n\
         Message-ID: <{}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n",
        clean(report.to),
        subject(report),
        rfc5322_date(report.now),
        clean(report.token),
    );
    human_part(report, &mut out);
    let _ = write!(
        out,
        "\r\n--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n"
    );
    status_part(report, &mut out);
    let (kind, original) = if report.full {
        ("message/rfc822", report.original)
    } else {
        ("text/rfc822-headers", header_of(report.original))
    };
    let _ = write!(
        out,
        "\r\n--{boundary}\r\n\
         Content-Description: Undelivered message\r\n\
         Content-Type: {kind}\r\n\
         \r\n"
    );
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(original);
    if !original.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    const ORIGINAL: &[u8] =
        b"From: a@example.org\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nbody line\r\n";

    fn report(action: Action, full: bool) -> Vec<u8> {
        build(&Report {
            reporting_mta: "mx.example.org",
            to: "a@example.org",
            envid: Some("ENV1"),
            arrival: 1_700_000_000,
            now: 1_700_000_600,
            retry_until: (action == Action::Delayed).then_some(1_700_400_000),
            recipients: vec![Recipient {
                address: "b@remote.test",
                orcpt: Some("rfc822;b@remote.test"),
                action,
                status: "5.1.1".into(),
                remote_mta: Some("mx.remote.test"),
                diagnostic: "smtp; 550 5.1.1 No such user",
                last_attempt: 1_700_000_500,
            }],
            original: ORIGINAL,
            full,
            token: "abc123",
        })
    }

    #[test]
    fn a_failure_report_parses_as_a_multipart_report() {
        let bytes = report(Action::Failed, false);
        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("parses");
        assert_eq!(
            parsed.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        let ct = parsed.content_type().expect("content type");
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8_lossy(&bytes);
        for want in [
            "Reporting-MTA: dns; mx.example.org",
            "Original-Envelope-Id: ENV1",
            "Original-Recipient: rfc822;b@remote.test",
            "Final-Recipient: rfc822; b@remote.test",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.remote.test",
            "Diagnostic-Code: smtp; 550 5.1.1 No such user",
            "Content-Type: text/rfc822-headers",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("body line"), "RET=HDRS returns no body");
        assert_eq!(parsed.parts.len(), 4, "the report and its three parts");
    }

    #[test]
    fn full_returns_the_body_and_delay_says_until_when() {
        let text = String::from_utf8(report(Action::Delayed, true)).expect("utf-8");
        assert!(text.contains("Content-Type: message/rfc822"));
        assert!(text.contains("body line"));
        assert!(text.contains("Action: delayed"));
        assert!(text.contains("Will-Retry-Until: "));
        assert!(text.contains("Subject: Delayed Mail"));
    }

    #[test]
    fn status_codes_come_from_the_reply_or_the_class() {
        assert_eq!(status_of("550 5.1.1 No such user", true), "5.1.1");
        assert_eq!(status_of("451 Try later", false), "4.0.0");
        assert_eq!(status_of("554 x.y.z nope", true), "5.0.0");
        assert_eq!(status_of("", true), "5.0.0");
    }

    #[test]
    fn header_values_cannot_break_lines() {
        let bytes = build(&Report {
            reporting_mta: "mx\r\nBcc: evil",
            to: "a@example.org\r\nX: y",
            envid: None,
            arrival: 0,
            now: 0,
            retry_until: None,
            recipients: vec![],
            original: b"",
            full: false,
            token: "t",
        });
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("\r\nBcc: evil"));
        assert!(!text.contains("\r\nX: y"));
    }
}

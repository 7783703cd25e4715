//! The trace headers Cairn prepends to every message it accepts: a
//! `Received:` line (RFC 5321 §4.4, protocol names from RFC 3848) and an
//! `Authentication-Results:` line for submissions (RFC 8601), and the RFC 5322 date they
//! carry, formatted here rather than with a date crate.

use std::borrow::Cow;
use std::net::IpAddr;

/// What the `Received:` header says about one transaction.
pub struct Trace<'a> {
    /// The name the client gave in EHLO/HELO.
    pub helo: &'a str,
    /// Whether it was EHLO (ESMTP) rather than HELO (SMTP).
    pub esmtp: bool,
    pub tls: bool,
    pub authenticated: bool,
    pub peer: IpAddr,
    /// Our host name.
    pub by: &'a str,
    pub id: &'a str,
    /// The recipient, when there was only one.
    pub for_rcpt: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
}

/// The `Received:` header, folded, CRLF-terminated.
pub fn received(t: &Trace<'_>) -> String {
    let proto = match (t.esmtp, t.tls, t.authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    let mut h = format!(
        "Received: from {} ([{}])\r\n\tby {} (Cairn) with {proto} id {}",
        clean(t.helo),
        t.peer,
        clean(t.by),
        clean(t.id)
    );
    if let Some(rcpt) = t.for_rcpt {
        h += &format!("\r\n\tfor <{}>", clean(rcpt));
    }
    h += &format!(";\r\n\t{}\r\n", rfc5322_date(t.now));
    h
}

/// The `Authentication-Results:` header of a submission: `auth=pass` by
/// `user` (mail from other servers gets SPF/DKIM/DMARC results instead,
/// from `authenticity`).
pub fn authentication_results(by: &str, user: &str, mail_from: &str) -> String {
    format!(
        "Authentication-Results: {}; auth=pass smtp.mailfrom={} smtp.auth={}\r\n",
        clean(by),
        clean(mail_from),
        clean(user)
    )
}

/// `message` without the header fields whose name `drop` picks (each
/// with its folded continuation lines); the body and every other field
/// are kept byte for byte. Borrowed when nothing is dropped.
pub fn without_fields(message: &[u8], drop: impl Fn(&str) -> bool) -> Cow<'_, [u8]> {
    let mut kept: Option<Vec<u8>> = None;
    let mut at = 0;
    let mut dropping = false;
    while at < message.len() {
        let end = memchr::memchr(b'\n', &message[at..]).map_or(message.len(), |i| at + i + 1);
        let line = &message[at..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|colon| String::from_utf8_lossy(&line[..colon]));
            dropping = name.is_some_and(|n| drop(n.trim()));
            if dropping && kept.is_none() {
                kept = Some(message[..at].to_vec());
            }
        }
        if let (Some(out), false) = (kept.as_mut(), dropping) {
            out.extend_from_slice(line);
        }
        at = end;
    }
    match kept {
        Some(mut out) => {
            out.extend_from_slice(&message[at..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(message),
    }
}

/// Keeps a name safe inside a header: printable, no spaces or
/// comment/angle delimiters, at most 255 characters.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !matches!(c, ' ' | '(' | ')' | '<' | '>' | ';' | '\\'))
        .take(255)
        .collect()
}

/// `Tue, 1 Jul 2003 10:52:37 +0000` for Unix seconds `unix` (UTC).
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS
        .get(days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let month = MONTHS
        .get((month as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day} {month} {year:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); H. Hinnant's
/// algorithm for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_dropped_with_their_continuations_and_nothing_else() {
        let m = b"X-Spam-Flag: YES\r\nSubject: hi\r\nx-spam-status: Yes,\r\n\tscore=9\r\nFrom: a@b\r\n\r\nX-Spam-Flag: in the body\r\n";
        let out = without_fields(m, |n| {
            n.eq_ignore_ascii_case("x-spam-flag") || n.eq_ignore_ascii_case("x-spam-status")
        });
        assert_eq!(
            &out[..],
            &b"Subject: hi\r\nFrom: a@b\r\n\r\nX-Spam-Flag: in the body\r\n"[..]
        );
        assert!(matches!(without_fields(m, |_| false), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        #[test]
        fn dropping_never_touches_the_body(
            head in proptest::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,20}", 0..6),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut m: Vec<u8> = head.iter().flat_map(|h| format!("{h}\r\n").into_bytes()).collect();
            m.extend_from_slice(b"\r\n");
            m.extend_from_slice(&body);
            let out = without_fields(&m, |n| n.len() % 2 == 0);
            proptest::prop_assert!(out.len() <= m.len());
            proptest::prop_assert!(out.ends_with(&body));
            let all = without_fields(&m, |_| true);
            let mut rest = b"\r\n".to_vec();
            rest.extend_from_slice(&body);
            proptest::prop_assert_eq!(&all[..], &rest[..]);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_057_056_757),
            "Tue, 1 Jul 2003 10:52:37 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_735_689_599),
            "Tue, 31 Dec 2024 23:59:59 +0000"
        );
    }

    #[test]
    fn received_header() {
        let h = received(&Trace {
            helo: "client.example (evil)\r\nX: y",
            esmtp: true,
            tls: true,
            authenticated: true,
            peer: "192.0.2.1".parse().expect("ip"),
            by: "mx.example.org",
            id: "ABC",
            for_rcpt: Some("bob@example.org"),
            now: 0,
        });
        assert_eq!(
            h,
            "Received: from client.exampleevilX:y ([192.0.2.1])\r\n\tby mx.example.org (Cairn) with ESMTPSA id ABC\r\n\tfor <bob@example.org>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        assert_eq!(
            authentication_results("mx", "a b@x", "a@x"),
            "Authentication-Results: mx; auth=pass smtp.mailfrom=a@x smtp.auth=ab@x\r\n"
        );
    }
}

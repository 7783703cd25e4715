//! The commands of one transaction, sans-IO: `MAIL FROM` and `RCPT TO`
//! lines with the parameters the server's extensions allow (SIZE, BODY,
//! SMTPUTF8, the DSN ones), and what Cairn refuses before sending.

use super::capabilities::Capabilities;
use super::connection::Envelope;
use super::reply::ServerReply;

/// The longest address sent (RFC 5321 §4.5.3.1.3 allows 256 octets per
/// path; this is lenient).
const MAX_ADDRESS: usize = 998;

/// What to send for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `MAIL FROM:<…> …` with its CRLF.
    pub mail: String,
    /// Per recipient, in the envelope's order: its `RCPT TO:<…> …` line,
    /// or why it is not sent.
    pub rcpts: Vec<Result<String, ServerReply>>,
}

/// Plans the transaction of `envelope` and `body` on a server that offers
/// `caps`, or says why the message cannot go to it at all.
pub(crate) fn plan(
    envelope: &Envelope,
    body: &[u8],
    caps: &Capabilities,
) -> Result<Plan, ServerReply> {
    if !address_ok(&envelope.from) {
        return Err(ServerReply::local(
            553,
            (5, 1, 7),
            "Bad sender address syntax",
        ));
    }
    let size = body.len() as u64;
    if let Some(max) = caps.size.filter(|&max| max > 0 && size > max) {
        return Err(ServerReply::local(
            552,
            (5, 3, 4),
            format!("Message size {size} exceeds the server's limit of {max} bytes"),
        ));
    }
    let rcpts: Vec<Result<&str, ServerReply>> = envelope
        .recipients
        .iter()
        .map(|to| {
            if to.is_empty() || !address_ok(to) {
                Err(ServerReply::local(
                    553,
                    (5, 1, 3),
                    "Bad recipient address syntax",
                ))
            } else {
                Ok(to.as_str())
            }
        })
        .collect();
    let utf8 = !envelope.from.is_ascii() || rcpts.iter().flatten().any(|to| !to.is_ascii());
    if utf8 && !caps.smtputf8 {
        return Err(ServerReply::local(
            550,
            (5, 6, 7),
            "Non-ASCII address, and the server does not offer SMTPUTF8",
        ));
    }
    let notify = match (&envelope.notify, caps.dsn) {
        (Some(notify), true) => Some(notify_param(notify).ok_or_else(|| {
            ServerReply::local(501, (5, 5, 4), format!("Invalid NOTIFY value {notify:?}"))
        })?),
        _ => None,
    };

    let mut mail = format!("MAIL FROM:<{}>", envelope.from);
    if caps.size.is_some() {
        mail += &format!(" SIZE={size}");
    }
    if caps.eight_bit_mime && !body.is_ascii() {
        mail += " BODY=8BITMIME";
    }
    if utf8 {
        mail += " SMTPUTF8";
    }
    if caps.dsn {
        match envelope.ret_full {
            Some(true) => mail += " RET=FULL",
            Some(false) => mail += " RET=HDRS",
            None => {}
        }
        if let Some(envid) = &envelope.envid {
            mail += " ENVID=";
            mail += &xtext(envid);
        }
    }
    mail += "\r\n";

    let rcpts = rcpts
        .into_iter()
        .map(|to| {
            to.map(|to| {
                let mut line = format!("RCPT TO:<{to}>");
                if let Some(notify) = &notify {
                    line += " NOTIFY=";
                    line += notify;
                }
                if caps.dsn && to.is_ascii() {
                    line += " ORCPT=rfc822;";
                    line += &xtext(to);
                }
                line += "\r\n";
                line
            })
        })
        .collect();
    Ok(Plan { mail, rcpts })
}

/// An address that can go between `<` and `>` on a command line: no line
/// break or other control character, no angle bracket, not too long.
pub(crate) fn address_ok(address: &str) -> bool {
    address.len() <= MAX_ADDRESS
        && !address
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
}

/// `NEVER`, or a list of `SUCCESS`, `FAILURE` and `DELAY` (RFC 3461
/// §4.1), upper-cased; `None` when it is neither.
fn notify_param(value: &str) -> Option<String> {
    let value = value.trim().to_ascii_uppercase();
    if value == "NEVER" {
        return Some(value);
    }
    let ok = value
        .split(',')
        .all(|v| matches!(v, "SUCCESS" | "FAILURE" | "DELAY"));
    ok.then_some(value)
}

/// RFC 3461 §4 xtext: `+` and `=`, controls, space and non-ASCII bytes
/// as `+HH`.
pub(crate) fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out += &format!("+{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(from: &str, to: &[&str]) -> Envelope {
        Envelope {
            from: from.into(),
            recipients: to.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    fn everything() -> Capabilities {
        Capabilities {
            pipelining: true,
            size: Some(1000),
            eight_bit_mime: true,
            smtputf8: true,
            dsn: true,
            ..Default::default()
        }
    }

    #[test]
    fn plain_server_gets_plain_commands() {
        let p = plan(
            &envelope("", &["a@b.test"]),
            b"x\xff",
            &Capabilities::default(),
        )
        .expect("plan");
        assert_eq!(p.mail, "MAIL FROM:<>\r\n");
        assert_eq!(p.rcpts, vec![Ok("RCPT TO:<a@b.test>\r\n".to_string())]);
    }

    #[test]
    fn parameters_follow_the_extensions() {
        let mut e = envelope("s@x.test", &["a@b.test", "bad\r\nRSET", "", "ü@b.test"]);
        e.envid = Some("id+1 =x".into());
        e.ret_full = Some(false);
        e.notify = Some("failure,delay".into());
        let p = plan(&e, "héllo".as_bytes(), &everything()).expect("plan");
        assert_eq!(
            p.mail,
            "MAIL FROM:<s@x.test> SIZE=6 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+20+3Dx\r\n"
        );
        assert_eq!(
            p.rcpts.first(),
            Some(&Ok(
                "RCPT TO:<a@b.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@b.test\r\n".to_string()
            ))
        );
        assert!(matches!(p.rcpts.get(1), Some(Err(r)) if r.code == 553));
        assert!(matches!(p.rcpts.get(2), Some(Err(r)) if r.code == 553));
        assert_eq!(
            p.rcpts.get(3),
            Some(&Ok(
                "RCPT TO:<ü@b.test> NOTIFY=FAILURE,DELAY\r\n".to_string()
            ))
        );
    }

    #[test]
    fn refusals_before_sending() {
        let caps = everything();
        let too_big = plan(&envelope("", &["a@b.test"]), &[b'x'; 1001], &caps).unwrap_err();
        assert_eq!((too_big.code, too_big.enhanced), (552, Some((5, 3, 4))));
        let no_limit = Capabilities {
            size: Some(0),
            ..Default::default()
        };
        let p = plan(&envelope("", &["a@b.test"]), &[b'x'; 1001], &no_limit).expect("plan");
        assert_eq!(p.mail, "MAIL FROM:<> SIZE=1001\r\n");

        let utf8 = plan(&envelope("", &["ü@b.test"]), b"x", &Capabilities::default());
        assert_eq!(utf8.unwrap_err().enhanced, Some((5, 6, 7)));
        let sender = plan(&envelope("a>b", &["a@b.test"]), b"x", &caps);
        assert_eq!(sender.unwrap_err().code, 553);
        let mut e = envelope("", &["a@b.test"]);
        e.notify = Some("NEVER,SUCCESS".into());
        assert_eq!(plan(&e, b"x", &caps).unwrap_err().code, 501);
        // Without DSN on the server, DSN wishes are dropped, not refused.
        let p = plan(&e, b"x", &Capabilities::default()).expect("plan");
        assert_eq!(p.rcpts, vec![Ok("RCPT TO:<a@b.test>\r\n".to_string())]);
    }

    #[test]
    fn xtext_encodes_what_it_must() {
        assert_eq!(xtext("a+b=c d\u{e9}"), "a+2Bb+3Dc+20d+C3+A9");
        assert_eq!(notify_param(" never "), Some("NEVER".into()));
        assert_eq!(notify_param("SUCCESS,,"), None);
    }
}

//! RFC 5256 §2.1 base subject: the subject with reply/forward markers
//! (`Re:`, `Fwd:`, `[blob]` prefixes, `(fwd)` trailers, `[fwd: …]`
//! wrappers) and extra whitespace removed, upper-cased (i;ascii-casemap)
//! for comparison; and whether anything reply-like was removed.

/// A message's base subject, upper-cased, and whether it was a reply or
/// forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseSubject {
    pub text: String,
    pub reply: bool,
}

/// The base subject of a decoded (UTF-8, unfolded) subject.
pub(crate) fn base_subject(decoded: &str) -> BaseSubject {
    let mut s = collapse_whitespace(decoded);
    let mut reply = false;
    loop {
        reply |= strip_trailers(&mut s);
        reply |= strip_leaders(&mut s);
        let unwrapped = s
            .get(..5)
            .filter(|head| head.eq_ignore_ascii_case("[fwd:") && s.ends_with(']'))
            .and_then(|_| s.get(5..s.len() - 1))
            .map(str::to_owned);
        match unwrapped {
            Some(inner) => {
                s = inner;
                reply = true;
            }
            None => break,
        }
    }
    BaseSubject {
        text: s.to_ascii_uppercase(),
        reply,
    }
}

/// Tabs and line ends to spaces, runs of spaces to one (step 1).
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

/// Removes `(fwd)` and blanks at the end (step 2); whether a `(fwd)` was.
fn strip_trailers(s: &mut String) -> bool {
    let mut removed = false;
    loop {
        let trimmed = s.trim_end_matches(' ').len();
        s.truncate(trimmed);
        let cut = s.len().saturating_sub(5);
        if s.len() >= 5
            && s.get(cut..)
                .is_some_and(|t| t.eq_ignore_ascii_case("(fwd)"))
        {
            s.truncate(cut);
            removed = true;
        } else {
            return removed;
        }
    }
}

/// Removes leaders and leading blobs (steps 3 to 5); whether a `Re:`-like
/// leader was among them.
fn strip_leaders(s: &mut String) -> bool {
    let mut reply = false;
    let mut at = 0;
    loop {
        let rest = s.get(at..).unwrap_or_default();
        if rest.starts_with(' ') {
            at += 1;
        } else if let Some(len) = refwd_leader(rest) {
            at += len;
            reply = true;
        } else if let Some(len) =
            blob(rest).filter(|&len| !rest.get(len..).unwrap_or_default().trim().is_empty())
        {
            at += len;
        } else {
            break;
        }
    }
    *s = s.get(at..).unwrap_or_default().to_owned();
    reply
}

/// The length of `*subj-blob subj-refwd` at the start of `s`, where
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn refwd_leader(s: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(len) = blob(s.get(at..)?) {
        at += len;
    }
    let rest = s.get(at..)?;
    let word = ["fwd", "fw", "re"].into_iter().find(|w| {
        rest.get(..w.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(w))
    })?;
    at += word.len();
    at += spaces(s.get(at..)?);
    if let Some(len) = blob(s.get(at..)?) {
        at += len;
    }
    s.get(at..)?.starts_with(':').then_some(at + 1)
}

/// The length of `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`.
fn blob(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(['[', ']'])?;
    rest.get(close..)?.starts_with(']').then_some(())?;
    let end = close + 2;
    Some(end + spaces(s.get(end..)?))
}

fn spaces(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        let b = base_subject(s);
        (b.text, b.reply)
    }

    #[test]
    fn rfc5256_examples() {
        assert_eq!(base("Re: Hello"), ("HELLO".into(), true));
        assert_eq!(base("hello"), ("HELLO".into(), false));
        assert_eq!(
            base("RE:  re:FWD: [list] Re[2]: x (fwd) (FWD)  "),
            ("X".into(), true)
        );
        assert_eq!(base("[Fwd: Re: Meeting]"), ("MEETING".into(), true));
        assert_eq!(base("[list] topic"), ("TOPIC".into(), false));
        assert_eq!(base("[only blob]"), ("[ONLY BLOB]".into(), false));
        assert_eq!(base("Fw: a\t\tb"), ("A B".into(), true));
        assert_eq!(base("Reply all"), ("REPLY ALL".into(), false));
        assert_eq!(base(""), (String::new(), false));
        assert_eq!(base("Re:"), (String::new(), true));
    }
}

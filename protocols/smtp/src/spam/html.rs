//! A small, forgiving HTML scanner for the spam rules, sans-IO: the
//! visible text of a decoded `text/html` part (tags, comments, `<script>`
//! and `<style>` removed, a few entities decoded, whitespace collapsed),
//! and what its links and images look like.
//!
//! It is not an HTML parser: it walks the bytes once, never panics, and
//! gives a best-effort answer on broken markup. Inline tags (`<b>`,
//! `<span>`, `<font>` …) join the text around them, so `vi<b></b>agra`
//! reads `viagra`; block tags separate words. Links are `<a href>` with an
//! `http`/`https` target; URLs in plain text are found by [`text_urls`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// The most characters of an anchor's text kept to compare with its
/// target (a longer text is not a bare domain anyway).
const MAX_ANCHOR_TEXT: usize = 256;
/// The most URLs [`text_urls`] reports for one text.
pub const MAX_TEXT_URLS: usize = 1000;

/// What [`summarize`] found in one HTML document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HtmlSummary {
    /// The visible text, whitespace collapsed, at most the `max_visible`
    /// bytes asked for.
    pub visible: String,
    /// Characters of visible text other than whitespace (counted past
    /// the cap on `visible` too).
    pub visible_chars: usize,
    /// `<a href="http(s)://…">` links.
    pub links: usize,
    /// `<img>` tags.
    pub images: usize,
    /// Links whose text shows a domain other than the one they go to
    /// (`<a href="http://evil.example/">www.bank.example</a>`).
    pub mismatched_links: usize,
    /// Links to a numeric host (`http://192.0.2.1/`, `http://3221225985/`).
    pub numeric_links: usize,
}

/// Scans `html`, keeping at most `max_visible` bytes of visible text.
pub fn summarize(html: &str, max_visible: usize) -> HtmlSummary {
    let mut out = HtmlSummary::default();
    let bytes = html.as_bytes();
    let mut anchor: Option<Anchor> = None;
    let mut i = 0;
    while i < bytes.len() {
        let Some(lt) = memchr::memchr(b'<', bytes.get(i..).unwrap_or_default()) else {
            text(
                html.get(i..).unwrap_or_default(),
                &mut out,
                &mut anchor,
                max_visible,
            );
            break;
        };
        let lt = i + lt;
        text(
            html.get(i..lt).unwrap_or_default(),
            &mut out,
            &mut anchor,
            max_visible,
        );
        let rest = bytes.get(lt + 1..).unwrap_or_default();
        if rest.starts_with(b"!--") {
            // A comment: to `-->`, or the end.
            i = match memchr::memmem::find(rest, b"-->") {
                Some(end) => lt + 1 + end + 3,
                None => bytes.len(),
            };
            continue;
        }
        let Some(gt) = memchr::memchr(b'>', rest) else {
            // An unclosed tag: nothing visible follows.
            break;
        };
        let tag = html.get(lt + 1..lt + 1 + gt).unwrap_or_default();
        i = lt + 1 + gt + 1;
        let (closing, name, attributes) = split_tag(tag);
        if name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style") {
            if !closing {
                // Skip to the closing tag (or the end).
                let close = if name.eq_ignore_ascii_case("script") {
                    b"</script".as_slice()
                } else {
                    b"</style".as_slice()
                };
                i = match find_ignore_case(bytes, i, close) {
                    Some(at) => at,
                    None => bytes.len(),
                };
            }
            continue;
        }
        if name.eq_ignore_ascii_case("a") {
            if closing {
                if let Some(done) = anchor.take() {
                    done.finish(&mut out);
                }
            } else {
                // A new anchor closes an open one (broken markup).
                if let Some(done) = anchor.take() {
                    done.finish(&mut out);
                }
                let href = attribute(attributes, "href").and_then(url_host);
                if let Some(host) = href {
                    out.links += 1;
                    if is_numeric_host(&host) {
                        out.numeric_links += 1;
                    }
                    anchor = Some(Anchor {
                        host,
                        text: String::new(),
                    });
                }
            }
            continue;
        }
        if name.eq_ignore_ascii_case("img") {
            out.images += 1;
        }
        if !is_inline(name) {
            push_space(&mut out.visible, max_visible);
            if let Some(a) = anchor.as_mut() {
                push_space(&mut a.text, MAX_ANCHOR_TEXT);
            }
        }
    }
    if let Some(done) = anchor.take() {
        done.finish(&mut out);
    }
    let trimmed = out.visible.trim_end().len();
    out.visible.truncate(trimmed);
    out
}

/// An open `<a>`: where it goes and the text seen so far.
struct Anchor {
    host: String,
    text: String,
}

impl Anchor {
    fn finish(self, out: &mut HtmlSummary) {
        if let Some(shown) = shown_domain(&self.text) {
            if !same_site(&shown, &self.host) {
                out.mismatched_links += 1;
            }
        }
    }
}

/// Visible text between tags: entities decoded, whitespace collapsed.
fn text(raw: &str, out: &mut HtmlSummary, anchor: &mut Option<Anchor>, max_visible: usize) {
    let mut rest = raw;
    while !rest.is_empty() {
        let (c, used) = match rest.strip_prefix('&').and_then(entity) {
            Some((c, len)) => (c, len + 1),
            None => match rest.chars().next() {
                Some(c) => (c, c.len_utf8()),
                None => break,
            },
        };
        rest = rest.get(used..).unwrap_or_default();
        if c.is_whitespace() {
            push_space(&mut out.visible, max_visible);
            if let Some(a) = anchor.as_mut() {
                push_space(&mut a.text, MAX_ANCHOR_TEXT);
            }
        } else {
            out.visible_chars += 1;
            if out.visible.len() + c.len_utf8() <= max_visible {
                out.visible.push(c);
            }
            if let Some(a) = anchor.as_mut() {
                if a.text.len() + c.len_utf8() <= MAX_ANCHOR_TEXT {
                    a.text.push(c);
                }
            }
        }
    }
}

/// One space, unless the text is empty, ends in one, or is full.
fn push_space(text: &mut String, max: usize) {
    if !text.is_empty() && !text.ends_with(' ') && text.len() < max {
        text.push(' ');
    }
}

/// The character an entity stands for and the bytes it used after `&`:
/// `&#105;`, `&#x69;`, `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`,
/// `&nbsp;`. Others are left as they are.
fn entity(after_amp: &str) -> Option<(char, usize)> {
    let end = after_amp.bytes().take(10).position(|b| b == b';')?;
    let name = after_amp.get(..end)?;
    let c = if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        char::from_u32(code)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// `/name attributes` → (closing, name, attributes).
fn split_tag(tag: &str) -> (bool, &str, &str) {
    let (closing, tag) = match tag.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let tag = tag.trim_start();
    let end = tag
        .find(|c: char| c.is_ascii_whitespace() || c == '/')
        .unwrap_or(tag.len());
    let (name, attributes) = tag.split_at_checked(end).unwrap_or((tag, ""));
    (closing, name, attributes)
}

/// Tags that do not separate words.
fn is_inline(name: &str) -> bool {
    const INLINE: &[&str] = &[
        "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "em", "font", "i", "ins", "kbd",
        "mark", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "tt", "u", "wbr",
    ];
    INLINE.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// The value of attribute `name` in a tag's attribute text, quoted or not.
fn attribute<'t>(attributes: &'t str, name: &str) -> Option<&'t str> {
    let bytes = attributes.as_bytes();
    let mut from = 0;
    while let Some(at) = find_ignore_case(bytes, from, name.as_bytes()) {
        from = at + name.len();
        // A whole attribute name: preceded by whitespace (or a quote).
        let before = at.checked_sub(1).and_then(|p| bytes.get(p));
        if !matches!(before, Some(b) if b.is_ascii_whitespace() || *b == b'"' || *b == b'\'') {
            continue;
        }
        let rest = attributes.get(from..)?.trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        return Some(match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = rest.get(1..)?;
                inner.split(q).next().unwrap_or(inner)
            }
            _ => rest
                .split(|c: char| c.is_ascii_whitespace() || c == '>')
                .next()
                .unwrap_or(rest),
        });
    }
    None
}

/// Where `needle` (ASCII) first occurs in `hay` from `from`, ignoring
/// ASCII case.
fn find_ignore_case(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i < hay.len() {
        let rest = hay.get(i..)?;
        let at = memchr::memchr2(first.to_ascii_lowercase(), first.to_ascii_uppercase(), rest)?;
        let start = i + at;
        if hay
            .get(start..start + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(start);
        }
        i = start + 1;
    }
    None
}

/// The host of an `http`/`https` URL, lower-case, without user
/// information, port or trailing dot (`http://bank.example@evil.example/`
/// goes to `evil.example`). `None` for other schemes and relative links.
pub fn url_host(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = strip_prefix_ignore_case(url, "http://")
        .or_else(|| strip_prefix_ignore_case(url, "https://"))?;
    let end = rest
        .find(|c: char| matches!(c, '/' | '?' | '#' | '\\') || c.is_whitespace())
        .unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    let host_port = match authority.rsplit_once('@') {
        Some((_, host_port)) => host_port,
        None => authority,
    };
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    let host = host
        .trim_end_matches(['.', ',', ';', '!'])
        .to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// A host given as a number: dotted IPv4, an IPv6 literal, or the
/// all-digits form browsers accept (`http://3221225985/`).
pub fn is_numeric_host(host: &str) -> bool {
    host.parse::<Ipv4Addr>().is_ok()
        || host.parse::<Ipv6Addr>().is_ok()
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_digit()))
        || host
            .strip_prefix("0x")
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The domain a link's text shows, if the text is a bare URL or domain
/// (`www.bank.example`, `https://bank.example/login`), lower-case, without
/// a leading `www.`.
fn shown_domain(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() || text.contains(char::is_whitespace) {
        return None;
    }
    let host = match url_host(text) {
        Some(host) => host,
        None => {
            let end = text.find(['/', '?', '#', ':']).unwrap_or(text.len());
            text.get(..end)
                .unwrap_or(text)
                .trim_end_matches('.')
                .to_ascii_lowercase()
        }
    };
    looks_like_domain(&host).then(|| strip_www(&host).to_string())
}

/// Two or more dot-separated labels of letters, digits and hyphens, the
/// last one letters only (a TLD).
fn looks_like_domain(host: &str) -> bool {
    let mut labels = 0;
    let mut last = "";
    for label in host.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.bytes().all(|b| b.is_ascii_alphabetic())
}

fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// The same site: equal, or one a subdomain of the other (after a leading
/// `www.` is dropped from both).
pub fn same_site(a: &str, b: &str) -> bool {
    let (a, b) = (strip_www(a), strip_www(b));
    a == b || is_subdomain(a, b) || is_subdomain(b, a)
}

/// `sub` ends with `.parent`.
fn is_subdomain(sub: &str, parent: &str) -> bool {
    sub.len() > parent.len()
        && sub.ends_with(parent)
        && sub.as_bytes().get(sub.len() - parent.len() - 1) == Some(&b'.')
}

/// The hosts of the `http://` and `https://` URLs in plain text, at most
/// [`MAX_TEXT_URLS`].
pub fn text_urls(text: &str) -> impl Iterator<Item = String> + '_ {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"://")
        .filter_map(move |at| {
            let scheme = |len: usize, name: &[u8]| {
                let start = at.checked_sub(len)?;
                bytes
                    .get(start..at)
                    .is_some_and(|s| s.eq_ignore_ascii_case(name))
                    .then_some(start)
            };
            let start = scheme(5, b"https").or_else(|| scheme(4, b"http"))?;
            let url = text.get(start..)?;
            let end = url
                .find(|c: char| c.is_whitespace() || matches!(c, '>' | '"' | '\'' | ')' | '<'))
                .unwrap_or(url.len());
            url_host(url.get(..end)?)
        })
        .take(MAX_TEXT_URLS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_without_tags_scripts_styles_and_comments() {
        let s = summarize(
            "<html><head><style>p { color: red }</style><script>var x = '<b>';</script></head>\
             <body><!-- hidden <p>comment</p> --><p>Hello&nbsp;<b>wor</b>ld</p><div>Second &amp; \
             last</div></body></html>",
            1000,
        );
        assert_eq!(s.visible, "Hello world Second & last");
        assert_eq!(
            s.visible_chars,
            "Helloworld Second&last".replace(' ', "").len()
        );
        assert_eq!((s.links, s.images), (0, 0));
    }

    #[test]
    fn entities_and_inline_tags_do_not_hide_words() {
        let s = summarize("<p>v&#105;a<span></span>g&#x72;a</p>", 1000);
        assert_eq!(s.visible, "viagra");
        // Unknown or broken entities are kept as text.
        let s = summarize("a &bogus; b &#xZZ; c & d", 1000);
        assert_eq!(s.visible, "a &bogus; b &#xZZ; c & d");
    }

    #[test]
    fn the_visible_cap_holds() {
        let html = "<p>word </p>".repeat(10_000);
        let s = summarize(&html, 100);
        assert!(s.visible.len() <= 100, "{}", s.visible.len());
        assert_eq!(s.visible_chars, 40_000);
    }

    #[test]
    fn links_images_and_mismatches() {
        let s = summarize(
            "<a href=\"https://www.bank.example/login\">www.bank.example</a>\
             <a HREF='http://evil.example/x'>https://www.bank.example/</a>\
             <a href=http://click.mailer.example.org/t?u=1>example.org</a>\
             <a href=\"http://192.0.2.1/\">Click here</a>\
             <a href=\"mailto:a@example.org\">write</a>\
             <a name=\"top\">top</a>\
             <img src=\"x.png\"><IMG SRC=y.gif>",
            1000,
        );
        assert_eq!(s.links, 4);
        assert_eq!(s.images, 2);
        assert_eq!(s.mismatched_links, 1);
        assert_eq!(s.numeric_links, 1);
    }

    #[test]
    fn userinfo_tricks_go_to_the_real_host() {
        assert_eq!(
            url_host("http://www.bank.example@evil.example:8080/a").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            url_host("HTTPS://Example.ORG.").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            url_host("https://[2001:db8::1]:443/").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(url_host("ftp://example.org/"), None);
        assert_eq!(url_host("/relative"), None);
        assert_eq!(url_host("http://"), None);
        let s = summarize(
            "<a href=\"http://www.bank.example@evil.example/\">www.bank.example</a>",
            100,
        );
        assert_eq!(s.mismatched_links, 1);
    }

    #[test]
    fn numeric_hosts() {
        for host in ["192.0.2.1", "3221225985", "2001:db8::1", "0xc0000201"] {
            assert!(is_numeric_host(host), "{host}");
        }
        for host in ["example.org", "1.example.org", "", "0x"] {
            assert!(!is_numeric_host(host), "{host}");
        }
    }

    #[test]
    fn same_site_and_shown_domains() {
        assert!(same_site("www.example.org", "example.org"));
        assert!(same_site("example.org", "click.news.example.org"));
        assert!(!same_site("example.org", "badexample.org"));
        assert!(!same_site("paypal.com", "paypal.com.evil.example"));
        assert_eq!(
            shown_domain(" www.Bank.example "),
            Some("bank.example".into())
        );
        assert_eq!(
            shown_domain("bank.example/login"),
            Some("bank.example".into())
        );
        assert_eq!(shown_domain("Click here"), None);
        assert_eq!(shown_domain("v1.2"), None);
        assert_eq!(shown_domain("file.1"), None);
    }

    #[test]
    fn urls_in_plain_text() {
        let hosts: Vec<String> = text_urls(
            "see http://example.org/a, (https://192.0.2.7/x) and HTTP://Other.example,\n\
             not ftp://x.example nor ://nothing nor http://",
        )
        .collect();
        assert_eq!(hosts, ["example.org", "192.0.2.7", "other.example"]);
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for html in [
            "<",
            "<a",
            "<a href=",
            "<a href=\"",
            "<!--",
            "<script>",
            "</a>",
            "&",
            "&#",
            "&#x;",
            "<a href=http://x.example>",
            "<a href='http://é.example'>é</a>",
            "<<>>",
            "<>",
            "&#99999999999;",
            "<style",
            "< a href=http://a.example>b.example",
        ] {
            let _ = summarize(html, 10);
        }
    }
}

//! Pre-decoding, sans-IO, of the command syntax imap-types 2.0.0-alpha.8
//! cannot parse, before imap-codec sees a command:
//!
//! - `[UID] SEARCH RETURN (MIN MAX ALL COUNT SAVE) …` (RFC 4731 ESEARCH,
//!   RFC 5182 SEARCHRES): the return options are taken off and the rest
//!   is left to imap-codec as a plain SEARCH;
//! - `LIST (selection options) reference (patterns) RETURN (…)`
//!   (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154);
//! - `CREATE name (USE (\Sent …))` (RFC 6154 CREATE-SPECIAL-USE);
//! - `APPEND mailbox [flags] [date] literal …` with several messages
//!   (RFC 3502 MULTIAPPEND), with `UTF8 (literal8)` (RFC 6855 §4), or
//!   with `CATENATE (TEXT literal / URL url …)` (RFC 4469): cut into one
//!   plain APPEND per message, a catenated one with its parts beside it;
//! - `[UID] FETCH set (… EMAILID THREADID …)` (RFC 8474 §5): the object
//!   id items are taken off and the rest is left to imap-codec;
//! - `STATUS mailbox (… MAILBOXID …)` (RFC 8474 §4.3), and MAILBOXID in
//!   LIST's `RETURN (STATUS (…))`;
//! - [`slots`] of a command: `$` (RFC 5182), the saved search result, in
//!   the sequence set of FETCH, STORE, COPY, MOVE, SEARCH, SORT, THREAD
//!   and their UID forms, and in UID EXPUNGE; the search keys `EMAILID id`
//!   and `THREADID id` (RFC 8474 §6) of SEARCH, SORT and THREAD. The
//!   session works out each one's set of messages and [`splice`] writes
//!   it in its place.
//!
//! Commands these forms do not cover are passed through untouched.
//! Malformed extended forms get a reason for their `BAD`.

use std::ops::Range;

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_types::command::CommandBody;
use imap_types::status::StatusDataItemName;

use super::objectid;

/// What to return for a SEARCH (RFC 4731); all false means none given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
}

/// LIST selection options (RFC 5258 §3.1, RFC 6154 §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListSelection {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// STATUS items: those imap-types knows, and MAILBOXID (RFC 8474).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusItems {
    pub names: Vec<StatusDataItemName>,
    pub mailboxid: bool,
}

/// LIST return options (RFC 5258 §3.2, RFC 5819, RFC 6154).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// `STATUS (…)`: the items for a `* STATUS` after each LIST line.
    pub status: Option<StatusItems>,
}

/// The FETCH items of RFC 8474 §5 a FETCH asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchObjects {
    pub emailid: bool,
    pub threadid: bool,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// `tag APPEND mailbox [flags] [date] literal`; for CATENATE, an empty
    /// literal stands in for the message.
    pub plain: Vec<u8>,
    /// The parts of a CATENATE (RFC 4469) message, in order.
    pub catenate: Option<Vec<CatPart>>,
}

/// A part of a CATENATE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    /// `TEXT literal` (or `literal8`, or RFC 6855's `UTF8 (literal8)`).
    Text(Vec<u8>),
    /// `URL url`: the URL as sent (see [`super::imapurl`]).
    Url(Vec<u8>),
}

/// The most CATENATE parts in one APPEND command (all its messages
/// together): each URL reads a stored message.
pub const MAX_CATENATE_PARTS: usize = 100;

/// An extended command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extended {
    /// `plain` is the same command without its RETURN options.
    Search {
        uid: bool,
        ret: SearchReturn,
        plain: Vec<u8>,
    },
    /// Reference and patterns as their bytes (quoting and literals
    /// undone), still modified UTF-7.
    List {
        selection: ListSelection,
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        ret: ListReturn,
    },
    /// `plain` is `CREATE name` alone; `uses` the attributes asked for,
    /// as sent (`\Sent`).
    Create { plain: Vec<u8>, uses: Vec<String> },
    /// One per message; `utf8` when one was sent as `UTF8 (literal8)`
    /// (RFC 6855 §4).
    Append {
        messages: Vec<AppendMessage>,
        utf8: bool,
    },
    /// `plain` is the FETCH without its object id items: with `UID`
    /// standing in for them when they were all it asked for (`stand_in`).
    Fetch {
        plain: Vec<u8>,
        objects: FetchObjects,
        stand_in: bool,
    },
    /// A STATUS asking for MAILBOXID; the name as its bytes (quoting and
    /// literals undone).
    Status {
        mailbox: Vec<u8>,
        items: StatusItems,
    },
}

/// A pre-decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pre {
    pub tag: String,
    pub command: Extended,
}

/// The outcome of pre-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not an extended form: imap-codec decodes it as it is.
    Pass,
    Pre(Pre),
    /// An extended form, malformed.
    Bad {
        tag: Option<String>,
        reason: String,
    },
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fail {
    /// A literal announced at the very end has none of its bytes yet
    /// (a command cut at its announcement, see [`check_literal`]).
    Incomplete,
    Bad(String),
}

type Res<T> = Result<T, Fail>;

fn bad<T>(reason: impl Into<String>) -> Res<T> {
    Err(Fail::Bad(reason.into()))
}

/// RFC 3501 atom-specials (plus `]`, resp-specials) and CTLs.
fn atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

fn astring_char(b: u8) -> bool {
    atom_char(b) || b == b']'
}

fn list_char(b: u8) -> bool {
    astring_char(b) || b == b'%' || b == b'*'
}

/// A cursor over one command's bytes.
struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or_default()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Res<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            bad(format!("Expected {what}"))
        }
    }

    fn sp(&mut self) -> Res<()> {
        self.expect(b' ', "a space")
    }

    /// The end of the command: CRLF (or a bare LF) and nothing after.
    fn end(&mut self) -> Res<()> {
        self.eat(b'\r');
        if self.eat(b'\n') && self.i == self.b.len() {
            Ok(())
        } else {
            bad("Unexpected data at the end of the command")
        }
    }

    /// The bytes while `pred` holds (possibly none).
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
        self.b.get(start..self.i).unwrap_or_default()
    }

    /// An atom, upper-cased.
    fn atom(&mut self, what: &str) -> Res<String> {
        let word = self.take_while(atom_char);
        if word.is_empty() {
            return bad(format!("Expected {what}"));
        }
        Ok(String::from_utf8_lossy(word).to_ascii_uppercase())
    }

    /// A flag or use attribute: `\Name` or an atom, as sent.
    fn flag(&mut self) -> Res<String> {
        let start = self.i;
        self.eat(b'\\');
        if self.take_while(atom_char).is_empty() {
            return bad("Expected a flag");
        }
        Ok(String::from_utf8_lossy(self.b.get(start..self.i).unwrap_or_default()).into_owned())
    }

    fn quoted(&mut self) -> Res<Vec<u8>> {
        self.expect(b'"', "a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return bad("Unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return bad("Bad escape in a quoted string"),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A literal (`{n}`, `{n+}`, and with `binary` also `~{n}`): its data.
    fn literal(&mut self, binary: bool) -> Res<&'a [u8]> {
        if binary {
            self.eat(b'~');
        }
        self.expect(b'{', "a literal")?;
        let digits = self.take_while(|b| b.is_ascii_digit());
        let length = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 10)
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(Fail::Bad("Bad literal length".into()))?;
        self.eat(b'+');
        self.expect(b'}', "'}' closing a literal")?;
        self.eat(b'\r');
        self.expect(b'\n', "a line end after a literal announcement")?;
        let start = self.i;
        if start == self.b.len() {
            // Cut at the announcement (even of an empty literal).
            return Err(Fail::Incomplete);
        }
        let end = start.saturating_add(length as usize);
        match self.b.get(start..end) {
            Some(data) => {
                self.i = end;
                Ok(data)
            }
            None => bad("Literal shorter than announced"),
        }
    }

    /// Takes `word` (matched without regard to case) when it comes next.
    fn eat_word(&mut self, word: &[u8]) -> bool {
        let next = self.rest().get(..word.len());
        if next.is_some_and(|w| w.eq_ignore_ascii_case(word)) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// A literal (or literal8) as sent: its announcement and its data.
    fn literal_as_sent(&mut self) -> Res<&'a [u8]> {
        let start = self.i;
        self.literal(true)?;
        Ok(self.b.get(start..self.i).unwrap_or_default())
    }

    /// An astring, or with `list` a list-mailbox: its bytes.
    fn string(&mut self, list: bool) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false).map(<[u8]>::to_vec),
            _ => {
                let word = self.take_while(if list { list_char } else { astring_char });
                if word.is_empty() {
                    return bad("Expected a string");
                }
                Ok(word.to_vec())
            }
        }
    }

    /// `(` item *(SP item) `)`, possibly empty.
    fn list_of<T>(&mut self, what: &str, mut item: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        self.expect(b'(', &format!("'(' opening {what}"))?;
        let mut out = Vec::new();
        if self.eat(b')') {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }
}

/// Pre-decodes a whole framed command.
pub fn pre_decode(bytes: &[u8]) -> Outcome {
    let tag = super::command::tag(bytes);
    match parse(bytes) {
        Ok(None) => Outcome::Pass,
        Ok(Some(command)) => match tag {
            Some(tag) => Outcome::Pre(Pre { tag, command }),
            None => Outcome::Pass,
        },
        Err(Fail::Incomplete) => Outcome::Bad {
            tag,
            reason: "Literal shorter than announced".into(),
        },
        Err(Fail::Bad(reason)) => Outcome::Bad { tag, reason },
    }
}

/// For a command cut at a literal announcement that imap-codec refuses:
/// `Some(Ok(tag))` when an extended form expects a literal there,
/// `Some(Err(reason))` for a malformed extended form, `None` otherwise.
pub fn check_literal(pending: &[u8]) -> Option<Result<String, String>> {
    let tag = super::command::tag(pending)?;
    match parse(pending) {
        Err(Fail::Incomplete) => Some(Ok(tag)),
        Ok(Some(Extended::Search { plain, .. })) => {
            Some(super::command::check_literal(&plain).map_err(|_| "Syntax error in SEARCH".into()))
        }
        Ok(_) => None,
        Err(Fail::Bad(reason)) => Some(Err(reason)),
    }
}

/// The command's prefix: tag, SP, optional `UID SP`, name (upper-cased).
fn head(p: &mut P<'_>) -> Option<(bool, String)> {
    let tag = p.take_while(|b| astring_char(b) && b != b'+');
    if tag.is_empty() || !p.eat(b' ') {
        return None;
    }
    let mut name = p.atom("").ok()?;
    let mut uid = false;
    if name == "UID" {
        uid = true;
        if !p.eat(b' ') {
            return None;
        }
        name = p.atom("").ok()?;
    }
    Some((uid, name))
}

fn parse(bytes: &[u8]) -> Res<Option<Extended>> {
    let mut p = P::new(bytes);
    let Some((uid, name)) = head(&mut p) else {
        return Ok(None);
    };
    match (uid, name.as_str()) {
        (_, "SEARCH") => search(&mut p, uid),
        (_, "FETCH") => fetch(&mut p),
        (false, "LIST") => list(&mut p),
        (false, "STATUS") => status(&mut p),
        (false, "CREATE") => create(&mut p),
        (false, "APPEND") => append(&mut p),
        _ => Ok(None),
    }
}

/// `SEARCH SP RETURN SP (opts) SP criteria`.
fn search(p: &mut P<'_>, uid: bool) -> Res<Option<Extended>> {
    let after_name = p.i;
    if !p.eat(b' ') || !p.eat_word(b"RETURN ") {
        return Ok(None);
    }
    let mut ret = SearchReturn::default();
    for option in p.list_of("the RETURN options", |p| p.atom("a RETURN option"))? {
        match option.as_str() {
            "MIN" => ret.min = true,
            "MAX" => ret.max = true,
            "ALL" => ret.all = true,
            "COUNT" => ret.count = true,
            "SAVE" => ret.save = true,
            other => return bad(format!("Unknown SEARCH RETURN option {other}")),
        }
    }
    // RFC 4731: RETURN () means RETURN (ALL).
    if ret == SearchReturn::default() {
        ret.all = true;
    }
    p.sp()?;
    let mut plain = bytes_upto(p.b, after_name).to_vec();
    plain.push(b' ');
    plain.extend_from_slice(p.rest());
    Ok(Some(Extended::Search { uid, ret, plain }))
}

fn bytes_upto(b: &[u8], end: usize) -> &[u8] {
    b.get(..end).unwrap_or(b)
}

/// `LIST [SP (selection)] SP reference SP (pattern | (patterns)) [SP
/// RETURN SP (options)]`; plain LISTs pass.
fn list(p: &mut P<'_>) -> Res<Option<Extended>> {
    p.sp()?;
    let mut selection = ListSelection::default();
    let mut extended = false;
    if p.peek() == Some(b'(') {
        extended = true;
        let options = p.list_of("the selection options", |p| p.atom("a selection option"))?;
        for option in &options {
            match option.as_str() {
                "SUBSCRIBED" => selection.subscribed = true,
                "REMOTE" => selection.remote = true,
                "RECURSIVEMATCH" => selection.recursive_match = true,
                "SPECIAL-USE" => selection.special_use = true,
                other => return bad(format!("Unknown LIST selection option {other}")),
            }
        }
        // RFC 5258 §3.1: RECURSIVEMATCH needs another option it modifies.
        if selection.recursive_match && !selection.subscribed {
            return bad("RECURSIVEMATCH needs SUBSCRIBED");
        }
        p.sp()?;
    }
    let reference = p.string(false)?;
    p.sp()?;
    let patterns = if p.peek() == Some(b'(') {
        extended = true;
        let patterns = p.list_of("the patterns", |p| p.string(true))?;
        if patterns.is_empty() {
            return bad("Expected at least one pattern");
        }
        patterns
    } else {
        vec![p.string(true)?]
    };
    let mut ret = ListReturn::default();
    if p.eat(b' ') {
        extended = true;
        if p.atom("RETURN")? != "RETURN" {
            return bad("Expected RETURN");
        }
        p.sp()?;
        p.list_of("the RETURN options", |p| {
            match p.atom("a RETURN option")?.as_str() {
                "SUBSCRIBED" => ret.subscribed = true,
                "CHILDREN" => ret.children = true,
                "SPECIAL-USE" => ret.special_use = true,
                "STATUS" => {
                    p.sp()?;
                    ret.status = Some(status_items(p)?);
                }
                other => return bad(format!("Unknown LIST RETURN option {other}")),
            }
            Ok(())
        })?;
    }
    p.end()?;
    if !extended {
        return Ok(None);
    }
    Ok(Some(Extended::List {
        selection,
        reference,
        patterns,
        ret,
    }))
}

/// STATUS items, `(MESSAGES UNSEEN MAILBOXID)`: MAILBOXID taken off,
/// the others decoded by imap-codec.
fn status_items(p: &mut P<'_>) -> Res<StatusItems> {
    let mut items = StatusItems::default();
    let mut others = Vec::new();
    for name in p.list_of("the STATUS items", |p| p.atom("a STATUS item"))? {
        if name == "MAILBOXID" {
            items.mailboxid = true;
        } else {
            others.push(name);
        }
    }
    if others.is_empty() {
        return if items.mailboxid {
            Ok(items)
        } else {
            bad("Bad STATUS items")
        };
    }
    let line = format!("s STATUS x ({})\r\n", others.join(" "));
    match CommandCodec::default().decode(line.as_bytes()) {
        Ok((b"", command)) => match command.body {
            CommandBody::Status { item_names, .. } => {
                items.names = item_names.into_owned();
                Ok(items)
            }
            _ => bad("Bad STATUS items"),
        },
        _ => bad("Bad STATUS items"),
    }
}

/// `STATUS SP mailbox SP (items)` with MAILBOXID; others pass.
fn status(p: &mut P<'_>) -> Res<Option<Extended>> {
    p.sp()?;
    let mailbox = p.string(false)?;
    p.sp()?;
    let items = status_items(p)?;
    p.end()?;
    if !items.mailboxid {
        return Ok(None);
    }
    Ok(Some(Extended::Status { mailbox, items }))
}

/// One FETCH item as sent, up to a space or `)` outside brackets
/// (`BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>`).
fn fetch_item<'a>(p: &mut P<'a>) -> Res<&'a [u8]> {
    let start = p.i;
    let mut depth = 0usize;
    loop {
        let Some(b) = p.peek() else {
            if depth == 0 {
                break;
            }
            return bad("Unterminated FETCH item");
        };
        match b {
            b'\r' | b'\n' if depth > 0 => return bad("Unterminated FETCH item"),
            b'\r' | b'\n' | b' ' | b')' if depth == 0 => break,
            b'"' => {
                p.quoted()?;
            }
            b'{' => {
                p.literal(false)?;
            }
            b'[' => {
                depth += 1;
                p.i += 1;
            }
            b']' => {
                depth = depth.saturating_sub(1);
                p.i += 1;
            }
            _ => p.i += 1,
        }
    }
    if p.i == start {
        return bad("Expected a FETCH item");
    }
    Ok(p.b.get(start..p.i).unwrap_or_default())
}

/// `FETCH SP set SP (items | item) [SP modifiers]` asking for EMAILID or
/// THREADID; others pass.
fn fetch<'a>(p: &mut P<'a>) -> Res<Option<Extended>> {
    p.sp()?;
    if p.take_while(|b| b != b' ' && b != b'\r' && b != b'\n')
        .is_empty()
    {
        return bad("Expected a sequence set");
    }
    p.sp()?;
    let items_start = p.i;
    let mut objects = FetchObjects::default();
    let mut kept: Vec<&'a [u8]> = Vec::new();
    let mut take = |item: &'a [u8]| {
        if item.eq_ignore_ascii_case(b"EMAILID") {
            objects.emailid = true;
        } else if item.eq_ignore_ascii_case(b"THREADID") {
            objects.threadid = true;
        } else {
            kept.push(item);
        }
    };
    if p.eat(b'(') {
        loop {
            take(fetch_item(p)?);
            if p.eat(b')') {
                break;
            }
            p.sp()?;
        }
    } else {
        take(fetch_item(p)?);
    }
    if objects == FetchObjects::default() {
        return Ok(None);
    }
    let stand_in = kept.is_empty();
    let mut plain = bytes_upto(p.b, items_start).to_vec();
    plain.push(b'(');
    if stand_in {
        plain.extend_from_slice(b"UID");
    } else {
        plain.extend_from_slice(&kept.join(&b' '));
    }
    plain.push(b')');
    plain.extend_from_slice(p.rest());
    Ok(Some(Extended::Fetch {
        plain,
        objects,
        stand_in,
    }))
}

/// `CREATE SP mailbox SP (USE (attrs))`; a plain CREATE passes.
fn create(p: &mut P<'_>) -> Res<Option<Extended>> {
    p.sp()?;
    p.string(false)?;
    let name_end = p.i;
    if !p.eat(b' ') {
        return Ok(None);
    }
    let mut uses = None;
    p.list_of("the CREATE parameters", |p| {
        if p.atom("a CREATE parameter")? != "USE" {
            return bad("Unknown CREATE parameter");
        }
        if uses.is_some() {
            return bad("USE given twice");
        }
        p.sp()?;
        uses = Some(p.list_of("the USE attributes", P::flag)?);
        Ok(())
    })?;
    p.end()?;
    let mut plain = bytes_upto(p.b, name_end).to_vec();
    plain.extend_from_slice(b"\r\n");
    Ok(Some(Extended::Create {
        plain,
        uses: uses.unwrap_or_default(),
    }))
}

/// `APPEND SP mailbox 1*(SP [flags SP] [date SP] (literal | UTF8 SP
/// "(" literal8 ")" | CATENATE SP "(" cat-part *(SP cat-part) ")"))`;
/// one message in a plain literal passes.
fn append(p: &mut P<'_>) -> Res<Option<Extended>> {
    p.sp()?;
    p.string(false)?;
    let mailbox_end = p.i;
    let mut messages = Vec::new();
    let mut utf8 = false;
    let mut catenated = false;
    let mut parts_left = MAX_CATENATE_PARTS;
    while p.eat(b' ') {
        let start = p.i;
        if p.peek() == Some(b'(') {
            p.list_of("the flags", P::flag)?;
            p.sp()?;
        }
        if p.peek() == Some(b'"') {
            p.quoted()?;
            p.sp()?;
        }
        let before_data = p.i;
        let mut one = bytes_upto(p.b, mailbox_end).to_vec();
        one.push(b' ');
        one.extend_from_slice(p.b.get(start..before_data).unwrap_or_default());
        if p.eat_word(b"CATENATE ") {
            catenated = true;
            let parts = p.list_of("the CATENATE parts", |p| {
                parts_left = parts_left.checked_sub(1).ok_or(Fail::Bad(format!(
                    "More than {MAX_CATENATE_PARTS} CATENATE parts"
                )))?;
                cat_part(p, &mut utf8)
            })?;
            if parts.is_empty() {
                return bad("Expected at least one CATENATE part");
            }
            one.extend_from_slice(b"{0}\r\n\r\n");
            messages.push(AppendMessage {
                plain: one,
                catenate: Some(parts),
            });
            continue;
        }
        let data = if p.eat_word(b"UTF8 (") {
            utf8 = true;
            let data = p.literal_as_sent()?;
            p.expect(b')', "')' closing the UTF8 data")?;
            data
        } else if matches!(p.peek(), Some(b'{' | b'~')) {
            p.literal_as_sent()?
        } else {
            return bad("Expected a message literal");
        };
        one.extend_from_slice(data);
        one.extend_from_slice(b"\r\n");
        messages.push(AppendMessage {
            plain: one,
            catenate: None,
        });
    }
    p.end()?;
    if messages.len() < 2 && !utf8 && !catenated {
        return Ok(None);
    }
    Ok(Some(Extended::Append { messages, utf8 }))
}

/// `TEXT SP literal`, `URL SP astring`, or `UTF8 SP "(" literal8 ")"`
/// (RFC 6855 §4, which sets `utf8`).
fn cat_part(p: &mut P<'_>, utf8: &mut bool) -> Res<CatPart> {
    let kind = p.atom("TEXT or URL")?;
    p.sp()?;
    match kind.as_str() {
        "TEXT" => Ok(CatPart::Text(p.literal(true)?.to_vec())),
        "URL" => Ok(CatPart::Url(p.string(false)?)),
        "UTF8" => {
            *utf8 = true;
            p.expect(b'(', "'(' opening the UTF8 data")?;
            let data = p.literal(true)?.to_vec();
            p.expect(b')', "')' closing the UTF8 data")?;
            Ok(CatPart::Text(data))
        }
        other => bad(format!("Unknown CATENATE part {other}")),
    }
}

/// How many string arguments follow a search key: none of them is a
/// key, a `$` or an object id key.
fn string_arguments(word: &[u8]) -> usize {
    const ONE: [&str; 11] = [
        "BCC",
        "BODY",
        "CC",
        "FROM",
        "KEYWORD",
        "SUBJECT",
        "TEXT",
        "TO",
        "UNKEYWORD",
        "CHARSET",
        "X-GM-RAW",
    ];
    if word.eq_ignore_ascii_case(b"HEADER") {
        2
    } else if ONE.iter().any(|k| word.eq_ignore_ascii_case(k.as_bytes())) {
        1
    } else {
        0
    }
}

/// What stands for a set of messages in a command: the session works
/// each one out and [`splice`] writes it in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// `$` (RFC 5182), the saved search result: as UIDs (`uid`) or as
    /// sequence numbers.
    Saved { uid: bool },
    /// The search key `EMAILID id` (RFC 8474 §6), for `UID set`.
    EmailId(String),
    /// The search key `THREADID id`, for `UID set`.
    ThreadId(String),
}

/// The slots of a command, in order, with where each lies; none for a
/// command that cannot have any, or whose strings do not parse.
pub fn slots(bytes: &[u8]) -> Vec<(Range<usize>, Slot)> {
    let mut p = P::new(bytes);
    let Some((uid, name)) = head(&mut p) else {
        return Vec::new();
    };
    let search = matches!(name.as_str(), "SEARCH" | "SORT" | "THREAD");
    let set_first =
        matches!(name.as_str(), "FETCH" | "STORE" | "COPY" | "MOVE") || (uid && name == "EXPUNGE");
    if !search && !set_first {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut previous: Vec<u8> = name.into_bytes();
    // String arguments still to pass over.
    let mut skip = 0usize;
    let mut first_argument = true;
    while let Some(b) = p.peek() {
        match b {
            b'"' | b'{' | b'~' => {
                let string = if b == b'"' {
                    p.quoted().map(drop)
                } else {
                    p.literal(true).map(drop)
                };
                if string.is_err() {
                    return Vec::new();
                }
                skip = skip.saturating_sub(1);
                previous.clear();
            }
            b' ' | b'(' | b')' | b'\r' | b'\n' => p.i += 1,
            _ => {
                let start = p.i;
                let word = p.take_while(|c| !b" ()\r\n\"{".contains(&c));
                if word.is_empty() {
                    p.i += 1;
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                } else if search && word == b"$" {
                    let uid = previous.eq_ignore_ascii_case(b"UID");
                    found.push((start..p.i, Slot::Saved { uid }));
                } else if search {
                    if let Some(slot) = object_key(&mut p, word) {
                        found.push((start..p.i, slot));
                        previous.clear();
                        continue;
                    }
                    skip = string_arguments(word);
                } else if first_argument && word == b"$" {
                    found.push((start..p.i, Slot::Saved { uid }));
                }
                previous = word.to_vec();
                first_argument = false;
            }
        }
    }
    found
}

/// After the word `key`: `EMAILID id` or `THREADID id` with a valid
/// objectid, its slot (the cursor past the id); else the cursor stays.
fn object_key(p: &mut P<'_>, key: &[u8]) -> Option<Slot> {
    let make: fn(String) -> Slot = if key.eq_ignore_ascii_case(b"EMAILID") {
        Slot::EmailId
    } else if key.eq_ignore_ascii_case(b"THREADID") {
        Slot::ThreadId
    } else {
        return None;
    };
    let at = p.i;
    if p.eat(b' ') {
        let id = p.take_while(|c| !b" ()\r\n".contains(&c));
        if objectid::valid(id) {
            return Some(make(String::from_utf8_lossy(id).into_owned()));
        }
    }
    p.i = at;
    None
}

/// `bytes` with each range of `filled` (in order, not overlapping)
/// replaced by its text.
pub fn splice(bytes: &[u8], filled: &[(Range<usize>, String)]) -> Vec<u8> {
    let extra: usize = filled.iter().map(|(_, text)| text.len()).sum();
    let mut out = Vec::with_capacity(bytes.len() + extra);
    let mut copied = 0;
    for (at, text) in filled {
        out.extend_from_slice(bytes.get(copied..at.start).unwrap_or_default());
        out.extend_from_slice(text.as_bytes());
        copied = copied.max(at.end);
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pre(line: &[u8]) -> Extended {
        match pre_decode(line) {
            Outcome::Pre(p) => p.command,
            other => panic!("{other:?}"),
        }
    }

    fn reason(line: &[u8]) -> String {
        match pre_decode(line) {
            Outcome::Bad { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_return() {
        assert_eq!(
            pre(b"a UID SEARCH RETURN (min Max COUNT) UNSEEN\r\n"),
            Extended::Search {
                uid: true,
                ret: SearchReturn {
                    min: true,
                    max: true,
                    count: true,
                    ..Default::default()
                },
                plain: b"a UID SEARCH UNSEEN\r\n".to_vec(),
            }
        );
        assert_eq!(
            pre(b"b search return () 1:*\r\n"),
            Extended::Search {
                uid: false,
                ret: SearchReturn {
                    all: true,
                    ..Default::default()
                },
                plain: b"b search 1:*\r\n".to_vec(),
            }
        );
        assert_eq!(pre_decode(b"a SEARCH ALL\r\n"), Outcome::Pass);
        assert_eq!(
            reason(b"a SEARCH RETURN (LAST) ALL\r\n"),
            "Unknown SEARCH RETURN option LAST"
        );
        assert!(matches!(
            pre_decode(b"a SEARCH RETURN (ALL\r\n"),
            Outcome::Bad { .. }
        ));
    }

    #[test]
    fn list_extended() {
        assert_eq!(pre_decode(b"a LIST \"\" *\r\n"), Outcome::Pass);
        assert_eq!(
            pre(b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a\" b% {1}\r\n*) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n"),
            Extended::List {
                selection: ListSelection {
                    subscribed: true,
                    recursive_match: true,
                    ..Default::default()
                },
                reference: vec![],
                patterns: vec![b"a".to_vec(), b"b%".to_vec(), b"*".to_vec()],
                ret: ListReturn {
                    children: true,
                    status: Some(StatusItems {
                        names: vec![StatusDataItemName::Messages, StatusDataItemName::UidNext],
                        mailboxid: false,
                    }),
                    ..Default::default()
                },
            }
        );
        assert_eq!(
            reason(b"a LIST (RECURSIVEMATCH) \"\" *\r\n"),
            "RECURSIVEMATCH needs SUBSCRIBED"
        );
        assert_eq!(
            reason(b"a LIST (FOO) \"\" *\r\n"),
            "Unknown LIST selection option FOO"
        );
        assert_eq!(
            reason(b"a LIST \"\" * RETURN (STATUS (BOGUS))\r\n"),
            "Bad STATUS items"
        );
        assert_eq!(
            reason(b"a LIST \"\" ()\r\n"),
            "Expected at least one pattern"
        );
    }

    #[test]
    fn create_special_use() {
        assert_eq!(pre_decode(b"a CREATE foo\r\n"), Outcome::Pass);
        assert_eq!(
            pre(b"a CREATE \"My Sent\" (USE (\\Sent))\r\n"),
            Extended::Create {
                plain: b"a CREATE \"My Sent\"\r\n".to_vec(),
                uses: vec!["\\Sent".into()],
            }
        );
        assert_eq!(
            reason(b"a CREATE x (FOO (\\Sent))\r\n"),
            "Unknown CREATE parameter"
        );
        assert!(matches!(
            pre_decode(b"a CREATE x (USE (\\Sent)\r\n"),
            Outcome::Bad { .. }
        ));
    }

    #[test]
    fn multiappend() {
        assert_eq!(pre_decode(b"a APPEND INBOX {2+}\r\nhi\r\n"), Outcome::Pass);
        assert_eq!(
            pre(b"a APPEND INBOX (\\Seen) {2+}\r\nhi \"01-Jan-2020 00:00:00 +0000\" ~{1}\r\nx\r\n"),
            Extended::Append {
                messages: vec![
                    literal(b"a APPEND INBOX (\\Seen) {2+}\r\nhi\r\n"),
                    literal(b"a APPEND INBOX \"01-Jan-2020 00:00:00 +0000\" ~{1}\r\nx\r\n"),
                ],
                utf8: false,
            }
        );
        assert_eq!(
            check_literal(b"a APPEND INBOX {2}\r\nhi (\\Seen) {3}\r\n"),
            Some(Ok("a".into()))
        );
        assert_eq!(
            check_literal(b"a APPEND INBOX {2}\r\n"),
            Some(Ok("a".into()))
        );
        assert_eq!(
            check_literal(b"a SEARCH RETURN (MIN) SUBJECT {3}\r\n"),
            Some(Ok("a".into()))
        );
        assert!(matches!(
            check_literal(b"a APPEND INBOX {2}\r\nhi x {3}\r\n"),
            Some(Err(_))
        ));
    }

    /// A message of an APPEND sent in a literal.
    fn literal(plain: &[u8]) -> AppendMessage {
        AppendMessage {
            plain: plain.to_vec(),
            catenate: None,
        }
    }

    #[test]
    fn catenate() {
        assert_eq!(
            pre(b"a APPEND Drafts (\\Seen) CATENATE (URL \"/INBOX;UIDVALIDITY=5/;UID=2/;SECTION=HEADER\" TEXT {4+}\r\nbody text ~{1}\r\nx url {3}\r\n/;x)\r\n"),
            Extended::Append {
                messages: vec![AppendMessage {
                    plain: b"a APPEND Drafts (\\Seen) {0}\r\n\r\n".to_vec(),
                    catenate: Some(vec![
                        CatPart::Url(b"/INBOX;UIDVALIDITY=5/;UID=2/;SECTION=HEADER".to_vec()),
                        CatPart::Text(b"body".to_vec()),
                        CatPart::Text(b"x".to_vec()),
                        CatPart::Url(b"/;x".to_vec()),
                    ]),
                }],
                utf8: false,
            }
        );
        // Within MULTIAPPEND, and with RFC 6855's UTF8 data.
        assert_eq!(
            pre(b"a APPEND INBOX {2+}\r\nhi \"01-Jan-2020 00:00:00 +0000\" catenate (UTF8 (~{2}\r\n\xc3\xa9))\r\n"),
            Extended::Append {
                messages: vec![
                    literal(b"a APPEND INBOX {2+}\r\nhi\r\n"),
                    AppendMessage {
                        plain: b"a APPEND INBOX \"01-Jan-2020 00:00:00 +0000\" {0}\r\n\r\n".to_vec(),
                        catenate: Some(vec![CatPart::Text("\u{e9}".as_bytes().to_vec())]),
                    },
                ],
                utf8: true,
            }
        );
        // The stand-in decodes as a plain APPEND.
        assert!(super::super::command::decode(b"a APPEND Drafts (\\Seen) {0}\r\n\r\n").is_ok());
        for (line, why) in [
            (
                &b"a APPEND INBOX CATENATE ()\r\n"[..],
                "Expected at least one CATENATE part",
            ),
            (
                b"a APPEND INBOX CATENATE (FILE x)\r\n",
                "Unknown CATENATE part FILE",
            ),
            (
                b"a APPEND INBOX CATENATE TEXT {1+}\r\nx\r\n",
                "Expected '(' opening the CATENATE parts",
            ),
            (
                b"a APPEND INBOX CATENATE (TEXT x)\r\n",
                "Expected a literal",
            ),
            (
                b"a APPEND INBOX CATENATE (URL \"/x\"\r\n",
                "Expected a space",
            ),
        ] {
            assert_eq!(reason(line), why, "{}", String::from_utf8_lossy(line));
        }
        let many = format!(
            "a APPEND INBOX CATENATE ({})\r\n",
            vec!["URL /INBOX/;UID=1"; MAX_CATENATE_PARTS + 1].join(" ")
        );
        assert_eq!(reason(many.as_bytes()), "More than 100 CATENATE parts");
        let just = format!(
            "a APPEND INBOX CATENATE ({})\r\n",
            vec!["URL /INBOX/;UID=1"; MAX_CATENATE_PARTS].join(" ")
        );
        assert!(matches!(pre_decode(just.as_bytes()), Outcome::Pre(_)));
        // A literal announced at the end of a part is expected.
        for cut in [
            &b"a APPEND INBOX CATENATE (TEXT {5}\r\n"[..],
            b"a APPEND INBOX CATENATE (URL \"/INBOX/;UID=1\" TEXT {5}\r\n",
            b"a APPEND INBOX CATENATE (TEXT {1}\r\nx URL {12}\r\n",
            b"a APPEND INBOX {1}\r\nx CATENATE (TEXT ~{1}\r\n",
        ] {
            assert_eq!(check_literal(cut), Some(Ok("a".into())), "{cut:?}");
        }
    }

    /// The command with its slots written out: `$` as 5:7 (UIDs) or 1:3,
    /// object id keys as `UID <kind><id>`.
    fn s(line: &[u8]) -> Option<String> {
        let found = slots(line);
        if found.is_empty() {
            return None;
        }
        let filled: Vec<(Range<usize>, String)> = found
            .into_iter()
            .map(|(at, slot)| {
                let text = match slot {
                    Slot::Saved { uid: true } => "5:7".to_string(),
                    Slot::Saved { uid: false } => "1:3".to_string(),
                    Slot::EmailId(id) => format!("UID e{id}"),
                    Slot::ThreadId(id) => format!("UID t{id}"),
                };
                (at, text)
            })
            .collect();
        Some(String::from_utf8_lossy(&splice(line, &filled)).into_owned())
    }

    #[test]
    fn saved_result() {
        assert_eq!(
            s(b"a UID FETCH $ FLAGS\r\n").as_deref(),
            Some("a UID FETCH 5:7 FLAGS\r\n")
        );
        assert_eq!(
            s(b"a FETCH $ FLAGS\r\n").as_deref(),
            Some("a FETCH 1:3 FLAGS\r\n")
        );
        assert_eq!(
            s(b"a UID SEARCH UID $ SUBJECT $ $\r\n").as_deref(),
            Some("a UID SEARCH UID 5:7 SUBJECT $ 1:3\r\n")
        );
        assert_eq!(s(b"a COPY 1 $\r\n"), None);
        assert_eq!(
            s(b"a UID EXPUNGE $\r\n").as_deref(),
            Some("a UID EXPUNGE 5:7\r\n")
        );
        assert_eq!(s(b"a SEARCH SUBJECT {1}\r\n$ ALL\r\n"), None);
        assert_eq!(s(b"a NOOP $\r\n"), None);
        // HEADER takes two strings.
        assert_eq!(
            s(b"a SEARCH HEADER X $ $\r\n").as_deref(),
            Some("a SEARCH HEADER X $ 1:3\r\n")
        );
        assert_eq!(
            s(b"a SORT (SUBJECT) UTF-8 $\r\n").as_deref(),
            Some("a SORT (SUBJECT) UTF-8 1:3\r\n")
        );
    }

    #[test]
    fn object_id_search_keys() {
        assert_eq!(
            s(b"a UID SEARCH EMAILID M1a-_ UNSEEN\r\n").as_deref(),
            Some("a UID SEARCH UID eM1a-_ UNSEEN\r\n")
        );
        assert_eq!(
            s(b"a SEARCH OR (threadid T9) emailid M2 NOT EMAILID M3\r\n").as_deref(),
            Some("a SEARCH OR (UID tT9) UID eM2 NOT UID eM3\r\n")
        );
        assert_eq!(
            s(b"a THREAD REFERENCES UTF-8 THREADID T1\r\n").as_deref(),
            Some("a THREAD REFERENCES UTF-8 UID tT1\r\n")
        );
        // As a string argument, or with no valid objectid, it is no key.
        assert_eq!(s(b"a SEARCH SUBJECT EMAILID\r\n"), None);
        assert_eq!(s(b"a SEARCH HEADER EMAILID EMAILID\r\n"), None);
        assert_eq!(s(b"a SEARCH EMAILID \"M1\"\r\n"), None);
        assert_eq!(s(b"a SEARCH EMAILID M+1\r\n"), None);
        let long = format!("a SEARCH EMAILID M{}\r\n", "1".repeat(255));
        assert_eq!(s(long.as_bytes()), None, "over 255 characters");
        // Not in FETCH.
        assert_eq!(s(b"a FETCH 1 EMAILID\r\n"), None);
    }

    #[test]
    fn fetch_object_ids() {
        assert_eq!(pre_decode(b"a FETCH 1:* (FLAGS UID)\r\n"), Outcome::Pass);
        assert_eq!(
            pre(b"a UID FETCH 1:* (FLAGS EMAILID BODY.PEEK[HEADER.FIELDS (EMAILID X)]<0.5> threadid) (CHANGEDSINCE 4)\r\n"),
            Extended::Fetch {
                plain: b"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (EMAILID X)]<0.5>) (CHANGEDSINCE 4)\r\n".to_vec(),
                objects: FetchObjects {
                    emailid: true,
                    threadid: true
                },
                stand_in: false,
            }
        );
        assert_eq!(
            pre(b"a FETCH 2 EMAILID\r\n"),
            Extended::Fetch {
                plain: b"a FETCH 2 (UID)\r\n".to_vec(),
                objects: FetchObjects {
                    emailid: true,
                    threadid: false
                },
                stand_in: true,
            }
        );
        assert_eq!(
            pre(b"a FETCH 2 (THREADID BODY[HEADER.FIELDS ({7}\r\nSubject)])\r\n"),
            Extended::Fetch {
                plain: b"a FETCH 2 (BODY[HEADER.FIELDS ({7}\r\nSubject)])\r\n".to_vec(),
                objects: FetchObjects {
                    emailid: false,
                    threadid: true
                },
                stand_in: false,
            }
        );
        assert_eq!(
            check_literal(b"a FETCH 2 (EMAILID BODY[HEADER.FIELDS ({7}\r\n"),
            Some(Ok("a".into()))
        );
        assert!(matches!(
            pre_decode(b"a FETCH 1 (EMAILID BODY[TEXT\r\n"),
            Outcome::Bad { .. }
        ));
        assert!(matches!(
            pre_decode(b"a FETCH 1 (EMAILID\r\n"),
            Outcome::Bad { .. }
        ));
    }

    #[test]
    fn status_mailboxid() {
        assert_eq!(pre_decode(b"a STATUS INBOX (MESSAGES)\r\n"), Outcome::Pass);
        assert_eq!(
            pre(b"a STATUS \"My Box\" (MESSAGES mailboxid UIDNEXT)\r\n"),
            Extended::Status {
                mailbox: b"My Box".to_vec(),
                items: StatusItems {
                    names: vec![StatusDataItemName::Messages, StatusDataItemName::UidNext],
                    mailboxid: true,
                },
            }
        );
        assert_eq!(
            pre(b"a STATUS x (MAILBOXID)\r\n"),
            Extended::Status {
                mailbox: b"x".to_vec(),
                items: StatusItems {
                    names: vec![],
                    mailboxid: true,
                },
            }
        );
        assert_eq!(reason(b"a STATUS x ()\r\n"), "Bad STATUS items");
        assert_eq!(
            reason(b"a STATUS x (MAILBOXID NOPE)\r\n"),
            "Bad STATUS items"
        );
        let Extended::List { ret, .. } = pre(b"a LIST \"\" * RETURN (STATUS (MAILBOXID))\r\n")
        else {
            panic!("not a LIST");
        };
        assert_eq!(
            ret.status,
            Some(StatusItems {
                names: vec![],
                mailboxid: true
            })
        );
    }

    #[test]
    fn utf8_append() {
        assert_eq!(
            pre(b"a APPEND INBOX (\\Seen) utf8 (~{2}\r\nhi)\r\n"),
            Extended::Append {
                messages: vec![literal(b"a APPEND INBOX (\\Seen) ~{2}\r\nhi\r\n")],
                utf8: true,
            }
        );
        assert_eq!(
            pre(b"a APPEND INBOX {1+}\r\nx UTF8 (~{2+}\r\nhi)\r\n"),
            Extended::Append {
                messages: vec![
                    literal(b"a APPEND INBOX {1+}\r\nx\r\n"),
                    literal(b"a APPEND INBOX ~{2+}\r\nhi\r\n")
                ],
                utf8: true,
            }
        );
        assert_eq!(
            check_literal(b"a APPEND INBOX UTF8 (~{5}\r\n"),
            Some(Ok("a".into()))
        );
        assert_eq!(
            reason(b"a APPEND INBOX UTF8 (~{2}\r\nhi\r\n"),
            "Expected ')' closing the UTF8 data"
        );
        assert!(matches!(
            pre_decode(b"a APPEND INBOX UTF8 {2}\r\nhi\r\n"),
            Outcome::Bad { .. }
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = pre_decode(&bytes);
            let _ = check_literal(&bytes);
            let found = slots(&bytes);
            let filled: Vec<_> = found.into_iter().map(|(at, _)| (at, "1".to_string())).collect();
            let _ = splice(&bytes, &filled);
        }

        #[test]
        fn command_shaped_input_never_panics(
            name in "(UID SEARCH|SEARCH|LIST|CREATE|APPEND|UID FETCH|FETCH|STATUS|STORE|UID EXPUNGE|SORT|THREAD) ",
            args in "([ -~]|\r\n|\\{[0-9]{1,3}\\+?\\}\r\n|EMAILID |THREADID |MAILBOXID|UTF8 \\(|CATENATE \\(|TEXT |URL |~|\\[|\\]){0,40}",
        ) {
            let line = format!("t {name}{args}\r\n");
            let _ = pre_decode(line.as_bytes());
            let _ = check_literal(line.as_bytes());
            let found = slots(line.as_bytes());
            let filled: Vec<_> = found.into_iter().map(|(at, _)| (at, "1:*".to_string())).collect();
            let _ = splice(line.as_bytes(), &filled);
        }

        /// The object id items and keys come off or out whole, whatever
        /// surrounds them.
        #[test]
        fn object_ids_are_found_among_other_items(
            before in proptest::collection::vec("(FLAGS|UID|RFC822\\.SIZE|BODY\\.PEEK\\[HEADER\\.FIELDS \\(A B\\)\\]<0\\.9>)", 0..4),
            after in proptest::collection::vec("(FLAGS|ENVELOPE|BODY\\[1\\.MIME\\])", 0..4),
            id in "[A-Za-z0-9_-]{1,40}",
        ) {
            let items = [before.clone(), vec!["EMAILID".into()], after.clone()].concat().join(" ");
            let line = format!("t FETCH 1:* ({items})\r\n");
            let Outcome::Pre(Pre { command: Extended::Fetch { plain, objects, stand_in }, .. }) = pre_decode(line.as_bytes()) else {
                panic!("{line}");
            };
            let rest = [before, after].concat();
            prop_assert!(objects.emailid && !objects.threadid);
            prop_assert_eq!(stand_in, rest.is_empty());
            let kept = if rest.is_empty() { "UID".to_string() } else { rest.join(" ") };
            prop_assert_eq!(plain, format!("t FETCH 1:* ({kept})\r\n").into_bytes());
            let search = format!("t UID SEARCH NOT THREADID {id} UNSEEN\r\n");
            let found = slots(search.as_bytes());
            prop_assert_eq!(found.len(), 1);
            prop_assert_eq!(found.first().map(|(_, s)| s.clone()), Some(Slot::ThreadId(id)));
        }
    }
}

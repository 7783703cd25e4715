//! A small blocking IMAP client for the end-to-end tests: logs in over
//! plain text (the tests' config allows it), runs commands to their tagged
//! answer, and keeps the selected mailbox's view (UIDs and flags by
//! sequence number) from nothing but the server's untagged responses, as a
//! real client must.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One message as a session sees it: UID and flags (without `\Recent`,
/// which only one session may see).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub uid: Option<u32>,
    pub flags: Option<BTreeSet<String>>,
}

pub type View = Vec<(u32, BTreeSet<String>)>;

/// A plain-text IMAP session with its view of the selected mailbox.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
    pub view: Vec<Entry>,
    rng: u64,
}

impl Session {
    /// Connects, logs in as `user` and selects INBOX; `seed` drives
    /// [`Session::random`].
    pub fn connect(port: u16, user: &str, password: &str, seed: u64) -> Result<Self, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut s = Session {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
            view: Vec::new(),
            rng: seed | 1,
        };
        let greeting = s.line()?;
        if !greeting.starts_with("* OK") {
            return Err(format!("greeting: {greeting}"));
        }
        s.ok(&format!("LOGIN {user} \"{password}\""))?;
        s.ok("SELECT INBOX")?;
        Ok(s)
    }

    pub fn random(&mut self, below: usize) -> usize {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % below.max(1) as u64) as usize
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| format!("write: {e}"))
    }

    /// Sends a command and reads to its tagged answer, applying every
    /// untagged response; the answer must be OK.
    pub fn ok(&mut self, command: &str) -> Result<String, String> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        self.send(&format!("{tag} {command}\r\n"))?;
        self.until_tagged(&tag, command)
    }

    /// Sends a command and returns every line the server sent before its
    /// tagged OK (the lines of literals among them), applying the
    /// untagged responses as [`Session::ok`] does.
    pub fn lines(&mut self, command: &str) -> Result<Vec<String>, String> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        self.send(&format!("{tag} {command}\r\n"))?;
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return match rest.starts_with("OK") {
                    true => Ok(lines),
                    false => Err(format!("{command} → {line}")),
                };
            }
            self.untagged(&line)?;
            lines.push(line);
        }
    }

    fn until_tagged(&mut self, tag: &str, command: &str) -> Result<String, String> {
        loop {
            let line = self.line()?;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return match rest.starts_with("OK") {
                    true => Ok(rest.to_string()),
                    false => Err(format!("{command} → {line}")),
                };
            }
            self.untagged(&line)?;
        }
    }

    /// Applies one untagged response to the view; a BYE ends the session
    /// (its line is the error).
    fn untagged(&mut self, line: &str) -> Result<(), String> {
        if line.starts_with("* BYE") {
            return Err(line.to_string());
        }
        let mut words = line.splitn(4, ' ');
        let (Some("*"), Some(n), Some(kind)) = (words.next(), words.next(), words.next()) else {
            return Ok(());
        };
        let Ok(n) = n.parse::<usize>() else {
            return Ok(());
        };
        match kind {
            "EXISTS" if n >= self.view.len() => self.view.resize(n, Entry::default()),
            "EXISTS" => return Err(format!("EXISTS went down to {n}: {line}")),
            "EXPUNGE" if (1..=self.view.len()).contains(&n) => {
                self.view.remove(n - 1);
            }
            "EXPUNGE" => return Err(format!("EXPUNGE of an unknown number: {line}")),
            "FETCH" => {
                let entry = self
                    .view
                    .get_mut(n.wrapping_sub(1))
                    .ok_or_else(|| format!("FETCH of an unknown number: {line}"))?;
                let data = words.next().unwrap_or_default();
                if let Some(uid) = item(data, "UID ") {
                    let uid = uid.split([' ', ')']).next().unwrap_or_default();
                    entry.uid = Some(uid.parse().map_err(|_| format!("bad UID: {line}"))?);
                }
                if let Some(flags) = item(data, "FLAGS (") {
                    let list = flags.split(')').next().unwrap_or_default();
                    entry.flags = Some(
                        list.split_whitespace()
                            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                            .map(|f| f.to_ascii_lowercase())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn known_uid(&mut self) -> Option<u32> {
        let known: Vec<u32> = self.view.iter().filter_map(|e| e.uid).collect();
        (!known.is_empty()).then(|| known[self.random(known.len())])
    }

    /// APPENDs a small message to `mailbox` (a synchronizing literal).
    pub fn append(&mut self, mailbox: &str) -> Result<(), String> {
        let body = format!(
            "Subject: appended {}\r\nFrom: a@example.org\r\n\r\nbody\r\n",
            self.rng
        );
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        self.send(&format!("{tag} APPEND {mailbox} {{{}}}\r\n", body.len()))?;
        loop {
            let line = self.line()?;
            if line.starts_with('+') {
                break;
            }
            if line.starts_with(&tag) {
                return Err(format!("APPEND refused: {line}"));
            }
            self.untagged(&line)?;
        }
        self.send(&body)?;
        self.send("\r\n")?;
        self.until_tagged(&tag, "APPEND").map(drop)
    }

    pub fn idle(&mut self) -> Result<(), String> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        self.send(&format!("{tag} IDLE\r\n"))?;
        let cont = self.line()?;
        if !cont.starts_with('+') {
            return Err(format!("IDLE: {cont}"));
        }
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err("closed during IDLE".into()),
                Ok(_) => self.untagged(line.trim_end())?,
                // Quiet for 100 ms: done idling (a partial line stays in
                // the reader's buffer and is finished below).
                Err(_) if line.is_empty() => break,
                Err(e) => return Err(format!("IDLE read: {e}")),
            }
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        self.send("DONE\r\n")?;
        self.until_tagged(&tag, "IDLE").map(drop)
    }

    /// NOOP, then fetches what the untagged EXISTS left unknown; the view.
    pub fn settle(&mut self) -> Result<View, String> {
        self.ok("NOOP")?;
        if let Some(first) = self
            .view
            .iter()
            .position(|e| e.uid.is_none() || e.flags.is_none())
        {
            self.ok(&format!("FETCH {}:* (UID FLAGS)", first + 1))?;
        }
        self.view
            .iter()
            .map(|e| match (e.uid, &e.flags) {
                (Some(uid), Some(flags)) => Ok((uid, flags.clone())),
                _ => Err(format!("an entry is still unknown: {e:?}")),
            })
            .collect()
    }
}

/// What follows `key` in a FETCH response's item list, where `key` starts
/// an item (after `(` or a space).
fn item<'a>(data: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = data.get(from..)?.find(key) {
        let at = from + at;
        let starts_item = at == 0 || matches!(data.as_bytes().get(at - 1), Some(b'(' | b' '));
        if starts_item {
            return data.get(at + key.len()..);
        }
        from = at + key.len();
    }
    None
}

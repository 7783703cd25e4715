//! The signature database: its text format, its parser and its matcher.
//!
//! # Format
//!
//! A UTF-8 text file, one signature a line; blank lines and lines starting
//! with `#` are ignored; a trailing CR is ignored. A line's kind is told by
//! its number of `:`-separated fields, so Cairn's own lines and the
//! supported subset of ClamAV's `.ndb` and `.hdb` lines can be mixed (or a
//! ClamAV file concatenated as is):
//!
//! | fields | form | meaning |
//! |---|---|---|
//! | 2 | `Name:HexBytes` | Cairn body signature: the bytes anywhere in the raw message or in any decoded MIME part |
//! | 3 | `MD5:Size:Name` | ClamAV `.hdb`: the MD5 (32 hex digits) of a whole decoded part of `Size` bytes (`*`: any size) |
//! | 4–6 | `Name:TargetType:Offset:HexBytes[:MinFL[:MaxFL]]` | ClamAV `.ndb` body signature; `Offset` must be `*`; the target type and the engine levels are accepted and ignored (every part is scanned) |
//!
//! `HexBytes` is pairs of hex digits, optionally split by `*` ("any number
//! of any bytes"): `4d5a*50450000` is `MZ`, anything, `PE\0\0`. Each piece
//! between `*`s has at least [`MIN_PIECE`] bytes and the first at least
//! [`MIN_FIRST_PIECE`]; ClamAV's other wildcards (`??`, `{n-m}`, `(a|b)`,
//! `!`, `[n-m]`) are refused with the line's number. A name is 1 to
//! [`MAX_NAME`] printable characters without spaces.
//!
//! Limits: a file of at most [`MAX_FILE_BYTES`], at most
//! [`MAX_SIGNATURES`] signatures of at most [`MAX_SIGNATURE_BYTES`] bytes.
//!
//! The EICAR test signature ([`EICAR_NAME`], the 68-byte [`EICAR`]
//! string) is always present, whatever the file holds.
//!
//! # Matching
//!
//! The first piece of every body signature goes into one Aho-Corasick
//! automaton: one pass over the bytes whatever the number of signatures.
//! At the earliest occurrence of a first piece, the signature's other
//! pieces are looked for in order after it (`memmem`), which finds a match
//! whenever there is one. MD5 signatures are looked up in a hash map, and a
//! part is hashed only when its size is one that some signature has.

use std::collections::{HashMap, HashSet};
use std::fmt;

use aho_corasick::AhoCorasick;
use md5::{Digest, Md5};

/// The EICAR anti-virus test file (68 bytes).
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The name the EICAR signature is reported under (ClamAV's name).
pub const EICAR_NAME: &str = "Eicar-Test-Signature";
/// The largest database file accepted.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// The most signatures in one database.
pub const MAX_SIGNATURES: usize = 500_000;
/// The most bytes in one body signature (all pieces together).
pub const MAX_SIGNATURE_BYTES: usize = 4096;
/// The longest signature name.
pub const MAX_NAME: usize = 128;
/// The fewest bytes of every piece between `*`s.
pub const MIN_PIECE: usize = 2;
/// The fewest bytes of a body signature's first piece.
pub const MIN_FIRST_PIECE: usize = 4;
/// The most line errors reported for one file.
const MAX_ERRORS: usize = 20;

/// One thing wrong with a database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line, from 1; 0 for the whole file.
    pub line: usize,
    pub message: String,
}

/// Why a database was refused: its errors, with their line numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvdbError {
    /// Where the text came from (a path, or `built-in`).
    pub source: String,
    pub errors: Vec<LineError>,
}

impl fmt::Display for AvdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line == 0 {
                write!(f, "{}: {}", self.source, e.message)?;
            } else {
                write!(f, "{}:{}: {}", self.source, e.line, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for AvdbError {}

/// A body signature: pieces that must appear in order.
#[derive(Debug, Clone)]
struct BodySig {
    name: String,
    /// The pieces after the first (the first is in the automaton).
    rest: Vec<Vec<u8>>,
}

/// A loaded signature database. Immutable; share it behind an `Arc`.
pub struct Signatures {
    body: Vec<BodySig>,
    /// Over the distinct first pieces.
    automaton: AhoCorasick,
    /// Automaton pattern → the body signatures starting with it.
    by_first: Vec<Vec<usize>>,
    /// MD5 → (size or any, name).
    hashes: HashMap<[u8; 16], Vec<(Option<u64>, String)>>,
    hash_sizes: HashSet<u64>,
    hash_any_size: bool,
    source: String,
}

impl fmt::Debug for Signatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signatures")
            .field("source", &self.source)
            .field("body", &self.body.len())
            .field("hashes", &self.hash_count())
            .finish()
    }
}

/// Signatures as parsed, before the automaton is built.
#[derive(Default)]
struct Parsed {
    body: Vec<(String, Vec<Vec<u8>>)>,
    hashes: Vec<([u8; 16], Option<u64>, String)>,
}

impl Parsed {
    fn count(&self) -> usize {
        self.body.len() + self.hashes.len()
    }
}

impl Signatures {
    /// The built-in database: the EICAR signature only.
    pub fn builtin() -> Self {
        // The built-in set is known-good; building it cannot fail.
        match Self::build(Parsed::default(), "built-in".to_string()) {
            Ok(s) => s,
            Err(e) => unreachable!("the built-in signatures build: {e}"),
        }
    }

    /// Parses a database file's text; `source` names it in errors and in
    /// [`Signatures::source`]. The EICAR signature is added.
    pub fn parse(text: &[u8], source: &str) -> Result<Self, AvdbError> {
        let fail = |errors| AvdbError {
            source: source.to_string(),
            errors,
        };
        if text.len() > MAX_FILE_BYTES {
            return Err(fail(vec![LineError {
                line: 0,
                message: format!(
                    "the file has {} bytes, more than the limit of {MAX_FILE_BYTES}",
                    text.len()
                ),
            }]));
        }
        let mut parsed = Parsed::default();
        let mut errors = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let result = std::str::from_utf8(raw)
                .map_err(|_| "the line is not UTF-8".to_string())
                .and_then(|l| parse_line(l.trim(), &mut parsed));
            if let Err(message) = result {
                errors.push(LineError { line, message });
                if errors.len() >= MAX_ERRORS {
                    errors.push(LineError {
                        line: 0,
                        message: "too many errors; stopped".to_string(),
                    });
                    break;
                }
            }
            if parsed.count() > MAX_SIGNATURES {
                errors.push(LineError {
                    line,
                    message: format!("more than {MAX_SIGNATURES} signatures"),
                });
                break;
            }
        }
        if !errors.is_empty() {
            return Err(fail(errors));
        }
        Self::build(parsed, source.to_string())
    }

    fn build(mut parsed: Parsed, source: String) -> Result<Self, AvdbError> {
        parsed
            .body
            .insert(0, (EICAR_NAME.to_string(), vec![EICAR.to_vec()]));
        let mut firsts: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut by_first: Vec<Vec<usize>> = Vec::new();
        let mut body = Vec::with_capacity(parsed.body.len());
        for (name, mut pieces) in parsed.body {
            if pieces.is_empty() {
                continue;
            }
            let first = pieces.remove(0);
            let id = *index.entry(first.clone()).or_insert_with(|| {
                firsts.push(first);
                by_first.push(Vec::new());
                firsts.len() - 1
            });
            if let Some(list) = by_first.get_mut(id) {
                list.push(body.len());
            }
            body.push(BodySig { name, rest: pieces });
        }
        let automaton = AhoCorasick::new(&firsts).map_err(|e| AvdbError {
            source: source.clone(),
            errors: vec![LineError {
                line: 0,
                message: format!("cannot build the matcher: {e}"),
            }],
        })?;
        let mut hashes: HashMap<[u8; 16], Vec<(Option<u64>, String)>> = HashMap::new();
        let mut hash_sizes = HashSet::new();
        let mut hash_any_size = false;
        for (md5, size, name) in parsed.hashes {
            match size {
                Some(s) => {
                    hash_sizes.insert(s);
                }
                None => hash_any_size = true,
            }
            hashes.entry(md5).or_default().push((size, name));
        }
        Ok(Self {
            body,
            automaton,
            by_first,
            hashes,
            hash_sizes,
            hash_any_size,
            source,
        })
    }

    /// Where the database came from (a path, or `built-in`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many signatures, the built-in EICAR one included.
    pub fn len(&self) -> usize {
        self.body.len() + self.hash_count()
    }

    /// Never true: EICAR is always there.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash_count(&self) -> usize {
        self.hashes.values().map(Vec::len).sum()
    }

    /// The name of a body signature found in `data`, if any.
    pub fn match_body(&self, data: &[u8]) -> Option<&str> {
        // First pieces already seen: only their earliest occurrence counts
        // (allocated on the first match; most buffers have none).
        let mut checked: HashSet<usize> = HashSet::new();
        for m in self.automaton.find_overlapping_iter(data) {
            let id = m.pattern().as_usize();
            if !checked.insert(id) {
                continue;
            }
            let after = data.get(m.end()..).unwrap_or_default();
            for &sig in self.by_first.get(id).map(Vec::as_slice).unwrap_or_default() {
                let Some(sig) = self.body.get(sig) else {
                    continue;
                };
                if pieces_in_order(after, &sig.rest) {
                    return Some(&sig.name);
                }
            }
        }
        None
    }

    /// The name of an MD5 signature of the whole of `data`, if any.
    pub fn match_hash(&self, data: &[u8]) -> Option<&str> {
        if self.hashes.is_empty() {
            return None;
        }
        let size = data.len() as u64;
        if !self.hash_any_size && !self.hash_sizes.contains(&size) {
            return None;
        }
        let digest: [u8; 16] = Md5::digest(data).into();
        self.hashes
            .get(&digest)?
            .iter()
            .find(|(s, _)| s.is_none_or(|s| s == size))
            .map(|(_, name)| name.as_str())
    }
}

/// Whether `pieces` occur in `data` in order, without overlapping.
fn pieces_in_order(mut data: &[u8], pieces: &[Vec<u8>]) -> bool {
    for piece in pieces {
        match memchr::memmem::find(data, piece) {
            Some(at) => data = data.get(at + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

fn parse_line(line: &str, out: &mut Parsed) -> Result<(), String> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    let fields: Vec<&str> = line.split(':').collect();
    match fields.as_slice() {
        [name, hex] => {
            let name = parse_name(name)?;
            let pieces = parse_hex_signature(hex)?;
            out.body.push((name, pieces));
        }
        [hash, size, name] => {
            let name = parse_name(name)?;
            let md5 = parse_md5(hash)?;
            let size =
                match *size {
                    "*" => None,
                    s => Some(s.parse::<u64>().map_err(|_| {
                        format!("hash signature: the size {s:?} is not a number or *")
                    })?),
                };
            out.hashes.push((md5, size, name));
        }
        [name, target, offset, hex, levels @ ..] if levels.len() <= 2 => {
            let name = parse_name(name)?;
            match target.parse::<u32>() {
                Ok(t) if t <= 14 => {}
                _ => return Err(format!("ndb signature: bad target type {target:?}")),
            }
            if *offset != "*" {
                return Err(format!(
                    "ndb signature: offset {offset:?} is not supported (only *)"
                ));
            }
            for level in levels {
                if !level.is_empty() && level.parse::<u32>().is_err() {
                    return Err(format!("ndb signature: bad engine level {level:?}"));
                }
            }
            let pieces = parse_hex_signature(hex)?;
            out.body.push((name, pieces));
        }
        _ => {
            return Err(format!(
            "expected Name:HexBytes, MD5:Size:Name or Name:Target:Offset:HexBytes, got {} fields",
            fields.len()
        ))
        }
    }
    Ok(())
}

fn parse_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("the signature name is empty".to_string());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!(
            "the signature name is longer than {MAX_NAME} characters"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the signature name {name:?} has spaces or control characters"
        ));
    }
    Ok(name.to_string())
}

fn parse_md5(hash: &str) -> Result<[u8; 16], String> {
    match hash.len() {
        32 => {}
        40 | 64 => return Err("only MD5 hash signatures (.hdb) are supported, not SHA".to_string()),
        n => return Err(format!("hash signature: {n} hex digits, expected 32 (MD5)")),
    }
    let bytes = decode_hex(hash).map_err(|e| format!("hash signature: {e}"))?;
    <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| "hash signature: not 16 bytes".to_string())
}

fn parse_hex_signature(hex: &str) -> Result<Vec<Vec<u8>>, String> {
    if let Some(c) = hex.chars().find(|c| "?{}()[]|!".contains(*c)) {
        return Err(format!(
            "the wildcard {c:?} is not supported (only * between hex bytes)"
        ));
    }
    let mut pieces = Vec::new();
    let mut total = 0usize;
    for (i, piece) in hex.split('*').enumerate() {
        let bytes = decode_hex(piece)?;
        let min = if i == 0 { MIN_FIRST_PIECE } else { MIN_PIECE };
        if bytes.len() < min {
            return Err(format!(
                "piece {} of the signature has {} bytes, fewer than {min}",
                i + 1,
                bytes.len()
            ));
        }
        total += bytes.len();
        if total > MAX_SIGNATURE_BYTES {
            return Err(format!(
                "the signature is longer than {MAX_SIGNATURE_BYTES} bytes"
            ));
        }
        pieces.push(bytes);
    }
    Ok(pieces)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {hex:?}"));
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let nibble = |d: u8| (d as char).to_digit(16);
            match (
                pair.first().and_then(|&d| nibble(d)),
                pair.get(1).and_then(|&d| nibble(d)),
            ) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(format!(
                    "{:?} is not a hex byte",
                    String::from_utf8_lossy(pair)
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn eicar_is_always_there() {
        let s = Signatures::builtin();
        assert_eq!(s.len(), 1);
        assert_eq!(EICAR.len(), 68);
        assert_eq!(s.match_body(EICAR), Some(EICAR_NAME));
        let s = Signatures::parse(b"# nothing\n", "f").expect("parse");
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.match_body(&[b"xx", EICAR, b"yy"].concat()),
            Some(EICAR_NAME)
        );
        assert_eq!(s.match_body(&EICAR[..67]), None);
    }

    #[test]
    fn parses_every_kind_of_line() {
        let md5 = hex(&Md5::digest(b"evil payload"));
        let text = format!(
            "# Cairn test database\r\n\
             \n\
             Cairn.Test.Plain:{}\r\n\
             Cairn.Test.Wild:6d616c77*77617265\n\
             Clam.Ndb:0:*:{}\n\
             Clam.Ndb6:1:*:{}:51:255\n\
             {md5}:12:Clam.Hdb\n\
             {md5}:*:Clam.Hdb.Any\n",
            hex(b"bad-bytes-here"),
            hex(b"ndb-pattern"),
            hex(b"ndb6-pattern"),
        );
        let s = Signatures::parse(text.as_bytes(), "test.db").expect("parse");
        assert_eq!(s.len(), 7);
        assert_eq!(s.source(), "test.db");
        assert_eq!(
            s.match_body(b"..bad-bytes-here.."),
            Some("Cairn.Test.Plain")
        );
        assert_eq!(
            s.match_body(b"a malw--- some ---ware"),
            Some("Cairn.Test.Wild")
        );
        assert_eq!(s.match_body(b"a warem malw"), None);
        assert_eq!(s.match_body(b"malware"), None, "pieces must not overlap");
        assert_eq!(s.match_body(b"malwware"), Some("Cairn.Test.Wild"));
        assert_eq!(s.match_body(b"x ndb-pattern"), Some("Clam.Ndb"));
        assert_eq!(s.match_body(b"x ndb6-pattern"), Some("Clam.Ndb6"));
        assert_eq!(s.match_hash(b"evil payload"), Some("Clam.Hdb"));
        assert_eq!(s.match_hash(b"evil payload!"), None);
        assert_eq!(s.match_body(b"nothing at all"), None);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let text = "# ok\nGood:41424344\nBad:4142zz\nNoHex\nShort:41\nWild:4142??4344\nX:1:100:41424344\n\
                    0123:5:Name\n0123456789abcdef0123456789abcdef01234567:5:Sha\nhas space:41424344\n";
        let err = Signatures::parse(text.as_bytes(), "bad.db").expect_err("invalid");
        let lines: Vec<usize> = err.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8, 9, 10], "{err}");
        let shown = err.to_string();
        assert!(shown.contains("bad.db:3:"), "{shown}");
        assert!(shown.contains("not supported"), "{shown}");
        assert!(shown.contains("SHA"), "{shown}");
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let err = Signatures::parse(&big, "big").expect_err("too big");
        assert_eq!(err.errors.first().map(|e| e.line), Some(0));
        let long = format!("Long:{}", "41".repeat(MAX_SIGNATURE_BYTES + 1));
        assert!(Signatures::parse(long.as_bytes(), "l").is_err());
        let name = format!("{}:41424344", "n".repeat(MAX_NAME + 1));
        assert!(Signatures::parse(name.as_bytes(), "n").is_err());
        assert!(Signatures::parse(b"\xff\xfe:41424344", "u").is_err());
        let many: String = (0..30).map(|i| format!("Bad{i}:zz\n")).collect();
        let err = Signatures::parse(many.as_bytes(), "m").expect_err("bad");
        assert!(err.errors.len() <= MAX_ERRORS + 1);
    }

    #[test]
    fn thousands_of_signatures_match_in_one_pass() {
        let text: String = (0..5000)
            .map(|i| {
                format!(
                    "Sig.{i}:{}\n",
                    hex(format!("signature-number-{i:05}").as_bytes())
                )
            })
            .collect();
        let s = Signatures::parse(text.as_bytes(), "many").expect("parse");
        assert_eq!(s.len(), 5001);
        let mut data = vec![b'a'; 1 << 20];
        assert_eq!(s.match_body(&data), None);
        data.extend_from_slice(b"signature-number-04321");
        assert_eq!(s.match_body(&data), Some("Sig.4321"));
    }
}

//! Message flags: the five system flags as bits and keywords as names
//! (case-insensitive, as IMAP compares them).

use serde::{Deserialize, Serialize};

/// `\Seen`.
pub const SEEN: u8 = 1;
/// `\Answered`.
pub const ANSWERED: u8 = 2;
/// `\Flagged`.
pub const FLAGGED: u8 = 4;
/// `\Deleted`.
pub const DELETED: u8 = 8;
/// `\Draft`.
pub const DRAFT: u8 = 16;

/// Most keywords one message may carry.
pub const MAX_KEYWORDS: usize = 64;

/// A message's flags.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Flags {
    /// System flags, as the bits above.
    pub system: u8,
    /// Keywords, lower-cased, sorted, without duplicates.
    pub keywords: Vec<String>,
}

/// How a STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    /// Set exactly these.
    Replace,
    /// Add these.
    Add,
    /// Remove these.
    Remove,
}

impl Flags {
    /// Flags with these system bits and keywords (normalised).
    pub fn new(system: u8, keywords: &[&str]) -> Self {
        let mut f = Flags {
            system: system & 0x1f,
            keywords: Vec::new(),
        };
        for k in keywords {
            f.insert_keyword(k);
        }
        f
    }

    fn insert_keyword(&mut self, k: &str) {
        let k = k.to_ascii_lowercase();
        if let Err(at) = self.keywords.binary_search(&k) {
            self.keywords.insert(at, k);
        }
    }

    /// Whether `\Seen` is set.
    pub fn seen(&self) -> bool {
        self.system & SEEN != 0
    }

    /// Whether `\Deleted` is set.
    pub fn deleted(&self) -> bool {
        self.system & DELETED != 0
    }

    /// The flags after `action` with `with`.
    pub fn apply(&self, action: FlagAction, with: &Flags) -> Flags {
        match action {
            FlagAction::Replace => with.clone(),
            FlagAction::Add => {
                let mut out = self.clone();
                out.system |= with.system;
                for k in &with.keywords {
                    out.insert_keyword(k);
                }
                out
            }
            FlagAction::Remove => Flags {
                system: self.system & !with.system,
                keywords: self
                    .keywords
                    .iter()
                    .filter(|k| with.keywords.binary_search(k).is_err())
                    .cloned()
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive_and_actions_compose() {
        let a = Flags::new(SEEN, &["$Label1", "work"]);
        let b = Flags::new(FLAGGED, &["WORK", "home"]);
        let added = a.apply(FlagAction::Add, &b);
        assert_eq!(
            added,
            Flags::new(SEEN | FLAGGED, &["$label1", "home", "work"])
        );
        let removed = added.apply(FlagAction::Remove, &Flags::new(SEEN, &["Home"]));
        assert_eq!(removed, Flags::new(FLAGGED, &["$label1", "work"]));
        assert_eq!(removed.apply(FlagAction::Replace, &a), a);
    }
}

//! STORE and UID STORE: `+FLAGS`, `-FLAGS`, `FLAGS`, `.SILENT`, and
//! UNCHANGEDSINCE with `[MODIFIED …]` (RFC 7162). The changed messages'
//! FETCH responses come from the view's sync, unless silenced.

use cairn_storage::mailbox::flags::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN};
use cairn_storage::mailbox::{FlagAction, Flags};
use imap_types::command::StoreModifier;
use imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_types::sequence::SequenceSet;

use super::view::uid_set;
use super::{Reply, Session};

/// The store's flags for flags from the wire; `Err` for a flag that cannot
/// be stored (`\Recent`, unknown system flags).
pub(crate) fn to_flags(flags: &[Flag<'_>]) -> Result<Flags, Reply> {
    let mut system = 0;
    let mut keywords = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => system |= SEEN,
            Flag::Answered => system |= ANSWERED,
            Flag::Flagged => system |= FLAGGED,
            Flag::Deleted => system |= DELETED,
            Flag::Draft => system |= DRAFT,
            Flag::Keyword(k) => keywords.push(k.as_ref()),
            Flag::Extension(_) => return Err(Reply::bad("Unknown system flag")),
        }
    }
    Ok(Flags::new(system, &keywords))
}

impl Session<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store(
        &mut self,
        account: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Reply {
        let Some(view) = &self.selected else {
            return Reply::bad("No mailbox selected");
        };
        if view.read_only {
            return Reply::no("READ-ONLY", "The mailbox is read-only");
        }
        let with = match to_flags(flags) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let action = match kind {
            StoreType::Add => FlagAction::Add,
            StoreType::Remove => FlagAction::Remove,
            StoreType::Replace => FlagAction::Replace,
        };
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(v)| *v)
            .next();
        if unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let targets = view.resolve(set, uid);
        let uids: Vec<u32> = targets.iter().map(|(_, u)| *u).collect();
        let mailbox = view.mailbox.clone();
        let stored = match self
            .inner
            .services
            .mailstore
            .store_flags(account, &mailbox, &uids, action, &with, unchanged_since)
            .await
        {
            Ok(s) => s,
            Err(e) => return Reply::mail(&e),
        };
        if let (StoreResponse::Silent, Some(view)) = (response, &mut self.selected) {
            for (u, _) in &stored.changed {
                view.reported(*u, stored.modseq);
            }
        }
        if stored.modified_since.is_empty() {
            return Reply::ok(if uid {
                "UID STORE completed"
            } else {
                "STORE completed"
            });
        }
        let mut modified: Vec<u32> = if uid {
            stored.modified_since
        } else {
            let view = self.selected.as_ref();
            stored
                .modified_since
                .iter()
                .filter_map(|u| view.and_then(|v| v.seq_of(*u)))
                .collect()
        };
        modified.sort_unstable();
        Reply::ok_code(
            format!("MODIFIED {}", uid_set(&modified)),
            "Conditional STORE failed for some",
        )
    }
}

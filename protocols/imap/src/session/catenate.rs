//! CATENATE (RFC 4469): a message to append put together from literal
//! text and from messages, or sections of them, already stored, named by
//! IMAP URLs (see [`crate::codec::imapurl`]) in the logged-in account's
//! own mailboxes. A URL naming nothing here is `NO [BADURL url]`; a
//! result over the APPEND limit is `NO [TOOBIG]`.
//!
//! Sections are cut as FETCH `BODY[section]` cuts them
//! ([`Parsed::find_section`]); a section naming no part does not resolve.

use std::fmt::Display;
use std::num::NonZeroU32;

use cairn_storage::mailbox::canonical;

use super::{Reply, Session};
use crate::codec::extended::CatPart;
use crate::codec::imapurl;
use crate::message::{partial, Parsed};

impl Session<'_> {
    /// The message `parts` make; `budget` is how many bytes the command's
    /// catenated messages may still take, and goes down by this one's.
    pub(super) async fn catenate(
        &self,
        account: &str,
        parts: &[CatPart],
        budget: &mut u64,
    ) -> Result<Vec<u8>, Reply> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                CatPart::Text(text) => add(&mut out, text, budget)?,
                CatPart::Url(url) => add(&mut out, &self.resolve(account, url).await?, budget)?,
            }
        }
        Ok(out)
    }

    /// The bytes `url` names in `account`'s mailboxes.
    async fn resolve(&self, account: &str, url: &[u8]) -> Result<Vec<u8>, Reply> {
        let bad = |why: &dyn Display| {
            let code = format!("BADURL {}", imapurl::response_text(url));
            Reply::no(&code, format!("The URL does not resolve: {why}"))
        };
        let named = imapurl::parse(url).map_err(|e| bad(&e))?;
        if named
            .user
            .as_deref()
            .is_some_and(|user| !user.eq_ignore_ascii_case(account))
        {
            return Err(bad(&"it names another user"));
        }
        let store = &self.inner.services.mailstore;
        let (uidvalidity, blob) = store
            .read_mailbox(account, &canonical(&named.mailbox), |mb| {
                let blob = mb.messages.get(&named.uid.get()).map(|m| m.blob);
                (mb.uidvalidity, blob)
            })
            .map_err(|_| bad(&"no such mailbox"))?;
        if named.uidvalidity.is_some_and(|v| v.get() != uidvalidity) {
            return Err(bad(&"the mailbox's UIDVALIDITY is not the URL's"));
        }
        let blob = blob.ok_or_else(|| bad(&"no such message"))?;
        let raw = store.body(&blob).await.map_err(|e| Reply::mail(&e))?;
        let content = match &named.section {
            None => raw,
            Some(section) => Parsed::parse(&raw)
                .find_section(Some(section))
                .ok_or_else(|| bad(&"no such section"))?
                .into_owned(),
        };
        Ok(match named.partial {
            None => content,
            Some(p) => {
                let length = p.length.unwrap_or(NonZeroU32::MAX);
                partial(&content, Some((p.offset, length))).to_vec()
            }
        })
    }
}

/// Adds `part` to the message, within the budget.
fn add(out: &mut Vec<u8>, part: &[u8], budget: &mut u64) -> Result<(), Reply> {
    let size = part.len() as u64;
    if size > *budget {
        return Err(Reply::no(
            "TOOBIG",
            "The message put together is over the APPEND limit",
        ));
    }
    *budget -= size;
    out.extend_from_slice(part);
    Ok(())
}

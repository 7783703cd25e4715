//! A read-only copy of the whole directory (domains, accounts without their
//! password hashes, lists) made on the directory's shard and shared with the
//! other shards behind an `Arc`, so that address-book searches (LDAP, and
//! later the webmail and ActiveSync GAL) run on the shard that received them
//! without a cross-shard call per entry. A copy is made again only after the
//! directory changed.

use std::sync::Arc;

use super::records::{Accounts, Domains, Lists};
use super::{storage, Account, Directory, DirectoryError, Domain, List};

/// Entries read from the tables per scan step.
const PAGE: usize = 1024;

/// The directory as it was at one generation.
#[derive(Debug, Default)]
pub struct AddressBook {
    /// Bumped by every change to the directory.
    pub generation: u64,
    pub domains: Vec<Domain>,
    /// In address order; `password_hash` is always empty here.
    pub accounts: Vec<Account>,
    pub lists: Vec<List>,
}

impl Directory {
    /// The address book at the current generation: the cached copy when
    /// nothing changed since it was made.
    pub fn address_book(&self) -> Result<Arc<AddressBook>, DirectoryError> {
        let generation = self.generation.get();
        if let Some(book) = self.book.borrow().as_ref() {
            if book.generation == generation {
                return Ok(book.clone());
            }
        }
        let book = Arc::new(AddressBook {
            generation,
            domains: self.scan_all::<Domains>()?,
            accounts: self
                .scan_all::<Accounts>()?
                .into_iter()
                .map(|mut a| {
                    a.password_hash.clear();
                    a
                })
                .collect(),
            lists: self.scan_all::<Lists>()?,
        });
        *self.book.borrow_mut() = Some(book.clone());
        Ok(book)
    }

    pub(super) fn scan_all<T: crate::table::Table<Key = String>>(
        &self,
    ) -> Result<Vec<T::Value>, DirectoryError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .tables
                .scan::<T>(cursor.as_ref(), PAGE)
                .map_err(storage)?;
            let Some((last, _)) = page.last() else {
                return Ok(out);
            };
            cursor = Some(last.clone());
            out.extend(page.into_iter().map(|(_, v)| v));
        }
    }
}

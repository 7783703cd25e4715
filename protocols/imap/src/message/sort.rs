//! SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO): sort keys of a
//! message and the ordering of a result set; ties go to sequence order.
//! Strings compare by i;ascii-casemap (upper-cased); dates are sent dates
//! (Date: header in UTC, else the internal date).

use std::cmp::Ordering;

use chrono::NaiveDate;
use imap_types::extensions::sort::{SortCriterion, SortKey};
use mail_parser::HeaderName;

use super::{envelope::raw_addresses, header::decode, parsed::Parsed, subject::base_subject};

/// One message of a SORT or THREAD result set.
pub struct SortItem<'a> {
    /// What the result lists: the sequence number or the UID.
    pub id: u32,
    /// Its sequence number (breaks ties).
    pub seq: u32,
    /// Its internal date, seconds since the epoch, UTC.
    pub internal_date: i64,
    /// Its size in octets.
    pub size: u64,
    /// The parsed message.
    pub parsed: &'a Parsed<'a>,
}

impl SortItem<'_> {
    /// The sent date (Date: header, UTC), else the internal date.
    pub(crate) fn sent_date(&self) -> i64 {
        let date = self
            .parsed
            .root()
            .parsed(&HeaderName::Date)
            .and_then(|v| v.as_datetime());
        date.and_then(|d| {
            let day = NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())?;
            let local = day.and_hms_opt(d.hour.into(), d.minute.into(), d.second.into())?;
            let offset = i64::from(d.tz_hour) * 3600 + i64::from(d.tz_minute) * 60;
            let utc = local.and_utc().timestamp();
            Some(if d.tz_before_gmt {
                utc + offset
            } else {
                utc - offset
            })
        })
        .unwrap_or(self.internal_date)
    }

    /// The decoded Subject.
    pub(crate) fn subject(&self) -> String {
        self.parsed
            .header_values("Subject")
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    fn key(&self, key: &SortKey) -> Value {
        match key {
            SortKey::Arrival => Value::Number(self.internal_date),
            SortKey::Date => Value::Number(self.sent_date()),
            SortKey::Size => Value::Number(i64::try_from(self.size).unwrap_or(i64::MAX)),
            SortKey::Subject => Value::Text(base_subject(&self.subject()).text),
            SortKey::From => self.address(b"From", false),
            SortKey::To => self.address(b"To", false),
            SortKey::Cc => self.address(b"Cc", false),
            SortKey::DisplayFrom => self.address(b"From", true),
            SortKey::DisplayTo => self.address(b"To", true),
        }
    }

    /// The first address of the field: its mailbox, or (`display`) its
    /// decoded display name when it has one.
    fn address(&self, field: &[u8], display: bool) -> Value {
        let header = self.parsed.bytes(self.parsed.root().header.clone());
        let first = raw_addresses(header, field)
            .into_iter()
            .find(|a| a.host.is_some());
        let text = first
            .map(|a| {
                let name = a
                    .name
                    .filter(|_| display)
                    .map(|n| decode(&n))
                    .filter(|n| !n.is_empty());
                name.unwrap_or_else(|| {
                    String::from_utf8_lossy(&a.mailbox.unwrap_or_default()).into_owned()
                })
            })
            .unwrap_or_default();
        Value::Text(text.to_ascii_uppercase())
    }
}

/// A sort key's value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

/// SORT: the `id`s of `items` (given in sequence order) ordered by
/// `criteria`, ties broken by sequence number.
pub fn sort(criteria: &[SortCriterion], items: &[SortItem<'_>]) -> Vec<u32> {
    let keys: Vec<Vec<Value>> = items
        .iter()
        .map(|item| criteria.iter().map(|c| item.key(&c.key)).collect())
        .collect();
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let by_keys = criteria
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ordering = keys
                    .get(a)
                    .and_then(|k| k.get(i))
                    .cmp(&keys.get(b).and_then(|k| k.get(i)));
                if c.reverse {
                    ordering.reverse()
                } else {
                    ordering
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal);
        by_keys.then_with(|| seq(items, a).cmp(&seq(items, b)))
    });
    order
        .iter()
        .filter_map(|&i| items.get(i).map(|item| item.id))
        .collect()
}

fn seq(items: &[SortItem<'_>], i: usize) -> Option<u32> {
    items.get(i).map(|item| item.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::{crlf, sort_items, thread_set};

    fn sorted(criteria: &[(SortKey, bool)], raws: &[Vec<u8>]) -> Vec<u32> {
        let parsed: Vec<Parsed<'_>> = raws.iter().map(|r| Parsed::parse(r)).collect();
        let items = sort_items(&parsed);
        let criteria: Vec<SortCriterion> = criteria
            .iter()
            .map(|(key, reverse)| SortCriterion {
                reverse: *reverse,
                key: key.clone(),
            })
            .collect();
        sort(&criteria, &items)
    }

    #[test]
    fn subject_date_size_and_arrival() {
        let raws = thread_set();
        assert_eq!(
            sorted(&[(SortKey::Subject, false)], &raws),
            [1, 2, 4, 5, 6, 7, 3, 8, 9]
        );
        assert_eq!(
            sorted(&[(SortKey::Date, false)], &raws),
            [6, 3, 1, 2, 4, 5, 7, 8, 9]
        );
        assert_eq!(
            sorted(&[(SortKey::Date, true)], &raws),
            [9, 8, 7, 5, 4, 2, 1, 3, 6]
        );
        assert_eq!(
            sorted(&[(SortKey::Size, false)], &raws),
            [9, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            sorted(&[(SortKey::Arrival, true)], &raws),
            [1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
        assert_eq!(
            sorted(&[(SortKey::Subject, true), (SortKey::Date, true)], &raws),
            [9, 8, 3, 7, 6, 5, 4, 2, 1]
        );
    }

    #[test]
    fn addresses_by_mailbox_or_display_name() {
        let raws = thread_set();
        // Mailboxes: 1 zed, 2 amy, 3 Bob; the others have no From ("").
        assert_eq!(
            sorted(&[(SortKey::From, false)], &raws),
            [4, 5, 6, 7, 8, 9, 2, 3, 1]
        );
        let raws = vec![
            crlf("From: =?utf-8?q?=C3=89mile?= <a@x>\nTo: Zoe <c@x>\n\n"),
            crlf("From: bert <z@x>\nTo: b@x\nCc: x@y\n\n"),
            crlf("From: c@x\nTo: group: ;, Al <d@x>\n\n"),
        ];
        assert_eq!(sorted(&[(SortKey::DisplayFrom, false)], &raws), [2, 3, 1]);
        assert_eq!(sorted(&[(SortKey::From, false)], &raws), [1, 3, 2]);
        assert_eq!(sorted(&[(SortKey::To, false)], &raws), [2, 1, 3]);
        assert_eq!(sorted(&[(SortKey::DisplayTo, false)], &raws), [3, 2, 1]);
        assert_eq!(sorted(&[(SortKey::Cc, true)], &raws), [2, 1, 3]);
    }
}

//! The titles the box holds complete and verified, and the disk each is
//! on: what the fill server is told, what steering sends players for.
//! The fill adds and removes titles, the hardware watch drops a failed
//! disk's titles and takes a restored disk's back; each change wakes the
//! inventory reporter.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use nearcast_common::control::Inventory as Report;
use nearcast_common::Name;
use tokio::sync::Notify;

use crate::disks::TitleRecord;

#[derive(Default)]
pub struct Inventory {
    /// Title → (disk index, record).
    titles: Mutex<BTreeMap<Name, (usize, TitleRecord)>>,
    /// Wakes the inventory reporter.
    pub changed: Notify,
}

impl Inventory {
    /// Starts from what the disks' records say (the first disk listing a
    /// title keeps it).
    pub fn from_disks(disks: impl IntoIterator<Item = BTreeMap<Name, TitleRecord>>) -> Inventory {
        let mut titles = BTreeMap::new();
        for (i, records) in disks.into_iter().enumerate() {
            for (title, record) in records {
                titles.entry(title).or_insert((i, record));
            }
        }
        Inventory {
            titles: Mutex::new(titles),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, (usize, TitleRecord)>> {
        self.titles.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn held(&self) -> BTreeMap<Name, (usize, TitleRecord)> {
        self.lock().clone()
    }

    pub fn titles(&self) -> Vec<Name> {
        self.lock().keys().cloned().collect()
    }

    /// A title became complete (its record is committed on `disk`).
    pub fn add(&self, disk: usize, record: TitleRecord) {
        self.lock().insert(record.title.clone(), (disk, record));
        self.changed.notify_one();
    }

    pub fn remove(&self, title: &str) -> Option<(usize, TitleRecord)> {
        let out = self.lock().remove(title);
        self.changed.notify_one();
        out
    }

    /// Titles held on disk `disk`.
    pub fn on_disk(&self, disk: usize) -> Vec<Name> {
        self.lock()
            .iter()
            .filter(|(_, (d, _))| *d == disk)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Takes the complete titles of disk `disk` (back in service) in again.
    pub fn take_back(&self, disk: usize, records: BTreeMap<Name, TitleRecord>) {
        let mut titles = self.lock();
        for (title, record) in records {
            titles.entry(title).or_insert((disk, record));
        }
        drop(titles);
        self.changed.notify_one();
    }

    /// What the fill server is told: the titles, with a version that
    /// changes whenever they do.
    pub fn report(&self) -> Report {
        let titles = self.titles();
        let joined: Vec<&str> = titles.iter().map(Name::as_str).collect();
        let version = nearcast_common::sha256_hex(joined.join("\n").as_bytes())[..16].to_string();
        Report { version, titles }
    }
}

//! The running agent's shared state: config, disks, the fill server
//! client, the inventory (complete titles and the disk each is on), the
//! fill's progress and the bandwidth bucket.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nearcast_common::control::Inventory;
use nearcast_common::request_auth::ApplianceKey;
use tokio::sync::Notify;

use crate::bucket::Bucket;
use crate::config::Config;
use crate::disks::{Disk, TitleRecord};
use crate::fill_server::FillServer;
use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("OS updates: {0}")]
    Update(#[from] crate::update::UpdateError),
}

pub struct Agent {
    pub config: Config,
    pub disks: Vec<Disk>,
    pub server: FillServer,
    pub progress: Progress,
    pub bucket: Bucket,
    /// Title → (disk index, record).
    inventory: Mutex<BTreeMap<String, (usize, TitleRecord)>>,
    /// Wakes the inventory reporter.
    pub inventory_changed: Notify,
    /// Wakes the fill loop for an operator's `fill --now`.
    pub fill_requested: Notify,
    /// The next run ignores the window.
    pub forced: AtomicBool,
    /// The hardware monitor and what it last saw.
    pub hardware: crate::health::Hardware,
    /// The BGP speaker, when the config names a router.
    pub bgp: Option<Arc<nearcast_bgp::Speaker>>,
    /// OS updates, on a box running the image.
    pub updater: Option<Arc<crate::update::Updater>>,
    /// A heartbeat reached the fill server since the agent started.
    pub fill_server_answered: AtomicBool,
}

impl Agent {
    pub fn new(config: Config) -> Result<Agent, AgentError> {
        let key_err = |reason: String| AgentError::Key {
            path: config.key_file.display().to_string(),
            reason,
        };
        let der = std::fs::read(&config.key_file).map_err(|e| key_err(e.to_string()))?;
        let key = ApplianceKey::from_pkcs8(&der).map_err(|e| key_err(e.to_string()))?;
        let disks: Vec<Disk> = config.disks.iter().cloned().map(Disk::new).collect();
        let mut inventory = BTreeMap::new();
        for (i, disk) in disks.iter().enumerate() {
            for (title, record) in disk.records() {
                inventory.entry(title).or_insert((i, record));
            }
        }
        let updater = crate::update::Updater::open(&config.update)?.map(Arc::new);
        Ok(Agent {
            updater,
            fill_server_answered: AtomicBool::new(false),
            server: FillServer::new(&config.fill_server, &config.id, key),
            bucket: Bucket::new(config.bandwidth_bytes_per_sec),
            progress: Progress::default(),
            inventory: Mutex::new(inventory),
            inventory_changed: Notify::new(),
            fill_requested: Notify::new(),
            forced: AtomicBool::new(false),
            hardware: crate::health::Hardware::new(&config),
            bgp: config.bgp.as_ref().map(|b| {
                nearcast_bgp::Speaker::new(nearcast_bgp::Neighbor {
                    address: b.neighbor,
                    local_address: b.local_address,
                    local_as: b.local_as,
                    peer_as: b.peer_as,
                    router_id: b.router_id,
                    hold_time: b.hold_time,
                    max_prefixes: b.max_prefixes,
                    md5_password: b.md5_password.clone(),
                })
            }),
            config,
            disks,
        })
    }

    fn inv(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (usize, TitleRecord)>> {
        self.inventory.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn held(&self) -> BTreeMap<String, (usize, TitleRecord)> {
        self.inv().clone()
    }

    pub fn titles(&self) -> Vec<String> {
        self.inv().keys().cloned().collect()
    }

    /// A title became complete (its record is committed on `disk`).
    pub fn add_title(&self, disk: usize, record: TitleRecord) {
        self.inv().insert(record.title.clone(), (disk, record));
        self.inventory_changed.notify_one();
    }

    pub fn remove_title(&self, title: &str) -> Option<(usize, TitleRecord)> {
        let out = self.inv().remove(title);
        self.inventory_changed.notify_one();
        out
    }

    /// What the fill server is told: the titles, with a version that
    /// changes whenever they do.
    pub fn inventory(&self) -> Inventory {
        let titles = self.titles();
        let version = nearcast_common::sha256_hex(titles.join("\n").as_bytes())[..16].to_string();
        Inventory { version, titles }
    }

    /// Titles held on disk `disk`.
    pub fn titles_on(&self, disk: usize) -> Vec<String> {
        self.inv()
            .iter()
            .filter(|(_, (d, _))| *d == disk)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Takes the complete titles of disk `disk` (back in service) into the
    /// inventory again.
    pub fn reload_disk(&self, disk: usize) {
        let records = self.disks[disk].records();
        let mut inv = self.inv();
        for (title, record) in records {
            inv.entry(title).or_insert((disk, record));
        }
        drop(inv);
        self.inventory_changed.notify_one();
    }

    pub fn request_fill(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.fill_requested.notify_one();
    }
}

//! The running agent: its parts, each owned here and handed to the others
//! as the narrow handle they use (the hardware watch gets the disks, the
//! inventory and the appliance; the updater its `Link`), so no part
//! reaches back into the agent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nearcast_common::request_auth::ApplianceKey;
use tokio::sync::Notify;

use crate::appliance::Appliance;
use crate::bucket::Bucket;
use crate::config::Config;
use crate::disks::{Disk, DiskIo};
use crate::fill_server::FillServer;
use crate::hardware::{HardwareWatch, Watched};
use crate::inventory::Inventory;
use crate::progress::Progress;
use crate::update::{Link, Updater};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("key file {path}: {source}")]
    Key {
        path: String,
        source: nearcast_common::request_auth::AuthError,
    },
    #[error("OS updates: {0}")]
    Update(#[from] crate::update::UpdateError),
    #[error("fill_server_ca: {0}")]
    Tls(#[source] crate::http::HttpError),
    #[error("fill_server_keys: {0}")]
    AnswerKeys(#[source] nearcast_common::answer_auth::AnswerError),
}

pub struct Agent {
    pub config: Config,
    pub disks: Vec<Disk>,
    pub server: Arc<FillServer>,
    pub appliance: Appliance,
    pub progress: Progress,
    pub bucket: Arc<Bucket>,
    pub inventory: Inventory,
    /// Wakes the fill loop for an operator's `fill --now`.
    pub fill_requested: Notify,
    /// The next run ignores the window.
    pub forced: AtomicBool,
    /// The hardware monitor and what it last saw.
    pub hardware: HardwareWatch,
    /// The BGP speaker, when the config names a router.
    pub bgp: Option<Arc<nearcast_bgp::Speaker>>,
    /// OS updates, on a box running the image.
    pub updater: Option<Arc<Updater>>,
    /// A heartbeat reached the fill server since the agent started.
    pub fill_server_answered: Arc<AtomicBool>,
}

impl Agent {
    /// Builds the agent; blocks while it reads each disk's records (call it
    /// before the runtime serves anything).
    pub fn new(config: Config) -> Result<Agent, AgentError> {
        let path = config.key_file.display().to_string();
        let der = std::fs::read(&config.key_file).map_err(|source| AgentError::KeyFile {
            path: path.clone(),
            source,
        })?;
        let key = ApplianceKey::from_pkcs8(&der).map_err(|source| AgentError::Key { path, source })?;
        let disks: Vec<Disk> = config.disks.iter().cloned().map(Disk::new).collect();
        let records = disks
            .iter()
            .map(|d| d.run_blocking(DiskIo::records).unwrap_or_default());
        let inventory = Inventory::from_disks(records.collect::<Vec<_>>());
        let trusted = nearcast_common::answer_auth::AnswerKeys::parse(&config.fill_server_keys)
            .map_err(AgentError::AnswerKeys)?;
        let tls = match &config.fill_server_ca {
            Some(ca) => Some(crate::http::pinned_client(ca).map_err(AgentError::Tls)?),
            None => None,
        };
        let server = Arc::new(FillServer::new(
            &config.fill_server,
            &config.id,
            key,
            trusted,
            config.wire,
            tls,
        ));
        let bucket = Arc::new(Bucket::new(config.bandwidth_bytes_per_sec));
        let appliance = Appliance::new(&config.appliance_admin);
        let fill_server_answered = Arc::new(AtomicBool::new(false));
        let link = Link {
            server: server.clone(),
            bucket: bucket.clone(),
            appliance: appliance.clone(),
            answered: fill_server_answered.clone(),
            window: config.update.install_window.unwrap_or(config.fill_window),
            max_connections: config.appliance_max_connections,
        };
        Ok(Agent {
            updater: Updater::open(&config.update, link)?.map(Arc::new),
            fill_server_answered,
            server,
            appliance,
            bucket,
            progress: Progress::default(),
            inventory,
            fill_requested: Notify::new(),
            forced: AtomicBool::new(false),
            hardware: HardwareWatch::new(&config),
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

    pub fn request_fill(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.fill_requested.notify_one();
    }

    /// The hardware watch's pass at a heartbeat, with what the appliance
    /// just said; the box's state.
    pub async fn check_hardware(
        &self,
        status: &nearcast_common::appliance::ApplianceStatus,
    ) -> nearcast_common::control::Health {
        self.hardware
            .check(&Watched {
                disks: &self.disks,
                inventory: &self.inventory,
                appliance: &self.appliance,
                status,
                filling: self.progress.running(),
            })
            .await
    }
}

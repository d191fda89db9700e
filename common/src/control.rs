//! What an appliance tells the fill server: its registration, heartbeats
//! and inventory. JSON on the wire (operators read them in logs and with
//! curl); the agent writes them, the fill server stores them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::Name;

/// What an appliance says about itself when it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The site (a rack in one ISP) it is installed at.
    pub site: String,
    /// Base URL players and peers reach it at.
    pub url: String,
    /// Content bytes it may hold, over all its disks.
    pub capacity_bytes: u64,
    /// Its content disks' names.
    #[serde(default)]
    pub disks: Vec<String>,
}

/// A box's or a disk's state, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Serving, nothing wrong.
    Ok,
    /// Serving while a fill runs.
    Filling,
    /// Serving with something wrong (a failed disk, a hot chip).
    Degraded,
    /// Installing or trying an OS update.
    Updating,
    /// Not to be steered to.
    Failed,
}

/// One content disk in a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskState {
    /// The disk's name (as in the registration).
    pub name: String,
    /// Its health; a failed disk's titles leave the inventory.
    pub health: Health,
    /// Free bytes on it.
    pub free_bytes: u64,
}

/// A heartbeat: health, load, space, and bytes served per title since the
/// previous beat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The box's health (the worst that applies).
    pub health: Health,
    /// 0.0 idle … 1.0 saturated.
    pub load: f64,
    /// Free content bytes over all disks.
    pub free_bytes: u64,
    /// Each content disk.
    #[serde(default)]
    pub disks: Vec<DiskState>,
    /// Body bytes served per title since the previous beat (demand).
    #[serde(default)]
    pub bytes_by_title: BTreeMap<Name, u64>,
    /// Where the fill stands (absent from agents that do not fill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillReport>,
    /// The BGP session with the ISP's router, where the box has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSummary>,
    /// The agent's software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The box's OS: release, slot, last update (boxes running the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsState>,
    /// What the box's players said of their playback, and the box's
    /// failed answers, since the previous beat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback: Option<crate::playback::Playback>,
}

/// The OS a box runs and how its last update went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsState {
    /// The running release (`/etc/nearcast/release`).
    pub release: String,
    /// The root slot it booted from: `A` or `B`.
    pub slot: String,
    /// The last update: `installing 2`, `trial 2`, `committed 2`,
    /// `failed 2: …`; empty when there was none.
    #[serde(default)]
    pub update: String,
    /// Releases that failed here; the box does not try them again.
    #[serde(default)]
    pub failed: Vec<String>,
}

/// The fill server's answer to a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The release this box should run, when it runs another one: fetch
    /// its bundle from `/v1/appliances/{id}/os`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_update: Option<String>,
    /// `os_update` comes from an emergency rollout: install it at once,
    /// not waiting for the box's maintenance window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub os_emergency: bool,
    /// Whom the box asks for live objects (its site and the origins) and
    /// its live cache size; the agent resolves it for the appliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::live::LivePlan>,
}

/// A BGP session's state and table size, for the heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSummary {
    /// `idle`, `connect`, `opensent`, `openconfirm` or `established`.
    pub session: String,
    /// Prefixes learned.
    pub prefixes: u64,
}

/// The table the box learned from its ISP's router (sent whenever it
/// changes, batched): prefixes grouped by the attributes they share, as
/// BGP itself carries them, so a full table stays compact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// The session's state, as in [`BgpSummary::session`].
    pub session: String,
    /// The prefixes, by shared attributes.
    pub groups: Vec<RouteGroup>,
}

/// Prefixes that share their path attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteGroup {
    /// AS_PATH, nearest AS first (flattened: sets as sequences).
    pub as_path: Vec<u32>,
    /// NEXT_HOP, where the update had one.
    pub next_hop: Option<std::net::IpAddr>,
    /// (AS, value) pairs.
    #[serde(default)]
    pub communities: Vec<(u16, u16)>,
    /// The prefixes, as `ADDRESS/LENGTH`.
    pub prefixes: Vec<String>,
}

impl Routes {
    /// Every prefix of every group.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flat_map(|g| g.prefixes.iter().map(String::as_str))
    }

    /// How many prefixes there are.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.prefixes.len()).sum()
    }

    /// No prefixes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Heartbeat {
    /// A heartbeat with only the essentials; the optional parts empty.
    pub fn new(health: Health, load: f64, free_bytes: u64) -> Heartbeat {
        Heartbeat {
            health,
            load,
            free_bytes,
            disks: Vec::new(),
            bytes_by_title: BTreeMap::new(),
            fill: None,
            bgp: None,
            version: None,
            os: None,
            playback: None,
        }
    }
}

/// The fill's progress against the current manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FillReport {
    /// Manifest version being filled (empty before the first manifest).
    pub manifest_version: String,
    /// A fill is running now.
    pub running: bool,
    /// Files of the manifest.
    pub files_total: u64,
    /// Files held and verified.
    pub files_done: u64,
    /// Bytes of the manifest.
    pub bytes_total: u64,
    /// Bytes held and verified.
    pub bytes_done: u64,
    /// Download rate over the last seconds, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Files refused or failed in the current run, newest last (bounded).
    #[serde(default)]
    pub failures: Vec<FillFailure>,
}

/// A file the fill could not place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillFailure {
    /// Its title.
    pub title: String,
    /// Its path in the title.
    pub path: String,
    /// Why, for the operator (`sha256 mismatch`, `disk is full`, …).
    pub reason: String,
}

/// The titles an appliance holds, complete and verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Changes whenever the titles do.
    pub version: String,
    /// The titles held.
    pub titles: Vec<Name>,
}

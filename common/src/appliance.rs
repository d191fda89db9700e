//! What the appliance tells its agent on the admin listener
//! (`GET /status`): whether it serves, how many clients it has, the body
//! bytes it served per title, its disks as it sees them, and what its
//! players said of their playback (CMCD, `playback`). JSON; the
//! appliance writes it, the agent reads it, and neither scrapes the other's
//! metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::Name;

/// The appliance's `GET /status` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplianceStatus {
    /// False while it drains (SIGTERM) and, on the agent's side, when it
    /// does not answer.
    pub serving: bool,
    /// Open client connections.
    pub connections: u64,
    /// Body bytes served to viewers per title since the appliance started
    /// (monotonic; the agent sends the differences in its heartbeats).
    /// Boxes' fills are not counted: they are not demand.
    pub titles: BTreeMap<Name, u64>,
    /// In the order of the appliance's `disks`.
    pub disks: Vec<ServingDisk>,
    /// Content requests answered since start (monotonic).
    #[serde(default)]
    pub content_requests: u64,
    /// Of them, the box's failures (see `playback::Playback::errors`).
    #[serde(default)]
    pub content_errors: u64,
    /// Those failures per title (monotonic).
    #[serde(default)]
    pub failed_by_title: BTreeMap<Name, u64>,
    /// Player sessions (CMCD) active lately, with their totals.
    #[serde(default)]
    pub sessions: Vec<crate::playback::SessionStats>,
}

/// One content disk as the serving engine sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServingDisk {
    /// The disk's content root, as configured.
    pub path: String,
    /// Taken out of service (by the agent, through the admin listener).
    pub failed: bool,
    /// Reads that failed (EIO and the like) since the appliance started.
    pub read_errors: u64,
}

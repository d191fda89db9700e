//! The control plane's state: ISPs and their prefixes, sites, appliances
//! (enrolled keys, registration, last heartbeat, inventory) and the daily
//! bytes that feed prediction. SQLite by default (a file, no set-up);
//! PostgreSQL given a URL. Both run the same logic and SQL (`sql.rs`).
//!
//! Steering never reads this on a request: the server builds an in-memory
//! `steer::View` from a `Snapshot` after every change.

pub mod changes;
pub use rollouts::Rollout;
mod db;
mod egress;
mod events;
mod fleet;
mod heartbeats;
pub use egress::{EgressRow, Source};
mod playback;
pub use playback::PlaybackRow;
mod postgres;
mod rights;
mod rollouts;
mod schema;
mod sql;
mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;

pub use changes::{Changed, Logged};
pub use nearcast_common::control::{DiskState, Health, Heartbeat, Inventory, Registration, Routes};
pub use postgres::{PgListener, PgStore};
pub use sqlite::SqliteStore;

use crate::predict::{DailyBytes, Release};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database driver's error (SQLite or PostgreSQL), kept whole.
    #[error("database: {0}")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unknown {kind} '{name}'")]
    Unknown { kind: &'static str, name: String },
    #[error("{kind} '{name}' exists")]
    Exists { kind: &'static str, name: String },
    #[error("line {line}: {reason}")]
    Import { line: usize, reason: String },
    #[error(
        "another fill server uses this SQLite database ({0} is locked): replicas need PostgreSQL \
         (database = \"postgres://…\"); SQLite is for one server"
    )]
    Shared(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A row changed between the caller's read and its write.
    #[error("{0}")]
    Conflict(String),
}

/// One appliance as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApplianceRecord {
    pub id: String,
    pub public_key: String,
    pub registration: Option<Registration>,
    pub last_heartbeat: Option<u64>,
    pub heartbeat: Option<Heartbeat>,
    pub inventory: Inventory,
}

/// Which ISP a client address belongs to: read when ISPs or prefixes
/// change (it can be a full routing table).
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// ASN → ISP.
    pub asn_isp: BTreeMap<u32, String>,
    /// (prefix text, ASN) as imported.
    pub prefixes: Vec<(String, u32)>,
}

/// The fleet: sites and appliances, read after every appliance change.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Site → ISP.
    pub sites: BTreeMap<String, String>,
    /// Appliance → the OS release it should run.
    pub os_targets: BTreeMap<String, String>,
    /// Appliances whose target comes from an active emergency rollout.
    pub os_emergency: std::collections::BTreeSet<String>,
    pub appliances: Vec<ApplianceRecord>,
}

/// The prefixes an appliance learned over BGP from its ISP's router.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BgpRoutes {
    pub appliance: String,
    pub routes: Routes,
    /// Unix seconds of the report.
    pub updated: u64,
}

/// Unix day of a unix time.
pub fn day_of(unix: u64) -> i64 {
    (unix / 86_400) as i64
}

/// The storage operations the server needs (implemented once, in
/// `sql.rs`, for SQLite and PostgreSQL).
pub trait Store: Send + Sync {
    fn add_isp(&self, name: &str, asns: &[u32]) -> Result<(), StoreError>;
    /// Replaces the prefix table with `prefix asn` lines; returns the count.
    fn import_prefixes(&self, text: &str) -> Result<usize, StoreError>;
    fn add_site(&self, name: &str, isp: &str) -> Result<(), StoreError>;
    /// Allows appliance `id` to speak with `public_key` (hex Ed25519).
    fn enroll(&self, id: &str, public_key: &str) -> Result<(), StoreError>;
    fn public_key(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// The OS release appliance `id` should run (its bundle is in the
    /// server's `os_bundles` directory).
    fn set_os_target(&self, id: &str, release: &str) -> Result<(), StoreError>;
    fn os_target(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Adds an OS rollout (replacing a finished one of its id); `Exists`
    /// while another is active.
    fn add_rollout(&self, r: &Rollout) -> Result<(), StoreError>;
    /// Records a rollout's progress (over `was`, what the caller read;
    /// `Conflict` if it changed meanwhile) and sets the OS targets it
    /// decided, in one transaction.
    fn save_rollout(
        &self,
        id: &str,
        was: &crate::rollout::Progress,
        p: &crate::rollout::Progress,
        targets: &[crate::rollout::engine::Target],
    ) -> Result<(), StoreError>;
    /// Every rollout, newest first.
    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError>;
    fn register(&self, id: &str, r: &Registration, now: u64) -> Result<(), StoreError>;
    /// Records heartbeats received at `now`, in one transaction: each
    /// appliance's row, its bytes added to today's per-title demand in its
    /// ISP and to its served total. Logged as one change.
    fn heartbeats(&self, beats: &[(String, Heartbeat)], now: u64) -> Result<(), StoreError>;
    /// `heartbeats` for one.
    fn heartbeat(&self, id: &str, hb: &Heartbeat, now: u64) -> Result<(), StoreError> {
        self.heartbeats(&[(id.to_string(), hb.clone())], now)
    }
    /// Adds a live event; false if one of its name exists.
    fn add_live_event(&self, spec: &crate::live::EventSpec) -> Result<bool, StoreError>;
    /// Marks live event `name` ended; false if there is none.
    fn end_live_event(&self, name: &str, now: u64) -> Result<bool, StoreError>;
    /// Every live event, and whether it ended.
    fn live_events(&self) -> Result<Vec<(crate::live::EventSpec, bool)>, StoreError>;
    /// Logs a change only the other replicas need (nothing is written on
    /// SQLite, which has no other replicas).
    fn share(&self, change: Changed) -> Result<(), StoreError>;
    /// Sets (None: clears) a title's rights.
    fn set_rights(&self, title: &str, rights: Option<&crate::rights::Rights>) -> Result<(), StoreError>;
    fn rights(&self) -> Result<Vec<(String, crate::rights::Rights)>, StoreError>;
    /// Replaces the IP-to-country table: (prefix, ISO 3166 code) rows.
    fn import_countries(&self, rows: &[(String, String)]) -> Result<usize, StoreError>;
    fn countries(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// The bytes each appliance reported serving, in all.
    fn served(&self) -> Result<BTreeMap<String, u64>, StoreError>;
    /// Logged changes after `version`, oldest first, at most `limit`.
    fn changes_since(&self, version: i64, limit: i64) -> Result<Vec<Logged>, StoreError>;
    /// The newest logged change's version (0 with none).
    fn latest_change(&self) -> Result<i64, StoreError>;
    /// Names this process in the change log (random per start).
    fn replica_id(&self) -> &str;
    /// Adds bytes that left for viewers (`egress`).
    fn add_egress(&self, rows: &[EgressRow]) -> Result<(), StoreError>;
    /// Egress rows from `from_day` on.
    fn egress(&self, from_day: i64) -> Result<Vec<EgressRow>, StoreError>;
    /// Playback sums (from heartbeats) from unix hour `from_hour` on.
    fn playback(&self, from_hour: i64) -> Result<Vec<PlaybackRow>, StoreError>;
    /// Drops logged changes from before `changes_before` and QoE events
    /// and playback sums from before `qoe_before` (unix seconds); how
    /// many rows.
    fn prune(&self, changes_before: u64, qoe_before: u64) -> Result<u64, StoreError>;
    /// A connection of its own that waits for other replicas' changes and
    /// holds the jobs' lock; `None` for a database only one process uses.
    fn listener(&self) -> Result<Option<Box<dyn Listener>>, StoreError> {
        Ok(None)
    }
    fn set_inventory(&self, id: &str, inv: &Inventory) -> Result<(), StoreError>;
    /// Replaces appliance `id`'s BGP-learned prefixes.
    fn set_routes(&self, id: &str, routes: &Routes, now: u64) -> Result<(), StoreError>;
    /// Every appliance's BGP-learned prefixes (read when they change).
    fn bgp_routes(&self) -> Result<Vec<BgpRoutes>, StoreError>;
    /// Stores players' QoE events received at `now`.
    fn add_qoe(&self, events: &[crate::qoe::QoeEvent], now: u64) -> Result<(), StoreError>;
    /// QoE events received at or after `since`.
    fn qoe_events(&self, since: u64) -> Result<Vec<crate::qoe::QoeEvent>, StoreError>;
    fn add_daily_bytes(&self, rows: &[DailyBytes]) -> Result<(), StoreError>;
    fn daily_bytes(&self, from_day: i64) -> Result<Vec<DailyBytes>, StoreError>;
    /// Announces a release (replacing an earlier one of the title and ISP).
    fn add_release(&self, r: &Release) -> Result<(), StoreError>;
    /// Releases on or after `from_day`.
    fn releases(&self, from_day: i64) -> Result<Vec<Release>, StoreError>;
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    fn routing(&self) -> Result<Routing, StoreError>;
}

/// A replica's own connection for following the others (PostgreSQL).
pub trait Listener: Send {
    /// Waits up to `timeout` for a change notification (draining any
    /// others queued); whether one came.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError>;
    /// Takes, or confirms this connection holds, the session advisory lock
    /// `key`. A replica that dies loses its connection and so the lock.
    fn try_lock(&mut self, key: i64) -> Result<bool, StoreError>;
}

fn is_postgres(database: &str) -> bool {
    ["postgres://", "postgresql://", "host="]
        .iter()
        .any(|p| database.starts_with(p))
}

/// A SQLite database is for one server: the process that serves from it
/// holds `{database}.lock` (an exclusive `flock`) until it exits, and a
/// second one is refused with the reason. PostgreSQL takes any number.
pub fn claim(database: &str) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, StoreError> {
    if is_postgres(database) {
        return Ok(None);
    }
    let path = format!("{database}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Db(Box::new(e)))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map(Some)
        .map_err(|_| StoreError::Shared(path))
}

/// Opens the store `database` names: a PostgreSQL URL (`postgres://…`,
/// `postgresql://…` or `host=…`) or else a SQLite file path.
pub fn open(database: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(if is_postgres(database) {
        std::sync::Arc::new(PgStore::connect(database)?)
    } else {
        std::sync::Arc::new(SqliteStore::open(std::path::Path::new(database))?)
    })
}

//! The control plane's state: ISPs and their prefixes, sites, appliances
//! (enrolled keys, registration, last heartbeat, inventory) and the daily
//! bytes that feed prediction. SQLite by default (a file, no set-up);
//! PostgreSQL given a URL. Both run the same logic and SQL (`sql.rs`).
//!
//! Steering never reads this on a request: the server builds an in-memory
//! `steer::View` from a `Snapshot` after every change.

mod db;
mod postgres;
mod sql;
mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;

pub use nearcast_common::control::{DiskState, Health, Heartbeat, Inventory, Registration, Routes};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::predict::{DailyBytes, Release};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database driver's error (SQLite or PostgreSQL), kept whole.
    #[error("database: {0}")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unknown {kind} '{name}'")]
    Unknown { kind: &'static str, name: String },
    #[error("line {line}: {reason}")]
    Import { line: usize, reason: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
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
    fn register(&self, id: &str, r: &Registration, now: u64) -> Result<(), StoreError>;
    /// Records a heartbeat and adds its bytes to today's per-title demand
    /// in the appliance's ISP.
    fn heartbeat(&self, id: &str, hb: &Heartbeat, now: u64) -> Result<(), StoreError>;
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

/// Opens the store `database` names: a PostgreSQL URL (`postgres://…`,
/// `postgresql://…` or `host=…`) or else a SQLite file path.
pub fn open(database: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let pg = ["postgres://", "postgresql://", "host="]
        .iter()
        .any(|p| database.starts_with(p));
    Ok(if pg {
        std::sync::Arc::new(PgStore::connect(database)?)
    } else {
        std::sync::Arc::new(SqliteStore::open(std::path::Path::new(database))?)
    })
}

//! The change log the replicas follow. Each write that changes steering
//! appends a row, in the write's own transaction, naming what changed; a
//! replica that did not make the write rebuilds that part of its view.
//!
//! Versions must grow in commit order, or a follower that read version 6
//! before 5 committed would never see 5. A PostgreSQL sequence hands out
//! numbers in the order transactions ask, not the order they commit, so
//! the append first takes a transaction-level advisory lock (held to the
//! commit; appends are a few per second per replica) and `pg_notify` wakes
//! the followers when it commits. SQLite is one process: its transactions
//! are serial already and nobody listens.

use super::db::{Conn, Dialect, Value};
use super::StoreError;
use crate::steer::Beat;

/// The channel `pg_notify` wakes followers on; the payload is the kind.
pub const CHANNEL: &str = "nearcast_changes";
/// The advisory lock that orders appends ("nc" "ch").
const APPEND_LOCK: i64 = 0x6e63_6368;

pub fn schema(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS changes (
                version INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL, origin TEXT NOT NULL, detail TEXT NOT NULL, at BIGINT NOT NULL
            )"
        }
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS changes (
                version BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL, origin TEXT NOT NULL, detail TEXT NOT NULL, at BIGINT NOT NULL
            )"
        }
    }
}

/// What a write changed: the writer rebuilds that part of its steering
/// view, and the change log tells the other replicas to do the same.
#[derive(Clone, Debug, PartialEq)]
pub enum Changed {
    /// ISPs or prefixes (and so everything).
    Routing,
    /// Sites, enrollments, registrations, inventories.
    Fleet,
    /// An appliance's BGP-learned routes.
    Bgp,
    /// A batch of heartbeats, patched in without a read.
    Heartbeats(Vec<Beat>),
    /// Play history or releases: what fill plans are made from.
    Demand,
    /// A live event created or ended.
    Live,
    /// A title's rights, or the IP-to-country table.
    Rights,
    /// License leases another replica admitted (stream limits).
    Leases(nearcast_license::SharedLeases),
    /// Nothing steering reads (play logs' raw rows, QoE, OS targets):
    /// not logged.
    Nothing,
}

/// A change as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    pub version: i64,
    /// The replica that made the write (`Store::replica_id`).
    pub origin: String,
    pub change: Changed,
    /// Unix seconds of the write.
    pub at: u64,
}

impl Changed {
    fn kind(&self) -> &'static str {
        match self {
            Changed::Routing => "routing",
            Changed::Fleet => "fleet",
            Changed::Bgp => "bgp",
            Changed::Heartbeats(_) => "heartbeats",
            Changed::Demand => "demand",
            Changed::Live => "live",
            Changed::Rights => "rights",
            Changed::Leases(_) => "leases",
            Changed::Nothing => "nothing",
        }
    }

    fn detail(&self) -> String {
        match self {
            Changed::Heartbeats(beats) => serde_json::to_string(beats).unwrap_or_default(),
            Changed::Leases(leases) => serde_json::to_string(leases).unwrap_or_default(),
            _ => String::new(),
        }
    }

    fn parse(kind: &str, detail: &str) -> Result<Changed, StoreError> {
        Ok(match kind {
            "routing" => Changed::Routing,
            "fleet" => Changed::Fleet,
            "bgp" => Changed::Bgp,
            "demand" => Changed::Demand,
            "live" => Changed::Live,
            "rights" => Changed::Rights,
            "leases" => Changed::Leases(
                serde_json::from_str(detail).map_err(|e| StoreError::Corrupt(format!("logged leases: {e}")))?,
            ),
            "heartbeats" => Changed::Heartbeats(
                serde_json::from_str(detail).map_err(|e| StoreError::Corrupt(format!("logged heartbeats: {e}")))?,
            ),
            other => return Err(StoreError::Corrupt(format!("change kind '{other}'"))),
        })
    }
}

/// Appends `change` in the transaction `c` (see the module comment).
pub fn append(c: &mut dyn Conn, change: &Changed, origin: &str, now: u64) -> Result<(), StoreError> {
    if *change == Changed::Nothing {
        return Ok(());
    }
    let pg = c.dialect() == Dialect::Postgres;
    if pg {
        c.execute("SELECT pg_advisory_xact_lock($1)", &[APPEND_LOCK.into()])?;
    }
    c.execute(
        "INSERT INTO changes (kind, origin, detail, at) VALUES ($1, $2, $3, $4)",
        &[
            change.kind().into(),
            origin.into(),
            change.detail().into(),
            (now as i64).into(),
        ],
    )?;
    if pg {
        c.execute("SELECT pg_notify($1, $2)", &[CHANNEL.into(), change.kind().into()])?;
    }
    Ok(())
}

/// Changes after `version`, oldest first, at most `limit`.
pub fn since(c: &mut dyn Conn, version: i64, limit: i64) -> Result<Vec<Logged>, StoreError> {
    c.query(
        "SELECT version, origin, kind, detail, at FROM changes WHERE version > $1 ORDER BY version LIMIT $2",
        &[version.into(), limit.into()],
    )?
    .iter()
    .map(|r| {
        Ok(Logged {
            version: r[0].int()?,
            origin: r[1].text()?,
            change: Changed::parse(&r[2].text()?, &r[3].text()?)?,
            at: r[4].int()? as u64,
        })
    })
    .collect()
}

/// The newest version (0 with none).
pub fn latest(c: &mut dyn Conn) -> Result<i64, StoreError> {
    let rows = c.query("SELECT MAX(version) FROM changes", &[])?;
    Ok(rows.first().map(|r| r[0].opt_int()).transpose()?.flatten().unwrap_or(0))
}

/// Drops changes written before `before` (unix seconds); how many.
pub fn prune(c: &mut dyn Conn, before: u64) -> Result<u64, StoreError> {
    c.execute("DELETE FROM changes WHERE at < $1", &[Value::Int(before as i64)])
}

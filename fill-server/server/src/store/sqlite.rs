//! The SQLite store: one file, WAL mode, one connection behind a mutex
//! (control-plane writes are a few per appliance per minute).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{ApplianceRecord, Heartbeat, Inventory, Registration, Routing, Snapshot, Store, StoreError};
use crate::predict::DailyBytes;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS isps (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS isp_asns (asn BIGINT PRIMARY KEY, isp TEXT NOT NULL REFERENCES isps(name));
CREATE TABLE IF NOT EXISTS prefixes (prefix TEXT PRIMARY KEY, asn BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sites (name TEXT PRIMARY KEY, isp TEXT NOT NULL REFERENCES isps(name));
CREATE TABLE IF NOT EXISTS appliances (
    id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    site TEXT REFERENCES sites(name),
    registration TEXT,
    registered_at BIGINT,
    last_heartbeat BIGINT,
    heartbeat TEXT,
    inventory TEXT
);
CREATE TABLE IF NOT EXISTS daily_bytes (
    day BIGINT NOT NULL, isp TEXT NOT NULL, title TEXT NOT NULL, bytes BIGINT NOT NULL,
    PRIMARY KEY (day, isp, title)
);
";

/// id, public key, registration, last heartbeat, heartbeat, inventory.
type ApplianceRow = (
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` for a
    /// throwaway one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn from_json<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>, StoreError> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn known(n: usize, kind: &'static str, name: &str) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::Unknown {
            kind,
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

impl Store for SqliteStore {
    fn add_isp(&self, name: &str, asns: &[u32]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("INSERT INTO isps (name) VALUES (?1) ON CONFLICT DO NOTHING", [name])?;
            for asn in asns {
                tx.execute(
                    "INSERT INTO isp_asns (asn, isp) VALUES (?1, ?2) ON CONFLICT (asn) DO UPDATE SET isp = excluded.isp",
                    params![i64::from(*asn), name],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn import_prefixes(&self, text: &str) -> Result<usize, StoreError> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| StoreError::Import {
                line: i + 1,
                reason: reason.to_string(),
            };
            let mut parts = line.split_whitespace();
            let (Some(prefix), Some(asn), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected 'PREFIX ASN'"));
            };
            let prefix: nearcast_common::IpPrefix = prefix
                .parse()
                .map_err(|e: nearcast_common::PrefixError| bad(&e.to_string()))?;
            let asn: u32 = asn
                .trim_start_matches("AS")
                .parse()
                .map_err(|_| bad("ASN is not a number"))?;
            rows.push((prefix.to_string(), asn));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM prefixes", [])?;
            {
                let mut ins = tx.prepare(
                    "INSERT INTO prefixes (prefix, asn) VALUES (?1, ?2) ON CONFLICT (prefix) DO UPDATE SET asn = excluded.asn",
                )?;
                for (p, asn) in &rows {
                    ins.execute(params![p, i64::from(*asn)])?;
                }
            }
            tx.commit()?;
            Ok(rows.len())
        })
    }

    fn add_site(&self, name: &str, isp: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let exists: Option<String> = c
                .query_row("SELECT name FROM isps WHERE name = ?1", [isp], |r| r.get(0))
                .optional()?;
            known(usize::from(exists.is_some()), "ISP", isp)?;
            c.execute(
                "INSERT INTO sites (name, isp) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET isp = excluded.isp",
                [name, isp],
            )?;
            Ok(())
        })
    }

    fn enroll(&self, id: &str, public_key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO appliances (id, public_key) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key",
                [id, public_key],
            )?;
            Ok(())
        })
    }

    fn public_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT public_key FROM appliances WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn register(&self, id: &str, r: &Registration, now: u64) -> Result<(), StoreError> {
        self.with(|c| {
            let site: Option<String> = c
                .query_row("SELECT name FROM sites WHERE name = ?1", [&r.site], |x| x.get(0))
                .optional()?;
            known(usize::from(site.is_some()), "site", &r.site)?;
            let n = c.execute(
                "UPDATE appliances SET site = ?2, registration = ?3, registered_at = ?4 WHERE id = ?1",
                params![id, r.site, json(r), now as i64],
            )?;
            known(n, "appliance", id)
        })
    }

    fn heartbeat(&self, id: &str, hb: &Heartbeat, now: u64) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE appliances SET heartbeat = ?2, last_heartbeat = ?3 WHERE id = ?1",
                params![id, json(hb), now as i64],
            )?;
            known(n, "appliance", id)?;
            let isp: Option<String> = tx
                .query_row(
                    "SELECT sites.isp FROM appliances JOIN sites ON sites.name = appliances.site WHERE appliances.id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(isp) = isp {
                let day = super::day_of(now);
                for (title, bytes) in &hb.bytes_by_title {
                    tx.execute(
                        "INSERT INTO daily_bytes (day, isp, title, bytes) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (day, isp, title) DO UPDATE SET bytes = daily_bytes.bytes + excluded.bytes",
                        params![day, isp, title, *bytes as i64],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn set_inventory(&self, id: &str, inv: &Inventory) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE appliances SET inventory = ?2 WHERE id = ?1",
                params![id, json(inv)],
            )?;
            known(n, "appliance", id)
        })
    }

    fn add_daily_bytes(&self, rows: &[DailyBytes]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for r in rows {
                tx.execute(
                    "INSERT INTO daily_bytes (day, isp, title, bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, isp, title) DO UPDATE SET bytes = daily_bytes.bytes + excluded.bytes",
                    params![r.day, r.isp, r.title, r.bytes as i64],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn daily_bytes(&self, from_day: i64) -> Result<Vec<DailyBytes>, StoreError> {
        self.with(|c| {
            let mut q =
                c.prepare("SELECT day, isp, title, bytes FROM daily_bytes WHERE day >= ?1 ORDER BY day, isp, title")?;
            let rows = q.query_map([from_day], |r| {
                Ok(DailyBytes {
                    day: r.get(0)?,
                    isp: r.get(1)?,
                    title: r.get(2)?,
                    bytes: r.get::<_, i64>(3)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|c| {
            let mut s = Snapshot::default();
            let mut q = c.prepare("SELECT name, isp FROM sites")?;
            for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (site, isp) = row?;
                s.sites.insert(site, isp);
            }
            let mut q = c.prepare(
                "SELECT id, public_key, registration, last_heartbeat, heartbeat, inventory FROM appliances ORDER BY id",
            )?;
            let raw: Vec<ApplianceRow> = q
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<Result<_, _>>()?;
            for (id, public_key, reg, last, hb, inv) in raw {
                s.appliances.push(ApplianceRecord {
                    id,
                    public_key,
                    registration: from_json(reg)?,
                    last_heartbeat: last.map(|t| t as u64),
                    heartbeat: from_json::<Heartbeat>(hb)?,
                    inventory: from_json::<Inventory>(inv)?.unwrap_or(Inventory {
                        version: String::new(),
                        titles: Vec::new(),
                    }),
                });
            }
            Ok(s)
        })
    }

    fn routing(&self) -> Result<Routing, StoreError> {
        self.with(|c| {
            let mut r = Routing::default();
            let mut q = c.prepare("SELECT asn, isp FROM isp_asns")?;
            for row in q.query_map([], |x| Ok((x.get::<_, i64>(0)? as u32, x.get::<_, String>(1)?)))? {
                let (asn, isp) = row?;
                r.asn_isp.insert(asn, isp);
            }
            let mut q = c.prepare("SELECT prefix, asn FROM prefixes")?;
            r.prefixes = q
                .query_map([], |x| Ok((x.get::<_, String>(0)?, x.get::<_, i64>(1)? as u32)))?
                .collect::<Result<_, _>>()?;
            Ok(r)
        })
    }
}

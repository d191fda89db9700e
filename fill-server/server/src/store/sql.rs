//! The store's logic and SQL, written once for every database: portable
//! SQL (`ON CONFLICT … DO UPDATE`, `BIGINT`, `TEXT`) over the `Db` adapter.

use super::changes::{self, Changed, Logged};
use super::db::{Conn, Db, Value};
use super::schema::SCHEMA;
use super::{BgpRoutes, Heartbeat, Inventory, Registration, Routes, Routing, Snapshot, Store, StoreError};
use crate::predict::{DailyBytes, Release};
use crate::qoe::{QoeEvent, QoeKind};

const ADD_BYTES: &str = "INSERT INTO daily_bytes (day, isp, title, bytes) VALUES ($1, $2, $3, $4)
     ON CONFLICT (day, isp, title) DO UPDATE SET bytes = daily_bytes.bytes + excluded.bytes";

/// The store over any `Db`.
pub struct SqlStore<D> {
    db: D,
    /// Names this process's writes in the change log.
    replica: String,
}

impl<D: Db> SqlStore<D> {
    /// Wraps `db`, creating the tables if needed.
    pub fn new(db: D) -> Result<Self, StoreError> {
        db.transaction(|c| {
            for stmt in SCHEMA.iter().chain(super::rights::SCHEMA) {
                c.execute(stmt, &[])?;
            }
            let dialect = c.dialect();
            c.execute(changes::schema(dialect), &[])?;
            Ok(())
        })?;
        Ok(SqlStore {
            db,
            replica: replica_id(),
        })
    }

    /// Runs `f` in one transaction that also logs `change`.
    fn logged<T>(
        &self,
        change: Changed,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.transaction(|c| {
            let out = f(c)?;
            changes::append(c, &change, &self.replica, nearcast_common::unix_now())?;
            Ok(out)
        })
    }
}

/// A random name for this process's writes (64 bits, hex).
fn replica_id() -> String {
    let mut b = [0u8; 8];
    // Only a name: a failed draw falls back to the process id and time.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    nearcast_common::digest::hex(&b)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Value {
    Value::Text(serde_json::to_string(v).unwrap_or_default())
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(v: &Value) -> Result<Option<T>, StoreError> {
    v.opt_text()?
        .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn known(n: u64, kind: &'static str, name: &str) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::Unknown {
            kind,
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

fn exists(c: &mut dyn Conn, sql: &str, key: &str) -> Result<bool, StoreError> {
    Ok(!c.query(sql, &[key.into()])?.is_empty())
}

pub(super) fn add_bytes(c: &mut dyn Conn, r: &DailyBytes) -> Result<(), StoreError> {
    c.execute(
        ADD_BYTES,
        &[
            r.day.into(),
            (&r.isp).into(),
            (&r.title).into(),
            (r.bytes as i64).into(),
        ],
    )?;
    Ok(())
}

impl<D: Db> Store for SqlStore<D> {
    fn add_isp(&self, name: &str, asns: &[u32]) -> Result<(), StoreError> {
        self.logged(Changed::Routing, |c| {
            c.execute("INSERT INTO isps (name) VALUES ($1) ON CONFLICT DO NOTHING", &[name.into()])?;
            for asn in asns {
                c.execute(
                    "INSERT INTO isp_asns (asn, isp) VALUES ($1, $2) ON CONFLICT (asn) DO UPDATE SET isp = excluded.isp",
                    &[i64::from(*asn).into(), name.into()],
                )?;
            }
            Ok(())
        })
    }

    fn import_prefixes(&self, text: &str) -> Result<usize, StoreError> {
        let rows = super::schema::parse_prefixes(text)?;
        self.logged(Changed::Routing, |c| {
            c.execute("DELETE FROM prefixes", &[])?;
            for (p, asn) in &rows {
                c.execute(
                    "INSERT INTO prefixes (prefix, asn) VALUES ($1, $2) ON CONFLICT (prefix) DO UPDATE SET asn = excluded.asn",
                    &[p.into(), i64::from(*asn).into()],
                )?;
            }
            Ok(rows.len())
        })
    }

    fn add_site(&self, name: &str, isp: &str) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| {
            if !exists(c, "SELECT name FROM isps WHERE name = $1", isp)? {
                return known(0, "ISP", isp);
            }
            c.execute(
                "INSERT INTO sites (name, isp) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET isp = excluded.isp",
                &[name.into(), isp.into()],
            )?;
            Ok(())
        })
    }

    fn enroll(&self, id: &str, public_key: &str) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| {
            c.execute(
                "INSERT INTO appliances (id, public_key) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key",
                &[id.into(), public_key.into()],
            )?;
            Ok(())
        })
    }

    fn set_os_target(&self, id: &str, release: &str) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| {
            if !exists(c, "SELECT id FROM appliances WHERE id = $1", id)? {
                return known(0, "appliance", id);
            }
            c.execute(
                "INSERT INTO os_targets (appliance, release) VALUES ($1, $2)
                 ON CONFLICT (appliance) DO UPDATE SET release = excluded.release",
                &[id.into(), release.into()],
            )?;
            Ok(())
        })
    }

    fn os_target(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.db.transaction(|c| {
            let rows = c.query("SELECT release FROM os_targets WHERE appliance = $1", &[id.into()])?;
            rows.first().map(|r| r[0].text()).transpose()
        })
    }

    fn add_rollout(&self, r: &super::Rollout) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| super::rollouts::add(c, r))
    }

    fn save_rollout(
        &self,
        id: &str,
        was: &crate::rollout::Progress,
        p: &crate::rollout::Progress,
        targets: &[crate::rollout::engine::Target],
    ) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| super::rollouts::save(c, id, was, p, targets))
    }

    fn rollouts(&self) -> Result<Vec<super::Rollout>, StoreError> {
        self.db.transaction(super::rollouts::all)
    }

    fn public_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.db.transaction(|c| {
            let rows = c.query("SELECT public_key FROM appliances WHERE id = $1", &[id.into()])?;
            rows.first().map(|r| r[0].text()).transpose()
        })
    }

    fn register(&self, id: &str, r: &Registration, now: u64) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| {
            if !exists(c, "SELECT name FROM sites WHERE name = $1", &r.site)? {
                return known(0, "site", &r.site);
            }
            let n = c.execute(
                "UPDATE appliances SET site = $2, registration = $3, registered_at = $4 WHERE id = $1",
                &[id.into(), (&r.site).into(), json(r), (now as i64).into()],
            )?;
            known(n, "appliance", id)
        })
    }

    fn heartbeats(&self, beats: &[(String, Heartbeat)], now: u64) -> Result<(), StoreError> {
        let logged: Vec<_> = beats
            .iter()
            .map(|(id, hb)| crate::steer::Beat::of(id, hb, now))
            .collect();
        self.logged(Changed::Heartbeats(logged), |c| super::heartbeats::write(c, beats, now))
    }

    fn add_live_event(&self, spec: &crate::live::EventSpec) -> Result<bool, StoreError> {
        self.logged(Changed::Live, |c| super::events::add(c, spec))
    }

    fn end_live_event(&self, name: &str, now: u64) -> Result<bool, StoreError> {
        self.logged(Changed::Live, |c| super::events::end(c, name, now))
    }

    fn share(&self, change: Changed) -> Result<(), StoreError> {
        self.db.transaction(|c| match c.dialect() {
            super::db::Dialect::Postgres => changes::append(c, &change, &self.replica, nearcast_common::unix_now()),
            super::db::Dialect::Sqlite => Ok(()),
        })
    }

    fn set_rights(&self, title: &str, rights: Option<&crate::rights::Rights>) -> Result<(), StoreError> {
        self.logged(Changed::Rights, |c| super::rights::set(c, title, rights))
    }

    fn rights(&self) -> Result<Vec<(String, crate::rights::Rights)>, StoreError> {
        self.db.transaction(super::rights::all)
    }

    fn import_countries(&self, rows: &[(String, String)]) -> Result<usize, StoreError> {
        self.logged(Changed::Rights, |c| super::rights::import(c, rows))
    }

    fn countries(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.db.transaction(super::rights::countries)
    }

    fn live_events(&self) -> Result<Vec<(crate::live::EventSpec, bool)>, StoreError> {
        self.db.transaction(super::events::all)
    }

    fn served(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.db.transaction(|c| {
            c.query("SELECT appliance, bytes FROM served", &[])?
                .iter()
                .map(|r| Ok((r[0].text()?, r[1].int()? as u64)))
                .collect()
        })
    }

    fn changes_since(&self, version: i64, limit: i64) -> Result<Vec<Logged>, StoreError> {
        self.db.transaction(|c| changes::since(c, version, limit))
    }

    fn latest_change(&self) -> Result<i64, StoreError> {
        self.db.transaction(changes::latest)
    }

    fn listener(&self) -> Result<Option<Box<dyn super::Listener>>, StoreError> {
        self.db.listener()
    }

    fn replica_id(&self) -> &str {
        &self.replica
    }

    fn add_egress(&self, rows: &[super::EgressRow]) -> Result<(), StoreError> {
        self.db.transaction(|c| super::egress::add(c, rows))
    }

    fn egress(&self, from_day: i64) -> Result<Vec<super::EgressRow>, StoreError> {
        self.db.transaction(|c| super::egress::since(c, from_day))
    }

    fn playback(&self, from_hour: i64) -> Result<Vec<super::PlaybackRow>, StoreError> {
        self.db.transaction(|c| super::playback::since(c, from_hour))
    }

    fn prune(&self, changes_before: u64, qoe_before: u64) -> Result<u64, StoreError> {
        self.db.transaction(|c| {
            let n = changes::prune(c, changes_before)?;
            let events = c.execute(
                "DELETE FROM qoe_events WHERE received < $1",
                &[(qoe_before as i64).into()],
            )?;
            let hours = c.execute(
                "DELETE FROM playback WHERE hour < $1",
                &[((qoe_before / 3600) as i64).into()],
            )?;
            Ok(n + events + hours)
        })
    }

    fn set_inventory(&self, id: &str, inv: &Inventory) -> Result<(), StoreError> {
        self.logged(Changed::Fleet, |c| {
            let n = c.execute(
                "UPDATE appliances SET inventory = $2 WHERE id = $1",
                &[id.into(), json(inv)],
            )?;
            known(n, "appliance", id)
        })
    }

    fn set_routes(&self, id: &str, routes: &Routes, now: u64) -> Result<(), StoreError> {
        self.logged(Changed::Bgp, |c| {
            if c.query("SELECT id FROM appliances WHERE id = $1", &[id.into()])?
                .is_empty()
            {
                return known(0, "appliance", id);
            }
            c.execute(
                "INSERT INTO bgp_routes (appliance, session, routes, updated) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (appliance) DO UPDATE SET session = excluded.session,
                   routes = excluded.routes, updated = excluded.updated",
                &[
                    id.into(),
                    (&routes.session).into(),
                    json(&routes.groups),
                    (now as i64).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn bgp_routes(&self) -> Result<Vec<BgpRoutes>, StoreError> {
        self.db.transaction(|c| {
            let rows = c.query(
                "SELECT appliance, session, routes, updated FROM bgp_routes ORDER BY appliance",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(BgpRoutes {
                        appliance: r[0].text()?,
                        routes: Routes {
                            session: r[1].text()?,
                            groups: from_json(&r[2])?.unwrap_or_default(),
                        },
                        updated: r[3].int()? as u64,
                    })
                })
                .collect()
        })
    }

    fn add_qoe(&self, events: &[QoeEvent], now: u64) -> Result<(), StoreError> {
        // Absent values are stored as -1 and '' (portable across both
        // databases' parameter typing).
        let value = |v: Option<u64>| v.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
        self.db.transaction(|c| {
            for e in events {
                c.execute(
                    "INSERT INTO qoe_events (received, session, title, kind, at_ms, value, host, isp)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        (now as i64).into(),
                        (&e.session).into(),
                        (&e.title).into(),
                        e.kind.name().into(),
                        (e.at_ms.min(i64::MAX as u64) as i64).into(),
                        value(e.value).into(),
                        e.host.clone().unwrap_or_default().into(),
                        e.isp.clone().unwrap_or_default().into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn qoe_events(&self, since: u64) -> Result<Vec<QoeEvent>, StoreError> {
        self.db.transaction(|c| {
            let rows = c.query(
                "SELECT session, title, kind, at_ms, value, host, isp FROM qoe_events WHERE received >= $1",
                &[(since as i64).into()],
            )?;
            rows.iter()
                .map(|r| {
                    let kind = r[2].text()?;
                    Ok(QoeEvent {
                        session: r[0].text()?,
                        title: r[1].name()?,
                        kind: QoeKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("QoE kind {kind}")))?,
                        at_ms: r[3].int()? as u64,
                        value: u64::try_from(r[4].int()?).ok(),
                        host: Some(r[5].text()?).filter(|h| !h.is_empty()),
                        isp: Some(r[6].text()?).filter(|i| !i.is_empty()),
                    })
                })
                .collect()
        })
    }

    fn add_daily_bytes(&self, rows: &[DailyBytes]) -> Result<(), StoreError> {
        self.logged(Changed::Demand, |c| rows.iter().try_for_each(|r| add_bytes(c, r)))
    }

    fn daily_bytes(&self, from_day: i64) -> Result<Vec<DailyBytes>, StoreError> {
        self.db.transaction(|c| {
            c.query(
                "SELECT day, isp, title, bytes FROM daily_bytes WHERE day >= $1 ORDER BY day, isp, title",
                &[from_day.into()],
            )?
            .iter()
            .map(|r| {
                Ok(DailyBytes {
                    day: r[0].int()?,
                    isp: r[1].text()?,
                    title: r[2].name()?,
                    bytes: r[3].int()? as u64,
                })
            })
            .collect()
        })
    }

    fn add_release(&self, r: &Release) -> Result<(), StoreError> {
        // '' stands for every ISP (a key column cannot be NULL).
        let isp = r.isp.clone().unwrap_or_default();
        self.logged(Changed::Demand, |c| {
            c.execute(
                "INSERT INTO releases (title, isp, day, boost_milli) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (title, isp) DO UPDATE SET day = excluded.day, boost_milli = excluded.boost_milli",
                &[
                    (&r.title).into(),
                    isp.into(),
                    r.day.into(),
                    ((r.boost * 1000.0).round() as i64).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn releases(&self, from_day: i64) -> Result<Vec<Release>, StoreError> {
        self.db.transaction(|c| {
            c.query(
                "SELECT title, isp, day, boost_milli FROM releases WHERE day >= $1 ORDER BY title, isp",
                &[from_day.into()],
            )?
            .iter()
            .map(|r| {
                let isp = r[1].text()?;
                Ok(Release {
                    title: r[0].name()?,
                    isp: (!isp.is_empty()).then_some(isp),
                    day: r[2].int()?,
                    boost: r[3].int()? as f64 / 1000.0,
                })
            })
            .collect()
        })
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.db.transaction(super::fleet::snapshot)
    }

    fn routing(&self) -> Result<Routing, StoreError> {
        self.db.transaction(|c| {
            let mut r = Routing::default();
            for row in c.query("SELECT asn, isp FROM isp_asns", &[])? {
                r.asn_isp.insert(row[0].int()? as u32, row[1].text()?);
            }
            for row in c.query("SELECT prefix, asn FROM prefixes", &[])? {
                r.prefixes.push((row[0].text()?, row[1].int()? as u32));
            }
            Ok(r)
        })
    }
}

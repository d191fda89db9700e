//! The fleet as one read: sites, appliances with their last heartbeat and
//! inventory, OS targets and which of them an emergency rollout set; what
//! the steering view and the box-facing answers are rebuilt from.

use super::db::Conn;
use super::sql::from_json;
use super::{ApplianceRecord, Heartbeat, Inventory, Snapshot, StoreError};

pub fn snapshot(c: &mut dyn Conn) -> Result<Snapshot, StoreError> {
    let mut s = Snapshot::default();
    for r in c.query("SELECT name, isp FROM sites", &[])? {
        s.sites.insert(r[0].text()?, r[1].text()?);
    }
    for r in c.query("SELECT appliance, release FROM os_targets", &[])? {
        s.os_targets.insert(r[0].text()?, r[1].text()?);
    }
    s.os_emergency = super::rollouts::emergency_boxes(c)?;
    let rows = c.query(
        "SELECT id, public_key, registration, last_heartbeat, heartbeat, inventory FROM appliances ORDER BY id",
        &[],
    )?;
    for r in rows {
        s.appliances.push(ApplianceRecord {
            id: r[0].text()?,
            public_key: r[1].text()?,
            registration: from_json(&r[2])?,
            last_heartbeat: r[3].opt_int()?.map(|t| t as u64),
            heartbeat: from_json::<Heartbeat>(&r[4])?,
            inventory: from_json::<Inventory>(&r[5])?.unwrap_or(Inventory {
                version: String::new(),
                titles: Vec::new(),
            }),
        });
    }
    Ok(s)
}

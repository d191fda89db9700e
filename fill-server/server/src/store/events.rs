//! The live events the operator created, kept so every replica knows them
//! (the media itself is in the memory of the replica the encoder pushes
//! to; see `live`). The spec is stored as JSON.

use super::db::Conn;
use super::StoreError;
use crate::live::EventSpec;

/// Adds event `spec`; false if one of its name exists.
pub fn add(c: &mut dyn Conn, spec: &EventSpec) -> Result<bool, StoreError> {
    let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = c.execute(
        "INSERT INTO live_events (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[(&spec.name).into(), json.into()],
    )?;
    Ok(n == 1)
}

/// Marks event `name` ended at `now`; false if there is none.
pub fn end(c: &mut dyn Conn, name: &str, now: u64) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE live_events SET ended = $2 WHERE name = $1 AND ended IS NULL",
        &[name.into(), (now as i64).into()],
    )?;
    Ok(n == 1
        || !c
            .query("SELECT name FROM live_events WHERE name = $1", &[name.into()])?
            .is_empty())
}

/// Every event, with whether it ended.
pub fn all(c: &mut dyn Conn) -> Result<Vec<(EventSpec, bool)>, StoreError> {
    c.query("SELECT spec, ended FROM live_events ORDER BY name", &[])?
        .iter()
        .map(|r| {
            let spec =
                serde_json::from_str(&r[0].text()?).map_err(|e| StoreError::Corrupt(format!("live event: {e}")))?;
            Ok((spec, r[1].opt_int()?.is_some()))
        })
        .collect()
}

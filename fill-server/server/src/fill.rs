//! Planning an appliance's fill manifest on request: tomorrow's demand for
//! its ISP from the stored daily bytes, the packaged titles from the origin
//! store's indexes, and the site's appliances with their inventories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nearcast_common::manifest::FillManifest;
use nearcast_common::{Grant, Name};

use crate::app::App;
use nearcast_packager::index::INDEX_FILE;
use nearcast_packager::TitleIndex;

use crate::plan::{plan_site, PlanParams, Slot};
use crate::predict::{predict, ModelParams, Release};
use crate::store::{day_of, Health, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("appliance '{0}' is not registered")]
    NotRegistered(String),
    #[error("site '{0}' has no ISP")]
    NoIsp(String),
}

/// Every title in the origin store with a readable index. A title whose
/// index cannot be read is left out (and logged): it cannot be verified.
pub fn load_titles(origin: &Path) -> BTreeMap<Name, TitleIndex> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(origin) else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a packaging in progress
        }
        let path = entry.path().join(INDEX_FILE);
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<TitleIndex>(&b).map_err(|e| e.to_string()))
        {
            Ok(index) if index.title == name.as_str() => {
                out.insert(index.title.clone(), index);
            }
            Ok(_) => tracing::warn!(path = %path.display(), "index names another title"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "unreadable title index"),
        }
    }
    out
}

/// How long the fill tokens in a manifest stay valid: through the next
/// day's window as well, should a fill run over.
const FILL_TOKEN_DAYS: u64 = 2;

/// The manifest of appliance `id` for the day of unix time `now`, with a
/// fill token per title. Peers are named as sources only while they are
/// up (a fresh heartbeat that is not `failed`); the agent still skips one
/// that went down since.
pub fn manifest_for(app: &App, id: &str, now: u64) -> Result<FillManifest, FillError> {
    let store = app.store.as_ref();
    let (origin, origin_url, key) = (&app.config.origin_store, &app.config.origin_url, &app.key);
    let snap = store.snapshot()?;
    let me = snap
        .appliances
        .iter()
        .find(|a| a.id == id)
        .and_then(|a| a.registration.as_ref())
        .ok_or_else(|| FillError::NotRegistered(id.to_string()))?;
    let site = me.site.clone();
    let isp = snap
        .sites
        .get(&site)
        .cloned()
        .ok_or_else(|| FillError::NoIsp(site.clone()))?;
    let day = day_of(now);
    let params = ModelParams::default();
    let history = store.daily_bytes(day - params.window_days)?;
    // A release for every ISP is one for this ISP, even before it has any
    // play history of its own.
    let releases: Vec<_> = store
        .releases(day - params.release_days)?
        .into_iter()
        .map(|r| Release {
            isp: Some(r.isp.unwrap_or_else(|| isp.clone())),
            ..r
        })
        .collect();
    let ranking = predict(&history, &releases, day, &params)
        .remove(&isp)
        .unwrap_or_default();
    let slots: Vec<Slot> = snap
        .appliances
        .iter()
        .filter_map(|a| {
            let reg = a.registration.as_ref().filter(|r| r.site == site)?;
            let fresh = a
                .last_heartbeat
                .is_some_and(|t| t + app.config.heartbeat_timeout_secs >= now);
            let up = fresh && a.heartbeat.as_ref().is_some_and(|h| h.health != Health::Failed);
            Some(Slot {
                id: a.id.clone(),
                capacity_bytes: reg.capacity_bytes,
                peer_url: reg.url.clone(),
                holds: if up {
                    a.inventory.titles.iter().cloned().collect::<BTreeSet<_>>()
                } else {
                    BTreeSet::new()
                },
            })
        })
        .collect();
    let titles = load_titles(origin);
    let plans = plan_site(
        &site,
        day,
        &slots,
        &ranking,
        &titles,
        origin_url,
        &PlanParams::default(),
    );
    let mut manifest = plans
        .into_iter()
        .find(|m| m.appliance == id)
        .ok_or_else(|| FillError::NotRegistered(id.to_string()))?;
    // Expiry at a day boundary keeps the manifest identical all day.
    let grant = Grant {
        expires: (day as u64 + 1 + FILL_TOKEN_DAYS) * 86_400,
        client_prefix: None,
    };
    for t in &mut manifest.titles {
        t.token = key.sign(&format!("/c/{}/", t.title), &grant);
    }
    Ok(manifest)
}

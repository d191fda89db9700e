//! Planning an appliance's fill manifest on request: tomorrow's demand for
//! its ISP from the stored daily bytes, the packaged titles from the origin
//! store's indexes, and the site's appliances with their inventories. A
//! site is planned once for all its boxes and the plan kept while its
//! inputs hold (`PlanCache`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use nearcast_common::manifest::FillManifest;
use nearcast_common::{Grant, Name};

use crate::app::App;
use nearcast_packager::index::INDEX_FILE;
use nearcast_packager::TitleIndex;

use crate::plan::{plan_site, PlanParams, Slot};
use crate::predict::{predict, DailyBytes, Forecast, ModelParams, Release};
use crate::steer::View;
use crate::store::{day_of, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("appliance '{0}' is not registered")]
    NotRegistered(String),
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

/// Site plans already made, by site, with the inputs they came from: a
/// manifest request re-plans only when one of them changed. Each site has
/// its own lock, held while it is planned: the site's other boxes asking
/// meanwhile wait for that plan instead of each making it (at night a
/// site's boxes ask within seconds of each other).
#[derive(Default)]
pub struct PlanCache {
    sites: Mutex<HashMap<String, Arc<SiteSlot>>>,
    /// What every site's plan is made from, read once per version.
    inputs: Mutex<Option<Inputs>>,
}

/// The play history, releases and titles of one (day, demand version,
/// titles stamp), and the rankings made from them so far, by ISP.
struct Inputs {
    key: (i64, u64, TitlesStamp),
    history: Vec<DailyBytes>,
    releases: Vec<Release>,
    titles: Titles,
    rankings: HashMap<String, Arc<Vec<Forecast>>>,
}

type TitlesStamp = (usize, Option<std::time::SystemTime>);

impl PlanCache {
    fn slot(&self, site: &str) -> Arc<SiteSlot> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.entry(site.to_string()).or_default().clone()
    }
}

/// Every box's manifest of one site, before tokens are signed in.
type SitePlan = Arc<Vec<FillManifest>>;
/// A site's plan and its inputs, locked while it is made.
type SiteSlot = Mutex<Option<(PlanKey, SitePlan)>>;
/// The packaged titles by name.
type Titles = Arc<BTreeMap<Name, TitleIndex>>;

/// What a site's plans are made from, as versions.
#[derive(Clone, Debug, PartialEq)]
struct PlanKey {
    day: i64,
    /// `App::plan_inputs`: fleet and demand versions.
    inputs: (u64, u64),
    /// The site's boxes and whether each is up.
    up: Vec<(String, bool)>,
    /// The packaged titles: how many, and the newest index's mtime.
    titles: TitlesStamp,
    /// The rights view's version and the window edges passed by now: a
    /// title's rights changing, or its window opening or closing, re-plans.
    rights: (u64, usize),
}

/// How many titles the origin store has and its newest index's mtime: a
/// title packaged, repackaged or removed changes it.
fn titles_stamp(origin: &Path) -> TitlesStamp {
    let Ok(dir) = std::fs::read_dir(origin) else {
        return (0, None);
    };
    dir.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| e.path().join(INDEX_FILE).metadata().ok()?.modified().ok())
        .fold((0, None), |(n, newest), m| (n + 1, newest.max(Some(m))))
}

/// The manifest of appliance `id` for the day of unix time `now`, with a
/// fill token per title. Peers are named as sources only while they are
/// up (a fresh heartbeat that is not `failed`); the agent still skips one
/// that went down since. The site comes from the steering view; the plan
/// from the cache while its inputs hold.
pub fn manifest_for(app: &App, id: &str, now: u64) -> Result<FillManifest, FillError> {
    let view = app.view();
    let me = view.get(id).ok_or_else(|| FillError::NotRegistered(id.to_string()))?;
    let day = day_of(now);
    let key = PlanKey {
        day,
        inputs: app.plan_inputs(),
        up: view
            .site(&me.site)
            .map(|b| (b.id.clone(), view.alive(b, now)))
            .collect(),
        titles: titles_stamp(&app.config.origin_store),
        rights: {
            let r = app.rights();
            (r.version, r.edges_passed(now))
        },
    };
    let slot = app.plans.slot(&me.site);
    let plans = {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref().filter(|(k, _)| *k == key) {
            Some((_, p)) => p.clone(),
            None => {
                let p = Arc::new(plan(app, &view, &me.site, &me.isp, (day, now), key.titles)?);
                *slot = Some((key, p.clone()));
                p
            }
        }
    };
    let mut manifest = plans
        .iter()
        .find(|m| m.appliance == id)
        .cloned()
        .ok_or_else(|| FillError::NotRegistered(id.to_string()))?;
    // Expiry at a day boundary keeps the manifest identical all day.
    let grant = Grant {
        expires: (day as u64 + 1 + FILL_TOKEN_DAYS) * 86_400,
        client_prefix: None,
    };
    for t in &mut manifest.titles {
        t.token = app.key.sign(&format!("/c/{}/", t.title), &grant);
    }
    Ok(manifest)
}

/// Tomorrow's ranking for `isp` and the packaged titles: the history,
/// releases and titles read once per (day, demand version, titles), each
/// ISP's ranking made once from them.
fn forecast(app: &App, isp: &str, day: i64, titles: TitlesStamp) -> Result<(Arc<Vec<Forecast>>, Titles), FillError> {
    let params = ModelParams::default();
    let key = (day, app.plan_inputs().1, titles);
    let mut cached = app.plans.inputs.lock().unwrap_or_else(|p| p.into_inner());
    let inputs = match cached.take() {
        Some(i) if i.key == key => cached.insert(i),
        _ => {
            let store = app.store.as_ref();
            cached.insert(Inputs {
                key,
                history: store.daily_bytes(day - params.window_days)?,
                releases: store.releases(day - params.release_days)?,
                titles: Arc::new(load_titles(&app.config.origin_store)),
                rankings: HashMap::new(),
            })
        }
    };
    if let Some(r) = inputs.rankings.get(isp) {
        return Ok((r.clone(), inputs.titles.clone()));
    }
    // This ISP's history; a release for every ISP is one for this ISP,
    // even before it has any play history of its own.
    let history: Vec<DailyBytes> = inputs.history.iter().filter(|h| h.isp == isp).cloned().collect();
    let releases: Vec<Release> = inputs
        .releases
        .iter()
        .filter(|r| r.isp.as_deref().is_none_or(|i| i == isp))
        .map(|r| Release {
            isp: Some(isp.to_string()),
            ..r.clone()
        })
        .collect();
    let ranking = Arc::new(
        predict(&history, &releases, day, &params)
            .remove(isp)
            .unwrap_or_default(),
    );
    inputs.rankings.insert(isp.to_string(), ranking.clone());
    Ok((ranking, inputs.titles.clone()))
}

/// Plans every box of `site` (at `day`, `now`) for `isp`'s forecast.
fn plan(
    app: &App,
    view: &View,
    site: &str,
    isp: &str,
    (day, now): (i64, u64),
    titles: TitlesStamp,
) -> Result<Vec<FillManifest>, FillError> {
    let (ranking, titles) = forecast(app, isp, day, titles)?;
    // Only what may be watched in the ISP's country now: a title whose
    // window closed leaves the manifest, and the agent evicts it.
    let rights = app.rights();
    let ranking: Vec<Forecast> = ranking
        .iter()
        .filter(|f| rights.for_isp(&f.title, isp, now))
        .cloned()
        .collect();
    let slots: Vec<Slot> = view
        .site(site)
        .map(|b| Slot {
            id: b.id.clone(),
            capacity_bytes: b.capacity_bytes,
            peer_url: b.url.clone(),
            holds: if view.alive(b, now) {
                b.titles.clone()
            } else {
                BTreeSet::new()
            },
        })
        .collect();
    Ok(plan_site(
        site,
        day,
        &slots,
        &ranking,
        &titles,
        &app.config.origin_url,
        &PlanParams::default(),
    ))
}

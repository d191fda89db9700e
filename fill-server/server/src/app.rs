//! The running server's state: the store, the signing key, and the
//! steering view rebuilt after every change and swapped in whole, so
//! steering reads never wait on the database. The prefix table (possibly a
//! full routing table) is rebuilt only when ISPs or prefixes change; the
//! fleet part on every appliance change.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nearcast_common::{IpPrefix, Keyring, PrefixTable, SigningKey};

use crate::config::Config;
use crate::steer::{Appliance, View};
use crate::store::{BgpRoutes, Health, Heartbeat, Routing, Snapshot, Store, StoreError};

/// How long a title found in the origin store is believed to be there
/// (a removed title stops being steered to within this).
const TITLE_RECHECK: Duration = Duration::from_secs(10);

pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub key: SigningKey,
    /// The same key, for checking tokens on the player routes.
    pub keyring: Keyring,
    pub trusted_proxies: Vec<IpPrefix>,
    pub metrics: crate::metrics::Metrics,
    /// Live events (in memory; see `live`).
    pub live: Arc<crate::live::Live>,
    view: RwLock<Arc<View>>,
    /// Bytes each appliance reported serving since this server started.
    served: Mutex<BTreeMap<String, u64>>,
    /// Titles found in the origin store, and when (see `has_title`).
    titles_seen: RwLock<HashMap<String, Instant>>,
    /// Serializes view writers, so a heartbeat patch and a rebuild never
    /// overwrite each other.
    writer: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("config: {0}")]
    Config(String),
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Result<App, AppError> {
        let load_key = || {
            SigningKey::from_hex(&config.token_key_id, &config.token_key_hex)
                .map_err(|e| AppError::Config(format!("token key: {e}")))
        };
        let key = load_key()?;
        let keyring = Keyring::new(vec![load_key()?]);
        if config.admin_token.len() < 16 {
            return Err(AppError::Config("admin_token must be at least 16 characters".into()));
        }
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .map(|p| p.parse().map_err(|e| AppError::Config(format!("trusted_proxies: {e}"))))
            .collect::<Result<_, _>>()?;
        let app = App {
            store,
            config,
            key,
            keyring,
            trusted_proxies,
            metrics: Default::default(),
            live: Default::default(),
            view: RwLock::new(Arc::new(View::default())),
            writer: Mutex::new(()),
            titles_seen: RwLock::new(HashMap::new()),
            served: Mutex::new(BTreeMap::new()),
        };
        app.refresh(Changed::Routing)?;
        Ok(app)
    }

    /// The current steering view.
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the parts of the steering view that `changed` affects.
    pub fn refresh(&self, changed: Changed) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let view = match changed {
            Changed::Nothing => return Ok(()),
            Changed::Heartbeat {
                ref id,
                at,
                load,
                healthy,
            } => {
                match self.view().with_heartbeat(id, at, load, healthy) {
                    Some(v) => v,
                    None => return Ok(()), // not in a site yet: nothing to steer to
                }
            }
            Changed::Routing => {
                let prefixes = Arc::new(build_prefixes(&self.store.routing()?));
                let mut v = build_view(&self.store.snapshot()?, prefixes, &self.config);
                v.bgp = Arc::new(build_bgp(&self.store.bgp_routes()?));
                v
            }
            Changed::Fleet => {
                let current = self.view();
                let mut v = build_view(&self.store.snapshot()?, current.prefixes.clone(), &self.config);
                v.bgp = current.bgp.clone();
                v
            }
            Changed::Bgp => {
                let mut v = (*self.view()).clone();
                v.bgp = Arc::new(build_bgp(&self.store.bgp_routes()?));
                v
            }
        };
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
        Ok(())
    }

    /// Adds a heartbeat's bytes to appliance `id`'s total.
    pub fn count_served(&self, id: &str, hb: &Heartbeat) {
        let n: u64 = hb.bytes_by_title.values().sum();
        *self
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default() += n;
    }

    pub fn served(&self) -> BTreeMap<String, u64> {
        self.served.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `title` is packaged in the origin store (its index exists).
    /// A title seen in the last `TITLE_RECHECK` is taken on trust; others
    /// cost one `stat`. The caller has checked the name is plain.
    pub fn has_title(&self, title: &str) -> bool {
        let now = Instant::now();
        let fresh = |seen: &Instant| now.duration_since(*seen) < TITLE_RECHECK;
        if self
            .titles_seen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(title)
            .is_some_and(fresh)
        {
            return true;
        }
        let exists = self
            .config
            .origin_store
            .join(title)
            .join(nearcast_packager::index::INDEX_FILE)
            .is_file();
        let mut seen = self.titles_seen.write().unwrap_or_else(|p| p.into_inner());
        if exists {
            seen.insert(title.to_string(), now);
        } else {
            seen.remove(title);
        }
        exists
    }

    /// The client's address: the socket peer, or for a trusted proxy the
    /// right-most `X-Forwarded-For` entry that is not itself trusted.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|p| p.contains(*ip));
        if !trusted(&peer) {
            return peer;
        }
        forwarded_for
            .into_iter()
            .flat_map(|h| h.rsplit(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !trusted(ip))
            .unwrap_or(peer)
    }
}

/// What a write touched, so the view rebuilds only that.
#[derive(Clone, Debug, PartialEq)]
pub enum Changed {
    /// ISPs or prefixes (and everything else).
    Routing,
    /// Sites, enrollments, registrations, inventories.
    Fleet,
    /// An appliance's BGP-learned routes.
    Bgp,
    /// One appliance's heartbeat: patched into the view in memory.
    Heartbeat {
        id: String,
        at: u64,
        load: f64,
        healthy: bool,
    },
    /// Nothing steering reads (play logs, releases).
    Nothing,
}

/// Whether a heartbeat keeps its box in the answers. A failed disk does
/// not take the box out: its titles leave through the next inventory, the
/// other disks keep serving.
pub fn steerable(hb: &Heartbeat) -> bool {
    hb.health != Health::Failed
}

fn build_prefixes(r: &Routing) -> PrefixTable<String> {
    let mut prefixes = PrefixTable::new();
    for (p, asn) in &r.prefixes {
        if let (Ok(prefix), Some(isp)) = (p.parse::<IpPrefix>(), r.asn_isp.get(asn)) {
            prefixes.insert(prefix, isp.clone());
        }
    }
    prefixes
}

/// BGP prefix → the appliances that learned it. The sets of appliances
/// are interned (a site's boxes hear the same table, so a million
/// prefixes share a handful of sets): a prefix costs a pointer.
fn build_bgp(routes: &[BgpRoutes]) -> PrefixTable<Arc<[String]>> {
    let mut by_prefix: HashMap<IpPrefix, Vec<String>> = HashMap::new();
    for r in routes {
        for p in r.routes.prefixes() {
            if let Ok(prefix) = p.parse::<IpPrefix>() {
                by_prefix.entry(prefix).or_default().push(r.appliance.clone());
            }
        }
    }
    let mut sets: HashMap<Vec<String>, Arc<[String]>> = HashMap::new();
    let mut table = PrefixTable::new();
    for (prefix, ids) in by_prefix {
        let shared = sets.entry(ids).or_insert_with_key(|ids| ids.clone().into()).clone();
        table.insert(prefix, shared);
    }
    table
}

fn build_view(s: &Snapshot, prefixes: Arc<PrefixTable<String>>, cfg: &Config) -> View {
    let boxes = s
        .appliances
        .iter()
        .filter_map(|a| {
            let reg = a.registration.as_ref()?;
            let isp = s.sites.get(&reg.site)?;
            let hb = a.heartbeat.as_ref();
            let healthy = hb.is_some_and(steerable);
            Some(Appliance {
                id: a.id.clone(),
                isp: isp.clone(),
                site: reg.site.clone(),
                url: reg.url.clone(),
                last_heartbeat: a.last_heartbeat.unwrap_or(0),
                load: hb.map_or(1.0, |h| h.load),
                healthy,
                titles: a.inventory.titles.iter().cloned().collect(),
            })
        })
        .collect();
    View::new(
        prefixes,
        boxes,
        cfg.origin_url.clone(),
        cfg.heartbeat_timeout_secs,
        cfg.steer_max_appliances,
    )
}

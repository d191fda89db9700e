//! The running server's state: the store, the signing key, and the
//! steering view rebuilt after every change and swapped in whole, so
//! steering reads never wait on the database. The prefix table (possibly a
//! full routing table) is rebuilt only when ISPs or prefixes change; the
//! fleet part on every appliance change.
//!
//! Several servers may run as replicas on one PostgreSQL: each follows the
//! others' writes through the store's change log (`replica`) and writes
//! heartbeats in batches (`beats`); `App::start` starts both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nearcast_common::answer_auth::AnswerSigner;
use nearcast_common::{IpPrefix, Keyring, PrefixTable, SigningKey};

use crate::config::Config;
use crate::steer::{Appliance, View};
pub use crate::store::Changed;
use crate::store::{BgpRoutes, Health, Routing, Snapshot, Store, StoreError};

/// How long a title found in the origin store is believed to be there
/// (a removed title stops being steered to within this).
const TITLE_RECHECK: Duration = Duration::from_secs(10);

pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub key: SigningKey,
    /// The same key, for checking tokens on the player routes.
    pub keyring: Keyring,
    /// Signs every answer to a box (`nearcast_common::answer_auth`).
    pub answer: AnswerSigner,
    /// HTTPS on `listen`, when a certificate is configured.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub trusted_proxies: Vec<IpPrefix>,
    pub metrics: crate::metrics::Metrics,
    /// Live events (in memory; see `live`).
    pub live: Arc<crate::live::Live>,
    view: RwLock<Arc<View>>,
    /// Heartbeats waiting for their batch's transaction.
    pub beats: crate::beats::Batcher,
    /// Fill plans already made, by their inputs (see `fill`).
    pub plans: crate::fill::PlanCache,
    /// Bumped by every rebuild of the fleet part of the view (a fill plan
    /// made before it is stale).
    fleet_version: AtomicU64,
    /// Bumped when play history or releases change (the same for plans).
    demand_version: AtomicU64,
    /// Whether this replica holds the jobs' lock (runs retention).
    pub leading: AtomicBool,
    /// Titles found in the origin store, and when (see `has_title`).
    titles_seen: RwLock<HashMap<String, Instant>>,
    /// Serializes view writers, so a heartbeat patch and a rebuild never
    /// overwrite each other.
    writer: Mutex<()>,
    /// Keys and OS targets, swapped whole with each fleet rebuild.
    known: RwLock<Arc<Known>>,
    /// Content keys and entitlements (`POST /v1/license`).
    pub license: nearcast_license::LicenseService,
    /// Titles' windows and territories, swapped whole on each change.
    rights: RwLock<Arc<crate::rights::RightsView>>,
    /// Why steering sent viewers to the origin, until the next sample.
    pub misses: crate::misses::Ledger,
}

/// What authenticating a box and answering its heartbeat read.
#[derive(Default)]
struct Known {
    keys: HashMap<String, String>,
    os_targets: HashMap<String, String>,
    os_emergency: std::collections::HashSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("config: {0}")]
    Config(String),
}

impl App {
    /// The server's state, following the other replicas' changes and
    /// batching heartbeats on threads of its own until it is dropped.
    pub fn start(store: Arc<dyn Store>, config: Config) -> Result<Arc<App>, AppError> {
        // Read before the view is built: a change made in between is
        // applied twice, which rebuilds to the same view, rather than lost.
        let followed = store.latest_change()?;
        let app = Arc::new(App::new(store, config)?);
        crate::beats::spawn(&app).map_err(|e| AppError::Config(format!("heartbeat writer: {e}")))?;
        crate::replica::spawn(&app, followed).map_err(|e| AppError::Config(format!("replica follower: {e}")))?;
        crate::leases::spawn(&app).map_err(|e| AppError::Config(format!("lease sharing: {e}")))?;
        crate::misses::spawn(&app).map_err(|e| AppError::Config(format!("origin egress: {e}")))?;
        Ok(app)
    }

    fn new(store: Arc<dyn Store>, config: Config) -> Result<App, AppError> {
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
        let answer = load_answer_key(&config)?;
        let license = crate::license::service(&config)?;
        let unknown: crate::rights::Unknown = config.rights.unknown_country.parse().map_err(AppError::Config)?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                nearcast_appliance::server::tls::server_config(cert, key, false)
                    .map_err(|e| AppError::Config(e.to_string()))?,
            ),
            (None, None) => None,
            _ => return Err(AppError::Config("tls_cert and tls_key go together".into())),
        };
        let app = App {
            store,
            config,
            key,
            keyring,
            answer,
            tls,
            trusted_proxies,
            metrics: Default::default(),
            live: Default::default(),
            view: RwLock::new(Arc::new(View::default())),
            writer: Mutex::new(()),
            titles_seen: RwLock::new(HashMap::new()),
            beats: Default::default(),
            plans: Default::default(),
            fleet_version: AtomicU64::new(0),
            demand_version: AtomicU64::new(0),
            leading: AtomicBool::new(false),
            known: Default::default(),
            license,
            rights: RwLock::new(Arc::new(crate::rights::RightsView::empty(unknown))),
            misses: Default::default(),
        };
        app.refresh(&Changed::Routing)?;
        Ok(app)
    }

    /// The current steering view.
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the parts of the steering view that `changed` affects.
    pub fn refresh(&self, changed: &Changed) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let view = match changed {
            Changed::Nothing => return Ok(()),
            Changed::Live => return self.sync_live(),
            Changed::Rights => return self.rebuild_rights(),
            Changed::Leases(leases) => {
                self.license.apply_shared(leases);
                return Ok(());
            }
            Changed::Demand => {
                self.demand_version.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Changed::Heartbeats(beats) => match self.view().with_heartbeats(beats) {
                Some(v) => v,
                None => return Ok(()), // not in a site yet: nothing to steer to
            },
            Changed::Routing => {
                let prefixes = Arc::new(build_prefixes(&self.store.routing()?));
                let snap = self.store.snapshot()?;
                self.set_boxes(&snap);
                let mut v = build_view(&snap, prefixes, &self.config).keep_quality(&self.view());
                v.bgp = Arc::new(build_bgp(&self.store.bgp_routes()?));
                self.fleet_version.fetch_add(1, Ordering::Relaxed);
                self.sync_live()?;
                self.rebuild_rights()?;
                v
            }
            Changed::Fleet => {
                let current = self.view();
                let snap = self.store.snapshot()?;
                self.set_boxes(&snap);
                let mut v = build_view(&snap, current.prefixes.clone(), &self.config).keep_quality(&current);
                v.bgp = current.bgp.clone();
                self.fleet_version.fetch_add(1, Ordering::Relaxed);
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

    /// The current rights view.
    pub fn rights(&self) -> Arc<crate::rights::RightsView> {
        self.rights.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn rebuild_rights(&self) -> Result<(), StoreError> {
        let current = self.rights();
        let view = crate::rights::build(self.store.as_ref(), current.unknown, current.version + 1)?;
        *self.rights.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
        Ok(())
    }

    /// What every call of a box reads, from the snapshot the view was
    /// built from, so a heartbeat costs no query but its batch's.
    fn set_boxes(&self, snap: &Snapshot) {
        let known = Known {
            keys: snap
                .appliances
                .iter()
                .map(|a| (a.id.clone(), a.public_key.clone()))
                .collect(),
            os_targets: snap.os_targets.clone().into_iter().collect(),
            os_emergency: snap.os_emergency.iter().cloned().collect(),
        };
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(known);
    }

    /// Appliance `id`'s enrolled public key: from memory, else (enrolled
    /// on another replica in the last second) from the store.
    pub fn public_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).clone();
        match known.keys.get(id) {
            Some(k) => Ok(Some(k.clone())),
            None => self.store.public_key(id),
        }
    }

    /// The OS release appliance `id` should run, if one is set.
    pub fn os_target(&self, id: &str) -> Option<String> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).clone();
        known.os_targets.get(id).cloned()
    }

    /// Whether appliance `id`'s OS target comes from an active emergency
    /// rollout (it installs at once, outside its maintenance window).
    pub fn os_emergency(&self, id: &str) -> bool {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).clone();
        known.os_emergency.contains(id)
    }

    /// Live events as stored (created or ended on any replica); an event
    /// that ended with its media here is archived here, on a thread of its
    /// own (it writes a whole title).
    fn sync_live(&self) -> Result<(), StoreError> {
        let keys = |spec: &crate::live::EventSpec| {
            spec.encrypt?;
            let store = nearcast_packager::cenc::KeyStore::new(&self.config.license.key_store);
            match store.load(&spec.name) {
                Ok(Some(keys)) => Some(crate::live::EventKeys {
                    keys,
                    license_url: self.config.license_url(),
                }),
                Ok(None) => {
                    tracing::warn!(event = %spec.name, "an encrypted live event without keys in this replica's key store");
                    None
                }
                Err(e) => {
                    tracing::warn!(event = %spec.name, error = %e, "an encrypted live event's keys are unreadable");
                    None
                }
            }
        };
        for event in self.live.sync(self.store.live_events()?, keys) {
            let store = self.config.origin_store.clone();
            let name = event.spec.name.clone();
            let spawned = std::thread::Builder::new()
                .name("nearcast-archive".into())
                .spawn(move || event.archive(&store));
            if let Err(e) = spawned {
                tracing::error!(event = %name, error = %e, "live archive not started");
            }
        }
        Ok(())
    }

    /// The versions of what fill plans are made from: (fleet, demand).
    pub fn plan_inputs(&self) -> (u64, u64) {
        (
            self.fleet_version.load(Ordering::Relaxed),
            self.demand_version.load(Ordering::Relaxed),
        )
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

/// The answer key from `answer_key_file`, made there (mode 0600) if the
/// file does not exist yet. Made with `create_new`, so replicas starting
/// together on a shared directory end up with one key.
fn load_answer_key(c: &Config) -> Result<AnswerSigner, AppError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = &c.answer_key_file;
    let bad = |e: &dyn std::fmt::Display| AppError::Config(format!("answer key {}: {e}", path.display()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut f) => {
            let der = AnswerSigner::generate_pkcs8().map_err(|e| bad(&e))?;
            f.write_all(&der).and_then(|_| f.sync_all()).map_err(|e| bad(&e))?;
            let signer = AnswerSigner::from_pkcs8(&c.answer_key_id, &der).map_err(|e| bad(&e))?;
            tracing::info!(path = %path.display(), key = %signer.public_entry(), "made a new answer key");
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let der = std::fs::read(path).map_err(|e| bad(&e))?;
            AnswerSigner::from_pkcs8(&c.answer_key_id, &der).map_err(|e| bad(&e))
        }
        Err(e) => Err(bad(&e)),
    }
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
            let healthy = hb.is_some_and(|h| h.health != Health::Failed);
            Some(Appliance {
                id: a.id.clone(),
                isp: isp.clone(),
                site: reg.site.clone(),
                url: reg.url.clone(),
                capacity_bytes: reg.capacity_bytes,
                last_heartbeat: a.last_heartbeat.unwrap_or(0),
                load: hb.map_or(1.0, |h| h.load),
                healthy,
                titles: a.inventory.titles.iter().cloned().collect(),
                quality: Default::default(),
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

//! The license service: content keys held in memory (read from the key
//! store at start, and again by the caller, off its async threads, when a
//! request names a key it has not seen: `may_reread` + `reload`),
//! entitlements and play sessions checked with no
//! database round trip, and the stream limit. Each call is a decision on
//! its inputs: the API turns the answers into HTTP.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use nearcast_packager::cenc::keys::KeyStoreError;
use nearcast_packager::cenc::KeyStore;

use crate::clearkey::{self, RequestError};
use crate::grant::{Entitlement, Grant, Session};
use crate::jwt::{self, JwtError, JwtKey};
use crate::streams::Streams;

/// The stream and device leases a replica admitted, for the others.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedLeases {
    pub streams: Vec<crate::streams::Lease>,
    pub devices: Vec<crate::streams::Lease>,
}

impl SharedLeases {
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.devices.is_empty()
    }
}

/// A key ID and its content key.
type KidKey = ([u8; 16], [u8; 16]);

/// The key id of our own session tokens.
const SESSION_KID: &str = "nearcast-session";

#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    #[error("no entitlement: send `Authorization: Bearer <entitlement>` or use the play session's license URL")]
    NoEntitlement,
    #[error("entitlement refused: {0}")]
    Entitlement(JwtError),
    #[error("play session refused: {0}")]
    Session(JwtError),
    #[error("the entitlement of '{sub}' does not cover title '{title}'")]
    NotEntitled { sub: String, title: String },
    #[error("no title has key {0}")]
    UnknownKey(String),
    #[error("{0}")]
    BadRequest(#[from] RequestError),
    #[error("'{sub}' already plays {max} streams")]
    StreamLimit { sub: String, max: u32 },
    #[error("'{sub}' already uses {max} devices")]
    DeviceLimit { sub: String, max: u32 },
    #[error("the entitlement limits devices (max_devices) but names none (device)")]
    NoDevice,
    #[error("key store: {0}")]
    KeyStore(#[from] KeyStoreError),
}

/// How the service is set up.
pub struct Config {
    /// Keys of the account system that issues entitlements.
    pub entitlement_keys: Vec<JwtKey>,
    /// Our secret for play-session tokens (replicas share it).
    pub session_secret: Vec<u8>,
    pub key_store: PathBuf,
    /// How long a play session's token lives (capped by its entitlement).
    pub session_ttl_secs: u64,
    /// A stream counts this long after its last license, key or renewal.
    pub lease_secs: u64,
    /// A device counts against `max_devices` this long after its last call.
    pub device_window_secs: u64,
}

/// How a call proves its right.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// `Authorization: Bearer <entitlement>`.
    Bearer(&'a str),
    /// A play session's token (in its license URL).
    Session(&'a str),
    None,
}

/// Key ID → (title, key), and the titles that have keys.
#[derive(Default)]
struct KeyIndex {
    keys: HashMap<[u8; 16], (String, [u8; 16])>,
    titles: HashSet<String>,
}

pub struct LicenseService {
    entitlement_keys: Vec<JwtKey>,
    session_keys: Vec<JwtKey>,
    session_secret: Vec<u8>,
    store: KeyStore,
    index: RwLock<Arc<KeyIndex>>,
    /// When the key store was last read (unix seconds).
    read_at: Mutex<u64>,
    streams: Mutex<Streams>,
    /// Devices per subject: the same leases, over a longer window.
    devices: Mutex<Streams>,
    session_ttl_secs: u64,
    lease_secs: u64,
    device_window_secs: u64,
}

impl LicenseService {
    /// The service, with every key of the key store read.
    pub fn new(config: Config) -> Result<LicenseService, LicenseError> {
        let session_keys = vec![JwtKey::hs256(SESSION_KID, &config.session_secret)
            .map_err(|e| LicenseError::Session(JwtError::Claims(e.into())))?];
        let service = LicenseService {
            entitlement_keys: config.entitlement_keys,
            session_keys,
            session_secret: config.session_secret,
            store: KeyStore::new(&config.key_store),
            index: RwLock::new(Arc::new(KeyIndex::default())),
            read_at: Mutex::new(0),
            streams: Mutex::new(Streams::default()),
            devices: Mutex::new(Streams::default()),
            session_ttl_secs: config.session_ttl_secs,
            lease_secs: config.lease_secs,
            device_window_secs: config.device_window_secs,
        };
        service.reload()?;
        Ok(service)
    }

    /// Reads the key store again; returns how many titles have keys.
    pub fn reload(&self) -> Result<usize, LicenseError> {
        let mut index = KeyIndex::default();
        for title in self.store.all()? {
            for k in title.all()? {
                index.keys.insert(k.kid, (title.title.clone(), k.key));
            }
            index.titles.insert(title.title);
        }
        let n = index.titles.len();
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(n)
    }

    fn index(&self) -> Arc<KeyIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The title key ID `kid` belongs to (as the store read last).
    pub fn title_of(&self, kid: &[u8; 16]) -> Option<String> {
        self.index().keys.get(kid).map(|(title, _)| title.clone())
    }

    /// Whether `title` has keys (as the store read last).
    pub fn protected(&self, title: &str) -> bool {
        self.index().titles.contains(title)
    }

    /// Opens a play session of `title` for the bearer of `entitlement`:
    /// the token its license URL carries.
    pub fn open_session(&self, entitlement: &str, title: &str, now: u64) -> Result<String, LicenseError> {
        let e = self.entitlement(entitlement, now)?;
        if !e.covers(title) {
            return Err(LicenseError::NotEntitled {
                sub: e.sub,
                title: title.to_string(),
            });
        }
        let session = Session {
            sub: e.sub,
            exp: e.exp.min(now + self.session_ttl_secs),
            title: title.to_string(),
            sid: nearcast_packager::cenc::keys::hex(&nearcast_packager::cenc::keys::random_16()),
            max_streams: e.max_streams,
            device: e.device,
            max_devices: e.max_devices,
        };
        Ok(jwt::sign_hs256(SESSION_KID, &self.session_secret, &session))
    }

    fn entitlement(&self, token: &str, now: u64) -> Result<Entitlement, LicenseError> {
        jwt::verify(&self.entitlement_keys, token, now).map_err(LicenseError::Entitlement)
    }

    fn grant(&self, auth: Auth, now: u64) -> Result<Grant, LicenseError> {
        match auth {
            Auth::Bearer(t) => Ok(self.entitlement(t, now)?.grant(t)),
            Auth::Session(t) => {
                let s: Session = jwt::verify(&self.session_keys, t, now).map_err(LicenseError::Session)?;
                Ok(s.into())
            }
            Auth::None => Err(LicenseError::NoEntitlement),
        }
    }

    /// Answers a Clear Key license request: the JWK set of the asked keys.
    pub fn license(&self, auth: Auth, request: &[u8], now: u64) -> Result<Vec<u8>, LicenseError> {
        let grant = self.grant(auth, now)?;
        let kids = clearkey::parse_request(request)?;
        let keys = self.keys(&grant, &kids, now)?;
        Ok(clearkey::response(&keys))
    }

    /// One key's 16 bytes (HLS `identity` key delivery).
    pub fn key(&self, auth: Auth, kid: &[u8; 16], now: u64) -> Result<[u8; 16], LicenseError> {
        let grant = self.grant(auth, now)?;
        let keys = self.keys(&grant, &[*kid], now)?;
        Ok(keys[0].1)
    }

    /// Moves the stream's lease on (players call it while they play).
    pub fn renew(&self, auth: Auth, now: u64) -> Result<u64, LicenseError> {
        let grant = self.grant(auth, now)?;
        self.admit(&grant, now)?;
        Ok(self.lease_secs)
    }

    /// The (kid, key) of every one of `kids` the grant covers, the stream
    /// admitted.
    fn keys(&self, grant: &Grant, kids: &[[u8; 16]], now: u64) -> Result<Vec<KidKey>, LicenseError> {
        let index = self.index();
        let mut out = Vec::with_capacity(kids.len());
        for kid in kids {
            let hex = nearcast_packager::cenc::keys::hex(kid);
            let (title, key) = index.keys.get(kid).ok_or(LicenseError::UnknownKey(hex))?;
            if !grant.covers(title) {
                return Err(LicenseError::NotEntitled {
                    sub: grant.sub.clone(),
                    title: title.clone(),
                });
            }
            out.push((*kid, *key));
        }
        self.admit(grant, now)?;
        Ok(out)
    }

    /// The leases admitted here since the last call, to share.
    pub fn take_shared(&self) -> SharedLeases {
        SharedLeases {
            streams: self.streams.lock().unwrap_or_else(|e| e.into_inner()).take_shared(),
            devices: self.devices.lock().unwrap_or_else(|e| e.into_inner()).take_shared(),
        }
    }

    /// Leases another replica admitted: they count here too.
    pub fn apply_shared(&self, shared: &SharedLeases) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        shared.streams.iter().for_each(|l| streams.apply(l));
        drop(streams);
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        shared.devices.iter().for_each(|l| devices.apply(l));
    }

    /// Counts the grant's device (when its entitlement limits devices),
    /// then its stream.
    fn admit(&self, grant: &Grant, now: u64) -> Result<(), LicenseError> {
        if let Some(max) = grant.max_devices {
            let device = grant.device.as_deref().ok_or(LicenseError::NoDevice)?;
            let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
            if !devices.admit(&grant.sub, device, Some(max), now, self.device_window_secs) {
                return Err(LicenseError::DeviceLimit {
                    sub: grant.sub.clone(),
                    max,
                });
            }
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if streams.admit(&grant.sub, &grant.stream, grant.max_streams, now, self.lease_secs) {
            Ok(())
        } else {
            Err(LicenseError::StreamLimit {
                sub: grant.sub.clone(),
                max: grant
                    .max_streams
                    .unwrap_or(crate::streams::MAX_STREAMS_PER_SUBJECT as u32),
            })
        }
    }

    /// Whether the key store may be read again now, after a call named
    /// a key ID it does not know (a title packaged since): once a second
    /// at most, so unknown key IDs cannot make every request read it.
    pub fn may_reread(&self, now: u64) -> bool {
        let mut at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        if now > *at {
            *at = now;
            true
        } else {
            false
        }
    }
}

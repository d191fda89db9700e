//! Content keys and the key store.
//!
//! A title has one random 128-bit key per track type (`video`, `audio`),
//! each with a random key ID. The key store is a folder of its own, never
//! the origin store (boxes fill from the origin store; no key may reach
//! one): `{dir}/{title}.json`, mode 0600 in a 0700 folder, replaced
//! atomically:
//!
//! ```json
//! {"title": "demo", "scheme": "cenc",
//!  "keys": [{"tracks": "video", "kid": "<32 hex>", "key": "<32 hex>"}, …]}
//! ```
//!
//! Packaging a title again keeps its keys (players and licenses issued
//! for the old segments stay valid while boxes refill). The fill server's
//! license service reads the same folder.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::Scheme;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a key file: {source}")]
    Malformed { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {what} must be 32 hex digits (16 bytes), got '{value}'")]
    BadKey {
        path: PathBuf,
        what: &'static str,
        value: String,
    },
    #[error("{path}: no key for the {tracks} tracks")]
    NoKey { path: PathBuf, tracks: String },
}

/// A content key and its key ID.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ContentKey {
    pub kid: [u8; 16],
    pub key: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    // The key itself never goes into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey {{ kid: {} }}", hex(&self.kid))
    }
}

/// A title's keys as the key store holds them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TitleKeys {
    pub title: String,
    pub scheme: Scheme,
    keys: Vec<KeyEntry>,
    /// Other DRM systems' signalling, from a CPIX document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<super::cpix::DrmSystem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyEntry {
    tracks: String,
    kid: String,
    key: String,
}

impl TitleKeys {
    /// New random keys for `title`.
    pub fn generate(title: &str, scheme: Scheme) -> TitleKeys {
        let entry = |tracks: &str| KeyEntry {
            tracks: tracks.to_string(),
            kid: hex(&random_16()),
            key: hex(&random_16()),
        };
        TitleKeys {
            title: title.to_string(),
            scheme,
            keys: vec![entry("video"), entry("audio")],
            systems: Vec::new(),
        }
    }

    /// The keys and systems a CPIX document gives.
    pub fn from_cpix(title: &str, scheme: Scheme, cpix: &super::cpix::Cpix) -> TitleKeys {
        let entry = |tracks: &str, k: &ContentKey| KeyEntry {
            tracks: tracks.to_string(),
            kid: hex(&k.kid),
            key: hex(&k.key),
        };
        TitleKeys {
            title: title.to_string(),
            scheme,
            keys: vec![entry("video", &cpix.video), entry("audio", &cpix.audio)],
            systems: cpix.systems.clone(),
        }
    }

    /// The other systems' signalling for key `kid`.
    pub fn systems_of(&self, kid: &[u8; 16]) -> Vec<super::cpix::DrmSystem> {
        let kid = hex(kid);
        self.systems.iter().filter(|s| s.kid == kid).cloned().collect()
    }

    /// The key of the `video` or `audio` tracks (or of a video rung
    /// group, `rung_group`).
    pub fn key(&self, tracks: &str) -> Result<ContentKey, KeyStoreError> {
        let path = PathBuf::from(format!("{}.json", self.title));
        let e = self
            .keys
            .iter()
            .find(|k| k.tracks == tracks)
            .ok_or_else(|| KeyStoreError::NoKey {
                path: path.clone(),
                tracks: tracks.to_string(),
            })?;
        let parse = |what, value: &str| {
            unhex(value).ok_or_else(|| KeyStoreError::BadKey {
                path: path.clone(),
                what,
                value: if what == "key" { "…".into() } else { value.to_string() },
            })
        };
        Ok(ContentKey {
            kid: parse("kid", &e.kid)?,
            key: parse("key", &e.key)?,
        })
    }

    /// Every (kid, key) of the title (a stored title has video and audio
    /// keys, or audio and rung groups' keys).
    pub fn all(&self) -> Result<Vec<ContentKey>, KeyStoreError> {
        let all = self
            .keys
            .iter()
            .map(|k| self.key(&k.tracks))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.keys.iter().any(|k| k.tracks.starts_with("video")) {
            self.key("video")?;
        }
        self.key("audio")?;
        Ok(all)
    }

    /// Adds a random key for `tracks` unless the title has one.
    pub fn ensure(&mut self, tracks: &str) {
        if !self.keys.iter().any(|k| k.tracks == tracks) {
            self.keys.push(KeyEntry {
                tracks: tracks.to_string(),
                kid: hex(&random_16()),
                key: hex(&random_16()),
            });
        }
    }
}

/// The key group of a video rung `height` pixels high when each group
/// has its own key (as studios ask: a leaked SD key opens no HD).
pub fn rung_group(height: u16) -> &'static str {
    match height {
        0..720 => "video-sd",
        720..2160 => "video-hd",
        _ => "video-uhd",
    }
}

/// The key store folder.
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: &Path) -> KeyStore {
        KeyStore { dir: dir.to_path_buf() }
    }

    fn path(&self, title: &str) -> PathBuf {
        self.dir.join(format!("{title}.json"))
    }

    /// The title's keys, if it has any.
    pub fn load(&self, title: &str) -> Result<Option<TitleKeys>, KeyStoreError> {
        let path = self.path(title);
        match std::fs::read(&path) {
            Ok(bytes) => read_keys(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyStoreError::Io { path, source }),
        }
    }

    /// The title's keys: the stored ones (scheme updated) or new ones.
    /// Not saved: `save` once the title is packaged.
    pub fn keys_for(&self, title: &str, scheme: Scheme) -> Result<TitleKeys, KeyStoreError> {
        Ok(match self.load(title)? {
            Some(mut k) => {
                k.scheme = scheme;
                k
            }
            None => TitleKeys::generate(title, scheme),
        })
    }

    /// Writes the title's key file (0600, atomically, synced).
    pub fn save(&self, keys: &TitleKeys) -> Result<(), KeyStoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyStoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&self.dir))?;
        let path = self.path(&keys.title);
        let tmp = self
            .dir
            .join(format!(".{}.json.tmp-{}", keys.title, std::process::id()));
        let json = serde_json::to_vec_pretty(keys).map_err(|e| KeyStoreError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// Every title's keys in the folder (an unreadable file is an error:
    /// a license service must not start missing keys silently).
    pub fn all(&self) -> Result<Vec<TitleKeys>, KeyStoreError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyStoreError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| KeyStoreError::Io {
                path: path.clone(),
                source,
            })?;
            out.push(read_keys(&path, &bytes)?);
        }
        Ok(out)
    }
}

fn read_keys(path: &Path, bytes: &[u8]) -> Result<TitleKeys, KeyStoreError> {
    let keys: TitleKeys = serde_json::from_slice(bytes).map_err(|source| KeyStoreError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    keys.all()?;
    Ok(keys)
}

/// 16 random bytes from the system's generator.
pub fn random_16() -> [u8; 16] {
    let mut b = [0u8; 16];
    // The system generator fails only when the OS has none; nothing can
    // be encrypted safely then.
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator failed");
    b
}

pub use nearcast_common::digest::hex;

/// 32 hex digits (dashes allowed, as in a UUID) to 16 bytes.
pub fn unhex(s: &str) -> Option<[u8; 16]> {
    nearcast_common::token::decode_hex(&s.replace('-', ""))?.try_into().ok()
}

/// The UUID form of a key ID (`cenc:default_KID`).
pub fn uuid(kid: &[u8; 16]) -> String {
    let h = hex(kid);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("nearcast-keys-{}", std::process::id()));
        let store = KeyStore::new(&dir);
        assert!(store.load("t").unwrap().is_none());
        let keys = store.keys_for("t", Scheme::Cenc).unwrap();
        store.save(&keys).unwrap();
        let mode = std::fs::metadata(dir.join("t.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = store.keys_for("t", Scheme::Cbcs).unwrap();
        assert_eq!(
            again.all().unwrap(),
            keys.all().unwrap(),
            "packaging again keeps the keys"
        );
        assert_ne!(keys.key("video").unwrap(), keys.key("audio").unwrap());
        std::fs::write(
            dir.join("u.json"),
            br#"{"title":"u","scheme":"cenc","keys":[{"tracks":"video","kid":"00","key":"11"}]}"#,
        )
        .unwrap();
        let err = store.all().unwrap_err().to_string();
        assert!(err.contains("kid must be 32 hex digits"), "{err}");
        std::fs::write(dir.join("u.json"), b"{").unwrap();
        assert!(matches!(store.load("u"), Err(KeyStoreError::Malformed { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(uuid(&[0xab; 16]), "abababab-abab-abab-abab-abababababab");
        assert_eq!(unhex(&uuid(&[7; 16])), Some([7; 16]));
        assert_eq!(
            format!("{:?}", keys.key("video").unwrap()).len(),
            "ContentKey { kid:  }".len() + 32
        );
    }
}

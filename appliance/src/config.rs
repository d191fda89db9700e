//! Configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nearcast_common::{Keyring, SigningKey};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Plain HTTP listener for segments.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/status`, `/titles`,
    /// `POST /disks/{i}/fail|restore`. Keep it off the public side.
    pub admin_listen: SocketAddr,
    /// Worker threads, one ring each; 0 means one per CPU.
    pub threads: usize,
    /// Content directories, one per disk.
    pub disks: Vec<PathBuf>,
    /// Open client connections across all workers; over it, new ones are
    /// closed at once.
    pub max_connections: usize,
    /// Largest request head; longer request lines get 414, longer heads 431.
    pub max_header_bytes: usize,
    pub timeouts: Timeouts,
    pub file_cache: FileCacheConfig,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub disk_io: DiskIoConfig,
    /// Live objects pulled through from upstream (`/l/`).
    pub live: crate::live::LiveConfig,
    /// CMSD on media answers.
    pub cmsd: CmsdConfig,
}

/// Common Media Server Data (CTA-5006) on media answers: off by default,
/// since some old players choke on headers they do not know.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmsdConfig {
    pub enabled: bool,
    /// The box's name in `n` and in its `CMSD-Dynamic` entry (printable,
    /// no quotes; the agent sets the box's id).
    pub server_id: String,
    /// `mb`: the highest bitrate players should pick, kbit/s; 0 for none.
    pub max_bitrate_kbps: u32,
    /// `du` is sent while open connections are at least this share of
    /// `max_connections`.
    pub duress_share: f64,
}

impl Default for CmsdConfig {
    fn default() -> Self {
        CmsdConfig {
            enabled: false,
            server_id: "nearcast".into(),
            max_bitrate_kbps: 0,
            duress_share: 0.9,
        }
    }
}

/// Reading body bytes that are not in the page cache (per worker).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskIoConfig {
    /// Reads in flight per disk; more wait in the disk's queue.
    pub queue_depth: usize,
    /// Read buffers, allocated as first needed: at most `buffers` x
    /// `buffer_kib` KiB of memory per worker.
    pub buffers: usize,
    /// The largest single read.
    pub buffer_kib: usize,
    /// Cold reads of files at least this large bypass the page cache
    /// (`O_DIRECT`) until the file is asked for a second time, so a pass
    /// over the catalogue neither pushes the hot set out nor makes the
    /// worker reclaim memory; 0 reads everything through the page cache.
    pub direct_min_kib: u64,
    /// A large file asked for again within this (by the same worker) is
    /// admitted to the page cache. About the time the page cache takes to
    /// turn over at full egress (256 GB at 100 Gb/s: 20 s): a file asked
    /// again later would be pushed out before it is asked for a third time.
    pub admit_within_ms: u64,
}

impl Default for DiskIoConfig {
    fn default() -> Self {
        DiskIoConfig {
            queue_depth: 32,
            buffers: 64,
            buffer_kib: 256,
            direct_min_kib: 1024,
            admit_within_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// From accept (or the first byte of a request) to a complete head.
    pub header_ms: u64,
    /// Idle time between requests on a kept-alive connection.
    pub keepalive_ms: u64,
    /// Longest wait for the client to take more bytes of a response.
    pub send_ms: u64,
    /// On SIGTERM, how long in-flight responses may take to finish.
    pub drain_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileCacheConfig {
    /// Open files kept per worker.
    pub entries: usize,
    /// How long a cached file is trusted before it is checked against its
    /// path again (a replaced file is served new after at most this long).
    pub valid_ms: u64,
}

/// A cap on each connection's sending rate (nginx's `limit_rate` and
/// `limit_rate_after`, per connection rather than per response).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Kilobits per second per connection; 0 means no cap.
    pub kbit_per_connection: u64,
    /// Bytes a connection may send at full speed before the cap bites
    /// (refilled while it is idle); at least 20 ms of the rate.
    pub burst_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Hand sessions to the kernel after the handshake where it offers
    /// kTLS (bodies then go by sendfile); false keeps them in rustls.
    #[serde(default = "yes")]
    pub ktls: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse content requests without a valid token. Off only for labs.
    pub required: bool,
    /// Accepted signing keys; more than one while keys rotate.
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    pub secret_hex: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([0, 0, 0, 0], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 9090).into(),
            threads: 0,
            disks: Vec::new(),
            max_connections: 50_000,
            max_header_bytes: 8192,
            timeouts: Timeouts::default(),
            file_cache: FileCacheConfig::default(),
            tls: None,
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            disk_io: DiskIoConfig::default(),
            live: crate::live::LiveConfig::default(),
            cmsd: CmsdConfig::default(),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_ms: 10_000,
            keepalive_ms: 75_000,
            send_ms: 60_000,
            drain_ms: 30_000,
        }
    }
}

impl Default for FileCacheConfig {
    fn default() -> Self {
        FileCacheConfig {
            entries: 4096,
            valid_ms: 1000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: true,
            keys: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("no disks configured: give at least one content directory")]
    NoDisks,
    #[error("disk {0} is not a directory")]
    DiskNotDir(PathBuf),
    #[error("auth.required is set but no keys are configured")]
    NoKeys,
    #[error("key '{id}': {source}")]
    Key {
        id: String,
        source: nearcast_common::TokenError,
    },
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("disk_io.buffer_kib must be a multiple of 4 (O_DIRECT reads are 4 KiB aligned)")]
    BufferAlign,
    #[error("at most {max} worker threads (a live object wakes workers by bit)")]
    TooManyThreads { max: usize },
    #[error("cmsd.server_id must be 1 to 64 printable characters without quotes or backslashes")]
    CmsdServerId,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks what the server needs before it starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.disks.is_empty() {
            return Err(ConfigError::NoDisks);
        }
        if let Some(d) = self.disks.iter().find(|d| !d.is_dir()) {
            return Err(ConfigError::DiskNotDir(d.clone()));
        }
        if self.auth.required && self.auth.keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        let nonzero = [
            ("max_connections", self.max_connections as u64),
            ("max_header_bytes", self.max_header_bytes as u64),
            ("timeouts.header_ms", self.timeouts.header_ms),
            ("timeouts.keepalive_ms", self.timeouts.keepalive_ms),
            ("timeouts.send_ms", self.timeouts.send_ms),
            ("disk_io.queue_depth", self.disk_io.queue_depth as u64),
            ("disk_io.buffers", self.disk_io.buffers as u64),
            ("disk_io.buffer_kib", self.disk_io.buffer_kib as u64),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero(name));
        }
        if let Some(name) = self.live.zero_fields() {
            return Err(ConfigError::Zero(name));
        }
        if self.threads() > crate::live::MAX_WORKERS {
            return Err(ConfigError::TooManyThreads {
                max: crate::live::MAX_WORKERS,
            });
        }
        if !self.disk_io.buffer_kib.is_multiple_of(4) {
            return Err(ConfigError::BufferAlign);
        }
        let id = &self.cmsd.server_id;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return Err(ConfigError::CmsdServerId);
        }
        self.keyring().map(|_| ())
    }

    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let keys = self
            .auth
            .keys
            .iter()
            .map(|k| {
                SigningKey::from_hex(&k.id, &k.secret_hex).map_err(|source| ConfigError::Key {
                    id: k.id.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Keyring::new(keys))
    }

    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl RateLimitConfig {
    /// The cap in bytes per second, `None` when there is none.
    pub fn rate(&self) -> Option<crate::server::Rate> {
        crate::server::Rate::new(self.kbit_per_connection.saturating_mul(1000) / 8, self.burst_bytes)
    }
}

impl Timeouts {
    pub fn header(&self) -> Duration {
        Duration::from_millis(self.header_ms)
    }
    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms)
    }
    pub fn send(&self) -> Duration {
        Duration::from_millis(self.send_ms)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_rejects_unknown_keys() {
        let cfg: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:8081"
            disks = ["/tmp"]
            threads = 2
            [timeouts]
            header_ms = 500
            [rate_limit]
            kbit_per_connection = 8000
            [tls]
            listen = "127.0.0.1:8443"
            cert = "c.pem"
            key = "k.pem"
            [[auth.keys]]
            id = "k1"
            secret_hex = "000102030405060708090a0b0c0d0e0f"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.timeouts.header_ms, 500);
        assert_eq!(cfg.timeouts.keepalive_ms, 75_000);
        assert_eq!(cfg.rate_limit.rate(), crate::server::Rate::new(1_000_000, 0));
        assert_eq!(Config::default().rate_limit.rate(), None);
        assert!(cfg.validate().is_ok());
        assert!(toml::from_str::<Config>("listne = \"x\"").is_err());
    }

    #[test]
    fn validation_errors() {
        let mut cfg = Config::default();
        assert!(matches!(cfg.validate(), Err(ConfigError::NoDisks)));
        cfg.disks = vec!["/definitely/not/here".into()];
        assert!(matches!(cfg.validate(), Err(ConfigError::DiskNotDir(_))));
        cfg.disks = vec!["/tmp".into()];
        assert!(matches!(cfg.validate(), Err(ConfigError::NoKeys)));
        cfg.auth.keys.push(KeyConfig {
            id: "k1".into(),
            secret_hex: "abc".into(),
        });
        assert!(matches!(cfg.validate(), Err(ConfigError::Key { .. })));
    }
}

//! The agent's configuration (TOML), with defaults that run on one machine
//! beside an appliance started with its own defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::window::Window;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This appliance's id, as enrolled at the fill server.
    pub id: String,
    /// Base URL of the fill server's API (`http://fill.example:7070`).
    pub fill_server: String,
    /// For an `https://` fill server: the CA (PEM) its certificate must
    /// chain to; the only root the agent trusts for it.
    pub fill_server_ca: Option<PathBuf>,
    /// How the agent and the fill server exchange messages: `"protobuf"`
    /// (the default, `common/proto/wire.proto`) or `"json"`.
    pub wire: WireFormat,
    /// The fill server's answer keys this box trusts, `"{id} {hex}"` each
    /// (`GET /v1/admin/answer-keys` gives the line; several while a key is
    /// rotated). Every answer must be signed by one of them.
    pub fill_server_keys: Vec<String>,
    /// The appliance's Ed25519 key (PKCS#8 file; `control-agent keygen`
    /// writes one and prints the public half to enroll).
    pub key_file: PathBuf,
    pub site: String,
    /// Base URL players and peers reach this appliance at.
    pub public_url: String,
    /// The appliance's admin listener (the agent reads its `/status`).
    pub appliance_admin: String,
    /// The appliance's connection cap: load is open connections over it.
    pub appliance_max_connections: u64,
    /// The content disks (the appliance serves the same directories).
    pub disks: Vec<PathBuf>,
    /// Capacity offered to the fill plan; 0 = the disks' total size.
    pub capacity_bytes: u64,
    /// Local time span the nightly fill runs in: `"02:00-06:00"`, or
    /// `"always"`.
    pub fill_window: Window,
    /// Fill download cap in bytes per second across all downloads; 0 = none.
    pub bandwidth_bytes_per_sec: u64,
    /// Files downloaded at once.
    pub concurrency: usize,
    pub heartbeat_secs: u64,
    /// How often to look for a new manifest while in the window.
    pub manifest_poll_secs: u64,
    /// The agent's own `/metrics`, `/status` and `POST /fill`.
    pub admin_listen: SocketAddr,
    pub hardware: HardwareConfig,
    pub update: UpdateConfig,
    /// The BGP session with the ISP's router, if the ISP runs one.
    pub bgp: Option<BgpConfig>,
}

/// The encoding of the fill-server calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    #[default]
    Protobuf,
    Json,
}

impl WireFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            WireFormat::Protobuf => nearcast_common::wire::CONTENT_TYPE,
            WireFormat::Json => "application/json",
        }
    }
}

/// OS updates (`update`): where the box's boot pieces are. On by the
/// image's config; off on a machine that is not running the image.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    pub enabled: bool,
    /// `*.pub` files of `"{key id} {hex Ed25519 public key}"`.
    pub keys_dir: PathBuf,
    /// GRUB's environment block on the ESP.
    pub grubenv: PathBuf,
    /// The running release.
    pub release_file: PathBuf,
    /// Where `nearcast.slot=` is read.
    pub cmdline: PathBuf,
    /// Partitions are found by GPT name here …
    pub sys_block: PathBuf,
    /// … and opened here.
    pub dev_dir: PathBuf,
    /// Pending and failed releases (on the config partition).
    pub state_file: PathBuf,
    /// A trial boot must pass its health check within this.
    pub commit_within_secs: u64,
    pub reboot: Vec<String>,
    /// When a written release may be booted into (`"HH:MM-HH:MM"` local,
    /// or `"always"`); unset: the fill window. Emergency rollouts ignore it.
    pub install_window: Option<Window>,
    /// Nor while the appliance serves above this share of its connections.
    pub install_max_load: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            enabled: false,
            keys_dir: "/etc/nearcast/update-keys".into(),
            grubenv: "/boot/efi/EFI/BOOT/grubenv".into(),
            release_file: "/etc/nearcast/release".into(),
            cmdline: "/proc/cmdline".into(),
            sys_block: "/sys/class/block".into(),
            dev_dir: "/dev".into(),
            state_file: "/config/update-state.json".into(),
            commit_within_secs: 180,
            reboot: vec!["/sbin/reboot".into()],
            install_window: None,
            install_max_load: 0.5,
        }
    }
}

/// The ISP router this box peers with (receive-only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    /// The router's address and port (`"10.0.0.1:179"`).
    pub neighbor: SocketAddr,
    /// Source address (the router's neighbor statement names it).
    pub local_address: Option<std::net::IpAddr>,
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: std::net::Ipv4Addr,
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// More prefixes than this closes the session (NOTIFICATION Cease).
    #[serde(default = "default_max_prefixes")]
    pub max_prefixes: usize,
    /// TCP MD5 key, when the router's neighbor statement sets one.
    #[serde(default)]
    pub md5_password: Option<String>,
}

fn default_hold() -> u16 {
    90
}

fn default_max_prefixes() -> usize {
    2_000_000
}

/// What hardware to watch (see `docs/hardware.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardwareConfig {
    /// `/` on a box; a simulated tree in tests and QEMU.
    pub root: PathBuf,
    /// Block device behind each disk, in `disks` order (`"nvme0n1"`);
    /// `""` or missing: the disk is a plain directory, failed only when
    /// it cannot be read.
    pub devices: Vec<String>,
    /// The serving NIC (`"eth0"`): no carrier, box failed.
    pub nic: Option<String>,
    /// LED-class names of the front panel's green and amber LEDs.
    pub led_ok: Option<String>,
    pub led_fault: Option<String>,
    pub limits: nearcast_hardware::Limits,
}

impl Default for HardwareConfig {
    fn default() -> Self {
        HardwareConfig {
            root: PathBuf::from("/"),
            devices: Vec::new(),
            nic: None,
            led_ok: None,
            led_fault: None,
            limits: nearcast_hardware::Limits::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: String::new(),
            fill_server: "http://127.0.0.1:7070".into(),
            fill_server_ca: None,
            wire: WireFormat::Protobuf,
            fill_server_keys: Vec::new(),
            key_file: PathBuf::from("appliance.key"),
            site: String::new(),
            public_url: "http://127.0.0.1:8080".into(),
            appliance_admin: "http://127.0.0.1:9090".into(),
            appliance_max_connections: 50_000,
            disks: Vec::new(),
            capacity_bytes: 0,
            fill_window: Window::default(),
            bandwidth_bytes_per_sec: 0,
            concurrency: 4,
            heartbeat_secs: 10,
            manifest_poll_secs: 300,
            admin_listen: ([127, 0, 0, 1], 9190).into(),
            hardware: HardwareConfig::default(),
            update: UpdateConfig::default(),
            bgp: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as a file `load` reads back.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        nearcast_common::Name::new(self.id.as_str()).map_err(|e| ConfigError::Invalid(format!("id: {e}")))?;
        if self.site.is_empty() {
            return bad("site is required");
        }
        if self.disks.is_empty() {
            return bad("at least one disk is required");
        }
        if self.concurrency == 0 || self.heartbeat_secs == 0 || self.manifest_poll_secs == 0 {
            return bad("concurrency, heartbeat_secs and manifest_poll_secs must be positive");
        }
        match nearcast_common::answer_auth::AnswerKeys::parse(&self.fill_server_keys) {
            Ok(keys) if keys.is_empty() => {
                return bad("fill_server_keys is required: the fill server's answer key (GET /v1/admin/answer-keys)")
            }
            Ok(_) => {}
            Err(e) => return Err(ConfigError::Invalid(format!("fill_server_keys: {e}"))),
        }
        if self.hardware.devices.len() > self.disks.len() {
            return bad("hardware.devices names more devices than there are disks");
        }
        let target = |url: &str| crate::http::Target::parse(url).map_err(|e| ConfigError::Invalid(e.to_string()));
        if target(&self.fill_server)?.tls && self.fill_server_ca.is_none() {
            return bad("an https:// fill_server needs fill_server_ca (the CA to pin)");
        }
        target(&self.public_url)?;
        if target(&self.appliance_admin)?.tls {
            return bad("appliance_admin is the appliance's plain-HTTP admin listener");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        Config {
            id: "box-1".into(),
            site: "s1".into(),
            disks: vec![PathBuf::from("/srv/disk0")],
            fill_server_keys: vec![format!("fs1 {}", "11".repeat(32))],
            ..Config::default()
        }
    }

    #[test]
    fn refuses_what_cannot_run_and_round_trips() {
        assert!(valid().validate().is_ok());
        let bad = [
            Config {
                id: "../x".into(),
                ..valid()
            },
            Config {
                site: String::new(),
                ..valid()
            },
            Config {
                disks: Vec::new(),
                ..valid()
            },
            Config {
                concurrency: 0,
                ..valid()
            },
            Config {
                fill_server: "https://fill".into(),
                ..valid()
            },
            Config {
                fill_server_keys: Vec::new(),
                ..valid()
            },
            Config {
                fill_server_keys: vec!["fs1 not-hex".into()],
                ..valid()
            },
            Config {
                hardware: HardwareConfig {
                    devices: vec!["a".into(), "b".into()],
                    ..HardwareConfig::default()
                },
                ..valid()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let text = valid().to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.to_toml(), text);
        let err = toml::from_str::<Config>("id = \"b\"\nfill_window = \"25:00-26:00\"\n").unwrap_err();
        assert!(err.to_string().contains("fill window"), "{err}");
    }
}

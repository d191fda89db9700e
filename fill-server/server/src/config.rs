//! The fill server's configuration (TOML), with defaults that run on one
//! machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// With both set, `listen` speaks HTTPS only (PEM chain and key; boxes
    /// pin the CA in their `fill_server_ca`). The admin listener and the
    /// live door stay plain HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Operators' listener: `/v1/admin/…` and the dashboard (refused on
    /// `listen`). Keep it on loopback or a management network.
    pub admin_listen: SocketAddr,
    /// SQLite database file, or a PostgreSQL URL (`postgres://…` or
    /// `host=… user=… dbname=…`).
    pub database: String,
    /// Base URL of the origin (last resort for players, source for fills).
    pub origin_url: String,
    /// The origin store: packaged titles, one folder each with its index.
    pub origin_store: PathBuf,
    /// Where the origin store is served (the appliance engine, with the
    /// same token check as the boxes).
    pub origin_listen: SocketAddr,
    /// The origin engine's /metrics and /healthz.
    pub origin_admin_listen: SocketAddr,
    /// Live events: encoders push to `/ingest/…`, players read `/l/…`.
    pub live_listen: SocketAddr,
    /// Base URL of `live_listen` as players reach it.
    pub live_url: String,
    /// Base URL boxes reach `live_listen` at to pull live objects; unset:
    /// `live_url`.
    pub live_box_url: Option<String>,
    /// The live cache size each box is told to use.
    pub live_box_cache_mib: u64,
    /// Connections each door (the API, the live door) holds at once; more
    /// are closed at accept.
    pub door_max_connections: usize,
    /// A request head, or the next one on a kept-alive connection, must
    /// arrive within this on either door.
    pub door_header_timeout_ms: u64,
    /// An appliance silent for longer is not steered to.
    pub heartbeat_timeout_secs: u64,
    /// Appliances named in one steering answer at most (the origin follows).
    pub steer_max_appliances: usize,
    /// Lifetime of signed URLs handed to players.
    pub url_ttl_secs: u64,
    /// The URL-token key steering signs with (the appliances hold it too).
    pub token_key_id: String,
    pub token_key_hex: String,
    /// The Ed25519 key (PKCS#8) the server signs its answers to boxes with;
    /// made on first start if absent. Replicas share it (or boxes trust
    /// each replica's: `GET /v1/admin/answer-keys` gives the line).
    pub answer_key_file: PathBuf,
    /// Its id in the answers (boxes trust keys by id: rotate by adding the
    /// new key to the boxes first).
    pub answer_key_id: String,
    /// Bearer token for `/v1/admin/*` (enrolling appliances, ISPs, sites).
    pub admin_token: String,
    /// Proxies whose `X-Forwarded-For` is believed, as prefixes.
    pub trusted_proxies: Vec<String>,
    /// OS update bundles, one `{release}.bundle` each.
    pub os_bundles: PathBuf,
    /// The largest bundle an operator may upload (streamed to disk).
    pub os_bundle_max_mib: u64,
    /// Players' QoE events are kept this long.
    pub qoe_retention_days: u64,
    /// The license service (`[license]`, `crate::license`).
    pub license: LicenseConfig,
    /// `[rights]`: titles' windows and territories (`crate::rights`).
    pub rights: RightsConfig,
    /// `[costs]`: what origin egress costs (`crate::costs`).
    pub costs: CostsConfig,
}

/// `[costs]`: the price of a GB (10^9 bytes) of origin egress, by
/// default and per ISP (`[costs.isps]`, `isp-a = 0.02`), in the
/// operator's currency.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostsConfig {
    pub currency: String,
    pub origin_per_gb: f64,
    pub isps: std::collections::BTreeMap<String, f64>,
}

impl CostsConfig {
    /// The price of a GB of origin egress for viewers of `isp`.
    pub fn per_gb(&self, isp: &str) -> f64 {
        self.isps.get(isp).copied().unwrap_or(self.origin_per_gb)
    }
}

/// `[rights]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RightsConfig {
    /// What a client the IP-to-country table does not know is taken to
    /// be, for titles with territories: `allow`, `deny`, or a country
    /// code to assume.
    pub unknown_country: String,
}

impl Default for RightsConfig {
    fn default() -> Self {
        RightsConfig {
            unknown_country: "allow".into(),
        }
    }
}

/// `[license]`: where the content keys are and who issues entitlements.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicenseConfig {
    /// The packager's `--key-store` folder (never inside `origin_store`).
    pub key_store: PathBuf,
    /// The account system's keys entitlements are signed with (several
    /// for rotation).
    pub entitlement_keys: Vec<EntitlementKey>,
    /// HS256 secret (hex, >= 32 bytes) of the play-session tokens
    /// `/v1/play` issues; replicas share it. Empty: a random one per start
    /// (one replica).
    pub session_secret_hex: String,
    /// A play session's token lives this long at most.
    pub session_ttl_secs: u64,
    /// A stream counts against its subject's limit this long after its
    /// last license, key or renewal.
    pub lease_secs: u64,
    /// A device counts against an entitlement's `max_devices` this long
    /// after its last license.
    pub device_window_secs: u64,
    /// This server's base URL as players reach it, for the license URL of
    /// encrypted live events (`{public_url}/v1/license`); unset:
    /// `http://{listen}`.
    pub public_url: Option<String>,
}

/// One entitlement verification key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementKey {
    /// The JWT header's `kid`.
    pub id: String,
    /// `HS256` (give `secret_hex`) or `EdDSA` (give `public_key_hex`).
    pub alg: nearcast_license::Alg,
    #[serde(default)]
    pub secret_hex: String,
    #[serde(default)]
    pub public_key_hex: String,
}

impl Default for LicenseConfig {
    fn default() -> Self {
        LicenseConfig {
            key_store: PathBuf::from("keys"),
            entitlement_keys: Vec::new(),
            session_secret_hex: String::new(),
            session_ttl_secs: 6 * 3600,
            lease_secs: 120,
            device_window_secs: 30 * 86_400,
            public_url: None,
        }
    }
}

impl Config {
    /// The license URL players reach (`[license] public_url`).
    pub fn license_url(&self) -> String {
        let base = match &self.license.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!(
                "{}://{}",
                if self.tls_cert.is_some() { "https" } else { "http" },
                self.listen
            ),
        };
        format!("{base}/v1/license")
    }

    /// The bounds of each door.
    pub fn door_limits(&self) -> crate::server::DoorLimits {
        crate::server::DoorLimits {
            max_connections: self.door_max_connections.max(1),
            header_timeout: std::time::Duration::from_millis(self.door_header_timeout_ms.max(1)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([127, 0, 0, 1], 7070).into(),
            admin_listen: ([127, 0, 0, 1], 7074).into(),
            tls_cert: None,
            tls_key: None,
            database: "nearcast-fill-server.db".into(),
            origin_url: "http://127.0.0.1:7071".into(),
            origin_store: PathBuf::from("origin"),
            origin_listen: ([127, 0, 0, 1], 7071).into(),
            origin_admin_listen: ([127, 0, 0, 1], 7072).into(),
            live_listen: ([127, 0, 0, 1], 7073).into(),
            live_url: "http://127.0.0.1:7073".into(),
            live_box_url: None,
            live_box_cache_mib: 256,
            door_max_connections: 10_000,
            door_header_timeout_ms: 5000,
            heartbeat_timeout_secs: 30,
            url_ttl_secs: 3600,
            steer_max_appliances: 4,
            token_key_id: String::new(),
            token_key_hex: String::new(),
            answer_key_file: PathBuf::from("answer.key"),
            answer_key_id: "fs1".into(),
            admin_token: String::new(),
            trusted_proxies: Vec::new(),
            os_bundles: PathBuf::from("os-bundles"),
            os_bundle_max_mib: 2048,
            qoe_retention_days: 30,
            license: LicenseConfig::default(),
            rights: RightsConfig::default(),
            costs: CostsConfig::default(),
        }
    }
}

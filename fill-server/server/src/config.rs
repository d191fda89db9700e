//! The fill server's configuration (TOML), with defaults that run on one
//! machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
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
    /// Bearer token for `/v1/admin/*` (enrolling appliances, ISPs, sites).
    pub admin_token: String,
    /// Proxies whose `X-Forwarded-For` is believed, as prefixes.
    pub trusted_proxies: Vec<String>,
    /// OS update bundles, one `{release}.bundle` each.
    pub os_bundles: PathBuf,
}

impl Config {
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
            admin_token: String::new(),
            trusted_proxies: Vec::new(),
            os_bundles: PathBuf::from("os-bundles"),
        }
    }
}

//! Serving the origin store: the appliance's engine pointed at it, with the
//! steering key, so the origin answers exactly like a box (tokens, ranges
//! for resumed fills, zero-copy bodies) and there is one implementation.

use nearcast_appliance::config::{AuthConfig, Config as ApplianceConfig, KeyConfig};
use nearcast_appliance::server::StartError;
use nearcast_appliance::Server;

use crate::config::Config;

pub fn start_origin(cfg: &Config) -> Result<Server, StartError> {
    if let Err(e) = std::fs::create_dir_all(&cfg.origin_store) {
        tracing::warn!(path = %cfg.origin_store.display(), error = %e, "cannot create the origin store");
    }
    Server::start(ApplianceConfig {
        listen: cfg.origin_listen,
        admin_listen: cfg.origin_admin_listen,
        threads: 1,
        disks: vec![cfg.origin_store.clone()],
        auth: AuthConfig {
            required: true,
            keys: vec![KeyConfig {
                id: cfg.token_key_id.clone(),
                secret_hex: cfg.token_key_hex.clone(),
            }],
        },
        ..ApplianceConfig::default()
    })
}

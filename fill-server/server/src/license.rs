//! The license service of this fill server: `nearcast_license` set up
//! from `[license]` (see `api/license.rs` for its routes and
//! docs/content-protection.md for the design).

use nearcast_common::token::decode_hex;
use nearcast_license::{Alg, JwtKey, LicenseService};

use crate::app::AppError;
use crate::config::Config;

/// The service, its keys read from the key store.
pub fn service(config: &Config) -> Result<LicenseService, AppError> {
    let c = &config.license;
    let bad = |what: String| AppError::Config(format!("license: {what}"));
    let origin = std::path::absolute(&config.origin_store).unwrap_or_else(|_| config.origin_store.clone());
    let store = std::path::absolute(&c.key_store).unwrap_or_else(|_| c.key_store.clone());
    if store.starts_with(&origin) {
        return Err(bad(format!(
            "key_store {} is inside origin_store: boxes would fill the keys",
            c.key_store.display()
        )));
    }
    let entitlement_keys = c
        .entitlement_keys
        .iter()
        .map(|k| {
            let hex = match k.alg {
                Alg::HS256 => &k.secret_hex,
                Alg::EdDSA => &k.public_key_hex,
            };
            let bytes = decode_hex(hex).ok_or_else(|| bad(format!("entitlement key '{}': not hex", k.id)))?;
            let key = match k.alg {
                Alg::HS256 => JwtKey::hs256(&k.id, &bytes),
                Alg::EdDSA => JwtKey::ed25519(&k.id, &bytes),
            };
            key.map_err(|e| bad(format!("entitlement key '{}': {e}", k.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let session_secret = match c.session_secret_hex.as_str() {
        "" => nearcast_packager::cenc::keys::random_16()
            .into_iter()
            .chain(nearcast_packager::cenc::keys::random_16())
            .collect(),
        hex => decode_hex(hex).ok_or_else(|| bad("session_secret_hex is not hex".into()))?,
    };
    LicenseService::new(nearcast_license::Config {
        entitlement_keys,
        session_secret,
        key_store: c.key_store.clone(),
        session_ttl_secs: c.session_ttl_secs.max(60),
        lease_secs: c.lease_secs.max(10),
        device_window_secs: c.device_window_secs.max(60),
    })
    .map_err(|e| bad(e.to_string()))
}

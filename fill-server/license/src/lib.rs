//! The Nearcast license service's logic. Titles packaged with
//! `--encrypt` have their content keys in a key store the origin never
//! serves; this crate hands a key only to a player that proves an
//! entitlement from the streaming service's account system (`jwt.rs`,
//! `grant.rs`), in the W3C Clear Key exchange (`clearkey.rs`), within the
//! subject's concurrent-stream limit (`streams.rs`). `service.rs` ties
//! them together with the keys in memory. HTTP is the fill server's
//! (`api/license.rs`).

pub mod clearkey;
pub mod grant;
pub mod jwt;
pub mod service;
pub mod streams;

pub use grant::{Entitlement, Grant, Session};
pub use jwt::{Alg, JwtError, JwtKey};
pub use service::{Auth, Config, LicenseError, LicenseService, SharedLeases};

//! Types every Nearcast part shares.
//!
//! The appliance verifies what the steering server signs, so the token format
//! lives here; steering and the box's BGP speaker both match addresses to
//! prefixes, so the prefix types live here too. No I/O.

#![warn(missing_docs)]

pub mod answer_auth;
pub mod appliance;
pub mod bundle;
pub mod chunks;
pub mod clock;
pub mod cmcd;
pub mod control;
pub mod digest;
pub mod live;
#[cfg(feature = "logging")]
pub mod logging;
pub mod manifest;
pub mod names;
pub mod playback;
pub mod prefix;
pub mod prefix_table;
pub mod prometheus;
pub mod query;
pub mod request_auth;
pub mod token;
pub mod wire;

pub use digest::sha256_hex;
pub use names::{is_plain_name, Name, NameError, TitlePath};
pub use prefix::{IpPrefix, PrefixError};
pub use prefix_table::PrefixTable;
pub use token::{Grant, Keyring, SigningKey, TokenError, TOKEN_PARAM};

/// Seconds since 1970-01-01 UTC (0 if the clock is before it): the one
/// clock every part stamps heartbeats, tokens and logs with.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

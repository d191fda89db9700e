//! Types every Nearcast part shares.
//!
//! The appliance verifies what the steering server signs, so the token format
//! and the IP prefix type live here, in one place, with no I/O.

pub mod prefix;
pub mod token;

pub use prefix::{IpPrefix, PrefixError};
pub use token::{Grant, Keyring, SigningKey, TokenError, TOKEN_PARAM};

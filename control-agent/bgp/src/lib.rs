//! A receive-only BGP-4 speaker (RFC 4271) with 4-octet AS numbers
//! (RFC 6793) and multiprotocol IPv6 unicast (RFC 4760). The ISP's router
//! announces the prefixes this box should serve; the speaker learns them
//! and announces nothing.
//!
//! - `wire`: message framing, OPEN, KEEPALIVE, NOTIFICATION, and the
//!   errors that map to RFC 4271 §6 NOTIFICATION codes;
//! - `update`: UPDATE parsing (withdrawn routes, path attributes, NLRI,
//!   MP_REACH / MP_UNREACH);
//! - `rib`: the learned table;
//! - `session`: the session over TCP (OPEN exchange, hold and keepalive
//!   timers, max-prefix, reconnect with backoff);
//! - `md5`: TCP MD5 signatures on the session (RFC 2385);
//! - `bird`: BIRD 2 as the ISP router, for tests and the benchmark.

pub mod bird;
pub mod md5;
pub mod rib;
pub mod session;
pub mod update;
pub mod wire;

pub use rib::{Rib, Route};
pub use session::{Neighbor, SessionState, Speaker};
pub use wire::BgpError;

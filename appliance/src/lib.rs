//! The Nearcast appliance: serves video segments from the box's disks.
//!
//! Thread-per-core on io_uring (see `docs/appliance.md` for why this shape
//! and these numbers), zero-copy bodies over plain HTTP, rustls for HTTPS,
//! and signed-URL checks that need nobody else.

pub mod config;
pub mod handler;
pub mod http;
pub mod live;
pub mod metrics;
pub mod path;
pub mod server;
pub mod sessions;
pub mod store;

pub use config::Config;
pub use server::Server;

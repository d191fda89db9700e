//! The Nearcast fill server's decision core: what each ISP will watch
//! tomorrow (`predict`), what each appliance must hold (`plan`), and where
//! a player should fetch a title (`steer`). Pure functions over plain data,
//! deterministic for the same inputs; the daemon around them (registry,
//! storage, HTTP API) feeds them and serves their answers.

pub mod api;
pub mod app;
pub mod beats;
pub mod bgp;
pub mod config;
pub mod costs;
pub mod dashboard;
pub mod fill;
pub mod leases;
pub mod license;
pub mod live;
pub mod metrics;
pub mod misses;
pub mod origin;
pub mod os;
pub mod plan;
pub mod playback;
pub mod playlog;
pub mod predict;
pub mod qoe;
pub mod replica;
pub mod rights;
pub mod rollout;
pub mod server;
pub mod steer;
pub mod store;
pub mod viewers;

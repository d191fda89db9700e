//! The control agent: the box's side of the control plane. It registers
//! the appliance with the fill server, heartbeats, reports inventory and
//! runs the nightly proactive fill (see `docs/agent.md`).

pub mod admin;
pub mod agent;
pub mod appliance;
pub mod bucket;
pub mod config;
pub mod daemon;
pub mod disks;
pub mod fetch;
pub mod fill;
pub mod fill_server;
pub mod hardware;
pub mod heartbeat;
pub mod http;
pub mod inventory;
pub mod live;
pub mod progress;
pub mod routes;
pub mod update;
pub mod window;

pub use agent::Agent;
pub use config::Config;

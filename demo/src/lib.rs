//! The whole stack on one machine, on loopback: the origin with the
//! packaged sample title, the fill server (SQLite), and appliances in one
//! site of one ISP that covers 127.0.0.0/8, each with the agent config
//! that fills it. `nearcast demo` runs it; the end-to-end tests build on
//! it and start the agents as real processes.

pub mod live;
pub mod qemu_box;
pub mod sample;
pub mod stack;

pub use stack::{BoxSide, Ports, Stack};

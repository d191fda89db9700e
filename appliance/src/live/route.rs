//! Where a box takes a live object: the rule and the lists are shared
//! with the fill server and the agent (`nearcast_common::live`).

pub use nearcast_common::live::{LiveSetting, Peer, Upstreams};

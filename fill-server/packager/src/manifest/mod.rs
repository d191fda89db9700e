//! Playlists and manifests for a packaged title.

pub mod dash;
pub mod hls;

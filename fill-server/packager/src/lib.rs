//! The Nearcast origin packager: MP4 renditions of a title → CMAF init and
//! media segments per track, HLS and DASH manifests, and a title index with
//! the SHA-256 of every file. A library for the fill server and a command
//! (`nearcast-packager`) of its own.

pub mod cenc;
pub mod cmaf;
pub mod index;
pub mod ladder;
pub mod language;
pub mod live;
pub mod manifest;
pub mod mp4;
pub mod package;
pub mod rendition;
pub mod store;
pub mod text;
pub mod thumbs;

pub use index::TitleIndex;
pub use package::{package, Options, PackageError};

//! The box's OS image (docs/image.md): a GPT disk with an EFI system
//! partition (GRUB), two squashfs root slots, a config and a data
//! partition; signed update bundles of a slot; and a QEMU runner that
//! boots the disk the way a developer or a test does.

pub mod build;
pub mod delta;
pub mod disk;
pub mod kernel;
pub mod qemu;
pub mod rootfs;
pub mod tools;

use std::path::Path;

pub use build::{build, build_slot, BuildOptions, Built};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("missing tools: {0}")]
    MissingTools(String),
    #[error("no kernel: install linux-image-amd64 (needs /boot/vmlinuz-V and /lib/modules/V)")]
    NoKernel,
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot start {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} failed ({status}): {stderr}")]
    Tool {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("layout: {0}")]
    Layout(String),
    #[error(transparent)]
    Bundle(#[from] nearcast_common::bundle::BundleError),
    #[error("QEMU: {0}")]
    Qemu(String),
    #[error("release: {0}")]
    Name(#[from] nearcast_common::NameError),
}

impl ImageError {
    pub fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

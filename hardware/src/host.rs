//! The root the hardware is read from, and the one way attribute files
//! are read.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The machine itself (`/sys`, `/dev`).
    pub fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
        }
    }

    /// A tree shaped like `/` (with `sys/` and `dev/` below it).
    pub fn at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// `rel` below the root (`sys/block/sda/stat`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A sysfs attribute as trimmed text.
    pub fn read(&self, rel: &str) -> io::Result<String> {
        read_attr(&self.path(rel))
    }

    /// A sysfs attribute as an integer (decimal, or hex with `0x`).
    pub fn read_u64(&self, rel: &str) -> Option<u64> {
        parse_u64(&self.read(rel).ok()?)
    }
}

pub fn read_attr(path: &Path) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn integers() {
        assert_eq!(super::parse_u64("42"), Some(42));
        assert_eq!(super::parse_u64("0x1f"), Some(31));
        assert_eq!(super::parse_u64("x"), None);
    }
}

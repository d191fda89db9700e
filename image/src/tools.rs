//! The Debian tools the build drives (mksquashfs, sgdisk, grub-mkimage…):
//! checked up front, so a missing one is named with its package before
//! any work starts, and run with their error output kept for the report.

use std::path::Path;
use std::process::Command;

use crate::ImageError;

/// Tool → Debian package that has it.
pub const REQUIRED: &[(&str, &str)] = &[
    ("mksquashfs", "squashfs-tools"),
    ("sgdisk", "gdisk"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mmd", "mtools"),
    ("mkfs.ext4", "e2fsprogs"),
    ("grub-mkimage", "grub-common"),
    ("grub-editenv", "grub-common"),
    ("cpio", "cpio"),
    ("zstd", "zstd"),
];

/// Fails with the list of what is missing and the packages to install.
pub fn check(tools: &[(&str, &str)]) -> Result<(), ImageError> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(t, p)| format!("{t} (apt-get install {p})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ImageError::MissingTools(missing.join(", ")))
    }
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new(tool).is_file()
}

/// Runs `cmd` to completion; a failure carries its stderr.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>, ImageError> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| ImageError::Spawn {
        cmd: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(ImageError::Tool {
            cmd: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

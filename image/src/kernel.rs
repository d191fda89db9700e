//! Debian's kernel (`linux-image-amd64`) and the modules the box needs at
//! boot, with their dependencies in load order, read from `modules.dep`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ImageError;

/// Drivers the initramfs loads: virtio for QEMU, NVMe/AHCI/e1000 for
/// real boxes, the filesystems the slots and partitions use, dm-verity
/// (hashing with the built-in SHA-256), the watchdog, and kernel TLS with the AES-GCM it needs (loaded up front:
/// the image has no modprobe for the crypto API to call on demand;
/// `aesni_intel` fails harmlessly on CPUs without AES-NI, leaving the
/// built-in generic AES).
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_rng",
    "nvme",
    "ahci",
    "sd_mod",
    "e1000",
    "e1000e",
    "squashfs",
    "dm_verity",
    "crc32c_generic",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "i6300esb",
    "tls",
    "gcm",
    "ctr",
    "ghash_generic",
    "ghash_clmulni_intel",
    "aesni_intel",
];

pub struct Kernel {
    pub version: String,
    pub vmlinuz: PathBuf,
    pub modules_dir: PathBuf,
}

/// The newest kernel with both `/boot/vmlinuz-V` and `/lib/modules/V`
/// under `root`.
pub fn find(root: &Path) -> Result<Kernel, ImageError> {
    let mods = root.join("lib/modules");
    let mut versions: Vec<String> = std::fs::read_dir(&mods)
        .map_err(|e| ImageError::io(&mods, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|v| root.join(format!("boot/vmlinuz-{v}")).is_file())
        .collect();
    versions.sort_by_key(|v| natural(v));
    let version = versions.pop().ok_or(ImageError::NoKernel)?;
    Ok(Kernel {
        vmlinuz: root.join(format!("boot/vmlinuz-{version}")),
        modules_dir: mods.join(&version),
        version,
    })
}

/// Orders `6.1.0-10` after `6.1.0-9`.
fn natural(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Module name as the kernel knows it (`-` and `_` are the same).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// Paths (relative to the modules dir) of `wanted` and everything they
/// need, each after its dependencies. Modules this kernel has built in
/// are skipped.
pub fn closure(modules_dep: &str, wanted: &[&str]) -> Vec<String> {
    let deps: BTreeMap<String, (String, Vec<String>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            let d = d.split_whitespace().map(str::to_string).collect();
            Some((module_name(m), (m.to_string(), d)))
        })
        .collect();
    let by_path: BTreeMap<&str, &str> = deps.iter().map(|(n, (p, _))| (p.as_str(), n.as_str())).collect();
    let mut out = Vec::new();
    fn visit(
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        by_path: &BTreeMap<&str, &str>,
        out: &mut Vec<String>,
    ) {
        let Some((path, needs)) = deps.get(name) else { return };
        if out.contains(path) {
            return;
        }
        // modules.dep lists every dependency, direct or not; visit each so
        // the order holds whatever the listing order.
        for n in needs {
            if let Some(dep) = by_path.get(n.as_str()) {
                visit(dep, deps, by_path, out);
            }
        }
        out.push(path.clone());
    }
    for w in wanted {
        visit(&w.replace('-', "_"), &deps, &by_path, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first_and_builtins_are_skipped() {
        let dep = "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n\
                   kernel/fs/jbd2/jbd2.ko:\n\
                   kernel/lib/crc16.ko:\n\
                   kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
                   kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n\
                   kernel/drivers/virtio/virtio.ko:\n";
        let order = closure(dep, &["virtio_blk", "ext4", "builtin_thing", "virtio-blk"]);
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/lib/crc16.ko",
                "kernel/fs/ext4/ext4.ko",
            ]
            .map(String::from)
        );
    }

    #[test]
    fn newest_version_wins() {
        let mut v = ["6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-30-amd64"];
        v.sort_by_key(|x| natural(x));
        assert_eq!(v.last(), Some(&"6.1.0-10-amd64"));
    }
}

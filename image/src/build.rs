//! The build, step by step: slot → bundle → ESP → disk → compressed
//! disk. Each step is a function of `disk`/`rootfs`; this module orders
//! them and reports progress.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use nearcast_common::bundle::{public_line, sign_header, Manifest};
use nearcast_common::chunks;
use nearcast_verity::Params;

use crate::rootfs::{self, Inputs};
use crate::{disk, kernel, tools, ImageError};

#[derive(Clone)]
pub struct BuildOptions {
    /// Everything is written here.
    pub out: PathBuf,
    pub version: String,
    pub appliance: PathBuf,
    pub agent: PathBuf,
    /// `nearcast-verity`, static, for the initramfs.
    pub verity: PathBuf,
    /// Ed25519 PKCS#8 key that signs bundles; made if missing.
    pub signing_key: PathBuf,
    pub key_id: String,
    /// Files for the config partition (`appliance.toml`, `agent.toml`,
    /// the appliance key); none: the partition is left empty.
    pub config_dir: Option<PathBuf>,
    pub disk_mib: u64,
    /// Show a progress bar (a terminal) or print step lines.
    pub progress: bool,
}

/// One slot image (squashfs, zero-padded, then its dm-verity tree) and
/// its signed bundle.
pub struct Slot {
    pub image: PathBuf,
    pub bundle: PathBuf,
    pub verity: Params,
}

pub struct Built {
    pub disk: PathBuf,
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub rootfs_bytes: u64,
    pub compressed_bytes: u64,
}

/// Reports steps on a bar on a terminal, else as lines on stderr.
struct Steps {
    bar: Option<ProgressBar>,
    n: u64,
    i: u64,
}

impl Steps {
    fn new(n: u64, bar: bool) -> Steps {
        let bar = bar.then(|| {
            let b = ProgressBar::new(n);
            b.set_style(
                ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Steps { bar, n, i: 0 }
    }

    fn next(&mut self, what: &str) {
        self.i += 1;
        match &self.bar {
            Some(b) => {
                b.set_position(self.i - 1);
                b.set_message(what.to_string());
            }
            None => eprintln!("[{}/{}] {what}", self.i, self.n),
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn len(path: &Path) -> Result<u64, ImageError> {
    Ok(std::fs::metadata(path).map_err(|e| ImageError::io(path, e))?.len())
}

/// The signing key at `path`, made (and kept) on first use.
pub fn signing_key(path: &Path) -> Result<Vec<u8>, ImageError> {
    if let Ok(k) = std::fs::read(path) {
        return Ok(k);
    }
    let der = nearcast_common::request_auth::ApplianceKey::generate_pkcs8()
        .map_err(|e| ImageError::Layout(format!("cannot make a signing key: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
    }
    std::fs::write(path, &der).map_err(|e| ImageError::io(path, e))?;
    Ok(der)
}

/// Whether a bundle's manifest signs its chunk index (delta updates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunks {
    Indexed,
    /// Boxes download it whole (what bundles made before delta updates do).
    Whole,
}

/// Writes `header ‖ slot image` to `out`, the slot's verity parameters
/// (and, `Chunks::Indexed`, its chunk index's hash) signed in the manifest.
pub fn write_bundle(
    slot: &Slot,
    version: &str,
    key_id: &str,
    pkcs8: &[u8],
    out: &Path,
    index: Chunks,
) -> Result<(), ImageError> {
    let bytes = std::fs::read(&slot.image).map_err(|e| ImageError::io(&slot.image, e))?;
    let manifest = Manifest {
        version: nearcast_common::Name::new(version)?,
        key_id: key_id.to_string(),
        rootfs_size: bytes.len() as u64,
        rootfs_sha256: nearcast_common::sha256_hex(&bytes),
        verity: Some(slot.verity.encode()),
        chunk_index_sha256: (index == Chunks::Indexed)
            .then(|| chunks::index_sha256(&chunks::encode(&chunks::chunk(&bytes)))),
    };
    let header = sign_header(&manifest, pkcs8)?;
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, [header, bytes].concat()).map_err(|e| ImageError::io(&tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| ImageError::io(out, e))
}

/// `o` with its output directory made and made absolute (tools run in
/// other directories).
fn resolved(o: &BuildOptions) -> Result<BuildOptions, ImageError> {
    std::fs::create_dir_all(&o.out).map_err(|e| ImageError::io(&o.out, e))?;
    let out = std::path::absolute(&o.out).map_err(|e| ImageError::io(&o.out, e))?;
    Ok(BuildOptions { out, ..o.clone() })
}

/// The squashfs at `squashfs` made the slot image `image` (the same path
/// or another): padded, its hash tree appended.
pub fn add_verity(squashfs: &Path, image: &Path) -> Result<Params, ImageError> {
    let mut bytes = std::fs::read(squashfs).map_err(|e| ImageError::io(squashfs, e))?;
    let params = nearcast_verity::tree::append_tree(&mut bytes).map_err(|e| ImageError::Layout(e.to_string()))?;
    std::fs::write(image, bytes).map_err(|e| ImageError::io(image, e))?;
    Ok(params)
}

/// One slot image and its bundle: `rootfs-V.img`, `nearcast-V.bundle`.
pub fn build_slot(o: &BuildOptions) -> Result<Slot, ImageError> {
    tools::check(tools::REQUIRED)?;
    let o = &resolved(o)?;
    let key = signing_key(&o.signing_key)?;
    let inputs = Inputs {
        version: o.version.clone(),
        appliance: o.appliance.clone(),
        agent: o.agent.clone(),
        verity: o.verity.clone(),
        update_keys: vec![public_line(&o.key_id, &key)?],
        busybox: PathBuf::from("/bin/busybox"),
        kernel: kernel::find(Path::new("/"))?,
    };
    let work = o.out.join(format!("work-{}", o.version));
    let tree = work.join("rootfs");
    rootfs::assemble(&inputs, &work, &tree)?;
    let image = o.out.join(format!("rootfs-{}.img", o.version));
    rootfs::squash(&tree, &image)?;
    let slot = Slot {
        verity: add_verity(&image, &image)?,
        image,
        bundle: o.out.join(format!("nearcast-{}.bundle", o.version)),
    };
    write_bundle(&slot, &o.version, &o.key_id, &key, &slot.bundle, Chunks::Indexed)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(slot)
}

/// The whole image.
pub fn build(o: &BuildOptions) -> Result<Built, ImageError> {
    let o = &resolved(o)?;
    let mut steps = Steps::new(5, o.progress);
    steps.next("root filesystem (busybox, binaries, kernel, initramfs) and its bundle");
    let slot = build_slot(o)?;
    steps.next("EFI system partition (GRUB)");
    let esp = o.out.join("esp.vfat");
    let esp_work = o.out.join("work-esp");
    std::fs::create_dir_all(&esp_work).map_err(|e| ImageError::io(&esp_work, e))?;
    disk::esp(&esp_work, &esp, &slot.verity.encode())?;
    let _ = std::fs::remove_dir_all(&esp_work);
    steps.next("disk: partition table, ESP, slot A");
    let img = o.out.join("disk.img");
    disk::create(&img, o.disk_mib)?;
    disk::write_part(&img, "esp", &esp)?;
    disk::write_part(&img, "nearcast-a", &slot.image)?;
    let _ = std::fs::remove_file(&esp);
    steps.next("config partition");
    if let Some(dir) = &o.config_dir {
        provision(&img, dir, &o.out)?;
    }
    steps.next("compressing");
    let compressed_bytes = disk::compress(&img)?;
    steps.done();
    Ok(Built {
        rootfs_bytes: len(&slot.image)?,
        disk: img,
        rootfs: slot.image,
        bundle: slot.bundle,
        compressed_bytes,
    })
}

/// Writes a config partition of `dir`'s files into `disk` (what an
/// operator does once per box before it ships).
pub fn provision(disk: &Path, dir: &Path, work: &Path) -> Result<(), ImageError> {
    let fs = work.join("config.ext4");
    disk::config_fs(dir, &fs)?;
    disk::write_part(disk, "nearcast-config", &fs)?;
    let _ = std::fs::remove_file(&fs);
    Ok(())
}

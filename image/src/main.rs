//! `nearcast-image`: builds the box's disk image and update bundles.
//! Booting an image against a fill server is `nearcast qemu`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nearcast_image::build::{add_verity, signing_key, write_bundle, Chunks, Slot};
use nearcast_image::{build, build_slot, BuildOptions};

#[derive(Parser)]
#[command(
    name = "nearcast-image",
    version,
    about = "Builds the Nearcast box's A/B disk image and signed update bundles"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Output directory.
    #[arg(long, default_value = "target/os-image")]
    out: PathBuf,
    /// OS release name (plain: letters, digits, '.', '-', '_').
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// Static appliance binary.
    #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/image/nearcast-appliance")]
    appliance: PathBuf,
    /// Static control-agent binary.
    #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/image/control-agent")]
    agent: PathBuf,
    /// Static nearcast-verity binary (the initramfs opens the slot with it).
    #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/image/nearcast-verity")]
    verity: PathBuf,
    /// Ed25519 (PKCS#8) key that signs bundles; a development key is made
    /// there if missing.
    #[arg(long, default_value = "target/os-image/update-signing.key")]
    signing_key: PathBuf,
    /// Name of the signing key, as the box's trusted key list has it.
    #[arg(long, default_value = "dev")]
    key_id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// The disk image (disk.img and disk.img.zst), the slot's rootfs and
    /// its bundle.
    Build {
        #[command(flatten)]
        common: Common,
        /// Files for the config partition.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Disk size in MiB.
        #[arg(long, default_value_t = 1024)]
        disk_mib: u64,
    },
    /// Only a slot's rootfs and its signed update bundle.
    Bundle {
        #[command(flatten)]
        common: Common,
    },
    /// Signs an existing squashfs root as a bundle: its slot image (the
    /// squashfs and its dm-verity tree) is written beside the bundle
    /// (`.img`), the verity parameters printed.
    Sign {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        squashfs: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// What a delta update from one slot image to another fetches.
    Delta {
        /// The running release's slot image (`rootfs-V.img`).
        #[arg(long)]
        from: PathBuf,
        /// The new release's.
        #[arg(long)]
        to: PathBuf,
    },
    /// Writes a config partition of a directory's files into a disk image.
    Provision {
        #[arg(long)]
        disk: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
}

fn options(c: Common, config: Option<PathBuf>, disk_mib: u64) -> BuildOptions {
    BuildOptions {
        out: c.out,
        version: c.version,
        appliance: c.appliance,
        agent: c.agent,
        verity: c.verity,
        signing_key: c.signing_key,
        key_id: c.key_id,
        config_dir: config,
        disk_mib,
        progress: std::io::stderr().is_terminal(),
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Build {
            common,
            config,
            disk_mib,
        } => {
            let started = std::time::Instant::now();
            let built = build(&options(common, config, disk_mib)).context("building the image")?;
            println!("disk image   {}", built.disk.display());
            println!(
                "  compressed {} ({:.1} MiB)",
                built.disk.with_extension("img.zst").display(),
                mib(built.compressed_bytes)
            );
            println!(
                "root slot    {} ({:.1} MiB)",
                built.rootfs.display(),
                mib(built.rootfs_bytes)
            );
            println!("bundle       {}", built.bundle.display());
            println!("built in {:.0} s", started.elapsed().as_secs_f64());
        }
        Cmd::Bundle { common } => {
            let slot = build_slot(&options(common, None, 0)).context("building the bundle")?;
            println!(
                "root slot {}\nbundle    {}",
                slot.image.display(),
                slot.bundle.display()
            );
            println!("verity    {}", slot.verity.encode());
        }
        Cmd::Sign {
            common,
            squashfs,
            output,
        } => {
            let key = signing_key(&common.signing_key)?;
            let image = output.with_extension("img");
            let slot = Slot {
                verity: add_verity(&squashfs, &image)?,
                image,
                bundle: output,
            };
            write_bundle(
                &slot,
                &common.version,
                &common.key_id,
                &key,
                &slot.bundle,
                Chunks::Indexed,
            )?;
            println!(
                "root slot {}\nbundle    {}",
                slot.image.display(),
                slot.bundle.display()
            );
            println!("verity    {}", slot.verity.encode());
        }
        Cmd::Delta { from, to } => {
            let read = |p: &PathBuf| std::fs::read(p).with_context(|| p.display().to_string());
            let d = nearcast_image::delta::Delta::between(&read(&from)?, &read(&to)?);
            println!(
                "delta: {} of {} chunks, {} of {} bytes, index {} bytes: {:.1} % of the image",
                d.fetch_chunks,
                d.chunks,
                d.fetch_bytes,
                d.image_bytes,
                d.index_bytes,
                100.0 * d.ratio()
            );
        }
        Cmd::Provision { disk, config } => {
            let work = disk.parent().map(PathBuf::from).unwrap_or_default();
            nearcast_image::build::provision(&disk, &config, &work)?;
            println!(
                "config partition of {} written from {}",
                disk.display(),
                config.display()
            );
        }
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

//! One root slot: a read-only squashfs holding busybox, the box's two
//! static binaries, the init scripts, the trusted update keys, and the
//! kernel with its initramfs (so an update bundle replaces the kernel
//! too). Timestamps and owners are fixed, so the same inputs give the
//! same bytes.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kernel::{self, Kernel};
use crate::tools::run;
use crate::ImageError;

/// Every file gets this mtime (2024-01-01): reproducible, and not 1970,
/// which some tools warn about.
pub const EPOCH: u64 = 1_704_067_200;

const INITRAMFS_INIT: &str = include_str!("../files/initramfs-init");
const INITTAB: &str = include_str!("../files/inittab");
const RCS: &str = include_str!("../files/rcS");
const SERVICE: &str = include_str!("../files/service");
const SHUTDOWN: &str = include_str!("../files/shutdown");
const UDHCPC: &str = include_str!("../files/udhcpc.script");

/// What goes into a slot.
pub struct Inputs {
    /// The OS release, `/etc/nearcast/release`.
    pub version: String,
    pub appliance: PathBuf,
    pub agent: PathBuf,
    /// `nearcast-verity` (static): the initramfs opens the slot with it.
    pub verity: PathBuf,
    /// Lines `"{id} {hex}"` of the update keys the box trusts.
    pub update_keys: Vec<String>,
    pub busybox: PathBuf,
    pub kernel: Kernel,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::io(path, e)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ImageError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<(), ImageError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to).map_err(io(from))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).map_err(io(to))
}

/// Busybox and a link for every applet it has, at the paths it names.
fn install_busybox(busybox: &Path, root: &Path) -> Result<(), ImageError> {
    copy(busybox, &root.join("bin/busybox"), 0o755)?;
    let list = run(Command::new(busybox).arg("--list-full"))?;
    for applet in String::from_utf8_lossy(&list).lines().map(str::trim) {
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let link = root.join(applet);
        if let Some(dir) = link.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let _ = std::fs::remove_file(&link);
        symlink("/bin/busybox", &link).map_err(io(&link))?;
    }
    Ok(())
}

/// A dynamically linked host program with the libraries `ldd` names.
fn install_with_libs(program: &Path, root: &Path, at: &str) -> Result<(), ImageError> {
    copy(program, &root.join(at), 0o755)?;
    let out = run(Command::new("ldd").arg(program))?;
    for line in String::from_utf8_lossy(&out).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            copy(Path::new(lib), &root.join(lib.trim_start_matches('/')), 0o755)?;
        }
    }
    Ok(())
}

/// The initramfs: busybox, `nearcast-verity`, the boot modules in load
/// order, `/init`.
fn initramfs(inputs: &Inputs, work: &Path, out: &Path) -> Result<(), ImageError> {
    let dir = work.join("initramfs");
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "proc", "sys", "dev", "newroot", "lib/modules"] {
        std::fs::create_dir_all(dir.join(d)).map_err(io(&dir))?;
    }
    copy(&inputs.busybox, &dir.join("bin/busybox"), 0o755)?;
    symlink("busybox", dir.join("bin/sh")).map_err(io(&dir))?;
    copy(&inputs.verity, &dir.join("bin/nearcast-verity"), 0o755)?;
    write(&dir.join("init"), INITRAMFS_INIT, 0o755)?;
    let dep_file = inputs.kernel.modules_dir.join("modules.dep");
    let dep = std::fs::read_to_string(&dep_file).map_err(io(&dep_file))?;
    let mut order = String::new();
    for m in kernel::closure(&dep, kernel::MODULES) {
        let file = m.rsplit('/').next().unwrap_or(&m).to_string();
        copy(
            &inputs.kernel.modules_dir.join(&m),
            &dir.join("lib/modules").join(&file),
            0o644,
        )?;
        order.push_str(&file);
        order.push('\n');
    }
    write(&dir.join("lib/modules/load-order"), &order, 0o644)?;
    set_times(&dir)?;
    // A sorted list and fixed times make the archive the same every time.
    let script = format!(
        "cd '{}' && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -9 > '{}'",
        dir.display(),
        out.display()
    );
    run(Command::new("sh").arg("-c").arg(script)).map(drop)
}

fn set_times(dir: &Path) -> Result<(), ImageError> {
    run(Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{EPOCH}"))
        .args(["{}", "+"]))
    .map(drop)
}

/// Lays the slot's tree out in `root` (emptied first).
pub fn assemble(inputs: &Inputs, work: &Path, root: &Path) -> Result<(), ImageError> {
    let _ = std::fs::remove_dir_all(root);
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "config",
        "data",
        "boot/efi",
        "etc/init.d",
        "root",
    ] {
        std::fs::create_dir_all(root.join(d)).map_err(io(root))?;
    }
    install_busybox(&inputs.busybox, root)?;
    for tool in ["mke2fs", "e2fsck"] {
        let host = ["/sbin", "/usr/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
            .ok_or_else(|| ImageError::MissingTools(format!("{tool} (apt-get install e2fsprogs)")))?;
        install_with_libs(&host, root, &format!("sbin/{tool}"))?;
    }
    copy(&inputs.appliance, &root.join("usr/bin/nearcast-appliance"), 0o755)?;
    copy(&inputs.agent, &root.join("usr/bin/control-agent"), 0o755)?;
    write(&root.join("etc/inittab"), INITTAB, 0o644)?;
    write(&root.join("etc/init.d/rcS"), RCS, 0o755)?;
    write(&root.join("usr/libexec/nearcast/service"), SERVICE, 0o755)?;
    write(&root.join("usr/libexec/nearcast/shutdown"), SHUTDOWN, 0o755)?;
    write(&root.join("usr/share/udhcpc/default.script"), UDHCPC, 0o755)?;
    write(
        &root.join("etc/nearcast/release"),
        &format!("{}\n", inputs.version),
        0o644,
    )?;
    for (i, line) in inputs.update_keys.iter().enumerate() {
        write(
            &root.join(format!("etc/nearcast/update-keys/{i}.pub")),
            &format!("{line}\n"),
            0o644,
        )?;
    }
    write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    write(&root.join("etc/group"), "root:x:0:\n", 0o644)?;
    write(&root.join("etc/hosts"), "127.0.0.1 localhost nearcast\n", 0o644)?;
    symlink("/run/resolv.conf", root.join("etc/resolv.conf")).map_err(io(root))?;
    symlink("/run", root.join("var")).map_err(io(root))?;
    copy(&inputs.kernel.vmlinuz, &root.join("boot/vmlinuz"), 0o644)?;
    initramfs(inputs, work, &root.join("boot/initrd.img"))?;
    set_times(root)
}

/// Packs `root` into a squashfs image at `out`.
pub fn squash(root: &Path, out: &Path) -> Result<(), ImageError> {
    let _ = std::fs::remove_file(out);
    run(Command::new("mksquashfs")
        .arg(root)
        .arg(out)
        .args(["-comp", "xz", "-all-root", "-reproducible", "-no-progress", "-quiet"])
        .args(["-mkfs-time", &EPOCH.to_string(), "-all-time", &EPOCH.to_string()]))
    .map(drop)
}

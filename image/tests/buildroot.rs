//! The Buildroot tree (`buildroot/`) cannot be built here (Buildroot
//! downloads its sources), so it is held to `image/` statically: the
//! genimage layout is `disk::LAYOUT`, the boot config and init scripts
//! are the same files, the GRUB modules are the same, every Nearcast
//! option the defconfig names is defined, and the package makefiles set
//! what Buildroot's cargo-package infrastructure reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nearcast_image::disk::{GRUB_MODULES, LAYOUT};

fn tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../buildroot")
}

fn read(rel: &str) -> String {
    let p = tree().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `partition NAME { … offset = XM size = YM … }` blocks of genimage.cfg.
fn genimage_partitions(cfg: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut rest = cfg;
    while let Some(i) = rest.find("partition ") {
        rest = &rest[i + "partition ".len()..];
        let name = rest.split_whitespace().next().unwrap_or("").to_string();
        let body = &rest[..rest.find('}').unwrap_or(rest.len())];
        let mib = |key: &str| -> u64 {
            body.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(key)?
                        .trim()
                        .strip_prefix('=')?
                        .trim()
                        .strip_suffix('M')?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("partition {name}: no {key} in MiB"))
        };
        out.push((name.clone(), mib("offset"), mib("size")));
    }
    out
}

#[test]
fn genimage_layout_is_image_layout() {
    let parts = genimage_partitions(&read("board/nearcast/genimage.cfg"));
    assert_eq!(parts.len(), LAYOUT.len(), "{parts:?}");
    for ((name, offset, size), want) in parts.iter().zip(LAYOUT.iter()) {
        assert_eq!(name, want.name);
        assert_eq!(*offset, want.start_mib, "{name} offset");
        if want.size_mib == 0 {
            assert!(*size >= 64, "{name}: the data partition needs at least 64 MiB");
        } else {
            assert_eq!(*size, want.size_mib, "{name} size");
        }
    }
    // The ESP holds GRUB where image/ puts it (GRUB's prefix /EFI/BOOT).
    let cfg = read("board/nearcast/genimage.cfg");
    for f in ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grub.cfg", "EFI/BOOT/grubenv"] {
        assert!(cfg.contains(&format!("file {f} ")), "{f} missing from the ESP");
    }
}

#[test]
fn boot_and_init_files_are_image_files() {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("files");
    for (ours, theirs) in [
        ("grub.cfg", "board/nearcast/grub.cfg"),
        ("initramfs-init", "board/nearcast/initramfs-init"),
        ("inittab", "board/nearcast/overlay/etc/inittab"),
        ("rcS", "board/nearcast/overlay/etc/init.d/rcS"),
        ("service", "board/nearcast/overlay/usr/libexec/nearcast/service"),
        ("shutdown", "board/nearcast/overlay/usr/libexec/nearcast/shutdown"),
        (
            "udhcpc.script",
            "board/nearcast/overlay/usr/share/udhcpc/default.script",
        ),
    ] {
        let a = std::fs::read(image.join(ours)).unwrap();
        assert_eq!(
            a,
            read(theirs).into_bytes(),
            "buildroot/{theirs} differs from image/files/{ours}"
        );
        if ours != "grub.cfg" && ours != "inittab" {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tree().join(theirs)).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "buildroot/{theirs} must be executable");
        }
    }
}

fn defconfig() -> Vec<(String, String)> {
    read("configs/nearcast_x86_64_defconfig")
        .lines()
        .filter(|l| l.starts_with("BR2_"))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn defconfig_names_what_the_tree_defines() {
    let cfg = defconfig();
    let get = |k: &str| cfg.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    // Every Nearcast option is defined by a Config.in the tree sources.
    let top = read("Config.in");
    let mut defined = BTreeSet::new();
    for line in top.lines().filter_map(|l| l.trim().strip_prefix("source ")) {
        let rel = line.trim_matches('"').replace("$BR2_EXTERNAL_NEARCAST_PATH/", "");
        for l in read(&rel).lines() {
            if let Some(sym) = l.strip_prefix("config ") {
                defined.insert(format!("BR2_{}", sym.trim().trim_start_matches("BR2_")));
            }
        }
    }
    let ours: Vec<&String> = cfg.iter().map(|(k, _)| k).filter(|k| k.contains("NEARCAST")).collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    for k in ours {
        assert!(
            defined.contains(k.as_str()),
            "{k} is not defined by any Config.in ({defined:?})"
        );
    }
    // Every path of the tree the defconfig names exists.
    for (k, v) in &cfg {
        for part in v.split_whitespace() {
            if let Some(rel) = part.strip_prefix("$(BR2_EXTERNAL_NEARCAST_PATH)/") {
                assert!(tree().join(rel).exists(), "{k} names {rel}, which is not in the tree");
            }
        }
    }
    // The same GRUB modules as image/.
    let modules: BTreeSet<&str> = GRUB_MODULES.iter().copied().collect();
    let br = get("BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI").expect("GRUB modules");
    assert_eq!(br.split_whitespace().collect::<BTreeSet<_>>(), modules);
    for k in [
        "BR2_x86_64",
        "BR2_TARGET_GRUB2_X86_64_EFI",
        "BR2_TARGET_ROOTFS_SQUASHFS",
        "BR2_PACKAGE_HOST_GENIMAGE",
        "BR2_PACKAGE_HOST_RUSTC",
        "BR2_PACKAGE_HOST_CRYPTSETUP",
        "BR2_INIT_BUSYBOX",
    ] {
        assert_eq!(get(k).as_deref(), Some("y"), "{k}");
    }
    // external.mk pulls in every package; external.desc names the tree
    // as the defconfig's paths expect.
    assert!(read("external.mk").contains("$(BR2_EXTERNAL_NEARCAST_PATH)/package/*/*.mk"));
    assert!(read("external.desc").lines().any(|l| l.trim() == "name: NEARCAST"));
}

#[test]
fn packages_use_the_cargo_infrastructure() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (pkg, crate_dir, bin) in [
        ("nearcast-appliance", "appliance", "nearcast-appliance"),
        ("nearcast-agent", "control-agent", "control-agent"),
        ("nearcast-verity", "verity", "nearcast-verity"),
    ] {
        let var = pkg.to_uppercase().replace('-', "_");
        let mk = read(&format!("package/{pkg}/{pkg}.mk"));
        let value = |name: &str| {
            mk.lines()
                .find_map(|l| l.strip_prefix(&format!("{var}_{name} = ")))
                .unwrap_or_else(|| panic!("{pkg}.mk sets no {var}_{name}"))
                .to_string()
        };
        assert!(
            mk.trim_end().ends_with("$(eval $(cargo-package))"),
            "{pkg}: not a cargo-package"
        );
        for name in ["VERSION", "SITE", "LICENSE"] {
            assert!(!value(name).is_empty());
        }
        assert_eq!(value("SITE_METHOD"), "local");
        assert_eq!(value("SUBDIR"), crate_dir);
        assert!(workspace.join(crate_dir).join("Cargo.toml").is_file());
        assert!(value("CARGO_BUILD_OPTS").contains(&format!("--bin {bin}")));
        assert!(value("CARGO_INSTALL_OPTS").contains(&format!("--bin {bin}")));
        assert!(value("CARGO_ENV").contains("crt-static"));
        let hook = format!("{var}_CARGO_VENDOR");
        assert!(mk.contains(&format!("define {hook}")) && mk.contains(&format!("{var}_POST_RSYNC_HOOKS += {hook}")));
        let config = read(&format!("package/{pkg}/Config.in"));
        assert!(config.contains(&format!("config BR2_PACKAGE_{var}")));
        assert!(config.contains("select BR2_PACKAGE_HOST_RUSTC"));
        assert!(config.contains("depends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS"));
    }
}

/// The Buildroot tree makes slot images with veritysetup
/// (`slot-image.sh`, run here with the host's): the same bytes and
/// parameters as image/'s, so the two images' bundles and boot entries
/// agree; its kernel has dm-verity built in and its initramfs gets the
/// mapping tool.
#[test]
fn slot_images_and_verity_are_image_ones() {
    let dir = std::env::temp_dir().join(format!("br-slot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let squashfs = dir.join("rootfs.squashfs");
    let data: Vec<u8> = (0..700_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&squashfs, &data).unwrap();
    let ours = nearcast_image::build::add_verity(&squashfs, &dir.join("ours.img")).unwrap();
    let out = std::process::Command::new(tree().join("board/nearcast/slot-image.sh"))
        .arg(&squashfs)
        .arg(dir.join("theirs.img"))
        .output()
        .expect("slot-image.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours.encode());
    assert!(
        std::fs::read(dir.join("ours.img")).unwrap() == std::fs::read(dir.join("theirs.img")).unwrap(),
        "slot image bytes differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let fragment = read("board/nearcast/linux.fragment");
    for opt in ["CONFIG_BLK_DEV_DM=y", "CONFIG_DM_VERITY=y"] {
        assert!(fragment.lines().any(|l| l == opt), "linux.fragment lacks {opt}");
    }
    assert!(read("board/nearcast/post-build.sh").contains("bin/nearcast-verity"));
    let post_image = read("board/nearcast/post-image.sh");
    assert!(post_image.contains("slot-image.sh") && post_image.contains("verity_a="));
    assert!(read("board/nearcast/genimage.cfg").contains(r#"image = "rootfs.img""#));
}

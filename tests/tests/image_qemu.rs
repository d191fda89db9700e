//! The box's OS image under QEMU (software emulation), as one box of a
//! real stack: it boots and serves, fills and serves a steered segment
//! with the origin's bytes, over HTTPS too with the session in the image
//! kernel's TLS (TLS 1.2 and 1.3, AES-128 and AES-256; ChaCha20 stays in
//! rustls), keep-alive and ranges included; it refuses an unsigned and a tampered update
//! and keeps running; it comes back by itself from an update whose
//! appliance cannot start, rolled out as a rollout's wave, which halts
//! naming the box and its reason; a power cut while an update is written leaves
//! it on the old slot; outside its maintenance window a written update
//! waits, and when a byte of that written slot is changed from the host
//! the trial boot fails dm-verity and the box is back on the old slot,
//! saying so; a good update is taken, committed, keeps the content and
//! survives another power cycle.
//!
//! Needs the static binaries (`scripts/image` or `scripts/test` builds
//! them) and the Debian tools `scripts/image` installs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nearcast::qemu_box::{from_guest, QemuBox, QemuOptions};
use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_common::chunks;
use nearcast_image::build::{signing_key, write_bundle, Chunks};

mod image_qemu_support;
use image_qemu_support::*;
use nearcast_image::disk;
use nearcast_image::qemu::Accel;
use nearcast_image::{build, build_slot, BuildOptions};
use nearcast_testkit::TempDir;

#[test]
fn image_boots_serves_and_updates_safely() {
    let root = TempDir::new("image-e2e");
    let os_dir = root.join("os");
    let base = BuildOptions {
        out: os_dir.clone(),
        version: "1".into(),
        appliance: static_binary("nearcast-appliance"),
        agent: static_binary("control-agent"),
        verity: static_binary("nearcast-verity"),
        signing_key: os_dir.join("signing.key"),
        key_id: "dev".into(),
        config_dir: None,
        disk_mib: 1024,
        progress: false,
    };
    let built = build(&base).expect("building the image");
    let size = std::fs::metadata(built.disk.with_extension("img.zst")).unwrap().len();
    println!("image: {:.1} MiB compressed", size as f64 / (1 << 20) as f64);
    assert!(size <= 64 << 20, "compressed image is {size} bytes, over 64 MiB");

    let mut stack = Stack::start_with(&root.join("stack"), Ports::EPHEMERAL, 60, |c| {
        c.origin_url = from_guest(&c.origin_url);
    })
    .unwrap();
    stack.make_popular(TITLE, 100).unwrap();
    let (delta2, fresh6) = upload_releases(&stack, &root, &base, &built.rootfs);

    let opts = QemuOptions {
        accel: Accel::Tcg,
        commit_within_secs: 40,
        // Slow enough that the power cut below lands inside the write.
        bandwidth_bytes_per_sec: 3_000_000,
        install_window: Some(closed_window()),
    };
    let mut qbox = stack.add_qemu_box(ID, &built.disk, &root.join("vm"), &opts).unwrap();
    let booted = stack
        .wait_http(&format!("{}/healthz", qbox.admin_url()), Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}\nconsole:\n{}", nearcast_image::qemu::tail(&qbox.vm.serial(), 60)));
    println!("boot to serving: {:.1} s (software emulation)", booted.as_secs_f64());
    assert!(
        qbox.vm.serial().contains("nearcast: watchdog armed"),
        "no hardware watchdog"
    );
    stack.wait_title(ID, TITLE, Duration::from_secs(120)).unwrap();
    let n = stack.check_segment(&qbox.url()).unwrap();
    println!("segment: {n} bytes from the box, same as the origin's");
    serves_https_in_kernel_tls(&stack, &qbox);
    wait_os(&stack, &qbox, "release 1 on slot A", Duration::from_secs(30), |os| {
        on(os, "1", "A")
    });

    let _sims = nearcast_e2e::simfleet::SimFleet::start(&stack, &root.join("sims"), &SIMS, &["3"]);
    refuses_bad_bundles(&stack, &qbox);
    rolls_back_a_release_that_cannot_start(&stack, &qbox);
    let sent = nearcast_e2e::os_bytes_sent(&stack, "chunk");
    survives_a_power_cut_mid_write(&stack, &mut qbox);
    a_changed_slot_fails_verity_on_its_trial_boot(&stack, &qbox, delta2, sent);
    commits_and_keeps_a_good_release(&stack, &mut qbox, delta2, &fresh6);

    drop(qbox);
    stack.origin.shutdown();
}

/// Builds and uploads releases 2 (good), 3 (its appliance cannot start),
/// 4 (3's slot signed, then one byte changed), 5 (signed by a key the box
/// does not trust, under the trusted key's name) and 6 (2's appliance:
/// 2 is condemned by the verity check).
/// The bytes of release 2's chunks that neither slot A (release 1,
/// `rootfs1`) nor slot B (3, when 2 is installed) has: what a delta
/// install of 2 must fetch.
/// And the chunks of release 6 that neither 1 nor 2 has (hex names).
fn upload_releases(stack: &Stack, root: &Path, base: &BuildOptions, rootfs1: &Path) -> (u64, Vec<String>) {
    let os_dir = &base.out;
    // Release 2's appliance grew by 6 MiB that compress to nothing
    // (trailing bytes an ELF loader ignores): a delta of 6 MiB to fetch,
    // over two seconds at the box's bandwidth cap, for the power cut.
    let grown = root.join("grown-appliance");
    let mut bin = std::fs::read(&base.appliance).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    bin.extend((0..6 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    std::fs::write(&grown, bin).unwrap();
    std::fs::set_permissions(&grown, std::fs::Permissions::from_mode(0o755)).unwrap();
    let slot2 = build_slot(&BuildOptions {
        version: "2".into(),
        appliance: grown.clone(),
        ..base.clone()
    })
    .unwrap();
    let broken = root.join("broken-appliance");
    std::fs::write(&broken, "#!/bin/sh\necho 'appliance: cannot start'\nexit 1\n").unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let slot3 = build_slot(&BuildOptions {
        version: "3".into(),
        appliance: broken,
        ..base.clone()
    })
    .unwrap();
    let bundle3 = slot3.bundle.clone();
    let key = signing_key(&base.signing_key).unwrap();
    let named = |slot: &nearcast_image::build::Slot, name: &str, key: &[u8]| {
        let bundle = os_dir.join(format!("nearcast-{name}.bundle"));
        write_bundle(slot, name, "dev", key, &bundle, Chunks::Indexed).unwrap();
        bundle
    };
    // 4 is 3's slot: what its refused download leaves in slot B shares
    // nothing with 2 that slot A lacks, so 2 is a delta of its own.
    let bundle4 = named(&slot3, "4", &key);
    flip_last_byte(&bundle4);
    let bundle5 = named(&slot2, "5", &signing_key(&root.join("other.key")).unwrap());
    let slot6 = build_slot(&BuildOptions {
        version: "6".into(),
        appliance: grown.clone(),
        ..base.clone()
    })
    .unwrap();
    let bundle6 = slot6.bundle.clone();
    let bundle2 = slot2.bundle.clone();
    for (release, bundle) in [
        ("2", &bundle2),
        ("3", &bundle3),
        ("4", &bundle4),
        ("5", &bundle5),
        ("6", &bundle6),
    ] {
        stack
            .admin_bytes(
                "PUT",
                &format!("/v1/admin/os/{release}"),
                std::fs::read(bundle).unwrap(),
            )
            .unwrap();
    }
    // A bundle uploaded under another release's name is refused.
    assert!(stack
        .admin_bytes("PUT", "/v1/admin/os/7", std::fs::read(&bundle2).unwrap())
        .is_err());
    let have: std::collections::HashSet<[u8; 32]> = [rootfs1, slot3.image.as_path()]
        .iter()
        .flat_map(|p| chunks::chunk(&std::fs::read(p).unwrap()))
        .map(|c| c.sha256)
        .collect();
    let new2: Vec<chunks::Chunk> = chunks::chunk(&std::fs::read(&slot2.image).unwrap())
        .into_iter()
        .filter(|c| !have.contains(&c.sha256))
        .collect();
    let known: std::collections::HashSet<[u8; 32]> = [rootfs1, slot2.image.as_path()]
        .iter()
        .flat_map(|p| chunks::chunk(&std::fs::read(p).unwrap()))
        .map(|c| c.sha256)
        .collect();
    let fresh6 = chunks::chunk(&std::fs::read(&slot6.image).unwrap())
        .iter()
        .filter(|c| !known.contains(&c.sha256))
        .map(|c| c.hex())
        .collect();
    (new2.iter().map(|c| u64::from(c.len)).sum(), fresh6)
}

/// HTTPS: the image kernel's TLS takes every AES-GCM session; ChaCha20
/// stays in rustls.
fn serves_https_in_kernel_tls(stack: &Stack, qbox: &QemuBox) {
    for tls in [
        &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"][..],
        &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"],
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
        &["--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"],
    ] {
        check_https(stack, qbox, tls);
    }
    let metrics = stack.get(&format!("{}/metrics", qbox.admin_url())).unwrap();
    let tls_sessions = |mode: &str| {
        let series = format!("nearcast_tls_connections_total{{mode=\"{mode}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<u64>().ok())
    };
    // Two connections per cipher: keep-alive pair, range.
    assert_eq!(tls_sessions("kernel"), Some(8), "{metrics}");
    assert_eq!(tls_sessions("userspace"), Some(2), "ChaCha20 stays in rustls");
    println!("HTTPS: 8 sessions in kernel TLS, 2 in rustls, all bytes the origin's");
}

/// Untrusted key and tampered rootfs: refused, no reboot, still serving.
fn refuses_bad_bundles(stack: &Stack, qbox: &QemuBox) {
    // Unsigned (untrusted key): refused before a byte is written.
    set_target(stack, "5");
    wait_os(stack, qbox, "untrusted bundle refused", Duration::from_secs(60), |os| {
        failed(os, "5") && on(os, "1", "A")
    });
    assert!(os_state(stack)["update"].as_str().unwrap().contains("signature"));

    // Tampered rootfs: refused when the hash does not match.
    set_target(stack, "4");
    wait_os(stack, qbox, "tampered bundle refused", Duration::from_secs(90), |os| {
        failed(os, "4") && on(os, "1", "A")
    });
    assert!(os_state(stack)["update"].as_str().unwrap().contains("hash"));
    assert_eq!(boots(qbox), ["A"], "a refused bundle must not reboot the box");
    stack.check_segment(&qbox.url()).unwrap();
}

/// An update whose appliance cannot start, in a rollout of three waves
/// over this box and six simulated ones: on the first wave's boxes it
/// fails — trial boot on B, health check failed, back on A by itself
/// here — and the rollout halts before wave two, naming the boxes and
/// their reasons; no box of the later waves is ever offered it.
fn rolls_back_a_release_that_cannot_start(stack: &Stack, qbox: &QemuBox) {
    // Half may fail: sim-1 fails at once, the rollout halts when the QEMU
    // box has failed too.
    three_waves(stack, "3", 0, 0.5);
    wait_os(
        stack,
        qbox,
        "broken release rolled back",
        Duration::from_secs(400),
        |os| failed(os, "3") && on(os, "1", "A"),
    );
    assert!(os_state(stack)["update"].as_str().unwrap().contains("health check"));
    let why = wait_halted(stack, "3");
    assert!(
        why.starts_with("wave 1: 2 of 2 boxes failed") && why.contains(ID) && why.contains("sim-1"),
        "{why}"
    );
    println!("rollout of release 3: {why}");
    for sim in &SIMS[1..] {
        let os = sim_os(stack, sim);
        assert!(on(&os, "1", "A") && !failed(&os, "3"), "{sim} was offered 3: {os}");
    }
    assert_eq!(boots(qbox), ["A", "B", "A"]);
    assert!(qbox.vm.serial().contains("appliance: cannot start"));
}

/// Release 6's rollout after wave 1: wave 2 updates, wave 3 soaks
/// behind it; aborted, wave 3 stays on release 1.
fn waves_advance_then_abort_leaves_the_rest(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !SIMS[..3].iter().all(|s| on(&sim_os(stack, s), "6", "B")) {
        assert!(Instant::now() < deadline, "waves 1 and 2 did not reach release 6");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    stack.admin("POST", "/v1/admin/rollouts/6/abort", "").unwrap();
    let st: serde_json::Value = serde_json::from_str(&stack.admin("GET", "/v1/admin/rollouts/6", "").unwrap()).unwrap();
    assert_eq!(st["state"], "aborted", "{st}");
    std::thread::sleep(Duration::from_secs(3));
    for sim in &SIMS[3..] {
        let os = sim_os(stack, sim);
        assert!(on(&os, "1", "A"), "{sim} left release 1: {os}");
    }
    println!("rollout of release 6: waves 1 and 2 on 6, aborted during wave 2's soak, wave 3 still on 1");
}

/// Power cut while release 2 is being written (set directly, not an
/// emergency: the write starts at once, the reboot would wait for the
/// window): the box boots slot A.
fn survives_a_power_cut_mid_write(stack: &Stack, qbox: &mut QemuBox) {
    set_target(stack, "2");
    let count = |qbox: &QemuBox, line: &str| qbox.vm.serial().matches(line).count();
    let started = count(qbox, "installing an OS update");
    let written = count(qbox, "written to slot B");
    qbox.vm
        .wait_serial("installing an OS update", started + 1, Duration::from_secs(60))
        .unwrap();
    // About a second into fetching its 6 MiB of new chunks.
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        count(qbox, "written to slot B"),
        written,
        "the write ended before the power cut"
    );
    qbox.power_cycle().unwrap();
    stack
        .wait_http(&format!("{}/healthz", qbox.admin_url()), Duration::from_secs(180))
        .unwrap();
    assert_eq!(
        boots(qbox),
        ["A", "B", "A", "A"],
        "after the power cut the box boots slot A"
    );
}

/// Release 2, still the target after the power cut, is written again and
/// waits for the window. A byte of the written slot B is then changed
/// from the host — in the squashfs superblock's mkfs_time, which GRUB
/// does not read, so kernel and initramfs load — and an emergency
/// rollout reboots into it: dm-verity fails the superblock's block, the
/// slot does not mount, the kernel reboots, and GRUB, the trial used up,
/// starts A, whose agent reports the failed release.
/// Before that, the delta: the two installs of 2 (cut, then resumed from
/// the chunks already in slot B) fetched release 2's new chunks about
/// once (`delta2` bytes; `sent` the server's chunk bytes before).
fn a_changed_slot_fails_verity_on_its_trial_boot(stack: &Stack, qbox: &QemuBox, delta2: u64, sent: u64) {
    wait_os(
        stack,
        qbox,
        "release 2 written, waiting for the window",
        Duration::from_secs(300),
        |os| {
            os["update"]
                .as_str()
                .is_some_and(|u| u.starts_with("waiting 2: written to slot B; waits for the maintenance window"))
        },
    );
    let fetched = nearcast_e2e::os_bytes_sent(stack, "chunk") - sent;
    println!("release 2 by delta: {fetched} chunk bytes fetched over two installs, {delta2} new in it");
    assert!(
        fetched >= delta2 && fetched < delta2 + delta2 / 4,
        "{fetched} chunk bytes for {delta2} new ones: not resumed after the power cut"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(boots(qbox), ["A", "B", "A", "A"], "rebooted outside its window");
    use std::os::unix::fs::FileExt;
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&qbox.disk)
        .unwrap();
    let at = (disk::part("nearcast-b").start_mib << 20) + 8;
    let mut byte = [0u8];
    disk.read_exact_at(&mut byte, at).unwrap();
    disk.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
    disk.sync_all().unwrap();

    emergency_rollout(stack, "2");
    wait_os(
        stack,
        qbox,
        "changed slot refused on its trial boot",
        Duration::from_secs(300),
        |os| failed(os, "2") && on(os, "1", "A"),
    );
    let update = os_state(stack)["update"].as_str().unwrap_or_default().to_string();
    assert!(update.contains("did not commit, back on slot A"), "{update}");
    let console = qbox.vm.serial();
    assert!(
        console.contains("is corrupted") && console.contains("nearcast: slot B (vda3) does not mount"),
        "no dm-verity failure on the console:\n{}",
        nearcast_image::qemu::tail(&console, 40)
    );
    assert_eq!(boots(qbox), ["A", "B", "A", "A", "A"]);
    let why = wait_halted(stack, "2");
    assert!(why.contains("did not commit"), "{why}");
    println!("rollout of release 2: {why}");
}

/// Release 6 (2 with another release name), rolled out in three waves:
/// on this box installed by delta (a damaged chunk refused and fetched
/// again), trial boot, committed, and committed
/// means kept: another power cycle boots B again. The waves advance
/// (wave 2 once wave 1 is done), wave 3 waits for wave 2's soak, and an
/// abort then leaves its boxes on the old release.
fn commits_and_keeps_a_good_release(stack: &Stack, qbox: &mut QemuBox, delta2: u64, fresh6: &[String]) {
    let sent = nearcast_e2e::os_bytes_sent(stack, "chunk");
    // The chunks only 6 has are damaged in the fill server's store until
    // the box has refused one for its hash.
    let store = stack.config.os_bundles.join("chunks");
    let good: Vec<Vec<u8>> = fresh6.iter().map(|h| std::fs::read(store.join(h)).unwrap()).collect();
    for (h, g) in fresh6.iter().zip(&good) {
        std::fs::write(store.join(h), vec![0x5a; g.len()]).unwrap();
    }
    three_waves(stack, "6", 60, 0.0);
    wait_os(stack, qbox, "a damaged chunk refused", Duration::from_secs(120), |os| {
        os["update"]
            .as_str()
            .is_some_and(|u| u.starts_with("installing 6: chunk ") && u.contains("bytes hashing"))
    });
    for (h, g) in fresh6.iter().zip(&good) {
        std::fs::write(store.join(h), g).unwrap();
    }
    wait_os(
        stack,
        qbox,
        "release 6 committed on slot B",
        Duration::from_secs(300),
        |os| on(os, "6", "B") && os["update"] == "committed 6",
    );
    // Slot B held 2's chunks (one changed): only the chunks 6's name
    // changes, and that one, are fetched (the damaged ones again).
    let fetched = nearcast_e2e::os_bytes_sent(stack, "chunk") - sent;
    println!(
        "release 6 by delta: {fetched} chunk bytes fetched ({} chunks only 6 has), {delta2} for release 2",
        fresh6.len()
    );
    assert!(fetched > 0 && fetched < delta2 / 10, "{fetched} chunk bytes fetched");
    stack.wait_title(ID, TITLE, Duration::from_secs(60)).unwrap();
    stack.check_segment(&qbox.url()).unwrap();
    waves_advance_then_abort_leaves_the_rest(stack);

    let beat_before = last_heartbeat(stack);
    qbox.power_cycle().unwrap();
    stack
        .wait_http(&format!("{}/healthz", qbox.admin_url()), Duration::from_secs(180))
        .unwrap();
    assert_eq!(boots(qbox), ["A", "B", "A", "A", "A", "B", "B"]);
    wait_os(
        stack,
        qbox,
        "still release 6 after a power cycle",
        Duration::from_secs(60),
        |os| on(os, "6", "B") && last_heartbeat(stack) > beat_before,
    );
    stack.check_segment(&qbox.url()).unwrap();
}

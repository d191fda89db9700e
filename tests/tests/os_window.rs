//! The maintenance window on a real agent process, on the host: its OS
//! slots are files (a fake sysfs names them by GPT partition name, as the
//! image's kernel does), GRUB's environment a file and its reboot a script
//! that leaves a mark. Outside the install window the agent downloads and
//! writes release 2 into slot B, says it waits for the window, and does
//! not reboot until the window opens; aborting the rollout makes it give
//! the install up; an
//! emergency rollout of the same release makes it mark the trial boot and
//! reboot at once. (The trial boot itself is the QEMU
//! test's, `image_qemu.rs`.) A whole-bundle download cut mid-way resumes
//! where it stopped, with a range request, the hash carried on. A delta
//! install takes from slot A every chunk release 1 shares with release 2
//! and fetches only the rest; a damaged chunk is refused and fetched
//! again, a cut connection costs at most one chunk. A trial boot of a
//! slot that holds another release than its bundle named fails at once.

use std::path::Path;
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack};
use nearcast_agent::config::UpdateConfig;
use nearcast_agent::update::grubenv::GrubEnv;
use nearcast_agent::window::{local_seconds_of_day, Window};
use nearcast_common::chunks;
use nearcast_e2e::proxy::FreezingProxy;
use nearcast_e2e::AgentProcess;
use nearcast_image::build::{add_verity, write_bundle, Chunks, Slot};
use nearcast_testkit::TempDir;

/// Slot B's fake partition size.
const SLOT_BYTES: u64 = 4 << 20;

/// A daily window that opened an hour ago and closes in two: closed now
/// after it is turned around (two hours from now to three).
fn closed_window() -> Window {
    let now = local_seconds_of_day() / 60;
    let at = |m: u32| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    format!("{}-{}", at(now + 120), at(now + 180)).parse().unwrap()
}

/// The box's OS as files under `dir`: slots A and B in a fake sysfs, a
/// GRUB environment booting A, release 1 running, `key_line` trusted.
fn fake_os(dir: &Path, key_line: &str) -> UpdateConfig {
    let sys = dir.join("sys");
    let dev = dir.join("dev");
    for (name, part) in [("vda2", "nearcast-a"), ("vda3", "nearcast-b")] {
        std::fs::create_dir_all(sys.join(name)).unwrap();
        std::fs::write(sys.join(name).join("uevent"), format!("PARTNAME={part}\n")).unwrap();
        std::fs::write(sys.join(name).join("size"), format!("{}\n", SLOT_BYTES / 512)).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        let f = std::fs::File::create(dev.join(name)).unwrap();
        f.set_len(SLOT_BYTES).unwrap();
    }
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("0.pub"), format!("{key_line}\n")).unwrap();
    let mut env = GrubEnv::default();
    for (k, v) in [("boot_slot", "A"), ("trial_slot", ""), ("trial_left", "0")] {
        env.set(k, v);
    }
    std::fs::write(dir.join("grubenv"), env.to_block().unwrap()).unwrap();
    std::fs::write(dir.join("release"), "1\n").unwrap();
    std::fs::write(dir.join("cmdline"), "console=ttyS0 nearcast.slot=A\n").unwrap();
    let mark = dir.join("rebooted");
    UpdateConfig {
        enabled: true,
        keys_dir: keys,
        grubenv: dir.join("grubenv"),
        release_file: dir.join("release"),
        cmdline: dir.join("cmdline"),
        sys_block: sys,
        dev_dir: dev,
        state_file: dir.join("update-state.json"),
        commit_within_secs: 30,
        reboot: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo rebooted >> {}", mark.display()),
        ],
        install_window: Some(closed_window()),
        install_max_load: 0.5,
    }
}

/// The box's `os` block as the fill server last heard it.
fn os_state(stack: &Stack) -> serde_json::Value {
    let text = stack.admin("GET", "/v1/admin/appliances", "").unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    list[0]["heartbeat"]["os"].clone()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Deterministic incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` as a slot image of release `name` under `dir`: the slot and its
/// bytes (data padded, then its verity tree).
fn slot_image(dir: &Path, name: &str, data: &[u8]) -> (Slot, Vec<u8>) {
    let squashfs = dir.join(format!("squashfs-{name}"));
    std::fs::write(&squashfs, data).unwrap();
    let image = dir.join(format!("rootfs-{name}.img"));
    let slot = Slot {
        verity: add_verity(&squashfs, &image).unwrap(),
        bundle: dir.join(format!("{name}.bundle")),
        image,
    };
    let bytes = std::fs::read(&slot.image).unwrap();
    (slot, bytes)
}

/// A stack with release 2 uploaded (`data` as its root filesystem, with
/// its verity tree; its chunk index signed or not), signed by the key the
/// box's fake OS trusts: (stack, the box's OS dir, the slot image's
/// bytes, its update config).
fn with_release_2(root: &TempDir, data: &[u8], index: Chunks) -> (Stack, std::path::PathBuf, Vec<u8>, UpdateConfig) {
    let stack = Stack::start(&root.join("stack"), Ports::EPHEMERAL, 30).unwrap();
    let pkcs8 = nearcast_common::request_auth::ApplianceKey::generate_pkcs8().unwrap();
    let key_line = nearcast_common::bundle::public_line("dev", &pkcs8).unwrap();
    let os = root.join("os");
    let update = fake_os(&os, &key_line);
    let (slot, bytes) = slot_image(&os, "2", data);
    write_bundle(&slot, "2", "dev", &pkcs8, &slot.bundle, index).unwrap();
    stack
        .admin_bytes("PUT", "/v1/admin/os/2", std::fs::read(&slot.bundle).unwrap())
        .unwrap();
    (stack, os, bytes, update)
}

fn pattern(n: u32) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(7) + i / 4096) as u8).collect()
}

#[test]
fn outside_its_window_a_box_writes_the_slot_and_waits_until_an_emergency() {
    let root = TempDir::new("e2e-os-window");
    let (mut stack, os, bytes, update) = with_release_2(&root, &pattern(1 << 20), Chunks::Indexed);
    stack.add_box(|c| c.update = update.clone()).unwrap();
    let id = stack.boxes[0].id.clone();
    let _agent = AgentProcess::start(&stack.boxes[0].agent_config);
    wait_for("the box's first heartbeat", Duration::from_secs(20), || {
        os_state(&stack)["release"] == "1"
    });

    // Not an emergency: written to slot B, then it waits for the window.
    let rollout = format!(r#"{{"release":"2","waves":[{{"boxes":{{"ids":["{id}"]}}}}]}}"#);
    stack.admin("POST", "/v1/admin/rollouts", &rollout).unwrap();
    wait_for("the box to wait for its window", Duration::from_secs(30), || {
        os_state(&stack)["update"]
            .as_str()
            .is_some_and(|u| u.starts_with("waiting 2: written to slot B; waits for the maintenance window"))
    });
    let slot_b = std::fs::read(os.join("dev/vda3")).unwrap();
    assert!(slot_b[..bytes.len()] == bytes[..], "slot B holds release 2's rootfs");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!os.join("rebooted").exists(), "rebooted outside its window");
    assert_eq!(GrubEnv::read(&os.join("grubenv")).unwrap().get("trial_slot"), "");
    let st = stack.admin("GET", "/v1/admin/rollouts/2", "").unwrap();
    assert!(
        st.contains(r#""state":"pending""#) && st.contains("maintenance window"),
        "{st}"
    );

    // Aborted: the box is sent back to release 1 and gives the install up.
    stack.admin("POST", "/v1/admin/rollouts/2/abort", "").unwrap();
    wait_for("the box to give the install up", Duration::from_secs(30), || {
        os_state(&stack)["update"] == "cancelled 2: no longer offered"
    });
    assert!(!os.join("rebooted").exists());
    // Then an emergency rollout of it: written again, rebooted at once.
    let emergency = rollout.replace(r#""waves""#, r#""emergency":true,"waves""#);
    stack.admin("POST", "/v1/admin/rollouts", &emergency).unwrap();
    wait_for("the emergency reboot", Duration::from_secs(40), || {
        os.join("rebooted").exists()
    });
    let env = GrubEnv::read(&os.join("grubenv")).unwrap();
    assert_eq!((env.get("trial_slot"), env.get("trial_left")), ("B", "1"));
    let manifest = nearcast_common::bundle::Header::parse(&std::fs::read(os.join("2.bundle")).unwrap())
        .unwrap()
        .unwrap()
        .manifest;
    assert_eq!(
        Some(env.get("verity_b")),
        manifest.verity.as_deref(),
        "the boot entry gets the signed verity root"
    );
    assert_eq!(
        env.get("boot_slot"),
        "A",
        "the old slot stays the default until the trial commits"
    );
}

#[test]
fn a_download_cut_mid_way_resumes_where_it_stopped() {
    let root = TempDir::new("e2e-os-resume");
    // Whole: the bundle path (a bundle without a chunk index).
    let (mut stack, os, bytes, mut update) = with_release_2(&root, &pattern(3 << 20), Chunks::Whole);
    update.install_window = Some(Window::Always);
    // The box reaches the fill server through a proxy that cuts the first
    // connection to carry 1 MiB towards the box: the bundle's.
    let (proxy, _agent) = rolled_out_through_a_cut(&mut stack, &update, 1 << 20);
    wait_for("the reboot into release 2", Duration::from_secs(40), || {
        os.join("rebooted").exists()
    });
    assert!(proxy.was_cut(), "the download was never cut");
    let slot_b = std::fs::read(os.join("dev/vda3")).unwrap();
    assert!(slot_b[..bytes.len()] == bytes[..], "slot B holds release 2's rootfs");
    // Resumed, not started over: the box received the bundle about once.
    let got = proxy.downstream_bytes();
    let bundle = std::fs::metadata(os.join("2.bundle")).unwrap().len();
    assert!(
        got < bundle + (512 << 10),
        "{got} bytes for a {bundle}-byte bundle: not resumed"
    );
    assert_eq!(GrubEnv::read(&os.join("grubenv")).unwrap().get("trial_slot"), "B");
}

/// A box (its agent running) that reaches the fill server through a
/// proxy cutting the first connection to carry `cut_after` bytes towards
/// it, once it heartbeats on release 1, sent a rollout of release 2.
fn rolled_out_through_a_cut(stack: &mut Stack, update: &UpdateConfig, cut_after: u64) -> (FreezingProxy, AgentProcess) {
    let proxy = FreezingProxy::listen("127.0.0.1");
    let fill: std::net::SocketAddr = stack.fill_url.trim_start_matches("http://").parse().unwrap();
    proxy.forward_to(fill);
    proxy.cut_once_after(cut_after);
    let via = format!("http://{}", proxy.addr);
    stack
        .add_box(|c| {
            c.update = update.clone();
            c.fill_server = via.clone();
        })
        .unwrap();
    let id = stack.boxes[0].id.clone();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    wait_for("the box's first heartbeat", Duration::from_secs(20), || {
        os_state(stack)["release"] == "1"
    });
    let rollout = format!(r#"{{"release":"2","waves":[{{"boxes":{{"ids":["{id}"]}}}}]}}"#);
    stack.admin("POST", "/v1/admin/rollouts", &rollout).unwrap();
    (proxy, agent)
}

#[test]
fn a_delta_install_fetches_only_new_chunks_refuses_a_bad_one_and_survives_a_cut() {
    let root = TempDir::new("e2e-os-delta");
    // Release 2 is release 1 with 256 KiB changed in the middle.
    let one = noise(3 << 20, 1);
    let mut two = one.clone();
    two[1 << 20..(1 << 20) + (256 << 10)].copy_from_slice(&noise(256 << 10, 2));
    let (mut stack, os, bytes, mut update) = with_release_2(&root, &two, Chunks::Indexed);
    update.install_window = Some(Window::Always);
    // Slot A runs release 1: its image, and its verity parameters in
    // GRUB's environment, where the image builder puts them.
    let (slot1, bytes1) = slot_image(&os, "1", &one);
    use std::os::unix::fs::FileExt;
    let a = std::fs::OpenOptions::new()
        .write(true)
        .open(os.join("dev/vda2"))
        .unwrap();
    a.write_all_at(&bytes1, 0).unwrap();
    let mut env = GrubEnv::read(&os.join("grubenv")).unwrap();
    env.set("verity_a", &slot1.verity.encode());
    std::fs::write(os.join("grubenv"), env.to_block().unwrap()).unwrap();

    let had: std::collections::HashSet<[u8; 32]> = chunks::chunk(&bytes1).iter().map(|c| c.sha256).collect();
    let new: Vec<chunks::Chunk> = chunks::chunk(&bytes)
        .into_iter()
        .filter(|c| !had.contains(&c.sha256))
        .collect();
    let new_bytes: u64 = new.iter().map(|c| u64::from(c.len)).sum();
    assert!(
        new_bytes * 4 < bytes.len() as u64,
        "{new_bytes} new bytes: the chunker lost the shared ones"
    );
    // One of them is damaged in the fill server's chunk store.
    let stored = stack.config.os_bundles.join("chunks").join(new[0].hex());
    let good = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, vec![0x5a; good.len()]).unwrap();

    // And the box's first connection to carry 32 KiB towards it (a
    // chunk's) is cut.
    let (proxy, _agent) = rolled_out_through_a_cut(&mut stack, &update, 32 << 10);
    // (The cut lands on its first fetch; the damaged bytes come whole next.)
    let refused = format!("chunk {} refused ({} bytes hashing", new[0].hex(), new[0].len);
    wait_for(
        "the damaged chunk refused for its hash",
        Duration::from_secs(40),
        || {
            os_state(&stack)["update"]
                .as_str()
                .is_some_and(|u| u.contains(&refused))
        },
    );
    assert!(!os.join("rebooted").exists(), "rebooted with a chunk refused");
    std::fs::write(&stored, &good).unwrap();
    wait_for("the reboot into release 2", Duration::from_secs(40), || {
        os.join("rebooted").exists()
    });
    let slot_b = std::fs::read(os.join("dev/vda3")).unwrap();
    assert!(slot_b[..bytes.len()] == bytes[..], "slot B holds release 2's image");
    assert!(proxy.was_cut(), "no connection was cut");
    // Fetched: the new chunks, the damaged one each time it was refused
    // (retries are 2 s apart; it is mended within a few), at most one
    // chunk again for the cut; the rest came from slot A.
    let fetched = nearcast_e2e::os_bytes_sent(&stack, "chunk");
    println!(
        "delta: {fetched} chunk bytes fetched for a {}-byte image, {new_bytes} new",
        bytes.len()
    );
    assert!(fetched >= new_bytes + u64::from(new[0].len), "{fetched}");
    assert!(
        fetched <= new_bytes + 4 * u64::from(new[0].len) + chunks::MAX as u64,
        "{fetched} chunk bytes fetched for {new_bytes} new"
    );
    assert_eq!(GrubEnv::read(&os.join("grubenv")).unwrap().get("trial_slot"), "B");
}

/// A trial boot whose slot holds another release than its bundle named
/// (release 2's image uploaded as 6): the agent fails the trial at once,
/// marks 6 failed and reboots into the old slot — committed, it would be
/// offered 6 again after every boot, an install loop.
#[test]
fn a_trial_of_a_mislabelled_bundle_fails_at_once() {
    let root = TempDir::new("e2e-os-mislabel");
    let (mut stack, os, _, update) = with_release_2(&root, &pattern(1 << 20), Chunks::Indexed);
    // Booted on trial in slot B, which says release 2; the install named 6.
    std::fs::write(os.join("cmdline"), "console=ttyS0 nearcast.slot=B\n").unwrap();
    std::fs::write(os.join("release"), "2\n").unwrap();
    let mut env = GrubEnv::read(&os.join("grubenv")).unwrap();
    env.set("trial_slot", "B");
    std::fs::write(os.join("grubenv"), env.to_block().unwrap()).unwrap();
    std::fs::write(
        os.join("update-state.json"),
        r#"{"pending":"6","last":"rebooting into 6 on slot B","failed":[]}"#,
    )
    .unwrap();
    stack.add_box(|c| c.update = update.clone()).unwrap();
    let _agent = AgentProcess::start(&stack.boxes[0].agent_config);
    wait_for("the failed trial's reboot", Duration::from_secs(20), || {
        os.join("rebooted").exists()
    });
    wait_for("the failure in the heartbeat", Duration::from_secs(20), || {
        let os = os_state(&stack);
        os["failed"].as_array().is_some_and(|f| f.iter().any(|r| r == "6"))
            && os["update"]
                .as_str()
                .is_some_and(|u| u.contains("holds release '2', not the '6' its bundle named"))
    });
    assert_eq!(
        GrubEnv::read(&os.join("grubenv")).unwrap().get("boot_slot"),
        "A",
        "not committed"
    );
}

/// A release written outside the window waits for it, and the box
/// reboots into it once the window opens (the next whole minute at least
/// 20 s away: up to 80 s of this test's time).
#[test]
fn a_written_update_installs_when_the_window_opens() {
    const DAY: u32 = 86_400;
    let root = TempDir::new("e2e-os-window-opens");
    let (mut stack, os, _, mut update) = with_release_2(&root, &pattern(1 << 20), Chunks::Indexed);
    let now = local_seconds_of_day();
    let mut opens = (now / 60 + 1) * 60;
    if opens - now < 20 {
        opens += 60;
    }
    let at = |s: u32| format!("{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60);
    update.install_window = Some(format!("{}-{}", at(opens), at(opens + 3600)).parse().unwrap());
    let opens = opens % DAY;
    // Seconds since the window opened, modulo a day (small once it has).
    let since_open = || (local_seconds_of_day() + DAY - opens) % DAY;
    stack.add_box(|c| c.update = update.clone()).unwrap();
    let id = stack.boxes[0].id.clone();
    let _agent = AgentProcess::start(&stack.boxes[0].agent_config);
    wait_for("the box's first heartbeat", Duration::from_secs(20), || {
        os_state(&stack)["release"] == "1"
    });
    let rollout = format!(r#"{{"release":"2","waves":[{{"boxes":{{"ids":["{id}"]}}}}]}}"#);
    stack.admin("POST", "/v1/admin/rollouts", &rollout).unwrap();
    wait_for("the box to wait for its window", Duration::from_secs(30), || {
        os_state(&stack)["update"]
            .as_str()
            .is_some_and(|u| u.starts_with("waiting 2: written to slot B; waits for the maintenance window"))
    });
    assert!(since_open() > 3600, "the window opened before the slot was written");
    assert!(!os.join("rebooted").exists(), "rebooted before its window");
    wait_for("the reboot once the window opens", Duration::from_secs(100), || {
        os.join("rebooted").exists()
    });
    let late = since_open();
    assert!(late < 15, "rebooted {late} s after the window opened, or before it");
    assert_eq!(GrubEnv::read(&os.join("grubenv")).unwrap().get("trial_slot"), "B");
}

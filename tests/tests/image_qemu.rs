//! The box's OS image under QEMU (software emulation), as one box of a
//! real stack: it boots and serves, fills and serves a steered segment
//! with the origin's bytes, over HTTPS too with the session in the image
//! kernel's TLS (TLS 1.2 and 1.3, AES-128 and AES-256; ChaCha20 stays in
//! rustls), keep-alive and ranges included; it refuses an unsigned and a tampered update
//! and keeps running; it comes back by itself from an update whose
//! appliance cannot start, rolled out as a rollout's wave, which halts
//! naming the box and its reason; a power cut while an update is written leaves
//! it on the old slot; a good update is taken, committed, keeps the
//! content and survives another power cycle.
//!
//! Needs the static binaries (`scripts/image` or `scripts/test` builds
//! them) and the Debian tools `scripts/image` installs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nearcast::qemu_box::{from_guest, QemuBox, QemuOptions, SEGMENT};
use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_image::build::{signing_key, write_bundle};
use nearcast_image::qemu::Accel;
use nearcast_image::{build, build_slot, BuildOptions};
use nearcast_testkit::TempDir;

const ID: &str = "qemu-1";

/// `target/x86_64-unknown-linux-gnu/image/{name}`, beside this test's
/// target dir.
fn static_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/{profile}/deps/this-test → target/
    let target = exe.ancestors().nth(3).expect("target dir");
    let bin = target.join("x86_64-unknown-linux-gnu/image").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: scripts/image (or scripts/test) builds the static binaries",
        bin.display()
    );
    bin
}

fn os_state(stack: &Stack) -> serde_json::Value {
    stack
        .appliance(ID)
        .map(|a| a["heartbeat"]["os"].clone())
        .unwrap_or_default()
}

/// Waits until the box's heartbeat OS state satisfies `ok`.
fn wait_os(stack: &Stack, qbox: &QemuBox, what: &str, timeout: Duration, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let os = os_state(stack);
        if ok(&os) {
            println!("{:>5.0} s  {what}: {os}", start.elapsed().as_secs_f64());
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; OS state {os}\nconsole ends:\n{}",
            nearcast_image::qemu::tail(&qbox.vm.serial(), 60)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Unix seconds of the box's last heartbeat.
fn last_heartbeat(stack: &Stack) -> u64 {
    stack
        .appliance(ID)
        .ok()
        .and_then(|a| a["last_heartbeat"].as_u64())
        .unwrap_or(0)
}

fn failed(os: &serde_json::Value, release: &str) -> bool {
    os["failed"].as_array().is_some_and(|f| f.iter().any(|r| r == release))
}

fn on(os: &serde_json::Value, release: &str, slot: &str) -> bool {
    os["release"] == release && os["slot"] == slot
}

/// Slots the console says were booted, in order.
fn boots(qbox: &QemuBox) -> Vec<String> {
    qbox.vm
        .serial()
        .lines()
        .filter_map(|l| l.split("nearcast: root is slot ").nth(1))
        .map(|rest| rest.chars().take(1).collect())
        .collect()
}

fn set_target(stack: &Stack, release: &str) {
    stack
        .admin(
            "PUT",
            &format!("/v1/admin/appliances/{ID}/os"),
            &format!(r#"{{"release":"{release}"}}"#),
        )
        .unwrap();
}

/// Fetches the sample's segment from the box over HTTPS with curl (`tls`:
/// curl's protocol and cipher options): whole, twice on one connection,
/// then a range; all must be the origin's bytes.
fn check_https(stack: &Stack, qbox: &QemuBox, tls: &[&str]) {
    let port = qbox.https_port();
    let token = stack.title_token(TITLE).unwrap();
    let url = format!("https://localhost:{port}/c/{TITLE}/{SEGMENT}?token={token}");
    let want = std::fs::read(stack.config.origin_store.join(TITLE).join(SEGMENT)).unwrap();
    let curl = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(qbox.tls_ca())
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(tls)
            .args(extra)
            .output()
            .expect("curl is installed");
        assert!(
            out.status.success(),
            "{tls:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert!(
        curl(&[&url, &url]) == [&want[..], &want[..]].concat(),
        "{tls:?}: keep-alive bytes differ"
    );
    assert!(
        curl(&["-r", "1000-70000", &url]) == want[1000..=70000],
        "{tls:?}: range bytes differ"
    );
}

fn flip_last_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    *b.last_mut().unwrap() ^= 0x55;
    std::fs::write(path, b).unwrap();
}

#[test]
fn image_boots_serves_and_updates_safely() {
    let root = TempDir::new("image-e2e");
    let os_dir = root.join("os");
    let base = BuildOptions {
        out: os_dir.clone(),
        version: "1".into(),
        appliance: static_binary("nearcast-appliance"),
        agent: static_binary("control-agent"),
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
    upload_releases(&stack, &root, &base);

    let opts = QemuOptions {
        accel: Accel::Tcg,
        commit_within_secs: 40,
        // Slow enough that the power cut below lands inside the write.
        bandwidth_bytes_per_sec: 3_000_000,
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

    refuses_bad_bundles(&stack, &qbox);
    rolls_back_a_release_that_cannot_start(&stack, &qbox);
    survives_a_power_cut_mid_write(&stack, &mut qbox);
    commits_and_keeps_a_good_release(&stack, &mut qbox);

    drop(qbox);
    stack.origin.shutdown();
}

/// Builds and uploads releases 2 (good), 3 (its appliance cannot start),
/// 4 (signed, then one rootfs byte changed) and 5 (signed by a key the box
/// does not trust, under the trusted key's name).
fn upload_releases(stack: &Stack, root: &Path, base: &BuildOptions) {
    let os_dir = &base.out;
    let (rootfs2, bundle2) = build_slot(&BuildOptions {
        version: "2".into(),
        ..base.clone()
    })
    .unwrap();
    let broken = root.join("broken-appliance");
    std::fs::write(&broken, "#!/bin/sh\necho 'appliance: cannot start'\nexit 1\n").unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, bundle3) = build_slot(&BuildOptions {
        version: "3".into(),
        appliance: broken,
        ..base.clone()
    })
    .unwrap();
    let key = signing_key(&base.signing_key).unwrap();
    let bundle4 = os_dir.join("nearcast-4.bundle");
    write_bundle(&rootfs2, "4", "dev", &key, &bundle4).unwrap();
    flip_last_byte(&bundle4);
    let other = signing_key(&root.join("other.key")).unwrap();
    let bundle5 = os_dir.join("nearcast-5.bundle");
    write_bundle(&rootfs2, "5", "dev", &other, &bundle5).unwrap();
    for (release, bundle) in [("2", &bundle2), ("3", &bundle3), ("4", &bundle4), ("5", &bundle5)] {
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
        .admin_bytes("PUT", "/v1/admin/os/6", std::fs::read(&bundle2).unwrap())
        .is_err());
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

/// An update whose appliance cannot start, rolled out to this box as a
/// rollout's wave: trial boot on B, health check fails, back on A by
/// itself; the rollout halts, naming the box and its reason. (Halting
/// before the next wave is the API test's, with simulated boxes.)
fn rolls_back_a_release_that_cannot_start(stack: &Stack, qbox: &QemuBox) {
    let spec = format!(r#"{{"release":"3","waves":[{{"boxes":{{"ids":["{ID}"]}}}}]}}"#);
    stack.admin("POST", "/v1/admin/rollouts", &spec).unwrap();
    wait_os(
        stack,
        qbox,
        "broken release rolled back",
        Duration::from_secs(400),
        |os| failed(os, "3") && on(os, "1", "A"),
    );
    assert!(os_state(stack)["update"].as_str().unwrap().contains("health check"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let halted = loop {
        let st: serde_json::Value =
            serde_json::from_str(&stack.admin("GET", "/v1/admin/rollouts/3", "").unwrap()).unwrap();
        if st["state"] == "halted" || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(halted["state"], "halted", "{halted}");
    let why = halted["reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("wave 1: 1 of 1 boxes failed") && why.contains("health check"),
        "{why}"
    );
    println!("rollout of release 3: {why}");
    assert_eq!(boots(qbox), ["A", "B", "A"]);
    assert!(qbox.vm.serial().contains("appliance: cannot start"));
}

/// Power cut while release 2 is being written: the box boots slot A.
fn survives_a_power_cut_mid_write(stack: &Stack, qbox: &mut QemuBox) {
    set_target(stack, "2");
    let count = |qbox: &QemuBox, line: &str| qbox.vm.serial().matches(line).count();
    let started = count(qbox, "installing an OS update");
    let installed = count(qbox, "installed; rebooting on trial");
    qbox.vm
        .wait_serial("installing an OS update", started + 1, Duration::from_secs(60))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(qbox, "installed; rebooting on trial"),
        installed,
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

/// Release 2 is still the target: installed, trial boot, committed, and
/// committed means kept: another power cycle boots B again.
fn commits_and_keeps_a_good_release(stack: &Stack, qbox: &mut QemuBox) {
    wait_os(
        stack,
        qbox,
        "release 2 committed on slot B",
        Duration::from_secs(300),
        |os| on(os, "2", "B") && os["update"] == "committed 2",
    );
    stack.wait_title(ID, TITLE, Duration::from_secs(60)).unwrap();
    stack.check_segment(&qbox.url()).unwrap();

    let beat_before = last_heartbeat(stack);
    qbox.power_cycle().unwrap();
    stack
        .wait_http(&format!("{}/healthz", qbox.admin_url()), Duration::from_secs(180))
        .unwrap();
    assert_eq!(boots(qbox), ["A", "B", "A", "A", "B", "B"]);
    wait_os(
        stack,
        qbox,
        "still release 2 after a power cycle",
        Duration::from_secs(60),
        |os| on(os, "2", "B") && last_heartbeat(stack) > beat_before,
    );
    stack.check_segment(&qbox.url()).unwrap();
}

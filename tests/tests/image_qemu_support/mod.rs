//! What the QEMU image test's steps share: the box's OS state as the
//! fill server hears it, waits on it, the console's boots, rollouts of
//! one box or three waves with the simulated fleet, the fill server's
//! OS byte counters, HTTPS checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nearcast::qemu_box::{QemuBox, SEGMENT};
use nearcast::stack::{Stack, TITLE};
use nearcast_agent::window::Window;

/// The simulated boxes beside the QEMU one: `sim-1` shares its wave.
pub const SIMS: [&str; 6] = ["sim-1", "sim-2", "sim-3", "sim-4", "sim-5", "sim-6"];

pub const ID: &str = "qemu-1";

/// `target/x86_64-unknown-linux-gnu/image/{name}`, beside this test's
/// target dir.
pub fn static_binary(name: &str) -> PathBuf {
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

pub fn os_state(stack: &Stack) -> serde_json::Value {
    stack
        .appliance(ID)
        .map(|a| a["heartbeat"]["os"].clone())
        .unwrap_or_default()
}

/// Waits until the box's heartbeat OS state satisfies `ok`.
pub fn wait_os(stack: &Stack, qbox: &QemuBox, what: &str, timeout: Duration, ok: impl Fn(&serde_json::Value) -> bool) {
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
pub fn last_heartbeat(stack: &Stack) -> u64 {
    stack
        .appliance(ID)
        .ok()
        .and_then(|a| a["last_heartbeat"].as_u64())
        .unwrap_or(0)
}

pub fn failed(os: &serde_json::Value, release: &str) -> bool {
    os["failed"].as_array().is_some_and(|f| f.iter().any(|r| r == release))
}

pub fn on(os: &serde_json::Value, release: &str, slot: &str) -> bool {
    os["release"] == release && os["slot"] == slot
}

/// Slots the console says were booted, in order.
pub fn boots(qbox: &QemuBox) -> Vec<String> {
    qbox.vm
        .serial()
        .lines()
        .filter_map(|l| l.split("nearcast: root is slot ").nth(1))
        .map(|rest| rest.chars().take(1).collect())
        .collect()
}

pub fn set_target(stack: &Stack, release: &str) {
    stack
        .admin(
            "PUT",
            &format!("/v1/admin/appliances/{ID}/os"),
            &format!(r#"{{"release":"{release}"}}"#),
        )
        .unwrap();
}

pub fn flip_last_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    *b.last_mut().unwrap() ^= 0x55;
    std::fs::write(path, b).unwrap();
}

/// An hour-long install window that opens six hours from now (the guest
/// keeps UTC, as the host's clock): closed for the whole test, so only
/// emergency rollouts reboot the box into what it wrote.
pub fn closed_window() -> Window {
    let hour = (nearcast_common::unix_now() / 3600 + 6) % 24;
    format!("{hour:02}:00-{:02}:00", (hour + 1) % 24).parse().unwrap()
}

/// Waits for rollout `release` to halt by itself; its reason.
pub fn wait_halted(stack: &Stack, release: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st: serde_json::Value = serde_json::from_str(
            &stack
                .admin("GET", &format!("/v1/admin/rollouts/{release}"), "")
                .unwrap(),
        )
        .unwrap();
        if st["state"] == "halted" {
            return st["reason"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "rollout {release} did not halt: {st}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Rolls `release` out to this box alone, as an emergency (the box's
/// install window is closed).
pub fn emergency_rollout(stack: &Stack, release: &str) {
    let spec = format!(r#"{{"release":"{release}","emergency":true,"waves":[{{"boxes":{{"ids":["{ID}"]}}}}]}}"#);
    stack.admin("POST", "/v1/admin/rollouts", &spec).unwrap();
}

/// A three-wave emergency rollout of `release`: the QEMU box and sim-1,
/// then sim-2 and sim-3 (soaking `soak2` minutes), then sim-4 to sim-6;
/// halting when more than `max_failed` of a wave's boxes failed.
pub fn three_waves(stack: &Stack, release: &str, soak2: u32, max_failed: f64) {
    let spec = format!(
        r#"{{"release":"{release}","emergency":true,"max_failure_ratio":{max_failed},"waves":[
            {{"boxes":{{"ids":["{ID}","sim-1"]}}}},
            {{"boxes":{{"ids":["sim-2","sim-3"]}},"soak_minutes":{soak2}}},
            {{"boxes":{{"ids":["sim-4","sim-5","sim-6"]}}}}]}}"#
    );
    stack.admin("POST", "/v1/admin/rollouts", &spec).unwrap();
}

/// Simulated box `id`'s OS state as the fill server last heard it.
pub fn sim_os(stack: &Stack, id: &str) -> serde_json::Value {
    stack
        .appliance(id)
        .map(|a| a["heartbeat"]["os"].clone())
        .unwrap_or_default()
}

/// Fetches the sample's segment from the box over HTTPS with curl (`tls`:
/// curl's protocol and cipher options): whole, twice on one connection,
/// then a range; all must be the origin's bytes.
pub fn check_https(stack: &Stack, qbox: &QemuBox, tls: &[&str]) {
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

//! Serving on through a failed disk: an appliance with three disks (each
//! with a simulated NVMe device) holds three titles; under load, one disk's
//! health log turns read-only. The agent's monitor marks it failed at the
//! next heartbeat and takes it out: requests for the other disks' files
//! see no error, the failed disk's files get fast 404s, the inventory and
//! steering drop its titles. The disk is replaced (healthy, empty) and the
//! next fill puts its title back.
//!
//! And a disk whose reads fail (a FUSE filesystem answering EIO): the
//! appliance answers 500 for that file, the agent marks the disk degraded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::{curl_get, metric, quick_status, AgentProcess};
use nearcast_hardware::nvme::HealthLog;
use nearcast_hardware::sim::Sim;
use nearcast_testkit::faultfs::{Fault, FaultFs};
use nearcast_testkit::TempDir;

const TITLES: [&str; 3] = [TITLE, "second", "third"];

fn healthy() -> HealthLog {
    HealthLog {
        critical_warning: 0,
        temperature_c: 38,
        available_spare_pct: 100,
        percentage_used: 1,
        media_errors: 0,
    }
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

fn box_inventory(stack: &Stack) -> Vec<String> {
    let all: serde_json::Value =
        serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
    serde_json::from_value(all[0]["inventory"]["titles"].clone()).unwrap()
}

fn steered_to_box(stack: &Stack, title: &str) -> bool {
    let (_, body) = curl_get(&format!("{}/v1/steer?title={title}", stack.fill_url));
    String::from_utf8_lossy(&body).contains(&format!("http://{}/", stack.boxes[0].http_addr))
}

#[test]
fn a_failed_disk_leaves_serving_and_a_replaced_one_is_refilled() {
    // A fixed root keeps the disks' names, and so where the rendezvous
    // hashing puts the titles, the same on every run.
    let root = TempDir::fixed("e2e-disks");
    let (mut stack, sim, disks) = three_disk_box(&root);
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(s["titles"].as_array().map(Vec::len), Some(3), "{s}");
    let disk_of = |t: &str| disks.iter().position(|d| d.join(t).is_dir()).unwrap();
    let failing = disk_of(TITLE);
    let (lost, kept): (Vec<&str>, Vec<&str>) = TITLES.iter().partition(|t| disk_of(t) == failing);
    assert!(!kept.is_empty(), "every title landed on one disk");

    let load = Load::start(&stack);
    std::thread::sleep(Duration::from_millis(500));
    // The disk's health log turns read-only: failed.
    sim.nvme(
        failing as u32,
        &HealthLog {
            critical_warning: 0b1000,
            ..healthy()
        },
    )
    .unwrap();
    let took = wait_disk_failed(&stack, failing, true);
    assert!(took <= Duration::from_secs(3), "one heartbeat: {took:?}");
    load.out.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    let targets = load.targets.clone();
    assert_served_on(&load.finish(), &lost, &kept);
    assert_reported_failed(&stack, &agent, failing, &lost, &kept);

    // Replaced: a healthy, empty disk. It returns to service and the next
    // fill puts the lost titles back.
    std::fs::remove_dir_all(&disks[failing]).unwrap();
    std::fs::create_dir_all(&disks[failing]).unwrap();
    sim.nvme(failing as u32, &healthy()).unwrap();
    wait_disk_failed(&stack, failing, false);
    let (code, _) = curl_get(&format!("http://{}/fill", agent.admin));
    assert_eq!(code, 405, "fill needs POST");
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("http://{}/fill", agent.admin)])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_until("the next fill refills the lost titles", Duration::from_secs(30), || {
        let inv = box_inventory(&stack);
        TITLES.iter().all(|t| inv.contains(&t.to_string()))
    });
    assert!(steered_to_box(&stack, TITLE));
    let (_, target) = targets.iter().find(|(t, _)| *t == TITLE).unwrap();
    assert_eq!(quick_status(stack.boxes[0].http_addr, target), 200);
    drop(agent);
    stack.boxes[0].stop_appliance();
}

/// A stack with the three titles and one box over three disks, each with
/// a simulated NVMe device.
fn three_disk_box(root: &TempDir) -> (Stack, Sim, Vec<std::path::PathBuf>) {
    let mut stack = Stack::start(root, Ports::EPHEMERAL, 30).unwrap();
    for (i, t) in TITLES.iter().enumerate() {
        if *t != TITLE {
            stack.package_copy(t).unwrap();
        }
        stack.make_popular(t, 30 - 10 * i).unwrap();
    }
    let sim = Sim::new(root.join("hw"));
    let disks: Vec<_> = (0..3).map(|i| root.join(format!("box-1/disk{i}"))).collect();
    for (i, d) in disks.iter().enumerate() {
        std::fs::create_dir_all(d).unwrap();
        sim.nvme(i as u32, &healthy()).unwrap();
    }
    stack
        .add_box(|c| {
            c.disks = disks.clone();
            c.hardware.root = root.join("hw");
            c.hardware.devices = (0..3).map(|i| format!("nvme{i}n1")).collect();
        })
        .unwrap();
    (stack, sim, disks)
}

/// Waits until the appliance's `nearcast_disk_failed` for `disk` reads
/// `failed`; returns how long that took.
fn wait_disk_failed(stack: &Stack, disk: usize, failed: bool) -> Duration {
    let series = format!("nearcast_disk_failed{{disk=\"{disk}\"");
    let value = if failed { " 1" } else { " 0" };
    wait_until("the appliance's disk state", Duration::from_secs(5), || {
        String::from_utf8(curl_get(&format!("http://{}/metrics", stack.boxes[0].admin_addr)).1)
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&series) && l.ends_with(value))
    })
}

/// One request's outcome: title, status, latency, sent after the disk was
/// out.
type Outcome = (&'static str, u16, Duration, bool);

/// Load: every file of every title, over and over, from two clients.
struct Load {
    targets: Arc<Vec<(&'static str, String)>>,
    stop: Arc<AtomicBool>,
    /// Set once the disk is out: requests after it are marked.
    out: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(stack: &Stack) -> Load {
        let box_addr = stack.boxes[0].http_addr;
        let mut targets = Vec::new();
        for t in TITLES {
            let index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(stack.config.origin_store.join(t).join("index.json")).unwrap())
                    .unwrap();
            let token = stack.title_token(t).unwrap();
            for f in index["files"].as_array().unwrap() {
                targets.push((t, format!("/c/{t}/{}?token={token}", f["path"].as_str().unwrap())));
            }
        }
        let targets = Arc::new(targets);
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::new(AtomicBool::new(false));
        let clients = (0..2)
            .map(|c| {
                let (targets, stop, log, out) = (targets.clone(), stop.clone(), log.clone(), out.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 200_000 {
                        let (title, target) = &targets[i % targets.len()];
                        let was_out = out.load(Ordering::Relaxed);
                        let t0 = Instant::now();
                        let code = quick_status(box_addr, target);
                        log.lock().unwrap().push((*title, code, t0.elapsed(), was_out));
                        i += 2;
                    }
                })
            })
            .collect();
        Load {
            targets,
            stop,
            out,
            log,
            clients,
        }
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// The healthy disks served every request; the failed disk's files got
/// fast 404s once it was out.
fn assert_served_on(log: &[Outcome], lost: &[&str], kept: &[&str]) {
    let kept_requests: Vec<_> = log.iter().filter(|(t, ..)| kept.contains(t)).collect();
    assert!(
        kept_requests.len() > 50,
        "{} requests to healthy disks",
        kept_requests.len()
    );
    let errors = kept_requests.iter().filter(|(_, code, ..)| *code != 200).count();
    assert_eq!(errors, 0, "the healthy disks served every request");
    let after: Vec<_> = log
        .iter()
        .filter(|(t, _, _, was_out)| lost.contains(t) && *was_out)
        .collect();
    assert!(!after.is_empty());
    for (t, code, latency, _) in &after {
        assert_eq!(*code, 404, "{t} after the disk was out");
        assert!(*latency < Duration::from_millis(500), "a fast 404: {latency:?}");
    }
}

/// The fill server hears of it: the lost titles leave the inventory and
/// steering, the kept ones stay; the disk is failed in the heartbeat and
/// in the agent's metrics.
fn assert_reported_failed(stack: &Stack, agent: &AgentProcess, failing: usize, lost: &[&str], kept: &[&str]) {
    wait_until(
        "inventory drops the failed disk's titles",
        Duration::from_secs(10),
        || {
            let inv = box_inventory(stack);
            lost.iter().all(|t| !inv.contains(&t.to_string())) && kept.iter().all(|t| inv.contains(&t.to_string()))
        },
    );
    assert!(!steered_to_box(stack, TITLE));
    assert!(steered_to_box(stack, kept[0]));
    let all: serde_json::Value =
        serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
    assert_eq!(
        all[0]["heartbeat"]["disks"][failing]["health"], "failed",
        "{}",
        all[0]["heartbeat"]
    );
    assert_eq!(all[0]["heartbeat"]["health"], "degraded");
    let agent_metrics = String::from_utf8(curl_get(&format!("http://{}/metrics", agent.admin)).1).unwrap();
    let disk_state = format!("nearcast_hw_disk_state{{disk=\"{failing}\",device=\"nvme{failing}n1\"}}");
    assert_eq!(metric(&agent_metrics, &disk_state), Some(4.0));
}

#[test]
fn a_disk_whose_reads_fail_is_degraded_and_serves_on() {
    let root = TempDir::new("e2e-eio");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 30).unwrap();
    let fs = FaultFs::mount(&root.join("backing"), &root.join("box-1/fuse")).expect("mount the FUSE test disk");
    stack.add_box(|c| c.disks = vec![fs.path().to_path_buf()]).unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(
        s["titles"].as_array().map(Vec::len),
        Some(1),
        "filled through FUSE: {s}"
    );

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.config.origin_store.join(TITLE).join("index.json")).unwrap())
            .unwrap();
    let files: Vec<&str> = index["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    let (bad, good) = (files[files.len() - 1], files[files.len() - 2]);
    let token = stack.title_token(TITLE).unwrap();
    let url = |f: &str| format!("/c/{TITLE}/{f}?token={token}");
    let box_addr = stack.boxes[0].http_addr;
    assert_eq!(quick_status(box_addr, &url(bad)), 200);
    // The sector under the file goes bad; its cached pages are gone too.
    fs.set_faults(vec![Fault::eio(&format!("{TITLE}/{bad}"), 0)]);
    nearcast_testkit::evict(&fs.path().join(TITLE).join(bad)).unwrap();
    assert_eq!(quick_status(box_addr, &url(bad)), 500, "EIO before the first body byte");
    assert_eq!(
        quick_status(box_addr, &url(good)),
        200,
        "the rest of the disk serves on"
    );
    let disk_health = || {
        let all: serde_json::Value =
            serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
        all[0]["heartbeat"]["disks"][0]["health"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("the agent marks the disk degraded", Duration::from_secs(10), || {
        disk_health() == "degraded"
    });
    assert_eq!(quick_status(box_addr, &url(good)), 200, "degraded still serves");
    drop(agent);
    stack.boxes[0].stop_appliance();
    drop(fs);
}

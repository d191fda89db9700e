//! The fill under faults, with real `control-agent` processes:
//!
//! - SIGKILL at random moments of a fill, many times over: after every
//!   kill no partial or unverified file is in a served place, in a title
//!   record, in the fill server's inventory or served by the appliance;
//!   restarted, the agent resumes and completes the fill.
//! - Bad sources: a peer with a corrupted copy is retried from the next
//!   source; peers that are down are skipped; a corrupted origin file is
//!   refused, never placed, and reported to the operator and the fill
//!   server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_common::sha256_hex;
use nearcast_e2e::{curl_get, metric, AgentProcess};
use nearcast_testkit::TempDir;

/// path → (size, sha256) from the origin's title index.
fn index(stack: &Stack) -> BTreeMap<String, (u64, String)> {
    let path = stack.config.origin_store.join(TITLE).join("index.json");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    index["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("path"), (f["size"].as_u64().unwrap(), s("sha256")))
        })
        .collect()
}

/// Files under `dir` that the appliance would serve (no dot anywhere),
/// relative to it.
fn served_files(dir: &Path, rel: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if e.path().is_dir() {
            served_files(&e.path(), &r, out);
        } else {
            out.push(r);
        }
    }
}

fn inventory_at_fill_server(stack: &Stack, id: &str) -> Vec<String> {
    let all: serde_json::Value =
        serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
    let me = all.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap();
    serde_json::from_value(me["inventory"]["titles"].clone()).unwrap()
}

/// Everything a crash must not break, checked on box `i`. Returns whether
/// the fill was caught part-way (some files, no record).
fn check_box(stack: &Stack, i: usize, index: &BTreeMap<String, (u64, String)>) -> bool {
    let b = &stack.boxes[i];
    let title_dir = b.disk.join(TITLE);
    let mut present = Vec::new();
    served_files(&title_dir, "", &mut present);
    for rel in &present {
        let bytes = std::fs::read(title_dir.join(rel)).unwrap();
        let (size, sha) = index.get(rel).unwrap_or_else(|| panic!("{rel} is not in the title"));
        assert_eq!(
            (bytes.len() as u64, &sha256_hex(&bytes)),
            (*size, sha),
            "{rel} in place but not verified"
        );
    }
    let recorded = b.disk.join(".nearcast/titles/sample.json").is_file();
    if recorded {
        assert_eq!(present.len(), index.len(), "a recorded title has all its files");
    }
    for t in inventory_at_fill_server(stack, &b.id) {
        assert!(
            t == TITLE && recorded,
            "the fill server lists {t} before it is complete"
        );
    }
    // What the appliance serves is whole or absent: never a prefix.
    let token = stack.title_token(TITLE).unwrap();
    for (rel, (size, sha)) in index {
        let (code, body) = curl_get(&format!("http://{}/c/{TITLE}/{rel}?token={token}", b.http_addr));
        match code {
            200 => assert_eq!((body.len() as u64, &sha256_hex(&body)), (*size, sha), "served {rel}"),
            404 => assert!(!present.contains(rel)),
            other => panic!("{rel}: {other}"),
        }
    }
    !recorded && !present.is_empty()
}

#[test]
fn sigkill_at_random_moments_never_exposes_a_partial_file_and_the_fill_completes() {
    let root = TempDir::new("e2e-crash");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    // Slow enough (~2 MB at 400 kB/s) to be caught part-way many times.
    stack
        .add_box(|c| {
            c.bandwidth_bytes_per_sec = 400_000;
            c.concurrency = 3;
        })
        .unwrap();
    let index = index(&stack);
    let mut caught_part_way = 0;
    // A fixed xorshift sequence: kill moments from 50 ms to 1.2 s.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..15 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut agent = AgentProcess::start(&stack.boxes[0].agent_config);
        std::thread::sleep(Duration::from_millis(50 + x % 1150));
        agent.kill();
        if check_box(&stack, 0, &index) {
            caught_part_way += 1;
        }
    }
    assert!(
        caught_part_way >= 3,
        "kills landed mid-fill only {caught_part_way} times"
    );
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(s["titles"], serde_json::json!([TITLE]), "{s}");
    assert!(!check_box(&stack, 0, &index));
    assert!(stack.boxes[0].disk.join(".nearcast/titles/sample.json").is_file());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while inventory_at_fill_server(&stack, "box-1").is_empty() {
        assert!(std::time::Instant::now() < deadline, "inventory never reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Interrupted downloads resumed with range requests (answered 206)
    // and left nothing behind.
    let origin = String::from_utf8(curl_get(&format!("http://{}/metrics", stack.origin.admin_addr)).1).unwrap();
    assert!(
        metric(&origin, "nearcast_requests_total{code=\"206\"}").unwrap_or(0.0) >= 1.0,
        "{origin}"
    );
    let parts = std::fs::read_dir(stack.boxes[0].disk.join(".nearcast/parts"))
        .unwrap()
        .count();
    assert_eq!(parts, 0);
}

fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn agent_metric(agent: &AgentProcess, series: &str) -> f64 {
    let text = String::from_utf8(curl_get(&format!("http://{}/metrics", agent.admin)).1).unwrap();
    metric(&text, series).unwrap_or(-1.0)
}

#[test]
fn corrupt_copies_are_refused_retried_elsewhere_and_reported() {
    let root = TempDir::new("e2e-badsrc");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let index = index(&stack);
    for _ in 0..3 {
        stack.add_box(|_| {}).unwrap();
    }
    let run = |stack: &Stack, i: usize| {
        let agent = AgentProcess::start(&stack.boxes[i].agent_config);
        let status = agent.wait_for_run(Duration::from_secs(60));
        (agent, status)
    };
    let (mut agent1, s1) = run(&stack, 0);
    assert_eq!(s1["titles"], serde_json::json!([TITLE]), "{s1}");

    // Box 1's copy of one segment and the origin's copy of another rot.
    let (peer_bad, origin_bad) = ("240p/seg-00002.m4s", "360p/seg-00003.m4s");
    flip_byte(&stack.boxes[0].disk.join(TITLE).join(peer_bad));
    flip_byte(&stack.config.origin_store.join(TITLE).join(origin_bad));

    // Box 2 fills from box 1: the bad peer copy is refused and fetched
    // again from the origin; the origin's bad file is never needed.
    let (mut agent2, s2) = run(&stack, 1);
    assert_eq!(s2["titles"], serde_json::json!([TITLE]), "{s2}");
    assert_eq!(agent_metric(&agent2, "nearcast_agent_checksum_failures_total"), 1.0);
    let good = std::fs::read(stack.boxes[1].disk.join(TITLE).join(peer_bad)).unwrap();
    assert_eq!(sha256_hex(&good), index[peer_bad].1);
    assert!(
        s2["fill"]["failures"].as_array().unwrap().is_empty(),
        "a retried file is not a failure: {s2}"
    );

    // Both peers go down between heartbeats (their agents die first, so
    // the fill server still lists them as sources): box 3 skips them,
    // fills from the origin, and refuses the origin's bad file.
    agent1.kill();
    agent2.kill();
    stack.boxes[0].stop_appliance();
    stack.boxes[1].stop_appliance();
    let (agent3, s3) = run(&stack, 2);
    let failures = s3["fill"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{s3}");
    assert_eq!(failures[0]["path"], origin_bad);
    assert!(
        failures[0]["reason"].as_str().unwrap().contains("SHA-256 mismatch"),
        "{s3}"
    );
    assert_eq!(s3["titles"], serde_json::json!([]), "an incomplete title is not held");
    assert_eq!(s3["fill"]["files_done"].as_u64(), Some(index.len() as u64 - 1));
    assert!(agent_metric(&agent3, "nearcast_agent_source_failures_total") >= 2.0 * index.len() as f64);
    assert_eq!(agent_metric(&agent3, "nearcast_agent_checksum_failures_total"), 1.0);
    let disk3 = &stack.boxes[2].disk;
    assert!(!disk3.join(TITLE).join(origin_bad).exists(), "the bad file was placed");
    assert_eq!(std::fs::read_dir(disk3.join(".nearcast/parts")).unwrap().count(), 0);
    // The fill server hears of it with the next heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = stack.admin("GET", "/v1/admin/appliances", "").unwrap();
        let all: serde_json::Value = serde_json::from_str(&all).unwrap();
        let b3 = all
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "box-3")
            .unwrap()
            .clone();
        if b3["heartbeat"]["fill"]["failures"][0]["path"] == origin_bad {
            assert!(b3["inventory"]["titles"].as_array().unwrap().is_empty());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure in box 3's heartbeat: {b3}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs at {} needs root (scripts/test runs as root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_disk_that_fills_up_stops_that_disk_not_the_fill() {
    // A fixed root keeps the disks' names, and so the rendezvous pick,
    // the same on every run: the roomy-looking disk is tried first.
    let leftover = std::env::temp_dir().join("nearcast-e2e-fulldisk");
    for d in ["big", "small"] {
        let _ = std::process::Command::new("umount").arg(leftover.join(d)).status();
    }
    let root = TempDir::fixed("e2e-fulldisk");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let index = index(&stack);
    // "big" shows 1 GiB free but runs out of inodes (ENOSPC) part-way
    // through the title's 40-odd files; "small" has room for it.
    let big = Tmpfs::mount(&root.join("big"), "size=1g,nr_inodes=24");
    let small = Tmpfs::mount(&root.join("small"), "size=16m");
    stack
        .add_box(|c| c.disks = vec![big.0.clone(), small.0.clone()])
        .unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(s["titles"], serde_json::json!([TITLE]), "{s}");
    let reasons: Vec<&str> = s["fill"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["reason"].as_str())
        .collect();
    assert!(
        !reasons.is_empty() && reasons.iter().all(|r| r.contains("is full")),
        "the big disk filled up: {s}"
    );
    // The whole title is on the small disk, nothing of it on the big one.
    for (rel, (size, sha)) in &index {
        let bytes = std::fs::read(small.0.join(TITLE).join(rel)).unwrap();
        assert_eq!((bytes.len() as u64, &sha256_hex(&bytes)), (*size, sha), "{rel}");
    }
    assert!(!big.0.join(TITLE).exists(), "the abandoned copy was cleared");
    let (code, _) = curl_get(&format!("http://{}/c/{TITLE}/360p/init.mp4", stack.boxes[0].http_addr));
    assert_eq!(code, 403, "still a token-checking appliance");
    drop(agent);
    stack.boxes[0].stop_appliance();
    drop((big, small));
}

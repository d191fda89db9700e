//! OS rollouts in waves over six simulated boxes that heartbeat with
//! signed requests and "install" what the answer tells them: waves
//! advance after their soak; a release that fails on the first wave's
//! boxes halts the rollout before wave two, saying why; pause, resume and
//! abort with a rollback release; bad specs refused.

use std::time::{Duration, Instant};

use nearcast_common::request_auth::ApplianceKey;
use serde_json::Value;

use crate::support::*;

const BOXES: [&str; 6] = ["box-1", "box-2", "box-3", "box-4", "box-5", "box-6"];

/// Uploads a (signed, tiny) bundle of `release`.
fn upload(s: &Server, release: &str) {
    let bundle = signed_bundle(release, format!("rootfs of {release}").into_bytes());
    let auth = [("authorization", format!("Bearer {ADMIN}"))];
    let (st, body) = call(s.admin, "PUT", &format!("/v1/admin/os/{release}"), &auth, &bundle);
    assert_eq!(st, 200, "{body}");
}

/// A box's OS as it reports it, and what it does with an update.
#[derive(Clone)]
struct Sim {
    release: String,
    update: String,
    failed: Vec<String>,
}

/// One heartbeat of box `id`; returns the release the answer offers.
fn beat(s: &Server, key: &ApplianceKey, id: &str, b: &Sim) -> Option<String> {
    beat_answer(s, key, id, b)["os_update"].as_str().map(str::to_string)
}

/// One heartbeat of box `id`; the whole answer.
fn beat_answer(s: &Server, key: &ApplianceKey, id: &str, b: &Sim) -> Value {
    let os = serde_json::json!({"release": b.release, "slot": "A", "update": b.update, "failed": b.failed});
    let hb = serde_json::json!({"health": "ok", "load": 0.1, "free_bytes": 5000, "os": os}).to_string();
    let (st, body) = signed(s.addr, key, id, "POST", &format!("/v1/appliances/{id}/heartbeat"), &hb);
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn status(s: &Server, id: &str) -> Value {
    let (st, body) = admin(s.admin, "GET", &format!("/v1/admin/rollouts/{id}"), "");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Heartbeats every box (installing offered releases, or failing those in
/// `bad`) until rollout `id` is no longer running, at most 40 s; returns
/// its last status.
fn drive(s: &Server, key: &ApplianceKey, sims: &mut [Sim], id: &str, bad: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        for (i, b) in BOXES.iter().enumerate() {
            let answer = beat_answer(s, key, b, &sims[i]);
            // Not an emergency: the box waits for its window.
            assert_eq!(answer["os_emergency"], Value::Null, "{answer}");
            if let Some(r) = answer["os_update"].as_str().map(str::to_string) {
                let sim = &mut sims[i];
                if bad.contains(&r.as_str()) {
                    sim.update = format!("failed {r}: the appliance did not start");
                    sim.failed.push(r);
                } else {
                    sim.update = format!("committed {r}");
                    sim.release = r;
                }
            }
        }
        let st = status(s, id);
        if st["state"] != "running" || Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn post(s: &Server, path: &str, body: &str) -> (u16, String) {
    admin(s.admin, "POST", path, body)
}

fn rollouts(backend: &Backend) {
    let s = start(backend, &format!("rollouts_{}", backend.label()), 30);
    let key = fleet(&s);
    for b in &BOXES[1..] {
        add_box(&s, &key, b, 0.1);
    }
    for r in ["2", "3", "4"] {
        upload(&s, r);
    }
    let mut sims = vec![
        Sim {
            release: "1".into(),
            update: String::new(),
            failed: Vec::new(),
        };
        BOXES.len()
    ];
    refusals(&s);
    // Boxes join rollouts once their heartbeats say they run the image.
    for (i, b) in BOXES.iter().enumerate() {
        assert_eq!(beat(&s, &key, b, &sims[i]), None);
    }

    // Three waves: 1 box, 2 boxes, the other 3; each soaks a second.
    let spec = r#"{"release":"2","waves":[{"boxes":{"percent":16},"soak_minutes":0.02},
        {"boxes":{"percent":33},"soak_minutes":0.02},{"boxes":{"percent":100},"soak_minutes":0.02}]}"#;
    let (st, body) = post(&s, "/v1/admin/rollouts", spec);
    assert_eq!((st, body.as_str()), (200, r#"{"rollout":"2","waves":[1,2,3]}"#));
    // One at a time.
    let (st, body) = post(&s, "/v1/admin/rollouts", &spec.replace("\"2\"", "\"3\""));
    assert_eq!(st, 409, "{body}");
    let done = drive(&s, &key, &mut sims, "2", &[]);
    assert_eq!(done["state"], "done", "{done}");
    let waves = done["waves"].as_array().unwrap();
    for pair in waves.windows(2) {
        // A wave starts only after the one before has soaked.
        assert!(pair[1]["started"].as_u64() >= pair[0]["soaked"].as_u64(), "{done}");
        assert!(pair[0]["soaked"].as_u64().unwrap() > pair[0]["completed"].as_u64().unwrap());
    }
    assert!(sims.iter().all(|b| b.release == "2"));

    bad_release_halts(&s, &key, &mut sims);
    pause_resume_abort(&s, &key, &mut sims);
}

/// Release 3 fails on both boxes of wave 1: halted, wave 2 never offered it.
fn bad_release_halts(s: &Server, key: &ApplianceKey, sims: &mut [Sim]) {
    let spec = r#"{"release":"3","waves":[{"boxes":{"ids":["box-1","box-2"]}},
        {"boxes":{"percent":100}}],"max_failure_ratio":0.4}"#;
    assert_eq!(post(s, "/v1/admin/rollouts", spec).0, 200);
    let st = drive(s, key, sims, "3", &["3"]);
    assert_eq!(st["state"], "halted", "{st}");
    let why = st["reason"].as_str().unwrap();
    // It halts at the first failure over the ratio: one box of two (0.5)
    // or both, whichever the step saw.
    let one = why.starts_with("wave 1: 1 of 2 boxes failed (0.50 > 0.4): box-");
    let both = why.starts_with("wave 1: 2 of 2 boxes failed (1.00 > 0.4): box-1");
    assert!(one || both, "{why}");
    assert!(why.contains(": failed 3: the appliance did not start"), "{why}");
    assert_eq!(st["waves"][1]["started"], Value::Null);
    assert!(st["waves"][0]["failed"].as_u64() >= Some(1), "{st}");
    for (i, b) in BOXES.iter().enumerate() {
        assert_eq!(beat(s, key, b, &sims[i]), None, "{b}");
        assert_eq!(sims[i].release, "2");
    }
    // A halted rollout cannot be resumed.
    assert_eq!(post(s, "/v1/admin/rollouts/3/resume", "").0, 409);
}

/// Offers to box `id` until it is offered `release`, at most 20 s.
fn until_offered(s: &Server, key: &ApplianceKey, id: &str, sim: &Sim, release: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while beat(s, key, id, sim).as_deref() != Some(release) {
        assert!(Instant::now() < deadline, "{id} was never offered release {release}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Release 4: wave 1 (box-3) updates while the rollout is paused, and
/// wave 2 waits for the resume; then an abort with release 2 as the
/// rollback sends box-3 back, and wave 2's boxes, offered 4 but not yet
/// on it, stay where they are.
fn pause_resume_abort(s: &Server, key: &ApplianceKey, sims: &mut [Sim]) {
    let spec = r#"{"release":"4","waves":[{"boxes":{"ids":["box-3"]}},
        {"boxes":{"percent":100}}],"emergency":true}"#;
    assert_eq!(post(s, "/v1/admin/rollouts", spec).0, 200);
    until_offered(s, key, "box-3", &sims[2], "4");
    // An emergency rollout says so: the box installs outside its window.
    assert_eq!(beat_answer(s, key, "box-3", &sims[2])["os_emergency"], true);
    let (st, body) = post(s, "/v1/admin/rollouts/4/pause", "");
    assert_eq!(st, 200, "{body}");
    assert_eq!(post(s, "/v1/admin/rollouts/4/pause", "").0, 409);
    sims[2].release = "4".into();
    sims[2].update = "committed 4".into();
    assert_eq!(beat(s, key, "box-3", &sims[2]), None);
    std::thread::sleep(Duration::from_millis(2500));
    for (i, b) in BOXES.iter().enumerate() {
        assert_eq!(beat(s, key, b, &sims[i]), None, "{b}: paused, wave 2 must not start");
    }
    assert_eq!(status(s, "4")["state"], "paused");
    assert_eq!(post(s, "/v1/admin/rollouts/4/resume", "").0, 200);
    until_offered(s, key, "box-4", &sims[3], "4");
    let (st, body) = post(s, "/v1/admin/rollouts/4/abort", r#"{"rollback":"nosuch"}"#);
    assert_eq!(st, 404, "{body}");
    let (st, body) = post(s, "/v1/admin/rollouts/4/abort", r#"{"rollback":"2"}"#);
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["state"].as_str(), v["targets"].as_u64()), (Some("aborted"), Some(6)));
    assert_eq!(beat(s, key, "box-3", &sims[2]).as_deref(), Some("2"));
    for (i, b) in BOXES.iter().enumerate().filter(|(_, b)| **b != "box-3") {
        assert_eq!(beat(s, key, b, &sims[i]), None, "{b}");
    }
    assert_eq!(post(s, "/v1/admin/rollouts/4/resume", "").0, 409);
    let (st, list) = admin(s.admin, "GET", "/v1/admin/rollouts", "");
    assert_eq!(st, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["state"].as_str())
        .collect();
    assert_eq!(states.len(), 3);
    assert!(states.contains(&"aborted") && states.contains(&"halted") && states.contains(&"done"));
    // The dashboard shows them, newest first, with each box's state.
    let (st, d) = admin(s.admin, "GET", "/v1/admin/dashboard", "");
    assert_eq!(st, 200);
    let d: Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["rollouts"][0]["release"], "4", "{d}");
    assert_eq!(d["rollouts"][0]["waves"][0]["boxes"][0]["id"], "box-3");
    assert_eq!(d["rollouts"][1]["state"], "halted");
}

/// Specs the server refuses, each with its reason.
fn refusals(s: &Server) {
    let cases = [
        (
            r#"{"release":"9","waves":[{"boxes":{"percent":50}}]}"#,
            404,
            "no bundle",
        ),
        (r#"{"release":"2","waves":[]}"#, 400, "at least one wave"),
        (r#"{"release":"2","waves":[{"boxes":{"percent":150}}]}"#, 400, "percent"),
        (
            r#"{"release":"2","waves":[{"boxes":{"sites":["nowhere"]}}]}"#,
            400,
            "no site 'nowhere'",
        ),
        (
            r#"{"release":"2","waves":[{"boxes":{"ids":["box-9"]}}]}"#,
            400,
            "no appliance 'box-9'",
        ),
        (
            r#"{"release":"2","waves":[{"boxes":{"everyone":true}}]}"#,
            400,
            "bad JSON",
        ),
        (
            r#"{"release":"../2","waves":[{"boxes":{"percent":50}}]}"#,
            400,
            "bad JSON",
        ),
        (
            r#"{"release":"2","waves":[{"boxes":{"percent":50}}],"max_failure_ratio":2}"#,
            400,
            "between 0 and 1",
        ),
    ];
    for (spec, status, why) in cases {
        let (st, body) = post(s, "/v1/admin/rollouts", spec);
        assert_eq!(st, status, "{spec}: {body}");
        assert!(body.contains(why), "{spec}: {body}");
    }
    // Not yet heard running the OS image: not a box a rollout can take.
    let (st, body) = post(
        s,
        "/v1/admin/rollouts",
        r#"{"release":"2","waves":[{"boxes":{"ids":["box-1"]}}]}"#,
    );
    assert_eq!(st, 400);
    assert!(body.contains("no appliance 'box-1' running the OS image"), "{body}");
    assert_eq!(admin(s.admin, "GET", "/v1/admin/rollouts/2", "").0, 404);
    assert_eq!(post(s, "/v1/admin/rollouts/2/pause", "").0, 404);
    let (st, body) = admin(s.admin, "GET", "/v1/admin/rollouts", "");
    assert_eq!((st, body.as_str()), (200, "[]"));
}

on_both_stores!(rollouts);

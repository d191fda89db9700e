//! The misses and costs reports: each reason steering sends a client to
//! the origin, produced for real through `/v1/steer`, is
//! counted by reason, ISP and title; costs come out of a play log with
//! known bytes at the configured prices.

use std::time::{Duration, Instant};

use nearcast_common::unix_now;

use crate::support::*;

fn report(s: &Server, which: &str) -> serde_json::Value {
    let (st, body) = admin(s.admin, "GET", &format!("/v1/admin/{which}?days=2"), "");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The misses report once `ok` holds for it (misses are stored every
/// `misses::SAMPLE_EVERY`), or the last one after 12 s.
fn misses_when(s: &Server, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let r = report(s, "misses");
        if ok(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn each_miss_reason_is_counted(backend: &Backend) {
    let s = start(backend, "misses", 30);
    let key = fleet(&s);
    assert_eq!(
        admin(s.admin, "POST", "/v1/admin/isps", r#"{"name":"isp-b","asns":[64999]}"#).0,
        200
    );
    // A box serves this one: no miss.
    assert!(steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len() > 1);
    steer(s.addr, "192.0.2.1", "movie"); // in no ISP's prefixes
    steer(s.addr, "203.0.113.5", "movie"); // isp-b has no box
    steer(s.addr, "198.51.100.1", "show"); // no box of isp-a holds it
    steer(s.addr, "198.51.100.2", "show");
    // The box fails its viewers' requests for movie (its disk lost it):
    // out for movie at once, still in for the rest.
    let lost = r#"{"health":"ok","load":0.1,"free_bytes":1,"playback":{"requests":5,"errors":3,"failed_by_title":{"movie":3}}}"#;
    assert_eq!(
        signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", lost).0,
        200
    );
    assert_eq!(
        steer(s.addr, "198.51.100.1", "movie")["urls"].as_array().unwrap().len(),
        1
    );
    // The box stops: it reports itself failed.
    heartbeat(&s, &key, "box-1", "failed", 0.1);
    steer(s.addr, "198.51.100.1", "movie");
    let want = [
        ("no_prefix", 1),
        ("no_box", 1),
        ("not_filled", 2),
        ("lost_title", 1),
        ("boxes_down", 1),
    ];
    let r = misses_when(&s, |r| {
        want.iter()
            .all(|(k, n)| r["by_reason"][k]["sessions"].as_u64() == Some(*n))
    });
    for (reason, n) in want {
        assert_eq!(r["by_reason"][reason]["sessions"].as_u64(), Some(n), "{reason}: {r}");
    }
    assert_eq!(r["by_isp"]["isp-a"]["not_filled"]["sessions"].as_u64(), Some(2), "{r}");
    assert_eq!(r["by_isp"]["isp-b"]["no_box"]["sessions"].as_u64(), Some(1), "{r}");
    let top = r["top"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|x| x["reason"] == "not_filled" && x["title"] == "show" && x["isp"] == "isp-a"),
        "{r}"
    );
}

fn costs_from_a_play_log(backend: &Backend) {
    let s = start_tuned(backend, "costs", |c| {
        c.costs.currency = "EUR".into();
        c.costs.origin_per_gb = 0.01;
        c.costs.isps.insert("isp-b".into(), 0.05);
    });
    fleet(&s);
    assert_eq!(
        admin(s.admin, "POST", "/v1/admin/isps", r#"{"name":"isp-b","asns":[64999]}"#).0,
        200
    );
    let t = unix_now();
    let log = format!(
        "time,title,client,bytes,source\n{t},movie,203.0.113.5,2000000000,box\n{t},movie,203.0.113.6,1000000000,box\n\
         {t},show,203.0.113.7,1000000000,origin\n{t},show,192.0.2.1,500000000,origin\n{t},show,isp-b,7,\n"
    );
    let (st, body) = admin(s.admin, "POST", "/v1/admin/playlogs", &log);
    assert_eq!(st, 200, "{body}");
    // A bad source is refused whole: nothing of it is counted.
    let (st, body) = admin(
        s.admin,
        "POST",
        "/v1/admin/playlogs",
        &format!("{t},show,isp-b,5,origin\n{t},show,isp-b,5,cdn\n"),
    );
    assert_eq!(st, 422, "{body}");
    let c = report(&s, "costs");
    assert_eq!(c["currency"], "EUR");
    let day = |isp: &str| {
        c["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["isp"] == isp)
            .cloned()
            .unwrap()
    };
    let b = day("isp-b");
    assert_eq!(
        (b["box_bytes"].as_u64(), b["origin_bytes"].as_u64()),
        (Some(3_000_000_000), Some(1_000_000_000)),
        "{c}"
    );
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(
        close(&b["origin_cost"], 0.05) && close(&b["saved"], 0.15) && close(&b["offload"], 0.75),
        "{b}"
    );
    let unknown = day("");
    assert!(
        close(&unknown["origin_cost"], 0.005),
        "a client in no ISP at the default price: {unknown}"
    );
    assert_eq!(c["top_titles"][0]["title"], "show");
    assert_eq!(c["top_titles"][0]["origin_bytes"].as_u64(), Some(1_500_000_000));
    assert!(close(&c["total_origin_cost"], 0.055), "{c}");
    // The origin plays of the log are misses with their own reason.
    let m = report(&s, "misses");
    assert_eq!(m["by_reason"]["playlog"]["bytes"].as_u64(), Some(1_500_000_000), "{m}");
}

/// Answers that put a box first but not the best one are detours, with
/// why the best was passed over.
fn detours_are_counted(backend: &Backend) {
    let s = start(backend, "detours", 30);
    let key = fleet(&s);
    add_box(&s, &key, "box-2", 0.5);
    steer(s.addr, "198.51.100.1", "movie"); // box-1 is the best: no detour
                                            // box-1's viewers stall: it is demoted, box-2 goes first.
    let stalling = r#"{"health":"ok","load":0.25,"free_bytes":1,"playback":{"requests":40,"errors":0,
        "sessions":[{"sid":"s","title":"movie","media_requests":40,"starved":20}]}}"#;
    for _ in 0..2 {
        assert_eq!(
            signed(
                s.addr,
                &key,
                "box-1",
                "POST",
                "/v1/appliances/box-1/heartbeat",
                stalling
            )
            .0,
            200
        );
    }
    let urls = steer(s.addr, "198.51.100.1", "movie")["urls"].clone();
    assert!(urls[0].as_str().unwrap().starts_with("http://box-2.test"), "{urls}");
    steer(s.addr, "198.51.100.2", "movie");
    let r = misses_when(&s, |r| r["detours"]["demoted"]["sessions"].as_u64() == Some(2));
    assert_eq!(r["detours"]["demoted"]["sessions"].as_u64(), Some(2), "{r}");
    assert_eq!(
        r["detours"]["demoted"]["bytes"].as_u64(),
        Some(0),
        "the bytes came from a box"
    );
    assert!(
        r["by_reason"].as_object().unwrap().is_empty(),
        "no answer put the origin first: {r}"
    );
}

on_both_stores!(each_miss_reason_is_counted, costs_from_a_play_log, detours_are_counted);

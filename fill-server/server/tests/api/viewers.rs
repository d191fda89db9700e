//! What boxes say of their viewers steers: heartbeats carrying CMCD
//! playback demote a box whose viewers rebuffer (for new sessions and in
//! the content-steering manifest) and take out one that fails its
//! viewers' requests, within one beat of the evidence; the QoE summary
//! sums the reports per ISP, box and title; malformed reports are refused.

use nearcast_common::request_auth::ApplianceKey;

use crate::support::*;

/// The boxes `/v1/steer` names for a client of isp-a, best first.
fn order(s: &Server) -> Vec<String> {
    let answer = steer(s.addr, "198.51.100.1", "movie");
    answer["urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| {
            u.as_str()?
                .strip_prefix("http://")?
                .split_once(".test")?
                .0
                .to_string()
                .into()
        })
        .filter(|id: &String| id.starts_with("box-"))
        .collect()
}

fn beat(s: &Server, key: &ApplianceKey, id: &str, load: f64, playback: &str) {
    let hb = format!(r#"{{"health":"ok","load":{load},"free_bytes":5000,"playback":{playback}}}"#);
    let (st, body) = signed(s.addr, key, id, "POST", &format!("/v1/appliances/{id}/heartbeat"), &hb);
    assert_eq!(st, 200, "{body}");
}

/// A beat's playback: `media` segment requests of one session, `stalled`
/// of them after a stall, and the box's `failed` of `answers`.
fn playback(first: bool, media: u64, stalled: u64, answers: u64, failed: u64) -> String {
    format!(
        r#"{{"requests":{answers},"errors":{failed},"sessions":[{{"sid":"s1","title":"movie","bitrate_kbps":3000,
        "buffer_ms":800,"measured_kbps":20000,"media_requests":{media},"starved":{stalled},
        "bitrate_sum_kbps":{},"bitrate_samples":{media},"startup_ms":{},"first":{first}}}]}}"#,
        3000 * media,
        if first { "900" } else { "null" }
    )
}

fn pathways(s: &Server, current: &str) -> serde_json::Value {
    let client = [("x-forwarded-for", "198.51.100.1".to_string())];
    let target = format!("/v1/play/movie/steering.json?_HLS_pathway={current}");
    let (st, body) = call(s.addr, "GET", &target, &client, b"");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["PATHWAY-PRIORITY"].clone()
}

fn qoe(s: &Server) -> serde_json::Value {
    let (st, body) = admin(s.admin, "GET", "/v1/admin/qoe", "");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["cmcd"].clone()
}

fn viewers_steer(backend: &Backend) {
    let s = start(backend, "viewers", 30);
    let key = fleet(&s);
    add_box(&s, &key, "box-2", 0.5);
    assert_eq!(order(&s), ["box-1", "box-2"]);
    assert_eq!(pathways(&s, "box-1"), serde_json::json!(["box-1", "box-2", "origin"]));
    // box-1's viewers stall after a fifth of their segments: two beats
    // and it ranks after box-2, though box-2 is busier; its playing
    // viewers are moved too.
    beat(&s, &key, "box-1", 0.25, &playback(true, 40, 8, 50, 0));
    beat(&s, &key, "box-1", 0.25, &playback(false, 40, 8, 50, 0));
    assert_eq!(order(&s), ["box-2", "box-1"]);
    assert_eq!(pathways(&s, "box-1"), serde_json::json!(["box-2", "box-1", "origin"]));
    let cmcd = qoe(&s);
    let b1 = &cmcd["by_box"]["box-1"];
    assert_eq!(
        (
            b1["sessions"].as_u64(),
            b1["media_requests"].as_u64(),
            b1["rebuffers"].as_u64()
        ),
        (Some(1), Some(80), Some(16))
    );
    assert_eq!(
        (b1["demoted"].as_bool(), b1["failing"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(b1["score"].as_f64().unwrap() < 0.6, "{b1}");
    assert_eq!(
        (b1["avg_bitrate_kbps"].as_u64(), b1["avg_startup_ms"].as_u64()),
        (Some(3000), Some(900))
    );
    assert_eq!(
        b1["avg_throughput_kbps"].as_u64(),
        Some(20_000),
        "the players' own measure"
    );
    assert_eq!(cmcd["by_isp"]["isp-a"]["answers"].as_u64(), Some(100));
    assert_eq!(cmcd["by_title"]["movie"]["rebuffer_share"].as_f64(), Some(0.2));
    // box-2 answers 404 to most of what it is asked: out at the next beat.
    beat(&s, &key, "box-2", 0.5, &playback(true, 0, 0, 10, 7));
    assert_eq!(order(&s), ["box-1"]);
    assert_eq!(qoe(&s)["by_box"]["box-2"]["failing"].as_bool(), Some(true));
    // box-1's viewers play well again: 0.25 → 0.63 → 0.81 (still inside
    // the band) → 0.91, back in front.
    for _ in 0..2 {
        beat(&s, &key, "box-1", 0.25, &playback(false, 40, 0, 50, 0));
    }
    assert_eq!(qoe(&s)["by_box"]["box-1"]["demoted"].as_bool(), Some(true));
    beat(&s, &key, "box-1", 0.25, &playback(false, 40, 0, 50, 0));
    assert_eq!(qoe(&s)["by_box"]["box-1"]["demoted"].as_bool(), Some(false));
    assert_eq!(pathways(&s, "box-1"), serde_json::json!(["box-1", "origin"]));
    // Malformed reports are refused whole and change nothing.
    for bad in [
        r#"{"requests":1,"errors":0,"sessions":[{"sid":"a b","title":"movie"}]}"#,
        r#"{"requests":1,"errors":0,"sessions":[{"sid":"ok","title":"../x"}]}"#,
        r#"{"requests":"many"}"#,
    ] {
        let hb = format!(r#"{{"health":"ok","load":0.1,"free_bytes":1,"playback":{bad}}}"#);
        let (st, _) = signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", &hb);
        assert_eq!(st, 400, "{bad}");
    }
    assert_eq!(qoe(&s)["by_box"]["box-1"]["answers"].as_u64(), Some(250));
}

/// Two equal boxes whose viewers play well, each with a stall now and then
/// on different beats: the order never changes (the score ranks a box only
/// once it crosses the band, never by its small ups and downs) and a
/// playing viewer stays where it is.
fn equal_boxes_do_not_flap(backend: &Backend) {
    let s = start(backend, "noflap", 30);
    let key = fleet(&s);
    add_box(&s, &key, "box-2", 0.25);
    for i in 0..12 {
        for id in ["box-1", "box-2"] {
            let stalls = u64::from((i + u32::from(id == "box-2")) % 5 == 0);
            beat(&s, &key, id, 0.25, &playback(i == 0, 60, stalls, 60, 0));
        }
        assert_eq!(order(&s), ["box-1", "box-2"], "after beat {i}");
        assert_eq!(
            pathways(&s, "box-2"),
            serde_json::json!(["box-2", "box-1", "origin"]),
            "after beat {i}"
        );
    }
    let q = qoe(&s);
    assert_eq!(
        (
            q["by_box"]["box-1"]["demoted"].as_bool(),
            q["by_box"]["box-2"]["demoted"].as_bool()
        ),
        (Some(false), Some(false)),
        "{q}"
    );
}

on_both_stores!(viewers_steer, equal_boxes_do_not_flap);

//! CMCD in, CMSD out, on the real appliance: players' reports in either
//! form are tallied per session and shown on `/status` and `/metrics`;
//! CMSD rides on media answers only; malformed, oversized or forged
//! reports change nothing about the answer and are not counted; content
//! answers that fail the viewer are counted for the heartbeat.

mod support;

use std::time::{Duration, Instant};

use nearcast_common::appliance::ApplianceStatus;
use support::*;

const SEG: &str = "/c/t/720p/seg-1.m4s";
const MANIFEST: &str = "/c/t/master.m3u8";

fn start(name: &str) -> (Appliance, Vec<u8>) {
    let dir = temp_dir(name);
    let disk = dir.join("disk");
    let seg = write_file(&disk.join("t/720p/seg-1.m4s"), 40_000, 3);
    write_file(&disk.join("t/master.m3u8"), 300, 4);
    let extra = "max_header_bytes = 16384\n[cmsd]\nenabled = true\nserver_id = \"box-1\"\nmax_bitrate_kbps = 3000\n";
    (Appliance::start(&dir, &[disk], extra).owning(dir), seg)
}

fn get_with(app: &Appliance, target: &str, headers: &[(&str, &str)]) -> Response {
    http::call(app.http, "GET", target, headers, b"")
}

fn status(app: &Appliance) -> ApplianceStatus {
    serde_json::from_slice(&app.admin_call("GET", "/status").body).unwrap()
}

/// `/status` once `ok` holds for it (workers merge every 200 ms), or the
/// last reading after 3 s.
fn status_when(app: &Appliance, ok: impl Fn(&ApplianceStatus) -> bool) -> ApplianceStatus {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = status(app);
        if ok(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `CMCD=` as players put it in the query: percent-encoded.
fn query_form(cmcd: &str) -> String {
    let enc: String = cmcd
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("&CMCD={enc}")
}

#[test]
fn sessions_from_either_form_and_cmsd_on_media() {
    let (app, seg) = start("cmcd-sessions");
    let m = app.get(&(signed(MANIFEST) + &query_form("ot=m,su,sid=\"s1\"")));
    assert_eq!(m.status, 200);
    assert!(m.header("cmsd-static").is_none(), "no CMSD on a playlist");
    let first = app.get(&(signed(SEG) + &query_form("br=800,bl=0,ot=v,su,sid=\"s1\",cid=\"t\"")));
    assert_eq!((first.status, first.body == seg), (200, true));
    assert_eq!(first.header("cmsd-static"), Some("n=\"box-1\",st=v"));
    let dynamic = first.header("cmsd-dynamic").unwrap_or_default().to_string();
    assert!(dynamic.starts_with("\"box-1\";etp="), "{dynamic}");
    assert!(
        dynamic.contains(";rtt=") && dynamic.contains(";mb=3000") && !dynamic.contains(";du"),
        "{dynamic}"
    );
    // The header form, split over the four headers as dash.js sends it.
    for starved in [true, false] {
        let mut headers = vec![
            ("CMCD-Object", "br=3200,ot=v"),
            ("CMCD-Request", "bl=4000,mtp=9000"),
            ("CMCD-Session", "sid=\"s1\",sf=d"),
        ];
        if starved {
            headers.push(("CMCD-Status", "bs"));
        }
        let r = get_with(&app, &signed(SEG), &headers);
        assert_eq!((r.status, r.body == seg), (200, true));
    }
    let s = status_when(&app, |s| s.sessions.first().is_some_and(|x| x.media_requests == 3));
    assert_eq!(s.sessions.len(), 1, "{:?}", s.sessions);
    let s1 = &s.sessions[0];
    assert_eq!((s1.sid.as_str(), s1.title.as_deref()), ("s1", Some("t")));
    assert_eq!((s1.media_requests, s1.starved, s1.bitrate_kbps), (3, 1, 3200));
    assert_eq!(
        (s1.buffer_ms, s1.measured_kbps, s1.content_id.as_deref()),
        (Some(4000), Some(9000), Some("t"))
    );
    assert_eq!((s1.bitrate_sum_kbps, s1.bitrate_samples), (800 + 3200 + 3200, 3));
    assert!(s1.startup_ms.is_some(), "the second segment request had no su");
    assert_eq!((s.content_requests, s.content_errors), (4, 0));
    assert_eq!(app.metric("nearcast_cmcd_sessions_active"), 1.0);
    assert_eq!(app.metric("nearcast_cmcd_rebuffers_total"), 1.0);
    assert_eq!(app.metric("nearcast_cmcd_bitrate_kbps_bucket{le=\"1000\"}"), 1.0);
    assert_eq!(app.metric("nearcast_cmcd_bitrate_kbps_bucket{le=\"4000\"}"), 3.0);
}

#[test]
fn bad_reports_change_nothing_and_failures_are_counted() {
    let (app, seg) = start("cmcd-bad");
    let long = format!("sid=\"x\",{}", "a=1,".repeat(2_500));
    let bad: [(&str, String); 4] = [
        ("CMCD-Session", "sid=\"bad\",br=fast".into()),
        ("CMCD-Object", "br=99999999999,sid=\"huge\"".into()),
        ("CMCD-Session", "sid=\"a b\"".into()),
        ("CMCD-Session", long),
    ];
    for (name, value) in &bad {
        let r = get_with(&app, &signed(SEG), &[(name, value)]);
        assert_eq!(
            (r.status, r.body == seg),
            (200, true),
            "{name}: {}",
            &value[..value.len().min(40)]
        );
    }
    let r = app.get(&(signed(SEG) + "&CMCD=sid%3D%22q%22%2Cbr%3D%3D"));
    assert_eq!((r.status, r.body == seg), (200, true));
    // A forged token with a good report: refused, and not counted.
    let forged = format!("{SEG}?token=AAAA{}", query_form("sid=\"forged\",br=1,ot=v"));
    assert_eq!(app.get(&forged).status, 403);
    // A title's file the box does not have, with a good token: the box
    // failed the viewer.
    let missing = app.get(&signed("/c/t/720p/seg-9.m4s"));
    assert_eq!(missing.status, 404);
    // Answers are counted at once, titles' failures at the next tick.
    let s = status_when(&app, |s| s.content_requests == 6 && !s.failed_by_title.is_empty());
    assert!(s.sessions.is_empty(), "{:?}", s.sessions);
    assert_eq!((s.content_requests, s.content_errors), (6, 1));
    assert_eq!(s.failed_by_title.get("t"), Some(&1), "the failure is the title's");
    assert_eq!(app.metric("nearcast_content_failed_total"), 1.0);
    assert_eq!(app.metric("nearcast_cmcd_media_requests_total"), 0.0);
}

//! Live objects pulled through the box: request collapsing (1,000 clients,
//! one upstream request, identical bytes; the same for a blocking
//! playlist reload), a site of two boxes with a shield, upstream faults
//! (killed mid-body, 500s, silence, stale playlists, 404s), the cache cap
//! and a client that never reads. The upstream is `support::origin`, a
//! real HTTP server that misbehaves on command.

mod support;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nearcast_common::{Grant, Keyring};
use support::origin::{Origin, Script};
use support::*;

/// A token for the whole event `ev`, for any client.
fn token() -> String {
    key().sign(
        "/l/ev/",
        &Grant {
            expires: unix_now() + 600,
            client_prefix: None,
        },
    )
}

/// The config's `[live]` section: `extra` lines (`key = value`) over
/// the tests' defaults.
fn live_toml(origins: &[SocketAddr], extra: &str) -> String {
    let origins: Vec<String> = origins.iter().map(|a| format!("\"{a}\"")).collect();
    let defaults = ["first_byte_ms = 3000", "blocking_ms = 5000", "idle_ms = 1000"];
    let overridden = |d: &&str| extra.lines().any(|l| l.split('=').next() == d.split('=').next());
    let live: Vec<&str> = defaults
        .iter()
        .filter(|d| !overridden(d))
        .copied()
        .chain(extra.lines())
        .collect();
    format!(
        "[timeouts]\nsend_ms = 2000\n[live]\n{}\n[live.upstreams]\norigins = [{}]\n",
        live.join("\n"),
        origins.join(", ")
    )
}

/// An appliance with `origins` upstream; `name` keeps its directory apart
/// from the other tests' (they run at once in this process).
fn start(name: &str, origins: &[SocketAddr], extra: &str) -> Appliance {
    let dir = temp_dir(&format!("live-{name}"));
    std::fs::create_dir_all(dir.join("d0")).unwrap();
    Appliance::start(&dir, &[dir.join("d0")], &live_toml(origins, extra)).owning(dir)
}

fn pieces(n: usize, size: usize, seed: u8) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![seed.wrapping_add(i as u8); size]).collect()
}

fn body(delay_ms: u64, pieces: Vec<Vec<u8>>, length: bool) -> Script {
    Script::Body {
        delay: Duration::from_millis(delay_ms),
        pieces,
        gap: Duration::from_millis(50),
        length,
        cache_control: "max-age=60",
    }
}

/// Sends `n` requests for `target` at once (each on its own connection,
/// all written before any is read) and returns the responses.
fn many(box_addr: SocketAddr, target: &str, n: usize) -> Vec<std::io::Result<Response>> {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: box\r\n\r\n");
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut c = http::connect(box_addr).unwrap();
            c.write_all(raw.as_bytes()).unwrap();
            c
        })
        .collect();
    conns
        .into_iter()
        .map(|c| {
            http::read_response(&mut BufReader::new(c), false)
                .and_then(|r| r.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into()))
        })
        .collect()
}

/// The live side's metrics, for a failure's message.
fn live_metrics(app: &Appliance) -> String {
    let m = app.metrics();
    m.lines()
        .filter(|l| l.contains("live") || l.contains("upstream"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_thousand_clients_make_one_upstream_request() {
    let want: Vec<u8> = pieces(4, 50_000, 1).concat();
    let origin = Origin::start(|target| match target {
        "/l/ev/v1/index.m3u8?_HLS_msn=5&_HLS_part=1" => Script::Body {
            delay: Duration::from_millis(1500),
            pieces: vec![b"#EXTM3U\n#EXT-X-PART:URI=\"5.1.m4s?token=@T\"\n".to_vec()],
            gap: Duration::ZERO,
            length: true,
            cache_control: "max-age=1",
        },
        _ => body(1000, pieces(4, 50_000, 1), false),
    });
    // Fresh for long enough that clients still connecting find it so.
    let app = start("thousand", &[origin.addr], "playlist_ttl_ms = 10000");
    let t = token();
    let got = many(app.http, &format!("/l/ev/v1/5.1.m4s?token={t}"), 1000);
    for r in &got {
        let r = r.as_ref().expect("a whole response");
        assert_eq!(r.status, 200);
        assert_eq!(sha256(&r.body), sha256(&want), "every client gets the same bytes");
    }
    assert_eq!(
        origin.hits("/l/ev/v1/5.1.m4s"),
        1,
        "one upstream request for 1,000 clients"
    );
    assert!(
        app.metric("nearcast_live_collapsed_total") >= 900.0,
        "they joined the fetch in flight"
    );
    // The box's token upstream is its own, bound to its address.
    let box_token = origin.tokens().pop().unwrap();
    let ring = Keyring::new(vec![key()]);
    ring.verify("/l/ev/v1/5.1.m4s", &box_token, "127.0.0.1".parse().unwrap(), unix_now())
        .unwrap();
    assert!(ring
        .verify("/l/ev/x", &box_token, "127.0.0.2".parse().unwrap(), unix_now())
        .is_err());
    blocking_reload_is_collapsed(&app, &origin, &t);
    assert_eq!(origin.total(), 2);
}

/// 1,000 players blocked on the same next part: one upstream request held
/// open, all answered when it returns, each playlist with its own token.
fn blocking_reload_is_collapsed(app: &Appliance, origin: &Origin, t: &str) {
    let started = Instant::now();
    let got = many(
        app.http,
        &format!("/l/ev/v1/index.m3u8?_HLS_msn=5&_HLS_part=1&token={t}"),
        1000,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "held until the upstream answered"
    );
    let want = format!("#EXTM3U\n#EXT-X-PART:URI=\"5.1.m4s?token={t}\"\n");
    for r in got {
        let r = r.expect("a whole playlist");
        assert_eq!((r.status, r.text()), (200, want.clone()));
    }
    assert_eq!(origin.hits("/l/ev/v1/index.m3u8?_HLS_msn=5&_HLS_part=1"), 1);
}

#[test]
fn upstream_faults_never_pass_a_short_body_as_whole() {
    let good = Origin::start(|_| body(0, pieces(2, 10_000, 9), true));
    let bad = Origin::start(|target| match target {
        "/l/ev/v1/cut.m4s" => Script::Cut {
            promised: 100_000,
            sent: 40_000,
        },
        "/l/ev/v1/cutchunked.m4s" => Script::CutChunked(pieces(2, 20_000, 3)),
        "/l/ev/v1/err.m4s" => Script::Status(500),
        "/l/ev/v1/silent.m4s" => Script::Silent,
        "/l/ev/v1/gone.m4s" => Script::Status(404),
        _ => body(0, pieces(1, 100, 0), true),
    });
    let app = start("faults", &[bad.addr, good.addr], "first_byte_ms = 700");
    let t = token();
    // Killed mid-body: the client's connection is cut, nothing is cached,
    // and the next request asks again.
    for file in ["cut", "cutchunked"] {
        let target = format!("/l/ev/v1/{file}.m4s?token={t}");
        assert!(
            many(app.http, &target, 3).iter().all(Result::is_err),
            "{file}: cut, not a short 200"
        );
        let asked = bad.hits(&format!("/l/ev/v1/{file}.m4s"));
        assert!(many(app.http, &target, 1)[0].is_err());
        assert_eq!(
            bad.hits(&format!("/l/ev/v1/{file}.m4s")),
            asked + 1,
            "{file}: a cut body is not cached"
        );
    }
    assert!(app.metric("nearcast_upstream_requests_total{result=\"truncated\"}") >= 4.0);
    // A 500, and an upstream that never answers: the next upstream serves.
    let want = pieces(2, 10_000, 9).concat();
    for file in ["err", "silent"] {
        let started = Instant::now();
        let r = app.get(&format!("/l/ev/v1/{file}.m4s?token={t}"));
        assert_eq!((r.status, sha256(&r.body)), (200, sha256(&want)), "{file}");
        assert_eq!(good.hits(&format!("/l/ev/v1/{file}.m4s")), 1);
        if file == "silent" {
            assert!(
                started.elapsed() >= Duration::from_millis(600),
                "waited for the first byte"
            );
        }
    }
    assert_eq!(
        app.metric("nearcast_upstream_requests_total{result=\"error_status\"}"),
        1.0
    );
    assert_eq!(app.metric("nearcast_upstream_requests_total{result=\"timeout\"}"), 1.0);
    // A 404 is kept briefly: two clients at once, one upstream request.
    let r = many(app.http, &format!("/l/ev/v1/gone.m4s?token={t}"), 2);
    assert!(r.iter().all(|r| r.as_ref().unwrap().status == 404));
    assert_eq!(bad.hits("/l/ev/v1/gone.m4s"), 1);
    // Nothing answers: 502.
    good.set_script(|_| Script::Status(503));
    assert_eq!(
        app.get(&format!("/l/ev/v1/err2.m4s?token={t}")).status,
        200,
        "bad's default answer"
    );
    bad.set_script(|_| Script::Status(500));
    assert_eq!(app.get(&format!("/l/ev/v1/err3.m4s?token={t}")).status, 502);
    // Forged or missing tokens are refused before anything goes upstream.
    let before = bad.total() + good.total();
    assert_eq!(app.get("/l/ev/v1/x.m4s").status, 403);
    assert_eq!(app.get(&format!("/l/other/v1/x.m4s?token={t}")).status, 403);
    assert_eq!(
        app.get(&format!("/l/ev/v1/index.m3u8?_HLS_msn=x&token={t}")).status,
        400
    );
    assert_eq!(bad.total() + good.total(), before);
}

#[test]
fn a_playlist_is_served_stale_while_upstream_fails() {
    let origin = Origin::start(|_| Script::Body {
        delay: Duration::ZERO,
        pieces: vec![b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n".to_vec()],
        gap: Duration::ZERO,
        length: true,
        cache_control: "max-age=1",
    });
    let app = start(
        "stale",
        &[origin.addr],
        "playlist_ttl_ms = 200\nstale_if_error_ms = 5000",
    );
    let target = format!("/l/ev/v1/index.m3u8?token={}", token());
    let first = app.get(&target);
    assert_eq!(first.status, 200);
    origin.set_script(|_| Script::Status(500));
    std::thread::sleep(Duration::from_millis(800));
    let stale = app.get(&target);
    assert_eq!((stale.status, stale.body), (200, first.body.clone()), "the stale copy");
    assert!(app.metric("nearcast_live_stale_total") >= 1.0, "{}", live_metrics(&app));
    // Past its stale time: 502.
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(app.get(&target).status, 502);
}

#[test]
fn the_cache_stays_under_its_cap_and_a_stuck_client_costs_nobody() {
    let origin = Origin::start(|target| match target {
        "/l/ev/v1/big.m4s" => body(0, pieces(40, 100_000, 5), true),
        _ => body(0, pieces(2, 50_000, 2), false),
    });
    let app = start("cap", &[origin.addr], "cache_mib = 1");
    let t = token();
    let cap = 1024.0 * 1024.0;
    for i in 0..40 {
        let r = app.get(&format!("/l/ev/v1/{i}.m4s?token={t}"));
        assert_eq!((r.status, r.body.len()), (200, 100_000));
        assert!(app.metric("nearcast_live_cache_bytes") <= cap);
    }
    // 4 MB does not fit a 1 MiB cache: refused, the cache intact.
    let r = many(app.http, &format!("/l/ev/v1/big.m4s?token={t}"), 1);
    assert!(r[0]
        .as_ref()
        .map_or(true, |r| r.status != 200 || r.body.len() != 4_000_000));
    assert!(app.metric("nearcast_live_cache_bytes") <= cap);
}

#[test]
fn a_client_that_never_reads_costs_nobody() {
    // 16 MB: more than loopback's socket buffers hold.
    let origin = Origin::start(|_| Script::Body {
        delay: Duration::ZERO,
        pieces: pieces(160, 100_000, 2),
        gap: Duration::ZERO,
        length: true,
        cache_control: "max-age=60",
    });
    let app = start("stuck", &[origin.addr], "cache_mib = 64");
    let t = token();
    // A client that asks and never reads: others are served at once, and
    // it is dropped after the send timeout.
    let mut stuck = http::connect(app.http).unwrap();
    write!(stuck, "GET /l/ev/v1/slow.m4s?token={t} HTTP/1.1\r\nHost: box\r\n\r\n").unwrap();
    let timeouts = app.metric("nearcast_timeouts_total");
    let started = Instant::now();
    let target = format!("/l/ev/v1/slow.m4s?token={t}");
    let readers: Vec<_> = (0..10)
        .map(|_| {
            let target = target.clone();
            let addr = app.http;
            std::thread::spawn(move || {
                let r = http::get(addr, &target);
                (r.status, r.body.len(), r.text().chars().take(40).collect::<String>())
            })
        })
        .collect();
    for r in readers {
        let (status, len, text) = r.join().unwrap();
        assert_eq!((status, len), (200, 16_000_000), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(origin.total(), 1, "{}", live_metrics(&app));
    assert!(app.metric_at_least("nearcast_timeouts_total", timeouts + 1.0) > timeouts);
    drop(stuck);
}

#[test]
fn a_site_of_two_boxes_asks_the_origin_once_per_object() {
    let origin = Origin::start(|_| body(300, pieces(3, 30_000, 4), false));
    let a = start("site-a", &[], "");
    let b = start("site-b", &[], "");
    // The agent's push: both boxes, the origin; no restart.
    let site = |me: &str| {
        format!(
            r#"{{"upstreams":{{"self_id":"{me}","peers":[{{"id":"a","addr":"{}"}},{{"id":"b","addr":"{}"}}],"origins":["{}"]}},"cache_mib":32}}"#,
            a.http, b.http, origin.addr
        )
    };
    for (app, me) in [(&a, "a"), (&b, "b")] {
        let r = http::call(
            app.admin,
            "PUT",
            "/live",
            &[("Content-Type", "application/json")],
            site(me).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(app.admin_call("GET", "/live").text().contains(&origin.addr.to_string()));
    }
    let bad = http::call(
        a.admin,
        "PUT",
        "/live",
        &[],
        b"{\"upstreams\":{\"origins\":[\"nope\"]}}",
    );
    assert_eq!(bad.status, 400);
    let shield_is_a =
        nearcast_common::digest::rendezvous_score("ev", "a") > nearcast_common::digest::rendezvous_score("ev", "b");
    let (shield, edge) = if shield_is_a { (a, b) } else { (b, a) };
    let t = token();
    let want = sha256(&pieces(3, 30_000, 4).concat());
    for i in 0..3 {
        let target = format!("/l/ev/v1/{i}.m4s?token={t}");
        // Clients on both boxes at once.
        let mut got = many(edge.http, &target, 50);
        got.extend(many(shield.http, &target, 50));
        for r in got {
            let r = r.expect("a whole response");
            assert_eq!((r.status, sha256(&r.body)), (200, want.clone()));
        }
        assert_eq!(
            origin.hits(&format!("/l/ev/v1/{i}.m4s")),
            1,
            "one origin request for the site"
        );
    }
    // The edge filled its misses from the shield, which asked the origin.
    assert_eq!(edge.metric("nearcast_live_requests_total{cache=\"miss\"}"), 3.0);
    assert!(shield.metric("nearcast_live_requests_total{cache=\"miss\"}") <= 3.0);
    // The shield gone: the edge goes to the origin itself.
    drop(shield);
    let r = edge.get(&format!("/l/ev/v1/9.m4s?token={t}"));
    assert_eq!((r.status, sha256(&r.body)), (200, want));
    assert_eq!(origin.hits("/l/ev/v1/9.m4s"), 1);
}

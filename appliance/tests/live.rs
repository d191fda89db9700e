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

fn live_toml(origins: &[SocketAddr], extra: &str) -> String {
    let origins: Vec<String> = origins.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[timeouts]\nsend_ms = 2000\n[live]\nfirst_byte_ms = 3000\nblocking_ms = 5000\nidle_ms = 1000\n{extra}\n\
         [live.upstreams]\norigins = [{}]\n",
        origins.join(", ")
    )
}

fn start(origins: &[SocketAddr], extra: &str) -> Appliance {
    let dir = temp_dir("live");
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
    let app = start(&[origin.addr], "");
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

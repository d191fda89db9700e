//! A box takes nothing from a man in the middle. The agent talks to the fill
//! server (protobuf, the default) through a proxy that, phase by phase,
//! points the fill manifest's sources at another server (a well-formed
//! manifest, bytes replaced in place), replays a genuine manifest answer recorded
//! for an earlier request, and strips the answer's signature: each time the
//! box fetches nothing, the other server sees no connection, and the
//! agent's status says why. Then the proxy passes answers untouched and the
//! box fills through it, so the refusals were the signatures' doing.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_e2e::AgentProcess;
use nearcast_testkit::{http, TempDir};

const PASS: u8 = 0;
const ALTER: u8 = 1;
const REPLAY: u8 = 2;
const UNSIGN: u8 = 3;

/// The proxy: what it does to manifest answers, what it did.
#[derive(Default)]
struct Tampering {
    mode: AtomicU8,
    /// The genuine manifest answer to the previous manifest request.
    last_manifest: Mutex<Option<http::Response>>,
    /// Manifest answers handed over changed (in any mode but `PASS`).
    tampered: AtomicU64,
}

/// One request as the agent sent it: the head's text and the body.
fn read_request(r: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn write_response(w: &mut impl Write, resp: &http::Response, body: &[u8], keep_signature: bool) {
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (k, v) in &resp.headers {
        let k_lower = k.to_ascii_lowercase();
        if k_lower == "content-length" || k_lower == "transfer-encoding" {
            continue;
        }
        if !keep_signature && k_lower.starts_with("x-nearcast-answer-") {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let _ = w.write_all(out.as_bytes()).and_then(|_| w.write_all(body));
}

/// Relays each request on `client` to `upstream` and its answer back,
/// tampering with manifest answers as `t` says.
fn relay(client: TcpStream, upstream: SocketAddr, origin: &str, attacker: &str, t: &Tampering) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    let mut up = TcpStream::connect(upstream).unwrap();
    let mut up_reader = BufReader::new(up.try_clone().unwrap());
    while let Some((head, body)) = read_request(&mut reader) {
        if up.write_all(head.as_bytes()).and_then(|_| up.write_all(&body)).is_err() {
            return;
        }
        let Ok(Some(resp)) = http::read_response(&mut up_reader, false) else {
            return;
        };
        if !head.contains("/manifest ") {
            write_response(&mut writer, &resp, &resp.body, true);
            continue;
        }
        let previous = t.last_manifest.lock().unwrap().replace(http::Response {
            status: resp.status,
            headers: resp.headers.clone(),
            body: resp.body.clone(),
        });
        match t.mode.load(Ordering::SeqCst) {
            ALTER => {
                // Same length: the protobuf stays well formed, only the
                // sources now name the attacker.
                let altered = replace(&resp.body, origin.as_bytes(), attacker.as_bytes());
                assert_ne!(altered, resp.body, "the manifest names the origin");
                t.tampered.fetch_add(1, Ordering::SeqCst);
                write_response(&mut writer, &resp, &altered, true);
            }
            REPLAY if previous.is_some() => {
                let old = previous.unwrap();
                t.tampered.fetch_add(1, Ordering::SeqCst);
                write_response(&mut writer, &old, &old.body, true);
            }
            UNSIGN => {
                t.tampered.fetch_add(1, Ordering::SeqCst);
                write_response(&mut writer, &resp, &resp.body, false);
            }
            _ => write_response(&mut writer, &resp, &resp.body, true),
        }
    }
}

/// `from` replaced by `to` (of the same length) everywhere in `bytes`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// A server that only counts who connects to it, at an address as long
/// as `like` (so a manifest can be altered to name it in place).
fn attacker(like: &str) -> (SocketAddr, Arc<AtomicU64>) {
    let l = (0..100)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .find(|l| l.local_addr().unwrap().to_string().len() == like.len())
        .expect("a port of the origin's length");
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    (addr, seen)
}

fn metric(agent: &AgentProcess, name: &str) -> f64 {
    let text = http::get(agent.admin, "/metrics").text();
    nearcast_testkit::metrics::metric(&text, name).unwrap_or(-1.0)
}

/// Waits until the agent has refused one more answer than `before`, and
/// its status names `why`.
fn refused_again(agent: &AgentProcess, before: f64, why: &str) -> f64 {
    let start = Instant::now();
    loop {
        let n = metric(agent, "nearcast_agent_answers_refused_total");
        let status = agent.status().unwrap_or_default();
        let said = status["answer_refused"].as_str().unwrap_or("").to_string();
        if n > before && said.contains(why) {
            eprintln!("refused: {said}");
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no refusal naming '{why}' (last: {said})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_box_refuses_altered_replayed_and_unsigned_answers() {
    let root = TempDir::new("e2e-mitm");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    let upstream: SocketAddr = stack.fill_url.trim_start_matches("http://").parse().unwrap();
    let origin = stack.config.origin_url.trim_start_matches("http://").to_string();
    let (attacker_addr, attacker_seen) = attacker(&origin);
    let tampering = Arc::new(Tampering::default());
    tampering.mode.store(ALTER, Ordering::SeqCst);
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    {
        let t = tampering.clone();
        let attacker = attacker_addr.to_string();
        std::thread::spawn(move || {
            for c in proxy.incoming().flatten() {
                let (t, origin, attacker) = (t.clone(), origin.clone(), attacker.clone());
                std::thread::spawn(move || relay(c, upstream, &origin, &attacker, &t));
            }
        });
    }
    stack
        .add_box(|c| {
            c.fill_server = format!("http://{proxy_addr}");
            c.manifest_poll_secs = 1;
        })
        .unwrap();
    let agent = AgentProcess::start(&stack.boxes[0].agent_config);

    let n = refused_again(&agent, 0.0, "does not verify");
    tampering.mode.store(REPLAY, Ordering::SeqCst);
    let n = refused_again(&agent, n, "does not verify");
    tampering.mode.store(UNSIGN, Ordering::SeqCst);
    refused_again(&agent, n, "not signed");
    let tampered = tampering.tampered.load(Ordering::SeqCst);
    assert!(tampered >= 3, "the proxy changed {tampered} manifest answers");
    let status = agent.status().unwrap();
    assert_eq!(
        status["runs_completed"], 0,
        "a fill ran on a refused manifest: {status}"
    );
    assert_eq!(
        attacker_seen.load(Ordering::SeqCst),
        0,
        "the box connected to the attacker"
    );
    assert!(
        !stack.boxes[0].disk.join(TITLE).exists(),
        "the box wrote {TITLE} from a refused manifest"
    );
    // The same path with answers untouched: heartbeats got through all
    // along, and now the box fills.
    let me = stack.appliance("box-1").unwrap();
    assert!(me["last_heartbeat"].as_u64().is_some_and(|t| t > 0), "{me}");
    tampering.mode.store(PASS, Ordering::SeqCst);
    let s = agent.wait_for_run(Duration::from_secs(60));
    assert_eq!(
        s["titles"].as_array().map(Vec::len),
        Some(1),
        "filled through the proxy: {s}"
    );
    assert_eq!(attacker_seen.load(Ordering::SeqCst), 0);
    drop(agent);
    stack.boxes[0].stop_appliance();
}

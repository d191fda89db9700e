//! Ingest to publish: a pre-encoded LL-DASH output pushed in real time,
//! and a reader following the video's parts. The encoding and the paced
//! push are public: `benches/live-load` feeds its live origin with them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearcast::stack::{Ports, Stack};
use nearcast_common::{unix_now, Grant, SigningKey};
use nearcast_packager::live::{moof_timing, LiveInit, Splitter};

/// The events' ingest secret.
pub const SECRET: &str = "bench-secret-0123456789";

pub struct Pushed {
    pub delays_ms: Vec<f64>,
    pub mbit_per_s: f64,
    pub cpu_percent: f64,
}

/// One fragment of a segment file: its bytes (with any boxes before its
/// moof) and when its last frame exists, seconds from the stream's start.
pub struct Fragment {
    pub bytes: Vec<u8>,
    pub ready: f64,
}

/// A stream's init segment and its segments cut into fragments.
pub type Stream = (Vec<u8>, Vec<Vec<Fragment>>);

/// When each part was pushed: (stream, msn, part) → the instant its bytes
/// went to the live door.
pub type Sent = Mutex<HashMap<(u32, u64, usize), Instant>>;

fn encode(dir: &Path, secs: u32) {
    encode_rung(dir, secs, "1280x720", 3000);
}

/// ffmpeg's LL-DASH output (H.264 of `size` at `kbit` kbit/s + AAC, 2 s
/// segments of 0.5 s fragments) of `secs` of test pattern, into `dir`.
pub fn encode_rung(dir: &Path, secs: u32, size: &str, kbit: u32) {
    let v = format!("testsrc2=size={size}:rate=30:duration={secs}");
    let a = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a,
        ])
        .args([
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-b:v", &format!("{kbit}k"),
        ])
        .args([
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ])
        .args(["-f", "dash", "-streaming", "1", "-ldash", "1", "-seg_duration", "2"])
        .args([
            "-frag_type",
            "duration",
            "-frag_duration",
            "0.5",
            "-use_template",
            "1",
            "-use_timeline",
            "0",
        ])
        .args(["-adaptation_sets", "id=0,streams=v id=1,streams=a"])
        .arg(dir.join("manifest.mpd"))
        .output()
        .expect("ffmpeg installed");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

/// Stream `n`'s init and its segments cut into fragments.
pub fn fragments(dir: &Path, n: u32) -> Stream {
    let init_bytes = std::fs::read(dir.join(format!("init-stream{n}.m4s"))).unwrap();
    let init = LiveInit::parse(init_bytes.clone()).unwrap();
    let scale = f64::from(init.track.timescale);
    let mut segments = Vec::new();
    for k in 1.. {
        let Ok(body) = std::fs::read(dir.join(format!("chunk-stream{n}-{k:05}.m4s"))) else {
            break;
        };
        let (mut frags, mut pending) = (Vec::new(), Vec::new());
        let mut ready = 0.0;
        for b in Splitter::new(64 << 20).push(&body).unwrap() {
            if &b.kind == b"moof" {
                let t = moof_timing(b.body().unwrap(), init.track.id, &init.defaults).unwrap();
                ready = (t.base + t.duration) as f64 / scale;
            }
            let mdat = &b.kind == b"mdat";
            pending.extend_from_slice(&b.bytes);
            if mdat {
                frags.push(Fragment {
                    bytes: std::mem::take(&mut pending),
                    ready,
                });
            }
        }
        segments.push(frags);
    }
    (init_bytes, segments)
}

/// Pushes stream `n`'s init segment into `event`.
pub fn put_init(live: SocketAddr, event: &str, n: u32, body: &[u8]) {
    let mut s = TcpStream::connect(live).unwrap();
    let head = format!(
        "PUT /ingest/{event}/{SECRET}/init-stream{n}.m4s HTTP/1.1\r\nHost: {live}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    assert!(answer.contains(" 204 "), "init {n}: {answer}");
}

/// Pushes stream `n`'s segments into `event`, each fragment at `start +
/// ready`; records when each (stream, msn, part) was sent.
pub fn push_stream(live: SocketAddr, event: &str, n: u32, segments: &[Vec<Fragment>], start: Instant, sent: &Sent) {
    for (msn, frags) in segments.iter().enumerate() {
        let mut s = TcpStream::connect(live).unwrap();
        s.set_nodelay(true).unwrap();
        let head = format!(
            "PUT /ingest/{event}/{SECRET}/chunk-stream{n}-{:05}.m4s HTTP/1.1\r\nHost: {live}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            msn + 1
        );
        s.write_all(head.as_bytes()).unwrap();
        for (k, f) in frags.iter().enumerate() {
            let due = start + Duration::from_secs_f64(f.ready);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut chunk = format!("{:x}\r\n", f.bytes.len()).into_bytes();
            chunk.extend_from_slice(&f.bytes);
            chunk.extend_from_slice(b"\r\n");
            // Taken before the write: a fast reader may finish before this
            // thread runs again.
            let at = Instant::now();
            s.write_all(&chunk).unwrap();
            sent.lock().unwrap().insert((n, msn as u64, k), at);
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).unwrap();
        assert!(answer.contains(" 204 "), "segment {msn} of stream {n}: {answer}");
    }
}

/// GETs `path` on a fresh connection and reads to the end; the status.
fn get_to_end(live: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(live).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {live}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let head = String::from_utf8_lossy(&all[..all.len().min(16)]).into_owned();
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// CPU seconds of this process's threads named `prefix…`.
fn cpu_secs(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        ticks += fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / 100.0 // USER_HZ
}

pub fn run(work: &Path, secs: u32) -> Pushed {
    let src = work.join("encoded");
    std::fs::create_dir_all(&src).unwrap();
    encode(&src, secs);
    let streams: Vec<_> = (0..2).map(|n| fragments(&src, n)).collect();
    let bytes: usize = streams
        .iter()
        .flat_map(|(_, s)| s.iter().flatten())
        .map(|f| f.bytes.len())
        .sum();
    let stack = Stack::start(&work.join("stack"), Ports::EPHEMERAL, 30).unwrap();
    stack
        .admin(
            "POST",
            "/v1/admin/live",
            &format!(r#"{{"name":"bench","secret":"{SECRET}"}}"#),
        )
        .unwrap();
    let live: SocketAddr = stack.live_url.trim_start_matches("http://").parse().unwrap();
    for (n, (init, _)) in streams.iter().enumerate() {
        put_init(live, "bench", n as u32, init);
    }
    let key = SigningKey::from_hex(&stack.config.token_key_id, &stack.config.token_key_hex).unwrap();
    let grant = Grant {
        expires: unix_now() + 3600,
        client_prefix: None,
    };
    let token = key.sign("/l/bench/", &grant);
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let parts: Vec<usize> = streams[0].1.iter().map(Vec::len).collect();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for (msn, n) in parts.iter().enumerate() {
            for k in 0..*n {
                let status = get_to_end(live, &format!("/l/bench/stream0/{msn}.{k}.m4s?token={token}"));
                got.push(((msn as u64, k), Instant::now(), status));
            }
        }
        got
    });
    let (cpu0, start) = (cpu_secs("nearcast-live"), Instant::now());
    std::thread::scope(|scope| {
        for (n, (_, segments)) in streams.iter().enumerate() {
            let sent = sent.clone();
            scope.spawn(move || push_stream(live, "bench", n as u32, segments, start, &sent));
        }
    });
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), cpu_secs("nearcast-live") - cpu0);
    let got = reader.join().unwrap();
    let sent = sent.lock().unwrap();
    let delays_ms = got
        .iter()
        .filter(|(_, _, status)| *status == 200)
        .filter_map(|((msn, k), at, _)| Some(at.checked_duration_since(*sent.get(&(0, *msn, *k))?)?.as_secs_f64() * 1000.0))
        .collect();
    Pushed {
        delays_ms,
        mbit_per_s: bytes as f64 * 8.0 / elapsed / 1e6,
        cpu_percent: cpu / elapsed * 100.0,
    }
}

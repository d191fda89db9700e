//! Start-up errors and the graceful drain on SIGTERM.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn sigterm_drains_in_flight_responses_then_exits() {
    let dir = temp_dir("drain");
    let disk = dir.join("disk");
    let big = write_file(&disk.join("t/r/big.m4s"), 24 * 1024 * 1024, 3);
    let mut app = Appliance::start(&dir, &[disk], "[timeouts]\ndrain_ms = 20000\n");
    let url = signed("/c/t/r/big.m4s");
    // A slow reader mid-download, and an idle kept-alive client.
    let mut busy = app.connect();
    busy.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    busy.write_all(format!("GET {url} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 4096];
    let got = busy.read(&mut head).unwrap();
    assert!(head[..got].starts_with(b"HTTP/1.1 200"));
    let mut idle = app.connect();
    idle.write_all(format!("GET {url} HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n").as_bytes())
        .unwrap();
    let mut idle_r = BufReader::new(idle.try_clone().unwrap());
    assert_eq!(read_response(&mut idle_r, false).unwrap().status, 206);

    app.signal_term();
    std::thread::sleep(Duration::from_millis(600));
    // The idle connection is closed; new connections are refused.
    assert!(read_response(&mut idle_r, false).is_none());
    let refused = match TcpStream::connect(app.http) {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            let mut b = [0u8; 8];
            matches!(s.read(&mut b), Ok(0) | Err(_))
        }
    };
    assert!(refused, "no new clients while draining");
    assert!(app.try_wait().is_none(), "still running while a response is in flight");
    // The in-flight download still completes, byte for byte.
    let mut body = head[..got].to_vec();
    busy.read_to_end(&mut body).unwrap();
    let split = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(sha256(&body[split..]), sha256(&big));
    let t = Instant::now();
    let status = loop {
        if let Some(s) = app.try_wait() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "exits once drained");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_configuration_is_refused_with_a_clear_error() {
    let dir = temp_dir("badcfg");
    let bin = env!("CARGO_BIN_EXE_nearcast-appliance");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let d = dir.to_str().unwrap();
    assert!(run(&["--listen", "127.0.0.1:0", "--no-auth"]).contains("no disks configured"));
    assert!(run(&["--disk", "/nonexistent/disk", "--no-auth"]).contains("is not a directory"));
    assert!(run(&["--disk", d]).contains("no keys are configured"));
    assert!(run(&["--disk", d, "--key", "k1:nothex"]).contains("not hex"));
    assert!(run(&["--disk", d, "--key", "k1"]).contains("ID:HEXSECRET"));
    std::fs::write(dir.join("bad.toml"), "listne = 1\n").unwrap();
    assert!(run(&["--config", dir.join("bad.toml").to_str().unwrap()]).contains("unknown field"));
    let tls = run(&[
        "--disk",
        d,
        "--no-auth",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nope.pem",
        "--tls-key",
        "/nope.key",
    ]);
    assert!(tls.contains("TLS certificate /nope.pem"), "{tls}");
}

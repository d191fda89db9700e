//! The flow so far: the committed sample title is packaged into an
//! appliance's disk, the appliance serves it on loopback, and ffmpeg (a
//! real player) plays the whole title over HTTP through the HLS playlist
//! and through the DASH manifest, every byte matching the title index.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use nearcast_appliance::config::Config;
use nearcast_appliance::Server;
use nearcast_e2e::{assert_plays, sample_inputs};
use nearcast_packager::index::sha256_hex;
use nearcast_packager::{package, Options};
use nearcast_testkit::TempDir;

fn http_get(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&out[..split])
    );
    out.split_off(split)
}

#[test]
fn sample_title_is_packaged_served_and_played() {
    let root = TempDir::new("e2e");
    let disk = root.join("disk0");
    let index = package(
        &sample_inputs(),
        &Options {
            title: nearcast_common::Name::new("sample").unwrap(),
            store: disk.clone(),
            target: 4.0,
            progress: false,
            extras: Default::default(),
            encrypt: None,
        },
    )
    .expect("package the sample");
    assert_eq!(index.renditions.iter().filter(|r| r.kind == "video").count(), 3);
    assert_eq!(index.renditions.iter().filter(|r| r.kind == "audio").count(), 1);
    assert!((29.0..31.0).contains(&index.duration_secs));

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        disks: vec![disk],
        auth: nearcast_appliance::config::AuthConfig {
            required: false,
            keys: Vec::new(),
        },
        ..Config::default()
    };
    let server = Server::start(config).expect("appliance starts");
    let base = format!("http://{}/c/sample", server.http_addr);

    // Every file of the index, fetched over HTTP, matches its checksum.
    for f in &index.files {
        let body = http_get(server.http_addr, &format!("/c/sample/{}", f.path));
        assert_eq!(sha256_hex(&body), f.sha256, "{}", f.path);
    }
    // A real player reads the whole title through each manifest.
    for manifest in ["master.m3u8", "manifest.mpd"] {
        assert_plays(&format!("{base}/{manifest}"));
    }
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &format!("{base}/master.m3u8"),
        ])
        .output()
        .unwrap();
    let secs: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap();
    assert!(
        (secs - index.duration_secs).abs() < 0.1,
        "{secs} vs {}",
        index.duration_secs
    );
    server.shutdown();
    server.join().unwrap();
}

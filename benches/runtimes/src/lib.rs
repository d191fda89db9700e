//! What both probes share: the smallest HTTP/1.1 that serves the benchmark
//! (GET, keep-alive, `/c/...` mapped onto a directory, 200 or 404).

use std::path::{Path, PathBuf};

/// A complete request head at the start of `buf`: its path and length.
pub fn parse_head(buf: &[u8]) -> Option<(String, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let line = std::str::from_utf8(&buf[..end]).ok()?.lines().next()?;
    let path = line.split(' ').nth(1)?.to_string();
    Some((path, end))
}

/// `/c/x/y/z` → `root/x/y/z`; anything with `..` is refused.
pub fn map_path(root: &Path, url: &str) -> Option<PathBuf> {
    let rel = url.strip_prefix("/c/")?;
    (!rel.split('/').any(|s| s.is_empty() || s == "..")).then(|| root.join(rel))
}

pub fn head_200(len: u64) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nServer: probe\r\nContent-Length: {len}\r\nContent-Type: video/iso.segment\r\n\r\n").into_bytes()
}

pub const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

/// Body bytes read and written per step (the runtimes have no sendfile).
pub const CHUNK: usize = 256 * 1024;

/// `probe ADDR ROOT THREADS`
pub fn args() -> (std::net::SocketAddr, PathBuf, usize) {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        eprintln!("usage: {} ADDR ROOT THREADS", a[0]);
        std::process::exit(2);
    }
    (a[1].parse().expect("ADDR"), PathBuf::from(&a[2]), a[3].parse().expect("THREADS"))
}

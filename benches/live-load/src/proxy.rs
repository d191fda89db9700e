//! A counting proxy in front of the live origin: every request that
//! reaches the origin passes here, so a run knows how many requests each
//! object cost the origin, whichever server is under test. Bytes are
//! piped as they come (a part streamed by the origin stays streamed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub addr: SocketAddr,
    /// Requests per object (path and `_HLS_` arguments, no token).
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl Proxy {
    pub fn start(origin: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
        };
        let seen = proxy.seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || pipe(client, origin, &seen));
            }
        });
        proxy
    }

    /// Forgets the counts (a new run).
    pub fn reset(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// (requests, distinct objects) since the last reset, and the
    /// refreshes of plain playlists apart: a playlist without blocking
    /// arguments is a new object each time it expires, everything else
    /// (parts, segments, init segments, blocking reloads) is one object
    /// for good.
    pub fn counts(&self) -> (u64, u64, u64) {
        let seen = self.seen.lock().unwrap();
        let plain = |k: &str| k.ends_with(".m3u8") || k.ends_with(".mpd");
        let objects = seen.iter().filter(|(k, _)| !plain(k));
        let requests = objects.clone().map(|(_, c)| c).sum();
        let refreshes = seen.iter().filter(|(k, _)| plain(k)).map(|(_, c)| c).sum();
        (requests, objects.count() as u64, refreshes)
    }

    /// The objects asked for more than once, most first (at most `n`).
    pub fn repeated(&self, n: usize) -> Vec<(String, u64)> {
        let seen = self.seen.lock().unwrap();
        let mut v: Vec<(String, u64)> = seen
            .iter()
            .filter(|(k, c)| **c > 1 && !k.ends_with(".m3u8"))
            .map(|(k, c)| (k.clone(), *c))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.truncate(n);
        v
    }
}

fn pipe(client: TcpStream, origin: SocketAddr, seen: &Mutex<HashMap<String, u64>>) {
    let Ok(upstream) = TcpStream::connect(origin) else {
        return;
    };
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let (Ok(mut back_in), Ok(mut back_out)) = (upstream.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = back_in.read(&mut buf) {
            if n == 0 || back_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = back_out.shutdown(std::net::Shutdown::Write);
    });
    // Requests are GETs without bodies: forward head by head, counting.
    let mut reader = BufReader::new(client);
    let mut up = upstream;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                let _ = up.shutdown(std::net::Shutdown::Write);
                return;
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head);
        if let Some(target) = text.split_whitespace().nth(1) {
            *seen.lock().unwrap().entry(object(target)).or_default() += 1;
        }
        if up.write_all(&head).is_err() {
            return;
        }
    }
}

/// A target without its token.
fn object(target: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let args: Vec<&str> = query.split('&').filter(|a| a.starts_with("_HLS_")).collect();
    if args.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", args.join("&"))
    }
}

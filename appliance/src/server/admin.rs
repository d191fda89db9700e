//! The admin listener: `/metrics` (Prometheus), `/healthz`, `/status` (the
//! typed `ApplianceStatus` the control agent reads: serving, connections,
//! bytes per title, disks, content answers and players' CMCD sessions), `/titles` (bytes per title alone),
//! `POST /disks/{i}/fail` / `POST /disks/{i}/restore` (the agent takes
//! a failed disk out of serving and puts a replaced one back) and
//! `GET`/`PUT /live` (the live upstream lists and cache size, which the
//! agent replaces without a restart), on its own port and thread, so
//! scraping never competes with the serving rings.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nearcast_common::appliance::{ApplianceStatus, ServingDisk};

use crate::live::route::LiveSetting;
use crate::metrics::{render, PlaybackMetrics, WorkerMetrics};

/// Largest request body (a `PUT /live`).
const MAX_BODY: usize = 1 << 20;
use crate::server::Shared;

pub fn spawn(listener: TcpListener, shared: Arc<Shared>, metrics: Vec<Arc<WorkerMetrics>>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("nearcast-admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = serve(stream, &shared, &metrics) {
                    tracing::debug!(error = %e, "admin request failed");
                }
            }
        })?;
    Ok(())
}

/// One admin request: method, path (no query), body.
type AdminRequest = (String, Vec<u8>, Vec<u8>);

/// Reads one request; `None` when it was answered already (too large,
/// malformed) or the peer left.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<AdminRequest>> {
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            respond(
                stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too large\n",
            )?;
            return Ok(None);
        }
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(used)) => {
                let path = req.path.unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path).as_bytes().to_vec();
                let method = req.method.unwrap_or("GET").to_string();
                let length = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if length > MAX_BODY {
                    respond(stream, "413 Content Too Large", "text/plain", "body too large\n")?;
                    return Ok(None);
                }
                let mut body = buf[used..filled].to_vec();
                body.resize(length, 0);
                stream.read_exact(&mut body[(filled - used).min(length)..])?;
                return Ok(Some((method, path, body)));
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => {
                respond(stream, "400 Bad Request", "text/plain", "bad request\n")?;
                return Ok(None);
            }
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Shared, metrics: &[Arc<WorkerMetrics>]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let Some((method, path, body)) = read_request(&mut stream)? else {
        return Ok(());
    };
    let post = method == "POST";
    match path.as_slice() {
        b"/live" => live(&mut stream, shared, &method, &body),
        b"/metrics" => {
            let active = lock(&shared.sessions).active(std::time::Instant::now(), Duration::from_secs(30));
            let body = render(metrics, &shared.disks, &shared.live, active);
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body)
        }
        b"/status" => {
            let body = serde_json::to_string(&status(shared, metrics)).unwrap_or_default() + "\n";
            respond(&mut stream, "200 OK", "application/json", &body)
        }
        b"/titles" => {
            let body = serde_json::to_string(&*lock(&shared.titles)).unwrap_or_default() + "\n";
            respond(&mut stream, "200 OK", "application/json", &body)
        }
        b"/healthz" if shared.shutdown.load(Ordering::Acquire) => {
            respond(&mut stream, "503 Service Unavailable", "text/plain", "draining\n")
        }
        b"/healthz" => respond(&mut stream, "200 OK", "text/plain", "ok\n"),
        p if p.starts_with(b"/disks/") => {
            let text = String::from_utf8_lossy(&p[b"/disks/".len()..]).into_owned();
            let (index, action) = text.split_once('/').unwrap_or((&text, ""));
            let failed = match action {
                "fail" => Some(true),
                "restore" => Some(false),
                _ => None,
            };
            match (post, index.parse::<usize>().ok(), failed) {
                (false, ..) => respond(&mut stream, "405 Method Not Allowed", "text/plain", "POST only\n"),
                (true, Some(i), Some(f)) if shared.disks.set_failed(i, f) => {
                    tracing::warn!(disk = i, failed = f, "disk service state changed");
                    respond(&mut stream, "200 OK", "text/plain", "ok\n")
                }
                _ => respond(&mut stream, "404 Not Found", "text/plain", "no such disk or action\n"),
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

fn live(stream: &mut TcpStream, shared: &Shared, method: &str, body: &[u8]) -> std::io::Result<()> {
    match method {
        "PUT" => match serde_json::from_slice::<LiveSetting>(body) {
            Ok(s) => {
                let (origins, peers, cache_mib) = (s.upstreams.origins.len(), s.upstreams.peers.len(), s.cache_mib);
                if shared.live.reconfigure(s.upstreams, s.cache_mib) {
                    tracing::info!(origins, peers, ?cache_mib, "live upstreams replaced");
                }
                respond(stream, "200 OK", "text/plain", "ok\n")
            }
            Err(e) => respond(stream, "400 Bad Request", "text/plain", &format!("{e}\n")),
        },
        "GET" => {
            let now = LiveSetting {
                upstreams: (*shared.live.upstreams()).clone(),
                cache_mib: Some(shared.live.cache().cap() >> 20),
            };
            let body = serde_json::to_string(&now).unwrap_or_default() + "\n";
            respond(stream, "200 OK", "application/json", &body)
        }
        _ => respond(stream, "405 Method Not Allowed", "text/plain", "GET or PUT\n"),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The typed status the agent reads.
fn status(shared: &Shared, metrics: &[Arc<WorkerMetrics>]) -> ApplianceStatus {
    let disks = &shared.disks;
    let (content_requests, content_errors) = PlaybackMetrics::totals(metrics);
    ApplianceStatus {
        serving: !shared.shutdown.load(Ordering::Acquire),
        connections: shared.open.load(Ordering::Acquire) as u64,
        titles: lock(&shared.titles).clone(),
        content_requests,
        content_errors,
        failed_by_title: lock(&shared.failed_titles).clone(),
        sessions: lock(&shared.sessions).report(std::time::Instant::now()),
        disks: (0..disks.roots().len())
            .map(|i| ServingDisk {
                path: disks.roots()[i].display().to_string(),
                failed: disks.is_failed(i),
                read_errors: disks.read_errors(i),
            })
            .collect(),
    }
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

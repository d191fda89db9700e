//! The admin listener: `/metrics` (Prometheus), `/healthz`, and `/titles`
//! (body bytes served per title since start, JSON, for the control agent),
//! on its own port and thread, so scraping never competes with the serving
//! rings.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::http::{parse_request, Parsed};
use crate::metrics::{render, WorkerMetrics};
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

fn serve(mut stream: TcpStream, shared: &Shared, metrics: &[Arc<WorkerMetrics>]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    let path = loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        match parse_request(&buf[..filled], buf.len()) {
            Ok(Parsed::Complete(req, _)) => break req.path.to_vec(),
            Ok(Parsed::Partial) => continue,
            Err(_) => return respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n"),
        }
    };
    match path.as_slice() {
        b"/metrics" => {
            let body = render(metrics, shared.disks.roots());
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body)
        }
        b"/titles" => {
            // Titles are plain names (the path rules allow nothing that
            // JSON would need escaped).
            let totals = shared.titles.lock().unwrap_or_else(|p| p.into_inner());
            let body: Vec<String> = totals.iter().map(|(t, n)| format!("\"{t}\":{n}")).collect();
            respond(
                &mut stream,
                "200 OK",
                "application/json",
                &format!("{{{}}}\n", body.join(",")),
            )
        }
        b"/healthz" if shared.shutdown.load(Ordering::Acquire) => {
            respond(&mut stream, "503 Service Unavailable", "text/plain", "draining\n")
        }
        b"/healthz" => respond(&mut stream, "200 OK", "text/plain", "ok\n"),
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

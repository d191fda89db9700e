//! Simulated LL-HLS viewers: each holds one keep-alive connection to the
//! server under test and follows one rendition the way hls.js does in
//! low-latency mode: a blocking reload of its media playlist for the part
//! its last playlist hinted (`EXT-X-PRELOAD-HINT`), then that part (or,
//! when the hint was past the segment's end, the next segment's first). For
//! every part it records how long after the part reached the origin
//! (the push's send time) the viewer had it whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_live_bench::push::Sent;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What the viewers saw.
#[derive(Default)]
pub struct Seen {
    /// Part latencies from their availability at the origin, ms.
    pub latency_ms: Vec<f64>,
    /// Requests that failed (a status other than 200, a cut body).
    pub errors: u64,
    pub parts: u64,
}

pub struct Load {
    pub addr: std::net::SocketAddr,
    pub event: String,
    pub token: String,
    pub viewers: usize,
    pub secs: u64,
}

/// Runs the viewers (two runtime threads: the load shares the machine
/// with the server, the same for every server).
pub fn run(load: &Load, sent: Arc<Sent>) -> Seen {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(load.secs) + Duration::from_secs(2);
        let mut tasks = Vec::with_capacity(load.viewers);
        for i in 0..load.viewers {
            let rendition = format!("stream{}", i % 2);
            let (addr, event, token, sent) = (load.addr, load.event.clone(), load.token.clone(), sent.clone());
            // Joins spread over two seconds, as an audience does.
            let delay = Duration::from_micros((2_000_000 * i / load.viewers.max(1)) as u64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                viewer(addr, &event, &rendition, &token, until, &sent).await
            }));
        }
        let mut seen = Seen::default();
        for t in tasks {
            if let Ok(s) = t.await {
                seen.latency_ms.extend(s.latency_ms);
                seen.errors += s.errors;
                seen.parts += s.parts;
            }
        }
        seen
    })
}

async fn viewer(
    addr: std::net::SocketAddr,
    event: &str,
    rendition: &str,
    token: &str,
    until: Instant,
    sent: &Sent,
) -> Seen {
    let mut seen = Seen::default();
    let stream = rendition.trim_start_matches("stream").parse::<u32>().unwrap_or(0);
    let Ok(sock) = TcpStream::connect(addr).await else {
        seen.errors += 1;
        return seen;
    };
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::new(sock);
    let base = format!("/l/{event}/{rendition}");
    let mut next: Option<(u64, u64)> = None;
    while Instant::now() < until {
        let target = match next {
            None => format!("{base}/index.m3u8?token={token}"),
            Some((m, p)) => format!("{base}/index.m3u8?_HLS_msn={m}&_HLS_part={p}&token={token}"),
        };
        let Some(playlist) = get(&mut conn, &target).await else {
            if seen.errors == 0 && std::env::var_os("LIVE_LOAD_DEBUG").is_some() {
                eprintln!("viewer: {target} failed");
            }
            seen.errors += 1;
            return seen;
        };
        let text = String::from_utf8_lossy(&playlist);
        let hinted = hint(&text);
        // A part index past a segment's end means the next segment's first
        // part (RFC 8216bis): take the part the playlist lists.
        let wanted = next.and_then(|(m, p)| [(m, p), (m + 1, 0)].into_iter().find(|&(m, p)| lists(&text, m, p)));
        if let Some((m, p)) = wanted {
            let part = format!("{base}/{m}.{p}.m4s?token={token}");
            if get(&mut conn, &part).await.is_none() {
                if std::env::var_os("LIVE_LOAD_DEBUG").is_some() {
                    eprintln!("viewer: {part} failed");
                }
                seen.errors += 1;
                return seen;
            }
            seen.parts += 1;
            let pushed = sent.lock().unwrap().get(&(stream, m, p as usize)).copied();
            if let Some(at) = pushed {
                seen.latency_ms.push(at.elapsed().as_secs_f64() * 1000.0);
            }
        }
        match hinted {
            Some(h) => next = Some(h),
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    seen
}

/// Whether the playlist lists part `p` of segment `m` (whole).
fn lists(playlist: &str, m: u64, p: u64) -> bool {
    let uri = format!("URI=\"{m}.{p}.m4s");
    playlist
        .lines()
        .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&uri))
}

/// The part the playlist's preload hint names, as (msn, part).
fn hint(playlist: &str) -> Option<(u64, u64)> {
    let line = playlist.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = line.split("URI=\"").nth(1)?.split(['?', '"']).next()?;
    let (m, p) = uri.trim_end_matches(".m4s").split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// One GET on the kept-alive connection; the body of a 200.
async fn get(conn: &mut BufReader<TcpStream>, target: &str) -> Option<Vec<u8>> {
    let req = format!("GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).await.ok()?;
    let mut status = 0;
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if status == 0 {
            status = l.split(' ').nth(1)?.parse().ok()?;
        } else if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let body = match (chunked, length) {
        (true, _) => read_chunked(conn).await?,
        (false, Some(n)) => {
            let mut b = vec![0; n];
            conn.read_exact(&mut b).await.ok()?;
            b
        }
        (false, None) => return None,
    };
    if status != 200 && std::env::var_os("LIVE_LOAD_DEBUG").is_some() {
        eprintln!(
            "viewer: {status} for {target}: {}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    (status == 200).then_some(body)
}

async fn read_chunked(conn: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        conn.read_line(&mut size).await.ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            let mut end = String::new();
            conn.read_line(&mut end).await.ok()?;
            return Some(body);
        }
        let start = body.len();
        body.resize(start + n, 0);
        conn.read_exact(&mut body[start..]).await.ok()?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf).await.ok()?;
    }
}

//! The loads: the fleet (each box a signed protobuf heartbeat every
//! `BEAT`, and its manifest once over the run, as a night window
//! compressed into it) and players' steering requests (closed loop).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_common::control::{Health, Heartbeat};
use nearcast_common::{unix_now, wire};
use tokio::sync::Mutex;

use crate::client::Conn;
use crate::setup::{client, title, SimBox, ISPS, TITLES};

pub const BEAT: Duration = Duration::from_secs(10);

/// Latencies (ms) and failures of one kind of call.
#[derive(Default)]
pub struct Calls {
    pub ms: Vec<f64>,
    pub failed: u64,
}

impl Calls {
    pub fn pct(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    }
}

/// Connections to each replica, reused between calls.
struct Pool {
    idle: Vec<Mutex<Vec<Conn>>>,
    addrs: Vec<SocketAddr>,
}

impl Pool {
    async fn call(&self, r: usize, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<u16> {
        let mut conn = self.idle[r].lock().await.pop().unwrap_or_else(|| Conn::new(self.addrs[r]));
        let status = conn.call(method, path, headers, body).await.ok().map(|(s, _)| s);
        self.idle[r].lock().await.push(conn);
        status
    }
}

/// A signed call of box `b` as the agent makes it (protobuf both ways).
fn signed(b: &SimBox, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut h: Vec<(&'static str, String)> = b.key.sign(&b.id, method, path, unix_now(), body).into_iter().collect();
    h.push(("content-type", wire::CONTENT_TYPE.into()));
    h.push(("accept", wire::CONTENT_TYPE.into()));
    h
}

/// The fleet for `secs`, one box in `manifest_every` (0: none) asking for
/// its manifest once in that time: (heartbeats, manifests).
pub async fn fleet(boxes: Arc<Vec<SimBox>>, replicas: &[SocketAddr], secs: u64, manifest_every: usize) -> (Calls, Calls) {
    let pool = Arc::new(Pool {
        idle: replicas.iter().map(|_| Mutex::new(Vec::new())).collect(),
        addrs: replicas.to_vec(),
    });
    let beats = Arc::new(std::sync::Mutex::new(Calls::default()));
    let manifests = Arc::new(std::sync::Mutex::new(Calls::default()));
    let start = Instant::now();
    let n = boxes.len();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (boxes, pool, beats, manifests) = (boxes.clone(), pool.clone(), beats.clone(), manifests.clone());
        let r = i % replicas.len();
        tasks.push(tokio::spawn(async move {
            let b = &boxes[i];
            let offset = BEAT.mul_f64(i as f64 / n as f64);
            let manifest_at = Duration::from_secs(secs).mul_f64(i as f64 / n as f64);
            let mut next_beat = start + offset;
            let mut manifest_due = (manifest_every > 0 && i % manifest_every == 0).then_some(start + manifest_at);
            let end = start + Duration::from_secs(secs);
            loop {
                let next = manifest_due.map_or(next_beat, |m| m.min(next_beat));
                if next >= end {
                    return;
                }
                tokio::time::sleep_until(next.into()).await;
                let t = Instant::now();
                let (kind, status) = if manifest_due.is_some_and(|m| m <= next_beat) {
                    manifest_due = None;
                    let path = format!("/v1/appliances/{}/manifest", b.id);
                    (&manifests, pool.call(r, "GET", &path, &signed(b, "GET", &path, b""), b"").await)
                } else {
                    next_beat += BEAT;
                    let path = format!("/v1/appliances/{}/heartbeat", b.id);
                    let mut hb = Heartbeat::new(Health::Ok, 0.1 + (i % 50) as f64 / 100.0, 1 << 39);
                    hb.bytes_by_title.insert(nearcast_common::Name::new(title(i % TITLES)).unwrap(), 1_000_000);
                    let body = wire::encode(&hb).unwrap();
                    (&beats, pool.call(r, "POST", &path, &signed(b, "POST", &path, &body), &body).await)
                };
                let mut calls = kind.lock().unwrap();
                calls.ms.push(t.elapsed().as_secs_f64() * 1e3);
                calls.failed += u64::from(status != Some(200));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let take = |c: &Arc<std::sync::Mutex<Calls>>| std::mem::take(&mut *c.lock().unwrap());
    (take(&beats), take(&manifests))
}

/// Players' steering requests for `secs` on `conns` connections spread
/// over the replicas, each sending its next as soon as it has an answer;
/// (decisions per second, failures).
pub async fn steering(replicas: &[SocketAddr], conns: usize, secs: u64) -> (f64, u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let addr = replicas[c % replicas.len()];
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let (mut ok, mut failed, mut n) = (0u64, 0u64, c);
            while Instant::now() < end {
                n += conns;
                let path = format!("/v1/steer?title={}&file=master.m3u8", title(n % TITLES));
                let headers = [("x-forwarded-for", client(n % ISPS, n))];
                match conn.call("GET", &path, &headers, b"").await {
                    Ok((200, _)) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let start = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        if let Ok((o, f)) = t.await {
            ok += o;
            failed += f;
        }
    }
    (ok as f64 / start.elapsed().as_secs_f64().max(secs as f64), failed)
}

//! Heartbeats written in batches. A box's beat waits for the next flush,
//! at most `FLUSH_EVERY` after the last one, and is written with every
//! other beat that came in meanwhile in one transaction, then patched into
//! the view at once: 10,000 boxes beating every 10 s cost a replica ten
//! transactions a second, not a thousand. The box is answered only once
//! its beat is written, so an answer means it was kept.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use nearcast_common::unix_now;

use crate::app::{App, Changed};
use crate::steer::Beat;
use crate::store::Heartbeat;

/// The longest a beat waits for its batch (and the least time between
/// two batches' transactions).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How a beat's write ended: `Err` carries the store's message.
pub type Written = Result<(), String>;

struct Pending {
    id: String,
    hb: Heartbeat,
    done: tokio::sync::oneshot::Sender<Written>,
}

/// The beats waiting for the next flush.
#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Vec<Pending>>,
    ready: Condvar,
    /// Batches and beats written since start (for /metrics).
    pub batches: std::sync::atomic::AtomicU64,
    pub written: std::sync::atomic::AtomicU64,
}

impl Batcher {
    /// Queues a beat; the receiver says when it is written.
    pub fn submit(&self, id: String, hb: Heartbeat) -> tokio::sync::oneshot::Receiver<Written> {
        let (done, written) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending { id, hb, done });
        self.ready.notify_one();
        written
    }

    /// The next batch: waits for a first beat (`None` after `idle` without
    /// one), then until `FLUSH_EVERY` after `last` has passed.
    fn next(&self, last: Instant, idle: Duration) -> Option<Vec<Pending>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_empty() {
            queue = self
                .ready
                .wait_timeout(queue, idle)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if queue.is_empty() {
                return None;
            }
        }
        let wait = (last + FLUSH_EVERY).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            drop(queue);
            std::thread::sleep(wait);
            queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        }
        Some(std::mem::take(&mut *queue))
    }
}

/// Starts the thread that writes `app`'s batches; it ends with the app.
pub fn spawn(app: &Arc<App>) -> std::io::Result<()> {
    let weak = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("nearcast-beats".into())
        .spawn(move || run(weak))
        .map(drop)
}

fn run(app: Weak<App>) {
    let mut last = Instant::now() - FLUSH_EVERY;
    loop {
        let batch = match app.upgrade() {
            Some(a) => a.beats.next(last, Duration::from_secs(1)),
            None => return,
        };
        let (Some(batch), Some(app)) = (batch, app.upgrade()) else {
            continue;
        };
        last = Instant::now();
        flush(&app, batch);
    }
}

/// Writes one batch, patches the view, and answers each beat.
fn flush(app: &App, batch: Vec<Pending>) {
    let now = unix_now();
    let (beats, waiting): (Vec<(String, Heartbeat)>, Vec<_>) =
        batch.into_iter().map(|p| ((p.id, p.hb), p.done)).unzip();
    let view: Vec<Beat> = beats.iter().map(|(id, hb)| Beat::of(id, hb, now)).collect();
    let result = app
        .store
        .heartbeats(&beats, now)
        .and_then(|()| app.refresh(&Changed::Heartbeats(view)))
        .map_err(|e| {
            tracing::error!(error = %e, beats = beats.len(), "heartbeat batch not written");
            e.to_string()
        });
    use std::sync::atomic::Ordering::Relaxed;
    app.beats.batches.fetch_add(1, Relaxed);
    if result.is_ok() {
        app.beats.written.fetch_add(beats.len() as u64, Relaxed);
    }
    for done in waiting {
        let _ = done.send(result.clone());
    }
}

//! Simulated boxes for rollout tests beside real ones: each is enrolled
//! and registered with the stack's fill server and heartbeats through the
//! agent's own client (signed calls, verified answers), as a box running
//! the OS image does, on release 1 in slot A. It takes an offered OS
//! release at once: committed, or, for a release named bad, failed the
//! way a box whose health check failed reports it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nearcast::stack::{Stack, SITE};
use nearcast_agent::config::WireFormat;
use nearcast_agent::fill_server::FillServer;
use nearcast_common::answer_auth::AnswerKeys;
use nearcast_common::control::{Health, Heartbeat, OsState, Registration};
use nearcast_common::request_auth::ApplianceKey;

pub struct SimFleet {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl SimFleet {
    /// Enrolls `ids` (keys under `dir`) and starts them heartbeating every
    /// second; releases in `bad` fail on them.
    pub fn start(stack: &Stack, dir: &Path, ids: &[&str], bad: &[&str]) -> SimFleet {
        std::fs::create_dir_all(dir).expect("sim fleet dir");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for id in ids {
            let file = dir.join(format!("{id}.key"));
            stack.enroll(id, &file).expect("enrolling a simulated box");
            let key = ApplianceKey::from_pkcs8(&std::fs::read(&file).expect("key")).expect("key");
            let trusted = AnswerKeys::parse(std::slice::from_ref(&stack.answer_key)).expect("answer key");
            let server = FillServer::new(&stack.fill_url, id, key, trusted, WireFormat::Json, None);
            let (stop, bad) = (stop.clone(), bad.iter().map(|b| b.to_string()).collect());
            threads.push(std::thread::spawn(move || run(server, stop, bad)));
        }
        SimFleet { stop, threads }
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run(server: FillServer, stop: Arc<AtomicBool>, bad: Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let reg = Registration {
            site: SITE.into(),
            url: "http://127.0.0.1:9".into(),
            capacity_bytes: 1 << 30,
            disks: Vec::new(),
        };
        while server.register(&reg).await.is_err() && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut os = OsState {
            release: "1".into(),
            slot: "A".into(),
            ..OsState::default()
        };
        while !stop.load(Ordering::SeqCst) {
            let beat = Heartbeat {
                health: Health::Ok,
                load: 0.0,
                free_bytes: 1 << 30,
                disks: Vec::new(),
                bytes_by_title: Default::default(),
                fill: None,
                bgp: None,
                version: None,
                os: Some(os.clone()),
                playback: None,
            };
            if let Ok(reply) = server.heartbeat(&beat).await {
                if let Some(r) = reply.os_update.filter(|r| *r != os.release) {
                    take(&mut os, r, &bad);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// What an install of `release` leaves: the other slot committed, or the
/// release failed.
fn take(os: &mut OsState, release: String, bad: &[String]) {
    if bad.contains(&release) {
        os.update = format!("failed {release}: health check failed (simulated box)");
        os.failed.push(release);
    } else {
        os.slot = if os.slot == "A" { "B" } else { "A" }.into();
        os.update = format!("committed {release}");
        os.release = release;
    }
}

//! The serving engine: worker threads (one io_uring each) behind
//! SO_REUSEPORT listeners, plus the admin listener. `Server::start` binds
//! everything before returning, so callers know the real addresses.

mod admin;
mod bufring;
mod conn;
mod ktls;
mod listener;
mod op;
mod pace;
mod reads;
mod send;
pub mod tls;
mod upstream;
mod worker;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nearcast_common::Keyring;

use crate::config::{Config, ConfigError};
use crate::live::LiveShared;
use crate::metrics::WorkerMetrics;
use crate::store::Disks;

pub use pace::Rate;

/// What every worker reads and nobody writes (but the shutdown flag).
pub struct Shared {
    pub config: Config,
    pub keyring: Arc<Keyring>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS sessions move to the kernel after the handshake.
    pub ktls: bool,
    /// The per-connection rate cap, if any.
    pub rate: Option<Rate>,
    pub disks: Disks,
    pub shutdown: AtomicBool,
    /// Open client connections, all workers together (for the cap).
    pub open: AtomicUsize,
    /// Body bytes served per title since start (each worker merges its
    /// tally every tick); the agent reads it for its heartbeats.
    pub titles: Mutex<BTreeMap<nearcast_common::Name, u64>>,
    /// Player sessions' CMCD totals (each worker adds its tallies every
    /// tick); the agent reads them for its heartbeats.
    pub sessions: Mutex<crate::sessions::Book>,
    /// Content answers that failed the viewer, per title since start.
    pub failed_titles: Mutex<BTreeMap<nearcast_common::Name, u64>>,
    /// The live pull-through side.
    pub live: Arc<LiveShared>,
}

/// A handle on a running server's per-title viewer bytes.
#[derive(Clone)]
pub struct ViewerBytes(Arc<Shared>);

impl ViewerBytes {
    pub fn by_title(&self) -> BTreeMap<nearcast_common::Name, u64> {
        self.0.titles.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("io_uring setup failed (kernel too old or io_uring disabled?): {0}")]
    Ring(io::Error),
    #[error("cannot start thread: {0}")]
    Thread(io::Error),
}

pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<io::Result<()>>>,
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
}

impl Server {
    pub fn start(config: Config) -> Result<Server, StartError> {
        config.validate()?;
        let keyring = Arc::new(config.keyring()?);
        if !config.auth.required {
            tracing::warn!("auth.required is off: content is served without tokens");
        }
        let (tls, ktls) = tls_setup(&config)?;
        let threads = config.threads();
        // Every client, and per worker its open files twice (buffered and
        // O_DIRECT), with room for listeners, logs and the admin side.
        listener::reserve_descriptors(config.max_connections + threads * config.file_cache.entries * 2 + 1024);
        let bind = |addr: SocketAddr| {
            listener::bind_reuseport(addr, threads).map_err(|source| StartError::Bind { addr, source })
        };
        let (http, http_addr) = bind(config.listen)?;
        let (mut https, https_addr) = match &config.tls {
            Some(t) => {
                let (fds, addr) = bind(t.listen)?;
                (fds.into_iter().map(Some).collect(), Some(addr))
            }
            None => (Vec::new(), None),
        };
        let admin_listener = std::net::TcpListener::bind(config.admin_listen).map_err(|source| StartError::Bind {
            addr: config.admin_listen,
            source,
        })?;
        let admin_addr = admin_listener.local_addr().map_err(StartError::Thread)?;
        let live = Arc::new(LiveShared::new(config.live.clone(), threads).map_err(StartError::Thread)?);
        let shared = Arc::new(Shared {
            live,
            disks: Disks::new(config.disks.clone()),
            rate: config.rate_limit.rate(),
            config,
            keyring,
            tls,
            ktls,
            shutdown: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            titles: Mutex::new(BTreeMap::new()),
            sessions: Mutex::default(),
            failed_titles: Mutex::default(),
        });
        let metrics: Vec<Arc<WorkerMetrics>> = (0..threads)
            .map(|_| WorkerMetrics::new(shared.disks.roots().len()))
            .collect();
        let mut workers = Vec::with_capacity(threads);
        for (i, plain) in http.into_iter().enumerate() {
            let mut socks = vec![(plain, false)];
            if let Some(Some(s)) = https.get_mut(i).map(Option::take) {
                socks.push((s, true));
            }
            match spawn_worker(i, shared.clone(), socks, metrics[i].clone()) {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    shared.shutdown.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        admin::spawn(admin_listener, shared.clone(), metrics).map_err(StartError::Thread)?;
        Ok(Server {
            shared,
            workers,
            http_addr,
            https_addr,
            admin_addr,
        })
    }

    /// Begins a graceful drain: stop accepting, finish what is in flight.
    /// Body bytes served to viewers per title since start (what `/status`
    /// says), readable from the process that runs this server.
    pub fn viewer_bytes(&self) -> ViewerBytes {
        ViewerBytes(self.shared.clone())
    }

    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
    }

    /// Waits for every worker to finish its drain.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for w in self.workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("worker panicked")),
            }
        }
        result
    }
}

/// The rustls config, if there is a TLS listener, and whether sessions go
/// to the kernel after the handshake.
fn tls_setup(config: &Config) -> Result<(Option<Arc<rustls::ServerConfig>>, bool), StartError> {
    let Some(t) = &config.tls else {
        return Ok((None, false));
    };
    let ktls = t.ktls && ktls::available();
    match (t.ktls, ktls) {
        (_, true) => tracing::info!("kernel TLS: HTTPS sessions go to the kernel after the handshake"),
        (true, false) => tracing::info!("no kernel TLS (tls ULP missing): HTTPS bodies are encrypted in userspace"),
        (false, _) => tracing::info!("kernel TLS off (tls.ktls = false): userspace TLS"),
    }
    Ok((Some(tls::server_config(&t.cert, &t.key, ktls)?), ktls))
}

/// Starts worker `i` on its own thread. The worker owns thread-local state
/// (Rc, raw ring memory), so it is built there; this waits for it to say
/// whether set-up worked.
fn spawn_worker(
    i: usize,
    shared: Arc<Shared>,
    socks: Vec<(std::net::TcpListener, bool)>,
    metrics: Arc<WorkerMetrics>,
) -> Result<JoinHandle<io::Result<()>>, StartError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(format!("nearcast-w{i}"))
        .spawn(move || match worker::Worker::new(i, shared, socks, metrics) {
            Ok(w) => {
                let _ = ready_tx.send(Ok(()));
                w.run()
            }
            Err(e) => {
                let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        })
        .map_err(StartError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(StartError::Ring(e)),
        Err(_) => Err(StartError::Ring(io::Error::other("worker died during set-up"))),
    }
}

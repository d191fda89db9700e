//! The accept loop every door shares (the API, the admin API, the live
//! door), plain or TLS: one hyper HTTP/1.1 connection task per client,
//! bounded in connections (more are closed at accept, counted) and in the
//! time a request head (or a TLS handshake) may take, which also bounds a
//! kept-alive connection's wait for its next request: hyper's header timer
//! starts when it waits for a head.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::api;
use crate::app::App;

/// What bounds one door.
#[derive(Clone, Copy, Debug)]
pub struct DoorLimits {
    /// Connections at once; more are closed at accept.
    pub max_connections: usize,
    /// A request head (or the next one on a kept-alive connection) must
    /// arrive within this.
    pub header_timeout: Duration,
}

/// Connections a door closed at accept because it was full (all doors).
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Serves the API on `listener` until `stop` resolves: HTTPS when the
/// app has a certificate.
pub async fn serve(listener: TcpListener, app: Arc<App>, stop: impl Future<Output = ()>) {
    let door = DoorSetup {
        limits: app.config.door_limits(),
        tls: app.tls.clone().map(tokio_rustls::TlsAcceptor::from),
    };
    serve_bounded(listener, app, door, stop, api::handle).await
}

/// Serves the admin API (`/v1/admin/…`, the dashboard) on `listener`.
pub async fn serve_admin(listener: TcpListener, app: Arc<App>, stop: impl Future<Output = ()>) {
    let door = DoorSetup::plain(app.config.door_limits());
    serve_bounded(listener, app, door, stop, api::handle_admin).await
}

/// One listener's bounds, and its TLS if it speaks HTTPS.
#[derive(Clone)]
pub struct DoorSetup {
    pub limits: DoorLimits,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl DoorSetup {
    pub fn plain(limits: DoorLimits) -> DoorSetup {
        DoorSetup { limits, tls: None }
    }
}

/// Serves `handle` on `listener` within `door`'s limits until `stop`
/// resolves (then stops accepting; connections under way finish on their
/// tasks). A TLS handshake must end within the header timeout.
pub async fn serve_bounded<H, Fut, B>(
    listener: TcpListener,
    app: Arc<App>,
    door: DoorSetup,
    stop: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(Arc<App>, Request<Incoming>, SocketAddr) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(stop);
    let limits = door.limits;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "door full: connection closed");
            continue;
        };
        let app = app.clone();
        let tls = door.tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| handle(app.clone(), req, peer));
            let result = match tls {
                None => serve_io(TokioIo::new(stream), svc, limits).await,
                Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve_io(TokioIo::new(tls), svc, limits).await,
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
}

type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/1.1 connection over `io` (plain or TLS).
async fn serve_io<I, S, B>(io: I, svc: S, limits: DoorLimits) -> Result<(), ConnError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<ConnError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<ConnError>,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, svc)
        .await
        .map_err(Into::into)
}

/// A server running on its own thread and runtime; dropped, it stops.
pub struct Background {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `app` on `listen` from a thread of its own (a multi-threaded
/// runtime with two workers), for embedding beside other parts: the
/// one-machine demo and the tests.
pub fn spawn_background(app: Arc<App>, listen: SocketAddr) -> std::io::Result<Background> {
    spawn_with(listen, "nearcast-fill-server", move |listener, stopped| {
        serve(listener, app, stopped)
    })
}

/// The admin API on `listen`, as `spawn_background`.
pub fn spawn_admin_background(app: Arc<App>, listen: SocketAddr) -> std::io::Result<Background> {
    spawn_with(listen, "nearcast-fill-admin", move |listener, stopped| {
        serve_admin(listener, app, stopped)
    })
}

/// Binds `listen` and runs `serve(listener, stopped)` on a thread named
/// `name` with its own two-worker runtime, until the returned value is
/// dropped.
pub fn spawn_with<F, S>(listen: SocketAddr, name: &str, serve: S) -> std::io::Result<Background>
where
    S: FnOnce(TcpListener, Pin<Box<dyn Future<Output = ()> + Send>>) -> F + Send + 'static,
    F: Future<Output = ()>,
{
    // Workers named for the server (`{name}-w`, cut to 15 bytes as Linux
    // keeps it), so its CPU time can be told apart in /proc.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{name}-w").chars().take(15).collect::<String>())
        .enable_all()
        .build()?;
    let listener = rt.block_on(TcpListener::bind(listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        rt.block_on(serve(
            listener,
            Box::pin(async {
                let _ = stopped.await;
            }),
        ))
    })?;
    Ok(Background { addr, _stop: stop })
}

//! The accept loop: one hyper HTTP/1.1 connection task per client.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api;
use crate::app::App;

/// Serves `app` on `listener` until `stop` resolves.
pub async fn serve(listener: TcpListener, app: Arc<App>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
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
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| api::handle(app.clone(), req, peer));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
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

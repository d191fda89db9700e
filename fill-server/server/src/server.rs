//! The accept loop: one hyper HTTP/1.1 connection task per client.

use std::net::SocketAddr;
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

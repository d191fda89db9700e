//! The agent's own admin listener: `/metrics` (fill progress for
//! Prometheus), `/status` (JSON for `control-agent status`) and
//! `POST /fill` (what `control-agent fill --now` sends).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use nearcast_common::prometheus::{Exposition, Kind};

use crate::agent::Agent;
use crate::window::local_seconds_of_day;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, agent: Arc<Agent>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let agent = agent.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(agent.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn respond(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The agent's `/metrics` page: the fill, the hardware, BGP.
pub fn metrics(agent: &Agent) -> String {
    let mut page = Exposition::new();
    agent.progress.render(&mut page, agent.inventory.titles().len());
    page.single(
        "nearcast_agent_answers_refused_total",
        Kind::Counter,
        "Fill-server answers refused: unsigned, forged, replayed or for another box.",
        agent.server.refusals().0,
    );
    page.append(&agent.hardware.render());
    if let Some(s) = &agent.bgp {
        let up = u8::from(s.state() == nearcast_bgp::SessionState::Established);
        page.single(
            "nearcast_agent_bgp_established",
            Kind::Gauge,
            "1 while the BGP session is up.",
            up,
        );
        page.single(
            "nearcast_agent_bgp_prefixes",
            Kind::Gauge,
            "Prefixes learned from the ISP's router.",
            s.table_len(),
        );
    }
    page.finish()
}

pub fn status(agent: &Agent) -> crate::progress::Status {
    let opens = agent.config.fill_window.until_open(local_seconds_of_day());
    let status = agent
        .progress
        .status(&agent.config.id, agent.inventory.titles(), opens.as_secs());
    crate::progress::Status {
        answer_refused: agent.server.refusals().1,
        ..status
    }
}

async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let json = "application/json";
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => respond(StatusCode::OK, "text/plain; version=0.0.4", metrics(&agent)),
        (&Method::GET, "/status") => respond(
            StatusCode::OK,
            json,
            serde_json::to_string(&status(&agent)).unwrap_or_default(),
        ),
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::POST, "/fill") => {
            // The run that answers this one finishes after the one in
            // progress, if any.
            let s = status(&agent);
            let wait_for = s.runs_completed + 1 + u64::from(s.fill.running);
            agent.request_fill();
            respond(
                StatusCode::ACCEPTED,
                json,
                serde_json::json!({ "runs_completed_at_least": wait_for }).to_string(),
            )
        }
        (_, "/fill") => respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only\n".into()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    })
}

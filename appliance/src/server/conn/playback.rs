//! What a connection learns of its player and tells it back: the
//! request's CMCD is tallied per session (`crate::sessions`) once the
//! request is known to be for content with a good token, and, when CMSD
//! is on, the socket's TCP state gives the throughput and round trip the
//! answer carries (`handler::Link`).

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use nearcast_common::cmcd::MAX_LEN;

use super::cx::Cx;
use crate::handler::{Decision, Link};
use crate::http::Request;
use crate::path::ContentPath;
use crate::sessions;

/// The link a request on `fd` came by, as the answer tells of it.
pub(super) fn link(fd: RawFd, peer: IpAddr, cx: &Cx) -> Link {
    let mut link = Link::from(peer);
    if !cx.handler.cmsd() {
        return link;
    }
    let cfg = &cx.shared.config;
    let open = cx.shared.open.load(Ordering::Relaxed) as f64;
    link.duress = open >= cfg.cmsd.duress_share * cfg.max_connections as f64;
    if let Some((etp, rtt)) = tcp_estimate(fd) {
        link.etp_kbps = Some(etp);
        link.rtt_ms = Some(rtt);
    }
    link
}

/// CTA-5006's suggested estimate: the congestion window over the round
/// trip (kbit/s), and the round trip itself (ms), from `TCP_INFO`.
fn tcp_estimate(fd: RawFd) -> Option<(u32, u32)> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len`
    // bytes into it and says how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let rtt_us = u64::from(info.tcpi_rtt.max(1));
    let window = u64::from(info.tcpi_snd_cwnd) * u64::from(info.tcpi_snd_mss);
    let kbps = window * 8_000 / rtt_us;
    Some((kbps.min(u64::from(u32::MAX)) as u32, (rtt_us / 1000) as u32))
}

/// What a decision on `req` tells: its CMCD once it is known to be for
/// content with a good token (a live object, or a title's file: then its
/// answer too).
pub(super) fn decided(req: &Request<'_>, decision: &Decision, cx: &mut Cx) {
    match decision {
        Decision::Reply(r) if r.content => {
            observe(req, cx);
            failed(req, r.status, cx);
        }
        Decision::Live(_) => observe(req, cx),
        _ => {}
    }
}

/// Counts a content answer with `status` that failed the viewer against
/// its title (the heartbeat's `failed_by_title`).
fn failed(req: &Request<'_>, status: crate::http::Status, cx: &mut Cx) {
    if !crate::metrics::playback::failed_viewer(status) {
        return;
    }
    if let Ok(path) = ContentPath::parse_with_token(req.path).0 {
        match cx.failed_titles.get_mut(path.title()) {
            Some(n) => *n += 1,
            None => {
                cx.failed_titles.insert(path.title().into(), 1);
            }
        }
    }
}

/// Tallies the request's CMCD, if it carries a well-formed report with a
/// session id. Cheap when it carries none: no parse at all.
fn observe(req: &Request<'_>, cx: &mut Cx) {
    let in_query = req.query.windows(5).any(|w| w == b"CMCD=");
    if !in_query && req.cmcd.iter().all(Option::is_none) {
        return;
    }
    let mut buf = [0u8; MAX_LEN];
    let Some(c) = sessions::read(req, &mut buf) else {
        return;
    };
    let Ok(path) = ContentPath::parse_with_token(req.path).0 else {
        return;
    };
    if let Some(seen) = cx.sessions.observe(&c, path.title(), cx.now) {
        cx.metrics.playback.seen(seen);
    }
}

//! The fill server's live plan (`common::live::LivePlan`: the site's boxes
//! and the origins by URL) resolved into the appliance's `LiveSetting`
//! (socket addresses), so the appliance never waits on DNS. A name that
//! does not resolve is left out (logged); the shield rule then runs over
//! the boxes that did.

use std::net::SocketAddr;

use nearcast_common::live::{LivePlan, LiveSetting, Peer, Upstreams};

/// The plan with every URL resolved.
pub async fn resolve(plan: &LivePlan) -> LiveSetting {
    let mut peers = Vec::with_capacity(plan.peers.len());
    for p in &plan.peers {
        if let Some(addr) = address(&p.url).await {
            peers.push(Peer { id: p.id.clone(), addr });
        }
    }
    let mut origins = Vec::with_capacity(plan.origins.len());
    for o in &plan.origins {
        origins.extend(address(o).await);
    }
    LiveSetting {
        upstreams: Upstreams {
            self_id: plan.self_id.clone(),
            peers,
            origins,
        },
        cache_mib: Some(plan.cache_mib).filter(|m| *m > 0),
    }
}

/// The first address of a base URL's host (port 80 or 443 by scheme when
/// none is given).
async fn address(url: &str) -> Option<SocketAddr> {
    let Some((host, port)) = host_port(url) else {
        tracing::warn!(url, "live upstream URL has no host");
        return None;
    };
    let found = tokio::net::lookup_host(format!("{host}:{port}")).await;
    match found {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            tracing::warn!(url, error = %e, "live upstream does not resolve; left out");
            None
        }
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let uri: hyper::Uri = url.parse().ok()?;
    // An IPv6 host keeps its brackets: `[::1]:443` is what resolves.
    let host = uri.host()?.to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use nearcast_common::live::PeerUrl;

    use super::*;

    #[tokio::test]
    async fn urls_become_addresses_and_bad_ones_are_left_out() {
        let plan = LivePlan {
            self_id: "a".into(),
            peers: vec![
                PeerUrl {
                    id: "a".into(),
                    url: "http://127.0.0.1:8080".into(),
                },
                PeerUrl {
                    id: "b".into(),
                    url: "http://localhost:8081/".into(),
                },
                PeerUrl {
                    id: "c".into(),
                    url: "http://no-such-host.invalid:8080".into(),
                },
                PeerUrl {
                    id: "d".into(),
                    url: "not a url".into(),
                },
            ],
            origins: vec!["https://[::1]/".into()],
            cache_mib: 64,
        };
        let s = resolve(&plan).await;
        let ids: Vec<&str> = s.upstreams.peers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(s.upstreams.peers[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.upstreams.peers[1].addr.port(), 8081);
        assert_eq!(s.upstreams.origins, vec!["[::1]:443".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.cache_mib, Some(64));
    }
}

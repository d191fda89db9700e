//! One BGP session with the ISP's router, kept up for as long as the
//! speaker runs: connect, exchange OPENs, hold and keepalive timers, take
//! in UPDATEs, and on any error send the NOTIFICATION that fits, forget
//! what the session taught (its routes are no longer announced to us),
//! and reconnect with backoff.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::rib::Rib;
use crate::update;
use crate::wire::{self, BgpError, Open, AFI_IPV4, AFI_IPV6, SAFI_UNICAST};

/// The router to peer with, and how.
#[derive(Clone, Debug)]
pub struct Neighbor {
    pub address: SocketAddr,
    /// Source address to connect from (the router checks it).
    pub local_address: Option<IpAddr>,
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// Proposed hold time, seconds (0 = no keepalives).
    pub hold_time: u16,
    /// More prefixes than this closes the session with a NOTIFICATION.
    pub max_prefixes: usize,
    /// TCP MD5 key shared with the router, if it asks for one.
    pub md5_password: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Idle,
    Connect,
    OpenSent,
    OpenConfirm,
    Established,
}

/// The speaker: its session state and learned table, shared with whoever
/// reports them.
pub struct Speaker {
    pub neighbor: Neighbor,
    state: Mutex<SessionState>,
    rib: Mutex<Rib>,
    last_error: Mutex<Option<String>>,
    /// Sessions that reached Established.
    pub sessions: AtomicU64,
    /// Woken whenever the table or the state changes.
    pub changed: Notify,
}

/// Why a session ended.
enum End {
    /// We found an error and sent its NOTIFICATION.
    Sent(BgpError),
    /// The peer sent a NOTIFICATION or closed.
    Peer(String),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const OPEN_HOLD: Duration = Duration::from_secs(240);

impl SessionState {
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Connect => "connect",
            SessionState::OpenSent => "opensent",
            SessionState::OpenConfirm => "openconfirm",
            SessionState::Established => "established",
        }
    }
}

impl Speaker {
    pub fn new(neighbor: Neighbor) -> Arc<Speaker> {
        Arc::new(Speaker {
            neighbor,
            state: Mutex::new(SessionState::Idle),
            rib: Mutex::new(Rib::default()),
            last_error: Mutex::new(None),
            sessions: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    pub fn state(&self) -> SessionState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the learned table.
    pub fn rib(&self) -> Rib {
        self.rib.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many prefixes the table holds (no copy).
    pub fn table_len(&self) -> usize {
        self.rib.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The table grouped by shared attributes (see `Rib::groups`).
    pub fn groups(&self) -> Vec<(crate::Route, Vec<nearcast_common::IpPrefix>)> {
        self.rib.lock().unwrap_or_else(|p| p.into_inner()).groups()
    }

    /// The session and table as the fill server takes them.
    pub fn report(&self) -> nearcast_common::control::Routes {
        nearcast_common::control::Routes {
            session: self.state().name().to_string(),
            groups: self
                .groups()
                .into_iter()
                .map(|(r, ps)| nearcast_common::control::RouteGroup {
                    as_path: r.as_path,
                    next_hop: r.next_hop,
                    communities: r.communities,
                    prefixes: ps.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_state(&self, s: SessionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
        self.changed.notify_waiters();
    }

    /// Keeps a session up until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            self.set_state(SessionState::Connect);
            let established_before = self.sessions.load(Ordering::Relaxed);
            let end = self.session().await;
            let reason = match end {
                End::Sent(e) => format!("sent {e}"),
                End::Peer(why) => why,
            };
            tracing::warn!(neighbor = %self.neighbor.address, %reason, "BGP session down");
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            self.rib.lock().unwrap_or_else(|p| p.into_inner()).clear();
            self.set_state(SessionState::Idle);
            if self.sessions.load(Ordering::Relaxed) > established_before {
                backoff = Duration::from_secs(1);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let n = &self.neighbor;
        let socket = if n.address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(local) = n.local_address {
            socket.bind(SocketAddr::new(local, 0))?;
        }
        if let Some(key) = &n.md5_password {
            use std::os::unix::io::AsRawFd;
            crate::md5::set(socket.as_raw_fd(), n.address, key.as_bytes())?;
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(n.address))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn session(&self) -> End {
        let mut stream = match self.connect().await {
            Ok(s) => s,
            Err(e) => return End::Peer(format!("connect: {e}")),
        };
        let n = &self.neighbor;
        let ours = Open {
            asn: n.local_as,
            hold_time: n.hold_time,
            router_id: n.router_id,
            families: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
            four_octet_as: true,
        };
        if let Err(e) = stream.write_all(&ours.encode()).await {
            return End::Peer(format!("send OPEN: {e}"));
        }
        self.set_state(SessionState::OpenSent);
        let mut buf: Vec<u8> = Vec::with_capacity(2 * wire::MAX_LEN);
        let mut chunk = vec![0u8; wire::MAX_LEN];
        let mut hold = OPEN_HOLD;
        let mut hold_deadline = Instant::now() + hold;
        let mut keepalive_every: Option<Duration> = None;
        let mut next_keepalive = Instant::now();
        let mut four_octet = false;
        loop {
            // Every complete message in the buffer first.
            loop {
                let (kind, body, len) = match wire::split(&buf) {
                    Ok(Some(f)) => (f.kind, f.body.to_vec(), f.len),
                    Ok(None) => break,
                    Err(e) => return self.fail(&mut stream, e).await,
                };
                buf.drain(..len);
                hold_deadline = Instant::now() + hold;
                let state = self.state();
                let fsm = |what: &str| BgpError::new(5, 0, &[], format!("{what} in state {state:?}"));
                match (kind, state) {
                    (wire::OPEN, SessionState::OpenSent) => {
                        let theirs = match Open::parse(&body) {
                            Ok(o) => o,
                            Err(e) => return self.fail(&mut stream, e).await,
                        };
                        if theirs.asn != n.peer_as {
                            let e = BgpError::open(2, format!("peer AS {} is not {}", theirs.asn, n.peer_as));
                            return self.fail(&mut stream, e).await;
                        }
                        four_octet = theirs.four_octet_as;
                        let agreed = theirs.hold_time.min(n.hold_time);
                        hold = if agreed == 0 {
                            Duration::from_secs(u64::MAX / 4)
                        } else {
                            Duration::from_secs(u64::from(agreed))
                        };
                        keepalive_every = (agreed > 0).then(|| Duration::from_secs(u64::from(agreed / 3).max(1)));
                        hold_deadline = Instant::now() + hold;
                        if let Err(e) = stream.write_all(&wire::keepalive()).await {
                            return End::Peer(format!("send KEEPALIVE: {e}"));
                        }
                        next_keepalive = Instant::now() + keepalive_every.unwrap_or(hold);
                        self.set_state(SessionState::OpenConfirm);
                    }
                    (wire::KEEPALIVE, SessionState::OpenConfirm) => {
                        self.sessions.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(neighbor = %n.address, "BGP session established");
                        self.set_state(SessionState::Established);
                    }
                    (wire::KEEPALIVE, SessionState::Established) => {}
                    (wire::UPDATE, SessionState::Established) => {
                        let u = match update::parse(&body, four_octet) {
                            Ok(u) => u,
                            Err(e) => return self.fail(&mut stream, e).await,
                        };
                        let size = self.rib.lock().unwrap_or_else(|p| p.into_inner()).size_after(&u);
                        if size > n.max_prefixes {
                            let mut data = AFI_IPV4.to_be_bytes().to_vec();
                            data.push(SAFI_UNICAST);
                            data.extend_from_slice(&(n.max_prefixes as u32).to_be_bytes());
                            let e = BgpError::new(6, 1, &data, format!("more than {} prefixes", n.max_prefixes));
                            return self.fail(&mut stream, e).await;
                        }
                        self.rib.lock().unwrap_or_else(|p| p.into_inner()).apply(&u);
                        self.changed.notify_waiters();
                    }
                    (wire::ROUTE_REFRESH, SessionState::Established) => {}
                    (wire::NOTIFICATION, _) => {
                        return End::Peer(format!("received {}", wire::describe_notification(&body)))
                    }
                    (wire::OPEN, _) => return self.fail(&mut stream, fsm("OPEN")).await,
                    (wire::UPDATE, _) => return self.fail(&mut stream, fsm("UPDATE")).await,
                    _ => return self.fail(&mut stream, fsm("unexpected message")).await,
                }
            }
            let wake = if keepalive_every.is_some() {
                hold_deadline.min(next_keepalive)
            } else {
                hold_deadline
            };
            tokio::select! {
                read = stream.read(&mut chunk) => match read {
                    Ok(0) => return End::Peer("peer closed the connection".into()),
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    Err(e) => return End::Peer(format!("read: {e}")),
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= hold_deadline {
                        return self.fail(&mut stream, BgpError::new(4, 0, &[], "hold timer expired")).await;
                    }
                    if let Some(every) = keepalive_every {
                        if now >= next_keepalive {
                            if let Err(e) = stream.write_all(&wire::keepalive()).await {
                                return End::Peer(format!("send KEEPALIVE: {e}"));
                            }
                            next_keepalive = now + every;
                        }
                    }
                }
            }
        }
    }

    /// Sends `e`'s NOTIFICATION and ends the session.
    async fn fail(&self, stream: &mut TcpStream, e: BgpError) -> End {
        let _ = stream.write_all(&e.encode()).await;
        let _ = stream.shutdown().await;
        End::Sent(e)
    }
}

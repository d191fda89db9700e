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

/// What the session loop does after a message.
enum Step {
    Continue,
    /// Send a KEEPALIVE (the answer to the peer's OPEN).
    SendKeepalive,
    /// Send this NOTIFICATION and end.
    Fail(BgpError),
    End(End),
}

/// What a timer check found.
enum Due {
    HoldExpired,
    Keepalive,
    Nothing,
}

/// One session's hold and keepalive timers and what the OPENs agreed.
struct Timers {
    hold: Duration,
    hold_deadline: Instant,
    keepalive_every: Option<Duration>,
    next_keepalive: Instant,
    /// The peer speaks four-octet AS numbers (RFC 6793).
    four_octet: bool,
}

impl Timers {
    /// Before the peer's OPEN: the large hold time RFC 4271 suggests.
    fn opening(now: Instant) -> Timers {
        Timers {
            hold: OPEN_HOLD,
            hold_deadline: now + OPEN_HOLD,
            keepalive_every: None,
            next_keepalive: now,
            four_octet: false,
        }
    }

    /// A message arrived: the hold timer restarts.
    fn heard(&mut self, now: Instant) {
        self.hold_deadline = now + self.hold;
    }

    /// The OPENs agreed on hold time `agreed` seconds (0: no timers), and
    /// the first KEEPALIVE goes out now.
    fn agree(&mut self, agreed: u16, now: Instant) {
        self.hold = if agreed == 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(u64::from(agreed))
        };
        self.keepalive_every = (agreed > 0).then(|| Duration::from_secs(u64::from(agreed / 3).max(1)));
        self.hold_deadline = now + self.hold;
        self.next_keepalive = now + self.keepalive_every.unwrap_or(self.hold);
    }

    /// When the loop must wake even if nothing arrives.
    fn wake(&self) -> Instant {
        match self.keepalive_every {
            Some(_) => self.hold_deadline.min(self.next_keepalive),
            None => self.hold_deadline,
        }
    }

    /// What is due at `now`; a keepalive found due is rescheduled.
    fn due(&mut self, now: Instant) -> Due {
        if now >= self.hold_deadline {
            return Due::HoldExpired;
        }
        match self.keepalive_every {
            Some(every) if now >= self.next_keepalive => {
                self.next_keepalive = now + every;
                Due::Keepalive
            }
            _ => Due::Nothing,
        }
    }
}

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

    /// The OPEN we send: both unicast families, four-octet AS numbers.
    fn our_open(&self) -> Open {
        let n = &self.neighbor;
        Open {
            asn: n.local_as,
            hold_time: n.hold_time,
            router_id: n.router_id,
            families: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
            four_octet_as: true,
        }
    }

    /// One session: its socket I/O and timers; what each message means is
    /// decided by `on_message`.
    async fn session(&self) -> End {
        let mut stream = match self.connect().await {
            Ok(s) => s,
            Err(e) => return End::Peer(format!("connect: {e}")),
        };
        if let Err(e) = stream.write_all(&self.our_open().encode()).await {
            return End::Peer(format!("send OPEN: {e}"));
        }
        self.set_state(SessionState::OpenSent);
        let mut buf: Vec<u8> = Vec::with_capacity(2 * wire::MAX_LEN);
        let mut chunk = vec![0u8; wire::MAX_LEN];
        let mut t = Timers::opening(Instant::now());
        loop {
            // Every complete message in the buffer first.
            loop {
                let (kind, body, len) = match wire::split(&buf) {
                    Ok(Some(f)) => (f.kind, f.body.to_vec(), f.len),
                    Ok(None) => break,
                    Err(e) => return self.fail(&mut stream, e).await,
                };
                buf.drain(..len);
                t.heard(Instant::now());
                match self.on_message(kind, &body, &mut t) {
                    Step::Continue => {}
                    Step::SendKeepalive => {
                        if let Err(e) = stream.write_all(&wire::keepalive()).await {
                            return End::Peer(format!("send KEEPALIVE: {e}"));
                        }
                    }
                    Step::Fail(e) => return self.fail(&mut stream, e).await,
                    Step::End(end) => return end,
                }
            }
            tokio::select! {
                read = stream.read(&mut chunk) => match read {
                    Ok(0) => return End::Peer("peer closed the connection".into()),
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    Err(e) => return End::Peer(format!("read: {e}")),
                },
                _ = tokio::time::sleep_until(t.wake()) => match t.due(Instant::now()) {
                    Due::HoldExpired => {
                        return self.fail(&mut stream, BgpError::new(4, 0, &[], "hold timer expired")).await;
                    }
                    Due::Keepalive => {
                        if let Err(e) = stream.write_all(&wire::keepalive()).await {
                            return End::Peer(format!("send KEEPALIVE: {e}"));
                        }
                    }
                    Due::Nothing => {}
                },
            }
        }
    }

    /// What one received message does to the session (RFC 4271 §8): the
    /// state and timers change here; the caller does the I/O.
    fn on_message(&self, kind: u8, body: &[u8], t: &mut Timers) -> Step {
        let n = &self.neighbor;
        let state = self.state();
        let fsm = |what: &str| Step::Fail(BgpError::new(5, 0, &[], format!("{what} in state {state:?}")));
        match (kind, state) {
            (wire::OPEN, SessionState::OpenSent) => {
                let theirs = match Open::parse(body) {
                    Ok(o) => o,
                    Err(e) => return Step::Fail(e),
                };
                if theirs.asn != n.peer_as {
                    return Step::Fail(BgpError::open(
                        2,
                        format!("peer AS {} is not {}", theirs.asn, n.peer_as),
                    ));
                }
                t.four_octet = theirs.four_octet_as;
                t.agree(theirs.hold_time.min(n.hold_time), Instant::now());
                self.set_state(SessionState::OpenConfirm);
                Step::SendKeepalive
            }
            (wire::KEEPALIVE, SessionState::OpenConfirm) => {
                self.sessions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(neighbor = %n.address, "BGP session established");
                self.set_state(SessionState::Established);
                Step::Continue
            }
            (wire::KEEPALIVE | wire::ROUTE_REFRESH, SessionState::Established) => Step::Continue,
            (wire::UPDATE, SessionState::Established) => self.on_update(body, t.four_octet),
            (wire::NOTIFICATION, _) => Step::End(End::Peer(format!("received {}", wire::describe_notification(body)))),
            (wire::OPEN, _) => fsm("OPEN"),
            (wire::UPDATE, _) => fsm("UPDATE"),
            _ => fsm("unexpected message"),
        }
    }

    /// An UPDATE applied to the table, unless it would take the table past
    /// the neighbor's prefix limit (RFC 4486 subcode 1).
    fn on_update(&self, body: &[u8], four_octet: bool) -> Step {
        let u = match update::parse(body, four_octet) {
            Ok(u) => u,
            Err(e) => return Step::Fail(e),
        };
        let max = self.neighbor.max_prefixes;
        let mut rib = self.rib.lock().unwrap_or_else(|p| p.into_inner());
        if rib.size_after(&u) > max {
            let mut data = AFI_IPV4.to_be_bytes().to_vec();
            data.push(SAFI_UNICAST);
            data.extend_from_slice(&(max as u32).to_be_bytes());
            return Step::Fail(BgpError::new(6, 1, &data, format!("more than {max} prefixes")));
        }
        rib.apply(&u);
        drop(rib);
        self.changed.notify_waiters();
        Step::Continue
    }

    /// Sends `e`'s NOTIFICATION and ends the session.
    async fn fail(&self, stream: &mut TcpStream, e: BgpError) -> End {
        let _ = stream.write_all(&e.encode()).await;
        let _ = stream.shutdown().await;
        End::Sent(e)
    }
}

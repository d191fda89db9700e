//! A TCP proxy in front of a box that can be frozen: from `freeze` on it
//! forwards nothing more, in either direction, on any connection, old or
//! new, and closes none of them, as a box that hangs mid-body looks to
//! its players. It can also cut one connection once, after it carried a
//! number of bytes towards the client (a download cut mid-way), and counts
//! those bytes. Its threads end when either side closes or the proxy is
//! dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FreezingProxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    cut: Arc<Cut>,
}

/// The one cut, and the bytes sent towards clients.
#[derive(Default)]
struct Cut {
    /// Cut the first connection to carry this many bytes to its client (0: never).
    after: AtomicU64,
    done: AtomicBool,
    downstream: AtomicU64,
}

impl FreezingProxy {
    /// Listens on `host` (an address of its own, port chosen).
    pub fn listen(host: &str) -> FreezingProxy {
        let listener = TcpListener::bind((host, 0)).expect("proxy listens");
        let addr = listener.local_addr().expect("proxy address");
        let p = FreezingProxy {
            addr,
            target: Arc::default(),
            frozen: Arc::default(),
            stop: Arc::default(),
            cut: Arc::default(),
        };
        let (target, frozen, stop, cut) = (p.target.clone(), p.frozen.clone(), p.stop.clone(), p.cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let upstream = match *target.lock().unwrap() {
                    Some(t) => TcpStream::connect(t),
                    None => continue,
                };
                let Ok(upstream) = upstream else { continue };
                for (from, to, down) in [(&client, &upstream, false), (&upstream, &client, true)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (frozen, stop) = (frozen.clone(), stop.clone());
                    let cut = down.then(|| cut.clone());
                    std::thread::spawn(move || pump(from, to, &frozen, &stop, cut.as_deref()));
                }
            }
        });
        p
    }

    /// Where it forwards to (the box, once it listens).
    pub fn forward_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = Some(target);
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Relaxed);
    }

    /// Cuts (closes both ways) the first connection that carries `bytes`
    /// towards its client; once.
    pub fn cut_once_after(&self, bytes: u64) {
        self.cut.after.store(bytes, Ordering::Relaxed);
    }

    /// Whether the cut happened.
    pub fn was_cut(&self) -> bool {
        self.cut.done.load(Ordering::Relaxed)
    }

    /// Bytes forwarded towards clients, all connections.
    pub fn downstream_bytes(&self) -> u64 {
        self.cut.downstream.load(Ordering::Relaxed)
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool, cut: Option<&Cut>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 * 1024];
    let mut carried = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if frozen.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(c) = cut {
                    c.downstream.fetch_add(n as u64, Ordering::Relaxed);
                    carried += n as u64;
                    let after = c.after.load(Ordering::Relaxed);
                    if after > 0 && carried >= after && !c.done.swap(true, Ordering::Relaxed) {
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

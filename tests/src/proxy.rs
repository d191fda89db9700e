//! A TCP proxy in front of a box that can be frozen: from `freeze` on it
//! forwards nothing more, in either direction, on any connection, old or
//! new, and closes none of them, as a box that hangs mid-body looks to
//! its players. Its threads end when either side closes or the proxy is
//! dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FreezingProxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
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
        };
        let (target, frozen, stop) = (p.target.clone(), p.frozen.clone(), p.stop.clone());
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
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (frozen, stop) = (frozen.clone(), stop.clone());
                    std::thread::spawn(move || pump(from, to, &frozen, &stop));
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
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 * 1024];
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
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

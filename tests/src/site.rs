//! A static web site on loopback for pages that need a real origin:
//! Encrypted Media Extensions are refused to `file://` pages (an opaque
//! origin), and `http://127.0.0.1` is a secure context. Serves the files
//! under one folder to GET requests, one connection at a time, until
//! dropped; a path that leaves the folder is a 404.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Site {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Site {
    /// Serves `root` on an ephemeral loopback port.
    pub fn serve(root: &Path) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let (root, flag) = (root.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    answer(&root, c);
                }
            }
        });
        Site {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of `path` (relative to the folder served).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

fn answer(root: &Path, mut c: TcpStream) {
    let mut line = String::new();
    let mut reader = BufReader::new(&c);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // The rest of the head.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/");
    let file: PathBuf = root.join(path.trim_start_matches('/'));
    let inside = !path.split('/').any(|s| s == "..");
    let (status, body) = match std::fs::read(&file) {
        Ok(b) if inside => ("200 OK", b),
        _ => ("404 Not Found", Vec::new()),
    };
    let ctype = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        _ => "application/octet-stream",
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = c.write_all(head.as_bytes()).and_then(|_| c.write_all(&body));
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

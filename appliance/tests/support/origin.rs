//! A scripted upstream for the live tests: a real HTTP/1.1 listener on
//! loopback that answers each request as the test's script says (a body in
//! timed pieces, a status, a cut, silence) and counts what it was asked,
//! so a test can see exactly how many requests reached the origin. The
//! real origin (the fill server's live door with ffmpeg) is played through
//! in the end-to-end tests; this one misbehaves on purpose.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to answer one request (`@T` in a body becomes the request's token).
#[derive(Clone)]
pub enum Script {
    /// After `delay`, a 200 with these pieces, `gap` apart: chunked, or
    /// with a Content-Length when `length` is set.
    Body {
        delay: Duration,
        pieces: Vec<Vec<u8>>,
        gap: Duration,
        length: bool,
        cache_control: &'static str,
    },
    /// This status with a short body.
    Status(u16),
    /// A head promising `promised` bytes, `sent` of them, then the close.
    Cut { promised: usize, sent: usize },
    /// Chunked: these pieces, then the close without the last chunk.
    CutChunked(Vec<Vec<u8>>),
    /// Accept, read the request, never answer.
    Silent,
}

type Handler = dyn Fn(&str) -> Script + Send + Sync;

pub struct Origin {
    pub addr: SocketAddr,
    /// Requests by path and query (the token taken out), and the tokens.
    seen: Arc<Mutex<HashMap<String, usize>>>,
    tokens: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<Arc<Handler>>>,
}

impl Origin {
    pub fn start(script: impl Fn(&str) -> Script + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = Origin {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            tokens: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(script))),
        };
        let (seen, tokens, script) = (origin.seen.clone(), origin.tokens.clone(), origin.script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (seen, tokens, script) = (seen.clone(), tokens.clone(), script.clone());
                std::thread::spawn(move || serve(conn, &seen, &tokens, &script));
            }
        });
        origin
    }

    /// Replaces the script (an upstream that starts failing, say).
    pub fn set_script(&self, script: impl Fn(&str) -> Script + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// How many requests asked for `target` (path and query, no token).
    pub fn hits(&self, target: &str) -> usize {
        self.seen.lock().unwrap().get(target).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }

    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }
}

fn serve(
    conn: TcpStream,
    seen: &Mutex<HashMap<String, usize>>,
    tokens: &Mutex<Vec<String>>,
    script: &Mutex<Arc<Handler>>,
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut kept = Vec::new();
    let mut token = String::new();
    for p in query.split('&').filter(|p| !p.is_empty()) {
        match p.strip_prefix("token=") {
            Some(t) => {
                tokens.lock().unwrap().push(t.to_string());
                token = t.to_string();
            }
            None => kept.push(p),
        }
    }
    let key = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    *seen.lock().unwrap().entry(key.clone()).or_default() += 1;
    let handler = script.lock().unwrap().clone();
    let _ = answer(conn, with_token(handler(&key), &token));
}

/// Writes the request's token where a body says `@T`, as the real origin
/// writes it into playlist URIs.
fn with_token(script: Script, token: &str) -> Script {
    match script {
        Script::Body {
            delay,
            pieces,
            gap,
            length,
            cache_control,
        } => Script::Body {
            pieces: pieces
                .into_iter()
                .map(|p| match String::from_utf8(p) {
                    Ok(text) => text.replace("@T", token).into_bytes(),
                    Err(binary) => binary.into_bytes(),
                })
                .collect(),
            delay,
            gap,
            length,
            cache_control,
        },
        other => other,
    }
}

fn answer(mut c: TcpStream, script: Script) -> std::io::Result<()> {
    match script {
        Script::Body {
            delay,
            pieces,
            gap,
            length,
            cache_control,
        } => {
            std::thread::sleep(delay);
            let total: usize = pieces.iter().map(Vec::len).sum();
            let framing = if length {
                format!("Content-Length: {total}")
            } else {
                "Transfer-Encoding: chunked".to_string()
            };
            write!(c, "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nCache-Control: {cache_control}\r\n{framing}\r\n\r\n")?;
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(gap);
                }
                if length {
                    c.write_all(p)?;
                } else {
                    write!(c, "{:x}\r\n", p.len())?;
                    c.write_all(p)?;
                    c.write_all(b"\r\n")?;
                }
                c.flush()?;
            }
            if !length {
                c.write_all(b"0\r\n\r\n")?;
            }
        }
        Script::Status(code) => {
            write!(
                c,
                "HTTP/1.1 {code} Scripted\r\nContent-Length: 3\r\nCache-Control: no-store\r\n\r\nno\n"
            )?;
        }
        Script::Cut { promised, sent } => {
            write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n")?;
            c.write_all(&vec![7u8; sent])?;
        }
        Script::CutChunked(pieces) => {
            write!(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            for p in pieces {
                write!(c, "{:x}\r\n", p.len())?;
                c.write_all(&p)?;
                c.write_all(b"\r\n")?;
            }
        }
        Script::Silent => std::thread::sleep(Duration::from_secs(30)),
    }
    c.flush()
}

//! A kept-alive HTTP/1.1 connection for the simulated fleet: one request
//! at a time, the answer's status and body (Content-Length framed, as the
//! fill server answers).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Conn {
    addr: SocketAddr,
    io: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, io: None }
    }

    /// Sends one request; (status, body). A broken connection is opened
    /// again once.
    pub async fn call(&mut self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: fill\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        for attempt in 0..2 {
            if self.io.is_none() {
                let s = TcpStream::connect(self.addr).await?;
                s.set_nodelay(true)?;
                self.io = Some(BufReader::new(s));
            }
            match self.exchange(head.as_bytes(), body).await {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => self.io = None,
            }
        }
        unreachable!("two attempts return")
    }

    async fn exchange(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let io = self.io.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        io.get_mut().write_all(head).await?;
        io.get_mut().write_all(body).await?;
        let mut line = String::new();
        io.read_line(&mut line).await?;
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
        let mut length = 0;
        loop {
            line.clear();
            io.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        io.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

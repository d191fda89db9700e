//! The live origin every server under test pulls from: the stack's live
//! door (the fill server's, as in production), fed with ffmpeg's LL-DASH
//! output encoded ahead and pushed at an encoder's pace, behind the
//! counting proxy. Each run gets an event of its own, so no server starts
//! with another's warm objects upstream.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use nearcast::stack::{Ports, Stack};
use nearcast_common::{unix_now, Grant, SigningKey};
use nearcast_live_bench::push::{self, Sent, Stream, SECRET};

use crate::proxy::Proxy;

pub struct Origin {
    pub stack: Stack,
    pub door: SocketAddr,
    pub proxy: Proxy,
    key: SigningKey,
    streams: Arc<Vec<Stream>>,
}

/// One event being pushed.
pub struct Feed {
    pub token: String,
    pub sent: Arc<Sent>,
    pushers: Vec<JoinHandle<()>>,
}

impl Origin {
    /// Encodes `secs` of a 360p rung (H.264 800 kbit/s + AAC) and starts
    /// the stack.
    pub fn start(work: &Path, secs: u32) -> Origin {
        let src = work.join("encoded");
        std::fs::create_dir_all(&src).unwrap();
        push::encode_rung(&src, secs, "640x360", 800);
        let streams = Arc::new((0..2).map(|n| push::fragments(&src, n)).collect());
        let stack = Stack::start(&work.join("stack"), Ports::EPHEMERAL, 30).unwrap();
        let door: SocketAddr = stack.live_url.trim_start_matches("http://").parse().unwrap();
        let key = SigningKey::from_hex(&stack.config.token_key_id, &stack.config.token_key_hex).unwrap();
        Origin {
            proxy: Proxy::start(door),
            stack,
            door,
            key,
            streams,
        }
    }

    /// The key every server checks tokens with.
    pub fn key_hex(&self) -> (&str, &str) {
        (&self.stack.config.token_key_id, &self.stack.config.token_key_hex)
    }

    /// Creates `event` and starts pushing it in real time.
    pub fn feed(&self, event: &str) -> Feed {
        self.stack
            .admin(
                "POST",
                "/v1/admin/live",
                &format!(r#"{{"name":"{event}","secret":"{SECRET}"}}"#),
            )
            .unwrap();
        for (n, (init, _)) in self.streams.iter().enumerate() {
            push::put_init(self.door, event, n as u32, init);
        }
        let sent: Arc<Sent> = Arc::new(Mutex::new(Default::default()));
        let start = Instant::now();
        let pushers = (0..self.streams.len())
            .map(|n| {
                let (streams, sent, door, event) = (self.streams.clone(), sent.clone(), self.door, event.to_string());
                std::thread::spawn(move || push::push_stream(door, &event, n as u32, &streams[n].1, start, &sent))
            })
            .collect();
        let token = self.key.sign(
            &format!("/l/{event}/"),
            &Grant {
                expires: unix_now() + 3600,
                client_prefix: None,
            },
        );
        Feed { token, sent, pushers }
    }
}

impl Feed {
    /// Waits for the push to end (the content is as long as a run).
    pub fn finish(self) {
        for p in self.pushers {
            let _ = p.join();
        }
    }
}

//! The connection's TLS session: records in and out of rustls, and the
//! handover of the session to the kernel (`server/ktls.rs`) once the
//! handshake is over.

use std::io::Read;

use super::{Conn, Cx};
use crate::server::ktls::{self, Offload, RecordEdge};

/// Where a TLS connection stands with the kernel.
#[derive(Debug, Default)]
pub(super) struct Handover {
    /// Record boundaries of what was received (the handover waits for one).
    edge: RecordEdge,
    /// The mode is decided (and counted).
    settled: bool,
    /// The kernel has the session: the socket carries plaintext.
    pub(super) kernel: bool,
}

impl Conn {
    /// Once the handshake is over, hands the session to the kernel if this
    /// worker may and the connection is between records with nothing left
    /// to send; counts the mode it ends up in. False: the kernel refused
    /// after the keys left rustls, and the connection must close.
    pub(super) fn settle_tls(&mut self, cx: &mut Cx) -> bool {
        let Some(tls) = self.tls.as_ref() else {
            return true;
        };
        if self.handover.settled || tls.is_handshaking() {
            return true;
        }
        if cx.ktls && (!self.handover.edge.at_edge() || self.has_output() || tls.wants_write()) {
            return true; // not yet: at a later pass
        }
        self.handover.settled = true;
        if !cx.ktls {
            cx.metrics.tls_mode(false);
            return true;
        }
        let Some(tls) = self.tls.take() else {
            return true;
        };
        match ktls::offload(self.fd(), tls) {
            Offload::Done => {
                self.handover.kernel = true;
                cx.metrics.tls_mode(true);
                true
            }
            Offload::Stay(tls) => {
                self.tls = Some(tls);
                cx.metrics.tls_mode(false);
                true
            }
            Offload::Broken(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "the kernel refused the TLS keys; closing");
                cx.metrics.tls_error();
                false
            }
        }
    }

    /// Moves whatever rustls wants to send (handshake, alerts, records)
    /// into `out`.
    pub(super) fn queue_tls_output(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut self.out).is_err() {
                    break;
                }
            }
        }
    }

    /// Feeds received TLS bytes to rustls and moves the plaintext into
    /// `inbuf`. An error means the session is broken (alerts are queued).
    pub(super) fn feed_tls(&mut self, mut data: &[u8]) -> Result<(), rustls::Error> {
        let Some(tls) = self.tls.as_mut() else {
            self.inbuf.extend_from_slice(data);
            return Ok(());
        };
        self.handover.edge.feed(data);
        while !data.is_empty() {
            if tls.read_tls(&mut data).is_err() {
                return Err(rustls::Error::General("TLS input buffer full".into()));
            }
            let state = match tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    self.queue_tls_output();
                    return Err(e);
                }
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = self.inbuf.len();
                self.inbuf.resize(start + n, 0);
                let got = tls.reader().read(&mut self.inbuf[start..]).unwrap_or(0);
                self.inbuf.truncate(start + got);
            }
        }
        Ok(())
    }
}

//! The connection's TLS session: records in and out of rustls.

use std::io::Read;

use super::Conn;

impl Conn {
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

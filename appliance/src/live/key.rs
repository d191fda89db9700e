//! The identity of a live object: its decoded path and the query
//! arguments that change the upstream's answer (the LL-HLS blocking
//! reload and delta update arguments), in a fixed order. Everything else
//! in the query is dropped, the token included: every client's copy of an
//! object is the same bytes (playlists get the client's token written in
//! on the way out, see `rewrite`), and random arguments cannot split one
//! object into many upstream fetches.

use std::fmt::Write;

use crate::path::{query_param, ContentPath};

/// The arguments that are part of the key, in key order.
const ARGS: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0} must be a decimal number")]
    NotNumber(&'static str),
    #[error("_HLS_skip must be YES or v2")]
    BadSkip,
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
}

/// What kind of object a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A playlist or MPD: small, short-lived, carries tokens; answered
    /// whole once it has arrived.
    Playlist,
    /// An init segment, segment or part: streamed as it arrives.
    Media,
}

/// A live object's cache key, e.g.
/// `/l/match/v1/index.m3u8?_HLS_msn=12&_HLS_part=3`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveKey {
    key: Box<str>,
    /// Length of the event name after `/l/`.
    event_len: usize,
    blocking: bool,
    kind: Kind,
}

impl LiveKey {
    /// The key of a request for `path` (a `/l/` path) with `query`.
    pub fn new(path: &ContentPath, query: &[u8]) -> Result<Self, KeyError> {
        let mut key = String::with_capacity(path.url_path().len() + 40);
        key.push_str(path.url_path());
        let mut buf = [0u8; 64];
        let mut sep = '?';
        let mut msn = false;
        for name in ARGS {
            let Some(value) = query_param(query, name, &mut buf) else {
                continue;
            };
            let ok = match name {
                "_HLS_skip" => matches!(value, "YES" | "v2"),
                _ => !value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit()),
            };
            match (ok, name) {
                (true, _) => {}
                (false, "_HLS_skip") => return Err(KeyError::BadSkip),
                (false, n) => {
                    return Err(KeyError::NotNumber(if n == "_HLS_msn" {
                        "_HLS_msn"
                    } else {
                        "_HLS_part"
                    }))
                }
            }
            if name == "_HLS_part" && !msn {
                return Err(KeyError::PartWithoutMsn);
            }
            msn |= name == "_HLS_msn";
            let _ = write!(key, "{sep}{name}={value}");
            sep = '&';
        }
        let file = path.file_name();
        let kind = if file.ends_with(".m3u8") || file.ends_with(".mpd") {
            Kind::Playlist
        } else {
            Kind::Media
        };
        Ok(LiveKey {
            event_len: path.title().len(),
            key: key.into(),
            blocking: msn,
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The event's name.
    pub fn event(&self) -> &str {
        &self.key[3..3 + self.event_len]
    }

    /// A blocking playlist reload: the upstream holds it until the part
    /// exists, so its first byte may take seconds.
    pub fn blocking(&self) -> bool {
        self.blocking
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Bytes the key costs in the cache besides its body.
    pub fn overhead(&self) -> u64 {
        self.key.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, query: &str) -> Result<LiveKey, KeyError> {
        LiveKey::new(&ContentPath::parse(path.as_bytes()).unwrap(), query.as_bytes())
    }

    #[test]
    fn keeps_only_the_arguments_that_change_the_answer() {
        let k = key("/l/match/v1/index.m3u8", "token=abc&_HLS_part=3&x=1&_HLS_msn=12").unwrap();
        assert_eq!(k.as_str(), "/l/match/v1/index.m3u8?_HLS_msn=12&_HLS_part=3");
        assert_eq!((k.event(), k.blocking(), k.kind()), ("match", true, Kind::Playlist));
        let k = key("/l/match/v1/12.3.m4s", "token=abc&_HLS_msn=4").unwrap();
        assert_eq!(k.kind(), Kind::Media);
        let same = key("/l/match/v1/index.m3u8", "_HLS_msn=12&_HLS_part=3&token=other").unwrap();
        assert_eq!(same.as_str(), "/l/match/v1/index.m3u8?_HLS_msn=12&_HLS_part=3");
        let k = key("/l/m/manifest.mpd", "").unwrap();
        assert_eq!(
            (k.as_str(), k.blocking(), k.kind()),
            ("/l/m/manifest.mpd", false, Kind::Playlist)
        );
        let k = key("/l/m/v/index.m3u8", "_HLS_skip=YES").unwrap();
        assert_eq!(k.as_str(), "/l/m/v/index.m3u8?_HLS_skip=YES");
    }

    #[test]
    fn refuses_bad_arguments() {
        assert_eq!(
            key("/l/m/v/index.m3u8", "_HLS_msn=1x").unwrap_err(),
            KeyError::NotNumber("_HLS_msn")
        );
        assert_eq!(
            key("/l/m/v/index.m3u8", "_HLS_msn=").unwrap_err(),
            KeyError::NotNumber("_HLS_msn")
        );
        assert_eq!(
            key("/l/m/v/index.m3u8", "_HLS_msn=1&_HLS_part=-1").unwrap_err(),
            KeyError::NotNumber("_HLS_part")
        );
        assert_eq!(
            key("/l/m/v/index.m3u8", "_HLS_part=1").unwrap_err(),
            KeyError::PartWithoutMsn
        );
        assert_eq!(key("/l/m/v/index.m3u8", "_HLS_skip=no").unwrap_err(), KeyError::BadSkip);
        let huge = format!("_HLS_msn={}", "9".repeat(30));
        assert!(key("/l/m/v/index.m3u8", &huge).is_err());
    }
}

//! Who may have which keys: the streaming service's entitlement (a JWT
//! from its account system) and the play session `/v1/play` opens from
//! one (our own HS256 token, so the license URL in a rewritten manifest
//! works without the player adding a header).
//!
//! Entitlement claims:
//!
//! ```json
//! {"sub": "<subject>", "exp": <unix s>, "titles": ["<title>", …] | ["*"],
//!  "max_streams": <n, optional>, "jti": "<token id, optional>",
//!  "device": "<device id, optional>", "max_devices": <n, optional>}
//! ```
//!
//! `device` is the device the account system issued the token to; with
//! `max_devices`, a subject's devices are counted too (over a longer
//! window than streams, `Config::device_window_secs`).
//!
//! A session carries the entitlement's subject, limit and expiry for one
//! title, and a random session id the stream limit counts.

use serde::{Deserialize, Serialize};

/// What an entitlement grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    pub sub: String,
    pub exp: u64,
    /// Titles it covers; `*` is every title. None: no title.
    #[serde(default)]
    pub titles: Vec<String>,
    /// Concurrent streams of the subject; None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
    /// The token's id (RFC 7519 `jti`): the stream a bearer of this
    /// entitlement counts as when it is used without a play session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u32>,
}

impl Entitlement {
    pub fn covers(&self, title: &str) -> bool {
        self.titles.iter().any(|t| t == "*" || t == title)
    }
}

/// A play session (the claims of the token `/v1/play` issues).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    pub exp: u64,
    pub title: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u32>,
}

/// A verified right to a title's keys, whichever token it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub sub: String,
    /// The stream it counts as.
    pub stream: String,
    pub max_streams: Option<u32>,
    /// `None`: the titles of `titles`; `Some(t)`: only `t`.
    pub title: Option<String>,
    pub titles: Vec<String>,
    pub device: Option<String>,
    pub max_devices: Option<u32>,
}

impl Grant {
    pub fn covers(&self, title: &str) -> bool {
        match &self.title {
            Some(t) => t == title,
            None => self.titles.iter().any(|t| t == "*" || t == title),
        }
    }
}

impl From<Session> for Grant {
    fn from(s: Session) -> Grant {
        Grant {
            sub: s.sub,
            stream: s.sid,
            max_streams: s.max_streams,
            title: Some(s.title),
            titles: Vec::new(),
            device: s.device,
            max_devices: s.max_devices,
        }
    }
}

impl Entitlement {
    /// The grant of a bearer of this entitlement; `token` names the
    /// stream when the entitlement has no `jti`.
    pub fn grant(self, token: &str) -> Grant {
        let stream = self
            .jti
            .clone()
            .unwrap_or_else(|| format!("t:{}", nearcast_common::sha256_hex(token.as_bytes())));
        Grant {
            sub: self.sub,
            stream,
            max_streams: self.max_streams,
            title: None,
            titles: self.titles,
            device: self.device,
            max_devices: self.max_devices,
        }
    }
}

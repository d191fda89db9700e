//! The `[live]` section of the appliance config: the pull-through cache's
//! size and bounds, its upstream timeouts and the upstream lists (which
//! the agent replaces at run time through the admin API).

use std::time::Duration;

use serde::Deserialize;

use super::fetch::{Limits, Ttls};
use super::route::Upstreams;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// The live cache's size (bodies and entries of every worker together).
    pub cache_mib: u64,
    /// The largest live object; a bigger answer fails (a segment at the
    /// origin is at most 64 MiB).
    pub max_object_mib: u64,
    pub connect_ms: u64,
    /// From the request sent upstream to its head.
    pub first_byte_ms: u64,
    /// The same for a blocking playlist reload (the origin holds one for
    /// up to three segment durations).
    pub blocking_ms: u64,
    /// Longest upstream silence inside a body.
    pub idle_ms: u64,
    /// Playlists are reused at most this long (upstream's `max-age` is in
    /// whole seconds; a part is about half of one).
    pub playlist_ttl_ms: u64,
    /// A blocking reload's answer is reused this long (it lists the part it
    /// was asked for however late it is read; viewers that lag behind ask
    /// for the same ones).
    pub blocking_ttl_ms: u64,
    /// Media without a `max-age` are kept this long.
    pub media_ttl_ms: u64,
    /// 404, 400 and 410 answers are kept this long.
    pub negative_ttl_ms: u64,
    /// An expired playlist may be answered this long past its expiry when
    /// every upstream fails (`stale-if-error`).
    pub stale_if_error_ms: u64,
    /// Upstream connections one worker holds open at once; more fetches
    /// wait for one to end.
    pub max_upstream_per_worker: usize,
    /// Clients reading one object at once; more get 503.
    pub max_readers_per_object: usize,
    /// The site's boxes and the origins (`[live.upstreams]`).
    pub upstreams: Upstreams,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            cache_mib: 256,
            max_object_mib: 64,
            connect_ms: 1000,
            first_byte_ms: 3000,
            blocking_ms: 10_000,
            idle_ms: 5000,
            playlist_ttl_ms: 500,
            blocking_ttl_ms: 6000,
            media_ttl_ms: 60_000,
            negative_ttl_ms: 250,
            stale_if_error_ms: 6000,
            max_upstream_per_worker: 256,
            max_readers_per_object: 50_000,
            upstreams: Upstreams::default(),
        }
    }
}

impl LiveConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            connect: Duration::from_millis(self.connect_ms),
            first_byte: Duration::from_millis(self.first_byte_ms),
            blocking: Duration::from_millis(self.blocking_ms),
            idle: Duration::from_millis(self.idle_ms),
            max_object: self.max_object_mib << 20,
        }
    }

    pub fn ttls(&self) -> Ttls {
        let ms = Duration::from_millis;
        Ttls {
            playlist: ms(self.playlist_ttl_ms),
            blocking: ms(self.blocking_ttl_ms),
            media: ms(self.media_ttl_ms),
            negative: ms(self.negative_ttl_ms),
        }
    }

    pub fn zero_fields(&self) -> Option<&'static str> {
        [
            ("live.cache_mib", self.cache_mib),
            ("live.max_object_mib", self.max_object_mib),
            ("live.connect_ms", self.connect_ms),
            ("live.first_byte_ms", self.first_byte_ms),
            ("live.blocking_ms", self.blocking_ms),
            ("live.idle_ms", self.idle_ms),
            ("live.max_upstream_per_worker", self.max_upstream_per_worker as u64),
            ("live.max_readers_per_object", self.max_readers_per_object as u64),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0)
        .map(|(name, _)| name)
    }
}

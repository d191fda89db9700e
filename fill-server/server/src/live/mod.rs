//! Live events at the origin: the registry of events the operator created,
//! each with its tracks as the encoder pushes them (`ingest`), and what
//! players read (`publish`): LL-HLS playlists with blocking reload, parts
//! and segments served while they are written. Served on a listener of its
//! own (`http`), because a part in progress is a streamed body.
//!
//! State is in memory, one mutex per event held only to copy bytes or
//! render a playlist; every change bumps the event's `watch` version, which
//! blocked reloads and followers of a part in progress wait on.

mod archive;
mod http;
mod ingest;
mod publish;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use nearcast_common::Name;
use nearcast_packager::live::{dash, hls, LiveTrack, TrackOptions};
use serde::{Deserialize, Serialize};

pub use http::{serve, spawn_background};

/// The latency the DASH manifest asks players to hold, seconds.
const TARGET_LATENCY_SECS: f64 = 2.5;

/// What the operator creates (`POST /v1/admin/live`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub name: Name,
    /// The encoder puts it in the ingest URL: `/ingest/{event}/{secret}/…`.
    pub secret: String,
    /// The encoder's segment length, seconds.
    #[serde(default = "default_segment")]
    pub segment_secs: f64,
    /// LL-HLS part target, seconds.
    #[serde(default = "default_part")]
    pub part_target: f64,
    /// How far back players may seek, seconds.
    #[serde(default = "default_window")]
    pub window_secs: f64,
    /// Renditions (tracks) the encoder may push.
    #[serde(default = "default_renditions")]
    pub max_renditions: usize,
    /// Encrypt the event as it is ingested (`cenc` or `cbcs`); its keys
    /// are made in the key store when the event is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<nearcast_packager::cenc::Scheme>,
}

/// An encrypted event's keys and the license URL its manifests name.
pub struct EventKeys {
    pub keys: nearcast_packager::cenc::TitleKeys,
    pub license_url: String,
}

fn default_segment() -> f64 {
    2.0
}
fn default_part() -> f64 {
    0.5
}
fn default_window() -> f64 {
    2.0 * 3600.0
}
fn default_renditions() -> usize {
    8
}

/// Why an event cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("an event named '{0}' exists")]
    Exists(Name),
    #[error("the ingest secret must be 16 to 128 URL-safe characters (letters, digits, '-', '_')")]
    BadSecret,
    #[error("{0}")]
    BadSpec(&'static str),
}

impl EventSpec {
    /// A usable secret and positive timings, the part within a segment.
    pub fn check(&self) -> Result<(), LiveError> {
        let s = &self.secret;
        if !(16..=128).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(LiveError::BadSecret);
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.segment_secs) || !positive(self.part_target) || self.part_target > self.segment_secs {
            return Err(LiveError::BadSpec(
                "segment_secs and part_target must be positive, the part no longer than the segment",
            ));
        }
        if !positive(self.window_secs) || self.max_renditions == 0 {
            return Err(LiveError::BadSpec("window_secs and max_renditions must be positive"));
        }
        Ok(())
    }
}

/// One event: its spec, tracks and change counter.
pub struct Event {
    pub spec: EventSpec,
    /// Its keys, when it is encrypted and this replica has them.
    pub keys: Option<EventKeys>,
    state: Mutex<EventState>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// An event's tracks, by rendition name.
pub(crate) struct EventState {
    pub tracks: BTreeMap<Name, LiveTrack>,
    pub ended: bool,
    /// When the encoder last delivered a box.
    pub last_ingest: Option<Instant>,
    /// Uploads in progress (bounded per event).
    pub uploads: usize,
    pub archive: Archive,
}

/// The ended event as a VOD title in the origin store.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Archive {
    NotYet,
    Writing,
    Done,
    Failed(String),
}

impl Event {
    fn new(spec: EventSpec, keys: Option<EventKeys>) -> Event {
        Event {
            spec,
            keys,
            state: Mutex::new(EventState {
                tracks: BTreeMap::new(),
                ended: false,
                last_ingest: None,
                uploads: 0,
                archive: Archive::NotYet,
            }),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, EventState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everyone waiting for this event to change.
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The multivariant playlist, its URIs `{base}{rendition}/…?{query}`;
    /// `None` before the encoder's first init segment.
    pub fn master(&self, base: &str, query: &str) -> Option<String> {
        let st = self.state();
        let tracks: Vec<(&str, &LiveTrack)> = st.tracks.iter().map(|(n, t)| (n.as_str(), t)).collect();
        hls::multivariant(&tracks, base, query)
    }

    /// The low-latency DASH manifest (segments under `base_urls` when
    /// given, else beside it; `utc` is the clock players align to); `None`
    /// before the first segment.
    pub fn mpd(&self, base_urls: &[String], query: &str, utc: &str) -> Option<String> {
        let st = self.state();
        let tracks: Vec<(&str, &LiveTrack)> = st.tracks.iter().map(|(n, t)| (n.as_str(), t)).collect();
        dash::mpd(&dash::Mpd {
            tracks: &tracks,
            segment_secs: self.spec.segment_secs,
            part_target: self.spec.part_target,
            window_secs: self.spec.window_secs,
            utc_timing: utc,
            query,
            base_urls,
            target_latency: TARGET_LATENCY_SECS,
            now: nearcast_common::clock::now_secs(),
            vod: false,
        })
    }

    /// Whether the ended event is a VOD title now.
    pub fn archived(&self) -> bool {
        self.state().archive == Archive::Done
    }

    /// Writes the ended event into `store` as a VOD title (blocking),
    /// recording how it went.
    pub fn archive(&self, store: &std::path::Path) {
        self.state().archive = Archive::Writing;
        let outcome = archive::write(self, store);
        let mut st = self.state();
        st.archive = match outcome {
            Ok(index) => {
                tracing::info!(event = %self.spec.name, files = index.files.len(), "live event archived as a title");
                Archive::Done
            }
            Err(e) => {
                tracing::error!(event = %self.spec.name, error = %e, "archiving the live event failed");
                Archive::Failed(e.to_string())
            }
        };
    }

    pub(crate) fn track_options(&self) -> TrackOptions {
        TrackOptions {
            part_target: self.spec.part_target,
            window_secs: self.spec.window_secs,
            ..TrackOptions::default()
        }
    }
}

/// An event as `GET /v1/admin/live` lists it.
#[derive(Debug, Serialize)]
pub struct EventStatus {
    pub name: Name,
    pub ended: bool,
    pub archive: Archive,
    /// Seconds since the encoder last delivered, if it ever did.
    pub ingest_idle_secs: Option<f64>,
    pub tracks: Vec<TrackStatus>,
}

#[derive(Debug, Serialize)]
pub struct TrackStatus {
    pub rendition: Name,
    pub codec: String,
    pub segments: usize,
    /// The newest segment's media sequence number.
    pub last_msn: Option<u64>,
}

/// Every live event.
#[derive(Default)]
pub struct Live {
    events: RwLock<BTreeMap<Name, Arc<Event>>>,
}

impl Live {
    /// Adds an event (checked: `EventSpec::check`).
    pub fn create(&self, spec: EventSpec, keys: Option<EventKeys>) -> Result<(), LiveError> {
        spec.check()?;
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        if events.contains_key(&spec.name) {
            return Err(LiveError::Exists(spec.name));
        }
        events.insert(spec.name.clone(), Arc::new(Event::new(spec, keys)));
        Ok(())
    }

    /// Brings the registry to the stored events (every replica's): adds
    /// those it lacks and ends those that ended. The events this call ended
    /// that have tracks here (their encoder pushed to this replica) are
    /// returned, for the caller to archive.
    /// `keys` gives an encrypted event's keys.
    pub fn sync(
        &self,
        stored: Vec<(EventSpec, bool)>,
        keys: impl Fn(&EventSpec) -> Option<EventKeys>,
    ) -> Vec<Arc<Event>> {
        let mut to_archive = Vec::new();
        for (spec, ended) in stored {
            let name = spec.name.clone();
            if self.get(&name).is_none() {
                let k = keys(&spec);
                if let Err(e) = self.create(spec, k) {
                    tracing::warn!(event = %name, error = %e, "stored live event not taken");
                    continue;
                }
            }
            let Some(event) = self.get(&name).filter(|_| ended) else {
                continue;
            };
            let newly = {
                let mut st = event.state();
                !std::mem::replace(&mut st.ended, true) && !st.tracks.is_empty()
            };
            event.bump();
            if newly {
                to_archive.push(event);
            }
        }
        to_archive
    }

    pub fn get(&self, name: &str) -> Option<Arc<Event>> {
        self.events.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// The clock for every running event: tracks whose encoder is a
    /// segment late list the passing time as gaps (`LiveTrack::tick`), and
    /// their waiting players are woken.
    pub fn tick(&self, now: f64) {
        let events: Vec<Arc<Event>> = self
            .events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for event in events {
            let changed = {
                let mut st = event.state();
                if st.ended {
                    continue;
                }
                st.tracks.values_mut().fold(false, |c, t| t.tick(now) | c)
            };
            if changed {
                event.bump();
            }
        }
    }

    pub fn list(&self) -> Vec<EventStatus> {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        events
            .values()
            .map(|e| {
                let st = e.state();
                EventStatus {
                    name: e.spec.name.clone(),
                    ended: st.ended,
                    archive: st.archive.clone(),
                    ingest_idle_secs: st.last_ingest.map(|t| t.elapsed().as_secs_f64()),
                    tracks: st
                        .tracks
                        .iter()
                        .map(|(r, t)| TrackStatus {
                            rendition: r.clone(),
                            codec: t.init().codec().to_string(),
                            segments: t.segments().len(),
                            last_msn: t.segments().back().map(|s| s.msn),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

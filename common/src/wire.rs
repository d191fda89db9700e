//! The box's wire schema (`proto/wire.proto`, compiled by prost in
//! `build.rs`) and its conversions to and from the types the parts work
//! with (`control`, `manifest`, `live`). Boxes send and accept
//! `application/x-protobuf`; the same messages as JSON stay for people and
//! curl. Decoding checks what JSON decoding checks (plain names, title
//! paths, hashes, prefixes), so either way in, the server sees the same
//! values.

use std::collections::BTreeMap;
use std::net::IpAddr;

use prost::Message;

use crate::control::{
    BgpSummary, DiskState, FillFailure, FillReport, Health, Heartbeat, HeartbeatReply, Inventory, OsState,
    Registration, RouteGroup, Routes,
};
use crate::live::{LivePlan, PeerUrl};
use crate::manifest::{FillManifest, ManifestFile, ManifestTitle};
use crate::{IpPrefix, Name, TitlePath};

/// The generated messages.
#[allow(missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/nearcast.wire.v1.rs"));
}

/// The media type of a protobuf body.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Why bytes are not a message, or a value cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not protobuf of the expected message.
    #[error("protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A field's value is not allowed.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why not.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl std::fmt::Display) -> WireError {
    WireError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// A type with a wire message.
pub trait Wire: Sized {
    /// Its message.
    type Msg: Message + Default;
    /// The message for this value.
    fn to_msg(&self) -> Result<Self::Msg, WireError>;
    /// The value of a received message, checked.
    fn from_msg(m: Self::Msg) -> Result<Self, WireError>;
}

/// `v` as protobuf bytes.
pub fn encode<T: Wire>(v: &T) -> Result<Vec<u8>, WireError> {
    Ok(v.to_msg()?.encode_to_vec())
}

/// A `T` from protobuf bytes.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, WireError> {
    T::from_msg(T::Msg::decode(bytes)?)
}

fn health_to(h: Health) -> i32 {
    (match h {
        Health::Ok => v1::Health::Ok,
        Health::Filling => v1::Health::Filling,
        Health::Degraded => v1::Health::Degraded,
        Health::Updating => v1::Health::Updating,
        Health::Failed => v1::Health::Failed,
    }) as i32
}

fn health_from(h: i32) -> Result<Health, WireError> {
    Ok(match v1::Health::try_from(h) {
        Ok(v1::Health::Ok) => Health::Ok,
        Ok(v1::Health::Filling) => Health::Filling,
        Ok(v1::Health::Degraded) => Health::Degraded,
        Ok(v1::Health::Updating) => Health::Updating,
        Ok(v1::Health::Failed) => Health::Failed,
        _ => return Err(invalid("health", format!("unknown value {h}"))),
    })
}

fn name(field: &'static str, s: String) -> Result<Name, WireError> {
    Name::new(s).map_err(|e| invalid(field, e))
}

impl Wire for Registration {
    type Msg = v1::Registration;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        Ok(v1::Registration {
            site: self.site.clone(),
            url: self.url.clone(),
            capacity_bytes: self.capacity_bytes,
            disks: self.disks.clone(),
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        Ok(Registration {
            site: m.site,
            url: m.url,
            capacity_bytes: m.capacity_bytes,
            disks: m.disks,
        })
    }
}

fn fill_to(f: &FillReport) -> v1::FillReport {
    v1::FillReport {
        manifest_version: f.manifest_version.clone(),
        running: f.running,
        files_total: f.files_total,
        files_done: f.files_done,
        bytes_total: f.bytes_total,
        bytes_done: f.bytes_done,
        rate_bytes_per_sec: f.rate_bytes_per_sec,
        failures: f
            .failures
            .iter()
            .map(|x| v1::FillFailure {
                title: x.title.clone(),
                path: x.path.clone(),
                reason: x.reason.clone(),
            })
            .collect(),
    }
}

fn fill_from(f: v1::FillReport) -> FillReport {
    FillReport {
        manifest_version: f.manifest_version,
        running: f.running,
        files_total: f.files_total,
        files_done: f.files_done,
        bytes_total: f.bytes_total,
        bytes_done: f.bytes_done,
        rate_bytes_per_sec: f.rate_bytes_per_sec,
        failures: f
            .failures
            .into_iter()
            .map(|x| FillFailure {
                title: x.title,
                path: x.path,
                reason: x.reason,
            })
            .collect(),
    }
}

impl Wire for Heartbeat {
    type Msg = v1::Heartbeat;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        Ok(v1::Heartbeat {
            health: health_to(self.health),
            load: self.load,
            free_bytes: self.free_bytes,
            disks: self
                .disks
                .iter()
                .map(|d| v1::DiskState {
                    name: d.name.clone(),
                    health: health_to(d.health),
                    free_bytes: d.free_bytes,
                })
                .collect(),
            bytes_by_title: self.bytes_by_title.iter().map(|(t, b)| (t.to_string(), *b)).collect(),
            fill: self.fill.as_ref().map(fill_to),
            bgp: self.bgp.as_ref().map(|b| v1::BgpSummary {
                session: b.session.clone(),
                prefixes: b.prefixes,
            }),
            version: self.version.clone(),
            os: self.os.as_ref().map(|o| v1::OsState {
                release: o.release.clone(),
                slot: o.slot.clone(),
                update: o.update.clone(),
                failed: o.failed.clone(),
            }),
            playback: self.playback.as_ref().map(playback::to),
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        let disks = m
            .disks
            .into_iter()
            .map(|d| {
                Ok(DiskState {
                    name: d.name,
                    health: health_from(d.health)?,
                    free_bytes: d.free_bytes,
                })
            })
            .collect::<Result<_, WireError>>()?;
        let bytes_by_title = m
            .bytes_by_title
            .into_iter()
            .map(|(t, b)| Ok((name("bytes_by_title", t)?, b)))
            .collect::<Result<BTreeMap<_, _>, WireError>>()?;
        Ok(Heartbeat {
            health: health_from(m.health)?,
            load: m.load,
            free_bytes: m.free_bytes,
            disks,
            bytes_by_title,
            fill: m.fill.map(fill_from),
            bgp: m.bgp.map(|b| BgpSummary {
                session: b.session,
                prefixes: b.prefixes,
            }),
            version: m.version,
            os: m.os.map(|o| OsState {
                release: o.release,
                slot: o.slot,
                update: o.update,
                failed: o.failed,
            }),
            playback: m.playback.map(playback::from).transpose()?,
        })
    }
}

impl Wire for HeartbeatReply {
    type Msg = v1::HeartbeatReply;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        Ok(v1::HeartbeatReply {
            ok: true,
            os_update: self.os_update.clone(),
            os_emergency: self.os_emergency,
            live: self.live.as_ref().map(|l| v1::LivePlan {
                self_id: l.self_id.clone(),
                peers: l
                    .peers
                    .iter()
                    .map(|p| v1::PeerUrl {
                        id: p.id.clone(),
                        url: p.url.clone(),
                    })
                    .collect(),
                origins: l.origins.clone(),
                cache_mib: l.cache_mib,
            }),
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        Ok(HeartbeatReply {
            os_update: m.os_update,
            os_emergency: m.os_emergency,
            live: m.live.map(|l| LivePlan {
                self_id: l.self_id,
                peers: l.peers.into_iter().map(|p| PeerUrl { id: p.id, url: p.url }).collect(),
                origins: l.origins,
                cache_mib: l.cache_mib,
            }),
        })
    }
}

impl Wire for Inventory {
    type Msg = v1::Inventory;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        Ok(v1::Inventory {
            version: self.version.clone(),
            titles: self.titles.iter().map(|t| t.to_string()).collect(),
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        Ok(Inventory {
            version: m.version,
            titles: m
                .titles
                .into_iter()
                .map(|t| name("titles", t))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(field: &'static str, b: &[u8]) -> Result<IpAddr, WireError> {
    match b.len() {
        4 => Ok(IpAddr::from(<[u8; 4]>::try_from(b).map_err(|e| invalid(field, e))?)),
        16 => Ok(IpAddr::from(<[u8; 16]>::try_from(b).map_err(|e| invalid(field, e))?)),
        n => Err(invalid(field, format!("{n} bytes is not an address"))),
    }
}

fn group_to(g: &RouteGroup) -> Result<v1::RouteGroup, WireError> {
    let mut m = v1::RouteGroup {
        as_path: g.as_path.clone(),
        next_hop: g.next_hop.map(ip_bytes).unwrap_or_default(),
        communities: g
            .communities
            .iter()
            .map(|(a, v)| u32::from(*a) << 16 | u32::from(*v))
            .collect(),
        ..Default::default()
    };
    for p in &g.prefixes {
        let prefix: IpPrefix = p.parse().map_err(|e| invalid("prefixes", e))?;
        match prefix.addr() {
            IpAddr::V4(a) => {
                m.ipv4.push(u32::from(a));
                m.ipv4_lengths.push(prefix.len());
            }
            IpAddr::V6(a) => {
                let mut b = a.octets().to_vec();
                b.push(prefix.len());
                m.ipv6.push(b);
            }
        }
    }
    Ok(m)
}

fn group_from(m: v1::RouteGroup) -> Result<RouteGroup, WireError> {
    if m.ipv4.len() != m.ipv4_lengths.len() {
        return Err(invalid("ipv4_lengths", "not one length per IPv4 prefix"));
    }
    let v4 = m.ipv4.iter().zip(&m.ipv4_lengths).map(|(a, len)| {
        let p = IpPrefix::new(IpAddr::from(std::net::Ipv4Addr::from(*a)), *len).map_err(|e| invalid("ipv4", e))?;
        Ok(v4_text(&p))
    });
    let v6 = m.ipv6.iter().map(|b| match b.split_last() {
        Some((len, addr)) if addr.len() == 16 => IpPrefix::new(ip_from("ipv6", addr)?, *len)
            .map(|p| p.to_string())
            .map_err(|e| invalid("ipv6", e)),
        _ => Err(invalid("ipv6", "not 16 address bytes and a length")),
    });
    Ok(RouteGroup {
        as_path: m.as_path,
        next_hop: (!m.next_hop.is_empty())
            .then(|| ip_from("next_hop", &m.next_hop))
            .transpose()?,
        communities: m.communities.iter().map(|c| ((c >> 16) as u16, *c as u16)).collect(),
        prefixes: v4.chain(v6).collect::<Result<_, _>>()?,
    })
}

/// An IPv4 prefix as `Display` writes it, without the formatter (a full
/// table is a million of them).
fn v4_text(p: &IpPrefix) -> String {
    fn push(s: &mut String, n: u8) {
        if n >= 100 {
            s.push(char::from(b'0' + n / 100));
        }
        if n >= 10 {
            s.push(char::from(b'0' + n / 10 % 10));
        }
        s.push(char::from(b'0' + n % 10));
    }
    let IpAddr::V4(a) = p.addr() else {
        return p.to_string();
    };
    let mut s = String::with_capacity(18);
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push(&mut s, o);
    }
    s.push('/');
    push(&mut s, p.len());
    s
}

impl Wire for Routes {
    type Msg = v1::Routes;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        Ok(v1::Routes {
            session: self.session.clone(),
            groups: self.groups.iter().map(group_to).collect::<Result<_, _>>()?,
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        Ok(Routes {
            session: m.session,
            groups: m.groups.into_iter().map(group_from).collect::<Result<_, _>>()?,
        })
    }
}

fn file_to(f: &ManifestFile) -> Result<v1::ManifestFile, WireError> {
    let sha256 = crate::token::decode_hex(&f.sha256)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| invalid("sha256", "not 32 bytes of hex"))?;
    Ok(v1::ManifestFile {
        path: f.path.to_string(),
        size: f.size,
        sha256,
        sources: f.sources.clone(),
    })
}

fn file_from(m: v1::ManifestFile) -> Result<ManifestFile, WireError> {
    if m.sha256.len() != 32 {
        return Err(invalid("sha256", "not 32 bytes"));
    }
    Ok(ManifestFile {
        path: TitlePath::new(m.path).map_err(|e| invalid("path", e))?,
        size: m.size,
        sha256: crate::digest::hex(&m.sha256),
        sources: m.sources,
    })
}

impl Wire for FillManifest {
    type Msg = v1::FillManifest;

    fn to_msg(&self) -> Result<Self::Msg, WireError> {
        let titles = self
            .titles
            .iter()
            .map(|t| {
                Ok(v1::ManifestTitle {
                    rank: t.rank,
                    title: t.title.to_string(),
                    predicted_bytes: t.predicted_bytes,
                    replicated: t.replicated,
                    files: t.files.iter().map(file_to).collect::<Result<_, _>>()?,
                    token: t.token.clone(),
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(v1::FillManifest {
            appliance: self.appliance.clone(),
            site: self.site.clone(),
            version: self.version.clone(),
            day: self.day,
            capacity_bytes: self.capacity_bytes,
            planned_bytes: self.planned_bytes,
            titles,
        })
    }

    fn from_msg(m: Self::Msg) -> Result<Self, WireError> {
        let titles = m
            .titles
            .into_iter()
            .map(|t| {
                Ok(ManifestTitle {
                    rank: t.rank,
                    title: name("title", t.title)?,
                    predicted_bytes: t.predicted_bytes,
                    replicated: t.replicated,
                    files: t.files.into_iter().map(file_from).collect::<Result<_, _>>()?,
                    token: t.token,
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(FillManifest {
            appliance: m.appliance,
            site: m.site,
            version: m.version,
            day: m.day,
            capacity_bytes: m.capacity_bytes,
            planned_bytes: m.planned_bytes,
            titles,
        })
    }
}

mod playback;
#[cfg(test)]
mod tests;

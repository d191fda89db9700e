//! Fill manifests: what one appliance must hold, in rank order, with where
//! to fetch each file. The fill server writes them; the agent fills from
//! them. JSON on the wire (operators read them).

use serde::{Deserialize, Serialize};

use crate::names::{Name, TitlePath};

/// One appliance's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillManifest {
    /// The appliance it is for.
    pub appliance: String,
    /// That appliance's site.
    pub site: String,
    /// Content hash of everything below: equal inputs, equal version.
    pub version: String,
    /// The day (days since 1970-01-01, UTC) the manifest was planned for.
    pub day: i64,
    /// The appliance's capacity when planned.
    pub capacity_bytes: u64,
    /// Bytes of all the titles below (at most the capacity).
    pub planned_bytes: u64,
    /// Highest rank first.
    pub titles: Vec<ManifestTitle>,
}

/// A title to hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTitle {
    /// 1 = most popular in this appliance's ISP.
    pub rank: u32,
    /// The title.
    pub title: Name,
    /// Bytes it is predicted to serve here on the day.
    pub predicted_bytes: u64,
    /// On every appliance of the site (head) or on this one only (tail).
    pub replicated: bool,
    /// Every file of the title.
    pub files: Vec<ManifestFile>,
    /// A title-wide URL token (no client prefix) every source accepts for
    /// this title's files; signed when the manifest is handed out, so it is
    /// not part of the version.
    #[serde(default)]
    pub token: String,
}

/// A file of a title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the title: `720p/seg-00001.m4s`.
    pub path: TitlePath,
    /// Its length in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of its bytes, checked before it is placed.
    pub sha256: String,
    /// Base URLs to fetch `/c/{title}/{path}` from: peers of the site that
    /// hold the title first, the origin last.
    pub sources: Vec<String>,
}

impl FillManifest {
    /// Bytes of all of `title`'s files.
    pub fn bytes_of(title: &ManifestTitle) -> u64 {
        title.files.iter().map(|f| f.size).sum()
    }
}

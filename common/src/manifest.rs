//! Fill manifests: what one appliance must hold, in rank order, with where
//! to fetch each file. The fill server writes them; the agent fills from
//! them. JSON on the wire (operators read them).

use serde::{Deserialize, Serialize};

use crate::names::{Name, TitlePath};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillManifest {
    pub appliance: String,
    pub site: String,
    /// Content hash of everything below: equal inputs, equal version.
    pub version: String,
    /// The day (days since 1970-01-01, UTC) the manifest was planned for.
    pub day: i64,
    pub capacity_bytes: u64,
    pub planned_bytes: u64,
    /// Highest rank first.
    pub titles: Vec<ManifestTitle>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTitle {
    /// 1 = most popular in this appliance's ISP.
    pub rank: u32,
    pub title: Name,
    pub predicted_bytes: u64,
    /// On every appliance of the site (head) or on this one only (tail).
    pub replicated: bool,
    pub files: Vec<ManifestFile>,
    /// A title-wide URL token (no client prefix) every source accepts for
    /// this title's files; signed when the manifest is handed out, so it is
    /// not part of the version.
    #[serde(default)]
    pub token: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the title: `720p/seg-00001.m4s`.
    pub path: TitlePath,
    pub size: u64,
    pub sha256: String,
    /// Base URLs to fetch `/c/{title}/{path}` from: peers of the site that
    /// hold the title first, the origin last.
    pub sources: Vec<String>,
}

impl FillManifest {
    pub fn bytes_of(title: &ManifestTitle) -> u64 {
        title.files.iter().map(|f| f.size).sum()
    }
}

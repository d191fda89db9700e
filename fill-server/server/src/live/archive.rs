//! An ended event is written into the origin store as an ordinary VOD
//! title — the live segments as they were published, VOD playlists, a
//! static MPD and a title index — so it is planned, filled and steered
//! like any other title. Written the packager's way: into a hidden folder,
//! index last, renamed into place.

use std::path::Path;
use std::time::{Duration, Instant};

use nearcast_packager::index::{FileEntry, TitleIndex};
use nearcast_packager::live::archive;
use nearcast_packager::live::LiveTrack;
use nearcast_packager::package::{write_file, write_index, write_title_dir};
use nearcast_packager::PackageError;

use super::Event;

/// Uploads still running when the event ended get this long to finish.
const DRAIN: Duration = Duration::from_secs(15);

/// Writes `event` (ended) into `store` as the title of the same name.
/// Blocking: run it on a blocking thread.
pub fn write(event: &Event, store: &Path) -> Result<TitleIndex, PackageError> {
    let deadline = Instant::now() + DRAIN;
    while event.state().uploads > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let name = event.spec.name.clone();
    write_title_dir(store, name.as_str(), |dir| {
        let mut files = Vec::new();
        let renditions: Vec<_> = event.state().tracks.keys().cloned().collect();
        for r in &renditions {
            let dir_r = dir.join(r.as_str());
            std::fs::create_dir_all(&dir_r).map_err(|error| PackageError::Write { path: dir_r, error })?;
            files.extend(media_files(event, r.as_str(), dir)?);
        }
        let st = event.state();
        let tracks: Vec<(&str, &LiveTrack)> = st.tracks.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (path, text) in archive::manifests(&tracks, event.spec.segment_secs) {
            files.push(write_file(dir, &path, text.as_bytes())?);
        }
        let duration_secs = tracks
            .iter()
            .map(|(_, t)| t.secs(t.segments().iter().map(|s| s.duration).sum()))
            .fold(0.0, f64::max);
        let index = TitleIndex {
            title: name.clone(),
            version: 1,
            duration_secs,
            target_duration_secs: event.spec.segment_secs,
            renditions: tracks.iter().map(|(n, t)| archive::rendition_entry(n, t)).collect(),
            files,
            // An encrypted event stays encrypted: its keys are the title's.
            protection: protection(&tracks),
        };
        drop(st);
        write_index(dir, index)
    })
}

/// What the title index says of an encrypted event's tracks.
fn protection(tracks: &[(&str, &LiveTrack)]) -> Option<nearcast_packager::index::IndexProtection> {
    let signalled: Vec<_> = tracks.iter().filter_map(|(_, t)| t.protection()).collect();
    let first = signalled.first()?;
    let mut kids: Vec<String> = signalled
        .iter()
        .map(|p| nearcast_packager::cenc::keys::uuid(&p.kid))
        .collect();
    kids.sort();
    kids.dedup();
    Some(nearcast_packager::index::IndexProtection {
        scheme: first.scheme,
        license_url: first.license_url.clone(),
        kids,
    })
}

/// One rendition's init segments and media segments, copied one at a
/// time under the event's lock.
fn media_files(event: &Event, rendition: &str, dir: &Path) -> Result<Vec<FileEntry>, PackageError> {
    let (epochs, msns): (Vec<u32>, Vec<u64>) = {
        let st = event.state();
        let Some(t) = st.tracks.get(rendition) else {
            return Ok(Vec::new());
        };
        let mut epochs: Vec<u32> = t.segments().iter().map(|s| s.epoch).collect();
        epochs.dedup();
        (epochs, t.segments().iter().map(|s| s.msn).collect())
    };
    let mut files = Vec::new();
    for e in epochs {
        let bytes = event
            .state()
            .tracks
            .get(rendition)
            .and_then(|t| t.init_of(e))
            .map(|i| i.bytes.clone());
        if let Some(bytes) = bytes {
            files.push(write_file(dir, &format!("{rendition}/init-{e}.mp4"), &bytes)?);
        }
    }
    for msn in msns {
        let data = event
            .state()
            .tracks
            .get(rendition)
            .and_then(|t| t.segment(msn))
            .filter(|s| !s.gap)
            .map(|s| s.data.clone());
        if let Some(data) = data {
            files.push(write_file(dir, &format!("{rendition}/{msn}.m4s"), &data)?);
        }
    }
    Ok(files)
}

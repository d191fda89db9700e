//! Live packaging: CMAF as an encoder pushes it (DASH-IF live media
//! ingest, interface 1: one init segment and a stream of fragments per
//! track), checked box by box and laid out as segments and LL-HLS parts.
//!
//! Pure state, no I/O: the fill server's ingest hands each request body
//! to a [`Splitter`] as it arrives and each complete box to its
//! [`LiveTrack`], then renders playlists from the track ([`hls`]). Timing
//! comes from the fragments themselves (`tfdt`, `trun`, `trex`); the
//! encoder's own manifests are never read.

pub mod archive;
pub mod dash;
pub mod encoder;
mod fragment;
pub mod hls;
mod init;
pub mod protect;
mod track;

pub use fragment::{moof_timing, Splitter, Timing, TopBox};
pub use init::{Defaults, LiveInit};
pub use track::{LiveTrack, Part, Published, Segment, TrackOptions};

use crate::mp4::Mp4Error;

/// Why a piece of ingest was refused. Nothing already published changes.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Malformed(#[from] Mp4Error),
    #[error("box '{kind}' of {size} bytes is over the {limit}-byte limit")]
    Oversize { kind: String, size: u64, limit: u64 },
    #[error("the body ended inside a box ({have} of {need} bytes)")]
    Truncated { have: u64, need: u64 },
    #[error("not a CMAF init segment: {0}")]
    NotInit(String),
    #[error("the track's codec changed from {was} to {now}")]
    CodecChanged { was: String, now: String },
    #[error("a fragment before the track's init segment")]
    NoInit,
    #[error("a fragment for track {got} on track {want}'s stream")]
    WrongTrack { want: u32, got: u32 },
    #[error("'{0}' outside a fragment (mdat without moof, or moof without mdat)")]
    Unpaired(String),
    #[error("fragment at {at} repeats one already ingested")]
    Duplicate { at: u64 },
    #[error("fragment at {at} goes back in time (the track is at {expected})")]
    BackInTime { at: u64, expected: u64 },
    #[error("fragment at {at} jumps from {expected} inside a segment")]
    JumpInSegment { at: u64, expected: u64 },
    #[error("the mdat holds {have} bytes, its samples need {need}")]
    ShortMdat { have: u64, need: u64 },
    #[error("the segment starting at {at} does not start with a keyframe")]
    NoKeyframe { at: u64 },
    #[error("the event has ended")]
    Closed,
    #[error("a segment of more than {limit} bytes")]
    SegmentTooLarge { limit: usize },
}

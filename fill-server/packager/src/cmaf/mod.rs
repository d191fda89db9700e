//! Writing CMAF (ISO/IEC 23000-19) tracks: one init segment per track and
//! media segments cut at keyframes.

pub mod init;
pub mod plan;
pub mod segment;
pub(crate) mod writer;

pub use init::{header_segment, init_segment, Handler, Header};
pub use plan::{plan_segments, SegmentPlan};
pub use segment::{fragment, media_segment, Encrypt, SegmentError};

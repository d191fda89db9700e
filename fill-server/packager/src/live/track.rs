//! One rendition of a live event as it is ingested: its init segments
//! (one per encoder epoch), and a sliding window of segments, each the
//! bytes the encoder sent for it, cut into LL-HLS parts of about the part
//! target. A fragment is published only once its `moof` and `mdat` are
//! whole and checked; a refused one leaves the track as it was.

use std::collections::VecDeque;

use super::fragment::{moof_timing, Timing, TopBox};
use super::init::LiveInit;
use super::IngestError;

/// Gap segments listed for one silence at most (an hour of 2 s segments).
const MAX_GAP_SEGMENTS: usize = 1800;

/// Limits and targets for one track.
#[derive(Clone, Debug)]
pub struct TrackOptions {
    /// LL-HLS part target, seconds.
    pub part_target: f64,
    /// Segments older than this behind the newest are dropped, seconds.
    pub window_secs: f64,
    /// The most bytes one segment may hold.
    pub max_segment_bytes: usize,
    /// The most bytes the whole window may hold (oldest dropped first).
    pub max_window_bytes: usize,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            part_target: 0.5,
            window_secs: 2.0 * 3600.0,
            max_segment_bytes: 64 << 20,
            max_window_bytes: 1 << 30,
        }
    }
}

/// A byte range of its segment: one or more whole fragments.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub start: usize,
    pub end: usize,
    /// Decode time of its first sample, track timescale.
    pub base: u64,
    pub duration: u64,
    /// Starts with a sync sample (`INDEPENDENT=YES`).
    pub independent: bool,
    /// No more fragments will join it.
    pub complete: bool,
}

/// One segment: the bytes of one encoder segment, as received.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Media sequence number (ours, not the encoder's file number).
    pub msn: u64,
    /// Which init segment decodes it.
    pub epoch: u32,
    pub data: Vec<u8>,
    pub parts: Vec<Part>,
    pub base: u64,
    pub duration: u64,
    pub complete: bool,
    /// Timing jumped or the encoder changed before it.
    pub discontinuity: bool,
    /// No media: the encoder was silent for this long (`EXT-X-GAP`).
    pub gap: bool,
    /// Which run of continuous timing it belongs to (a DASH period): one
    /// more after each discontinuity.
    pub period: u64,
    /// Wall clock of its first sample, Unix seconds.
    pub wall: f64,
}

/// Where a run of continuous timing (a DASH period) began: its first
/// segment's number, decode time and wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodStart {
    pub period: u64,
    pub msn: u64,
    pub base: u64,
    pub wall: f64,
}

/// What a call made visible to players.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Nothing,
    /// A fragment joined segment `msn`.
    Fragment {
        msn: u64,
    },
    /// Segment `msn` is whole.
    Segment {
        msn: u64,
    },
}

/// One rendition's live state.
pub struct LiveTrack {
    opts: TrackOptions,
    inits: VecDeque<(u32, LiveInit)>,
    segments: VecDeque<Segment>,
    next_msn: u64,
    /// The next fragment starts a new segment.
    new_segment: bool,
    /// An init arrived since the last fragment: time may restart.
    fresh_epoch: bool,
    /// Boxes since the last fragment (`styp`, `prft`, …, then `moof`).
    pending: Vec<u8>,
    moof: Option<Timing>,
    /// The last fragment's (base, end) decode times.
    last: Option<(u64, u64)>,
    /// (wall clock, media seconds) of one sample: program date times.
    anchor: Option<(f64, f64)>,
    /// Discontinuities of segments that left the window.
    dropped_discontinuities: u64,
    /// (wall clock, decode time) of segment 0's first sample.
    origin: Option<(f64, u64)>,
    /// The runs of continuous timing in the window, oldest first.
    periods: VecDeque<PeriodStart>,
    /// Gap segments were listed while the encoder was silent: whatever it
    /// sends next starts anew (a discontinuity).
    gapped: bool,
    /// Encrypts what is ingested (`protect.rs`), and the `moof` waiting
    /// for its `mdat` to be encrypted with it.
    protection: Option<(super::protect::LiveProtection, Vec<u8>)>,
}

impl LiveTrack {
    pub fn new(init: LiveInit, opts: TrackOptions) -> LiveTrack {
        LiveTrack {
            opts,
            inits: VecDeque::from([(0, init)]),
            segments: VecDeque::new(),
            next_msn: 0,
            new_segment: true,
            fresh_epoch: true,
            pending: Vec::new(),
            moof: None,
            last: None,
            anchor: None,
            dropped_discontinuities: 0,
            origin: None,
            periods: VecDeque::new(),
            gapped: false,
            protection: None,
        }
    }

    /// What the manifests signal when the track is encrypted.
    pub fn protection(&self) -> Option<crate::rendition::Protection> {
        self.protection.as_ref().map(|(p, _)| p.signalling())
    }

    /// Encrypts the track from now on with `p`: its init segments, and
    /// every fragment before it is published.
    pub fn protect(&mut self, p: super::protect::LiveProtection) -> Result<(), IngestError> {
        for (_, init) in self.inits.iter_mut() {
            init.bytes = p.init(&init.bytes)?;
        }
        self.protection = Some((p, Vec::new()));
        Ok(())
    }

    pub fn options(&self) -> &TrackOptions {
        &self.opts
    }

    /// The newest init segment.
    pub fn init(&self) -> &LiveInit {
        let (_, init) = self.inits.back().expect("a track has an init");
        init
    }

    /// The init segment of `epoch`, while a segment in the window uses it.
    pub fn init_of(&self, epoch: u32) -> Option<&LiveInit> {
        self.inits.iter().find(|(e, _)| *e == epoch).map(|(_, i)| i)
    }

    pub fn timescale(&self) -> u32 {
        self.init().track.timescale
    }

    /// A new init from the encoder (a restart, or a backup encoder). It
    /// must decode like the current one; time may restart after it.
    pub fn set_init(&mut self, mut init: LiveInit) -> Result<(), IngestError> {
        if let Some((p, _)) = &self.protection {
            init.bytes = p.init(&init.bytes)?;
        }
        let current = self.init();
        if !current.compatible(&init) {
            return Err(IngestError::CodecChanged {
                was: current.codec().to_string(),
                now: init.codec().to_string(),
            });
        }
        if current.bytes != init.bytes {
            let epoch = self.inits.back().map_or(0, |(e, _)| e + 1);
            self.inits.push_back((epoch, init));
        }
        self.fresh_epoch = true;
        Ok(())
    }

    /// The encoder starts its next segment (a new upload).
    pub fn begin_segment(&mut self) {
        self.close_open_segment();
        self.pending.clear();
        self.moof = None;
    }

    /// The upload of the current segment ended well.
    pub fn end_segment(&mut self) -> Result<Published, IngestError> {
        if self.moof.is_some() {
            return Err(IngestError::Unpaired("moof".into()));
        }
        Ok(self.close_open_segment())
    }

    /// The upload failed: what was published stays, the rest is dropped.
    pub fn abort(&mut self) -> Published {
        self.pending.clear();
        self.moof = None;
        self.close_open_segment()
    }

    /// Takes one top-level box of the current segment's upload, received
    /// at wall clock `now` (Unix seconds).
    pub fn push(&mut self, b: TopBox, now: f64) -> Result<Published, IngestError> {
        match &b.kind {
            b"moof" => {
                if self.moof.is_some() {
                    return Err(IngestError::Unpaired("moof".into()));
                }
                let init = self.init();
                let t = moof_timing(b.body()?, init.track.id, &init.defaults)?;
                self.check_time(&t)?;
                match &mut self.protection {
                    Some((_, held)) => *held = b.bytes,
                    None => self.pending.extend_from_slice(&b.bytes),
                }
                self.moof = Some(t);
                Ok(Published::Nothing)
            }
            b"mdat" => {
                let Some(t) = self.moof else {
                    return Err(IngestError::Unpaired("mdat".into()));
                };
                let have = b.body()?.len() as u64;
                if have < t.data_len {
                    return Err(IngestError::ShortMdat { have, need: t.data_len });
                }
                let (id, defaults) = (self.init().track.id, self.init().defaults);
                match &mut self.protection {
                    Some((p, held)) => {
                        let (moof, mdat) = p.fragment(held, &b.bytes, id, &defaults)?;
                        self.pending.extend_from_slice(&moof);
                        self.pending.extend_from_slice(&mdat);
                    }
                    None => self.pending.extend_from_slice(&b.bytes),
                }
                let published = self.append_fragment(t, now)?;
                self.moof = None;
                Ok(published)
            }
            kind @ (b"ftyp" | b"moov") => Err(IngestError::Unpaired(String::from_utf8_lossy(kind).into_owned())),
            kind if self.moof.is_some() => Err(IngestError::Unpaired(String::from_utf8_lossy(kind).into_owned())),
            _ => {
                self.pending.extend_from_slice(&b.bytes);
                Ok(Published::Nothing)
            }
        }
    }

    /// The segments in the window, oldest first.
    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments.get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// `EXT-X-DISCONTINUITY-SEQUENCE`: the discontinuities before the
    /// first segment in the window, its own included (its tag is not
    /// written).
    pub fn discontinuity_sequence(&self) -> u64 {
        self.dropped_discontinuities + self.segments.front().map_or(0, |s| u64::from(s.discontinuity))
    }

    /// (wall clock, decode time) where segment 0 began: DASH's
    /// `availabilityStartTime` and `presentationTimeOffset`.
    pub fn origin(&self) -> Option<(f64, u64)> {
        self.origin
    }

    /// The runs of continuous timing (DASH periods) in the window.
    pub fn periods(&self) -> &VecDeque<PeriodStart> {
        &self.periods
    }

    /// Peak bits per second over the window's segments (at least 1).
    pub fn peak_bitrate(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| (s.data.len() as f64 * 8.0 / self.secs(s.duration)) as u64)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Seconds of `ticks` in the track's timescale.
    pub fn secs(&self, ticks: u64) -> f64 {
        ticks as f64 / f64::from(self.timescale())
    }

    /// Refuses a fragment that repeats, goes back or jumps inside a segment.
    fn check_time(&self, t: &Timing) -> Result<(), IngestError> {
        let Some((last_base, end)) = self.last else {
            return Ok(());
        };
        if self.fresh_epoch {
            return Ok(());
        }
        if t.base == last_base {
            return Err(IngestError::Duplicate { at: t.base });
        }
        if t.base < end {
            return Err(IngestError::BackInTime {
                at: t.base,
                expected: end,
            });
        }
        if t.base > end + t.duration / u64::from(t.samples.max(1)) && !self.new_segment {
            return Err(IngestError::JumpInSegment {
                at: t.base,
                expected: end,
            });
        }
        Ok(())
    }

    fn append_fragment(&mut self, t: Timing, now: f64) -> Result<Published, IngestError> {
        let limit = self.opts.max_segment_bytes;
        let open = self.segments.back().filter(|s| !s.complete && !self.new_segment);
        if open.map_or(0, |s| s.data.len()) + self.pending.len() > limit {
            return Err(IngestError::SegmentTooLarge { limit });
        }
        if self.new_segment || self.segments.back().is_none_or(|s| s.complete) {
            self.start_segment(&t, now)?;
        }
        let part_target = self.opts.part_target;
        let frag_secs = self.secs(t.duration);
        let timescale = self.timescale();
        let bytes = std::mem::take(&mut self.pending);
        let seg = self.segments.back_mut().expect("a segment was just started");
        let start = seg.data.len();
        seg.data.extend_from_slice(&bytes);
        seg.duration += t.duration;
        match seg.parts.last_mut().filter(|p| !p.complete) {
            Some(p) => {
                p.end = seg.data.len();
                p.duration += t.duration;
            }
            None => seg.parts.push(Part {
                start,
                end: seg.data.len(),
                base: t.base,
                duration: t.duration,
                independent: t.starts_with_sync,
                complete: false,
            }),
        }
        let part = seg.parts.last_mut().expect("a part was just added");
        if part.duration as f64 / f64::from(timescale) + frag_secs / 2.0 >= part_target {
            part.complete = true;
        }
        let msn = seg.msn;
        self.last = Some((t.base, t.base + t.duration));
        self.fresh_epoch = false;
        self.trim();
        Ok(Published::Fragment { msn })
    }

    /// Opens segment `next_msn` for fragment `t`. Video segments must
    /// start with a keyframe.
    fn start_segment(&mut self, t: &Timing, now: f64) -> Result<(), IngestError> {
        if !t.starts_with_sync {
            return Err(IngestError::NoKeyframe { at: t.base });
        }
        let contiguous = !self.gapped
            && self.last.is_some_and(|(_, end)| {
                let slack = t.duration / u64::from(t.samples.max(1));
                t.base >= end && t.base <= end + slack
            });
        self.gapped = false;
        let base_secs = self.secs(t.base);
        if !contiguous || self.anchor.is_none() {
            // The first sample was captured about one fragment before it
            // arrived here.
            self.anchor = Some((now - self.secs(t.duration), base_secs));
        }
        let (wall0, media0) = self.anchor.expect("anchored above");
        let wall = wall0 + (base_secs - media0);
        self.origin.get_or_insert((wall, t.base));
        if !contiguous {
            self.fill_gap(wall);
        }
        let discontinuity = self.last.is_some() && !contiguous;
        let period = self.periods.back().map_or(0, |p| p.period + u64::from(discontinuity));
        if self.periods.back().is_none_or(|p| p.period != period) {
            self.periods.push_back(PeriodStart {
                period,
                msn: self.next_msn,
                base: t.base,
                wall,
            });
        }
        let epoch = self.inits.back().map_or(0, |(e, _)| *e);
        self.segments.push_back(Segment {
            msn: self.next_msn,
            epoch,
            data: Vec::new(),
            parts: Vec::new(),
            base: t.base,
            duration: 0,
            complete: false,
            discontinuity,
            gap: false,
            period,
            wall,
        });
        self.next_msn += 1;
        self.new_segment = false;
        Ok(())
    }

    /// The clock at `now` (Unix seconds) while the encoder may be silent:
    /// once the next segment is a whole segment late, the time that passes
    /// is listed as gap segments, so the playlist moves on and players'
    /// reloads are answered. Returns whether a gap segment was added.
    pub fn tick(&mut self, now: f64) -> bool {
        let Some(last) = self.segments.back().filter(|s| s.complete) else {
            return false;
        };
        let longest = self.segments.iter().map(|s| s.duration).max().unwrap_or(0);
        let secs = self.secs(longest);
        if secs <= 0.0 || now < last.wall + self.secs(last.duration) + secs {
            return false;
        }
        let before = self.segments.len();
        self.fill_gap(now - secs);
        let added = self.segments.len() > before;
        self.gapped |= added;
        if added {
            self.trim();
        }
        added
    }

    /// The encoder was silent from the end of the last segment until
    /// `wall`: that time is listed as gap segments of the longest segment's
    /// length (the last one may have been cut short), so sequence numbers
    /// keep pace with the clock.
    fn fill_gap(&mut self, wall: f64) {
        let dur = self.segments.iter().map(|s| s.duration).max().unwrap_or(0);
        let Some(prev) = self.segments.back() else {
            return;
        };
        let secs = self.secs(dur);
        if secs <= 0.0 {
            return;
        }
        let mut at = prev.wall + self.secs(prev.duration);
        let (epoch, mut base, period) = (prev.epoch, prev.base + prev.duration, prev.period);
        let mut n = 0;
        while at + secs <= wall + 1e-3 && n < MAX_GAP_SEGMENTS {
            self.segments.push_back(Segment {
                msn: self.next_msn,
                epoch,
                data: Vec::new(),
                parts: Vec::new(),
                base,
                duration: dur,
                complete: true,
                discontinuity: false,
                gap: true,
                period,
                wall: at,
            });
            self.next_msn += 1;
            (at, base, n) = (at + secs, base + dur, n + 1);
        }
    }

    fn close_open_segment(&mut self) -> Published {
        self.new_segment = true;
        match self.segments.back_mut() {
            Some(seg) if !seg.complete => {
                seg.complete = true;
                if let Some(p) = seg.parts.last_mut() {
                    p.complete = true;
                }
                Published::Segment { msn: seg.msn }
            }
            _ => Published::Nothing,
        }
    }

    /// Drops the oldest segments past the window (in time or bytes), and
    /// the init segments no segment uses any more.
    fn trim(&mut self) {
        // By wall clock: media time may restart with a new encoder.
        let timescale = f64::from(self.timescale());
        let end = |s: &Segment| s.wall + s.duration as f64 / timescale;
        let newest_end = self.segments.back().map_or(0.0, end);
        let mut bytes: usize = self.segments.iter().map(|s| s.data.len()).sum();
        while self.segments.len() > 1 {
            let too_old = newest_end - end(&self.segments[0]) > self.opts.window_secs;
            if !too_old && bytes <= self.opts.max_window_bytes {
                break;
            }
            bytes -= self.segments[0].data.len();
            if let Some(gone) = self.segments.pop_front() {
                self.dropped_discontinuities += u64::from(gone.discontinuity);
            }
        }
        let oldest_period = self.segments.front().map_or(0, |s| s.period);
        while self.periods.len() > 1 && self.periods[0].period < oldest_period {
            self.periods.pop_front();
        }
        let oldest_epoch = self.segments.front().map_or(u32::MAX, |s| s.epoch);
        while self.inits.len() > 1 && self.inits[0].0 < oldest_epoch {
            self.inits.pop_front();
        }
    }
}

#[cfg(test)]
#[path = "track_tests.rs"]
pub(crate) mod tests;

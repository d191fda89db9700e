//! WebVTT in CMAF (ISO/IEC 14496-30, the DASH text track): a `wvtt`
//! sample entry with its `vttC` header, and segments whose samples tile
//! the segment's time without gaps: each sample holds a `vttc` box per cue
//! shown over its span (`payl` text, `sttg` settings, `iden` id), or one
//! empty `vtte` when nothing is shown. A cue longer than a sample is in
//! every sample it spans.

use crate::cmaf::writer::BoxWriter;
use crate::cmaf::{fragment, header_segment, Handler, Header, SegmentError};
use crate::mp4::Sample;

use super::webvtt::{Cue, Vtt};

/// Text tracks are in milliseconds.
pub const TIMESCALE: u32 = 1000;

/// The init segment of a WebVTT track in `language` (ISO 639-2/T).
pub fn init(vtt: &Vtt, language: &str) -> Vec<u8> {
    let mut config = String::from("WEBVTT");
    for b in &vtt.header_blocks {
        config.push_str("\n\n");
        config.push_str(b);
    }
    let mut entry = BoxWriter::new();
    // SampleEntry: six reserved bytes, data_reference_index 1.
    entry.zeros(6).u16(1);
    entry.open(b"vttC").bytes(config.as_bytes()).close();
    let body = entry.finish();
    header_segment(
        &Header {
            handler: Handler::Text,
            timescale: TIMESCALE,
            language,
            width: 0,
            height: 0,
            media_time: 0,
            entry: (*b"wvtt", &body),
        },
        None,
    )
}

/// Segment `seq` covering `[from, to)` ms, with the `cues` that overlap it.
pub fn segment(seq: u32, from: u64, to: u64, cues: &[&Cue]) -> Result<Vec<u8>, SegmentError> {
    // The span splits at every cue edge inside it.
    let mut edges: Vec<u64> = vec![from, to];
    for c in cues {
        edges.extend([c.start, c.end].into_iter().filter(|&t| t > from && t < to));
    }
    edges.sort_unstable();
    edges.dedup();
    let mut samples = Vec::with_capacity(edges.len());
    let mut payload = Vec::new();
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        let start = payload.len();
        let mut box_w = BoxWriter::new();
        let shown: Vec<&&Cue> = cues.iter().filter(|c| c.start < b && c.end > a).collect();
        if shown.is_empty() {
            box_w.open(b"vtte").close();
        }
        for c in shown {
            box_w.open(b"vttc");
            if !c.id.is_empty() {
                box_w.open(b"iden").bytes(c.id.as_bytes()).close();
            }
            if !c.settings.is_empty() {
                box_w.open(b"sttg").bytes(c.settings.as_bytes()).close();
            }
            box_w.open(b"payl").bytes(c.text.as_bytes()).close();
            box_w.close();
        }
        payload.extend_from_slice(&box_w.finish());
        samples.push(Sample {
            offset: 0,
            size: (payload.len() - start) as u32,
            dts: a,
            duration: (b - a) as u32,
            cts_offset: 0,
            sync: true,
        });
    }
    fragment(seq, &samples, &payload, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::boxes::Boxes;

    fn cue(start: u64, end: u64, text: &str) -> Cue {
        Cue {
            start,
            end,
            id: String::new(),
            settings: String::new(),
            text: text.into(),
        }
    }

    /// (duration, the sample's top-level box types and payloads) of each
    /// sample of a segment.
    fn samples(seg: &[u8]) -> Vec<(u32, Vec<String>)> {
        let top: Vec<_> = Boxes::new(seg).map(Result::unwrap).collect();
        let moof = top.iter().find(|b| &b.kind == b"moof").unwrap();
        let traf = moof.child(b"traf").unwrap();
        let (_, _, mut trun) = traf.child(b"trun").unwrap().full().unwrap();
        let n = trun.u32().unwrap();
        trun.skip(4).unwrap();
        let mdat = top.iter().find(|b| &b.kind == b"mdat").unwrap().body;
        let mut at = 0;
        (0..n)
            .map(|_| {
                let (d, size) = (trun.u32().unwrap(), trun.u32().unwrap() as usize);
                trun.skip(4).unwrap();
                let boxes = Boxes::new(&mdat[at..at + size])
                    .map(Result::unwrap)
                    .map(|b| match b.child(b"payl") {
                        Some(p) => String::from_utf8(p.body.to_vec()).unwrap(),
                        None => String::from_utf8_lossy(&b.kind).into_owned(),
                    })
                    .collect();
                at += size;
                (d, boxes)
            })
            .collect()
    }

    #[test]
    fn samples_tile_the_segment() {
        let (a, b) = (cue(1000, 5000, "A"), cue(2000, 3000, "B"));
        let seg = segment(1, 0, 4000, &[&a, &b]).unwrap();
        let got = samples(&seg);
        let want: Vec<(u32, Vec<String>)> = vec![
            (1000, vec!["vtte".into()]),
            (1000, vec!["A".into()]),
            (1000, vec!["A".into(), "B".into()]),
            (1000, vec!["A".into()]),
        ];
        assert_eq!(got, want);
        let empty = samples(&segment(2, 4000, 8000, &[]).unwrap());
        assert_eq!(empty, vec![(4000, vec!["vtte".to_string()])]);
    }
}

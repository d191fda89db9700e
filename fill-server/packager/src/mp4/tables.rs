//! A track's sample tables (stsz, stts, ctts, stss, stco/co64, stsc),
//! each read on its own and checked against the others, then laid out into
//! one list of samples with file offsets and decode times. Every count is
//! bounded by the box that holds it or by the file's length, so a forged
//! table cannot make the packager allocate more than the file is worth.

use super::boxes::BoxRef;
use super::track::Sample;
use super::Mp4Error;

fn bad(track: u32, reason: &str) -> Mp4Error {
    Mp4Error::BadTrack {
        track,
        reason: reason.to_string(),
    }
}

/// Expands `stbl`'s tables into samples; every sample lies inside the
/// file's `file_len` bytes.
pub fn samples(stbl: &BoxRef, id: u32, file_len: u64) -> Result<Vec<Sample>, Mp4Error> {
    let sizes = sizes(stbl, id, file_len)?;
    let n = sizes.len();
    let durations = durations(stbl, id, n)?;
    let cts = composition_offsets(stbl, n)?;
    let sync = keyframes(stbl, id, n)?;
    let offsets = chunk_offsets(stbl)?;
    let runs = chunk_runs(stbl, id)?;
    let mut out = Vec::with_capacity(n);
    let mut dts = 0u64;
    for (first, last, per) in runs.iter().enumerate().map(|(i, &(first, per))| {
        let last = runs.get(i + 1).map_or(offsets.len(), |next| next.0 - 1);
        (first, last.min(offsets.len()), per)
    }) {
        for &chunk_offset in offsets.iter().take(last).skip(first - 1) {
            let mut pos = chunk_offset;
            for _ in 0..per {
                let i = out.len();
                if i >= n {
                    break;
                }
                let end = pos.checked_add(u64::from(sizes[i])).filter(|&e| e <= file_len);
                let Some(end) = end else {
                    return Err(Mp4Error::PastEnd {
                        track: id,
                        sample: i,
                        start: pos,
                        end: pos.saturating_add(u64::from(sizes[i])),
                        len: file_len,
                    });
                };
                out.push(Sample {
                    offset: pos,
                    size: sizes[i],
                    dts,
                    duration: durations[i],
                    cts_offset: cts[i],
                    sync: sync[i],
                });
                dts += u64::from(durations[i]);
                pos = end;
            }
        }
    }
    if out.len() != n {
        return Err(bad(id, &format!("chunks hold {} samples, stsz {n}", out.len())));
    }
    Ok(out)
}

/// `stsz`: each sample's size. A fixed size may not describe more bytes
/// than the file has.
fn sizes(stbl: &BoxRef, id: u32, file_len: u64) -> Result<Vec<u32>, Mp4Error> {
    let (_, _, mut r) = stbl.need(b"stsz")?.full()?;
    let fixed = r.u32()?;
    if fixed == 0 {
        return (0..r.count(4)?).map(|_| r.u32()).collect();
    }
    let n = r.u32()? as usize;
    if (n as u64).saturating_mul(u64::from(fixed)) > file_len {
        return Err(bad(id, "stsz describes more bytes than the file has"));
    }
    Ok(vec![fixed; n])
}

/// `stts`: each sample's duration; it must cover exactly `n` samples.
fn durations(stbl: &BoxRef, id: u32, n: usize) -> Result<Vec<u32>, Mp4Error> {
    let (_, _, mut r) = stbl.need(b"stts")?.full()?;
    let mut durations = Vec::with_capacity(n);
    for _ in 0..r.count(8)? {
        let (count, delta) = (r.u32()? as usize, r.u32()?);
        if durations.len() + count > n {
            return Err(bad(id, "stts covers more samples than stsz"));
        }
        durations.extend(std::iter::repeat_n(delta, count));
    }
    if durations.len() != n {
        return Err(bad(id, &format!("stts covers {} samples, stsz {n}", durations.len())));
    }
    Ok(durations)
}

/// `ctts` (optional): composition minus decode time per sample; version 0
/// offsets above `i32::MAX` are clamped.
fn composition_offsets(stbl: &BoxRef, n: usize) -> Result<Vec<i32>, Mp4Error> {
    let mut cts = vec![0i32; n];
    let Some(ctts) = stbl.child(b"ctts") else {
        return Ok(cts);
    };
    let (v, _, mut r) = ctts.full()?;
    let mut i = 0usize;
    for _ in 0..r.count(8)? {
        let count = r.u32()? as usize;
        let raw = r.u32()?;
        let off = if v == 0 {
            raw.min(i32::MAX as u32) as i32
        } else {
            raw as i32
        };
        for c in cts.iter_mut().skip(i).take(count) {
            *c = off;
        }
        i = i.saturating_add(count);
    }
    Ok(cts)
}

/// `stss` (optional; without it every sample is a keyframe).
fn keyframes(stbl: &BoxRef, id: u32, n: usize) -> Result<Vec<bool>, Mp4Error> {
    let Some(stss) = stbl.child(b"stss") else {
        return Ok(vec![true; n]);
    };
    let mut sync = vec![false; n];
    let (_, _, mut r) = stss.full()?;
    for _ in 0..r.count(4)? {
        let k = r.u32()? as usize;
        if k == 0 || k > n {
            return Err(bad(id, &format!("stss names sample {k} of {n}")));
        }
        sync[k - 1] = true;
    }
    Ok(sync)
}

/// `co64` or `stco`: where each chunk starts in the file.
fn chunk_offsets(stbl: &BoxRef) -> Result<Vec<u64>, Mp4Error> {
    if let Some(co64) = stbl.child(b"co64") {
        let (_, _, mut r) = co64.full()?;
        return (0..r.count(8)?).map(|_| r.u64()).collect();
    }
    let (_, _, mut r) = stbl.need(b"stco")?.full()?;
    (0..r.count(4)?).map(|_| r.u32().map(u64::from)).collect()
}

/// `stsc`: (first chunk, samples per chunk) runs, first chunks 1-based and
/// strictly increasing.
fn chunk_runs(stbl: &BoxRef, id: u32) -> Result<Vec<(usize, usize)>, Mp4Error> {
    let (_, _, mut r) = stbl.need(b"stsc")?.full()?;
    let runs: Vec<(usize, usize)> = (0..r.count(12)?)
        .map(|_| {
            let first = r.u32()? as usize;
            let per = r.u32()? as usize;
            r.skip(4)?;
            Ok((first, per))
        })
        .collect::<Result<_, Mp4Error>>()?;
    let increasing = runs.iter().all(|r| r.0 > 0) && runs.windows(2).all(|w| w[0].0 < w[1].0);
    if !increasing {
        return Err(bad(id, "stsc chunks are not increasing"));
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full box (version 0, no flags) around `payload`.
    fn full(kind: &[u8; 4], payload: &[u32]) -> Vec<u8> {
        let body: Vec<u8> = payload.iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut b = ((12 + body.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&body);
        b
    }

    /// Three 10-byte samples of duration 512, the chunk table `chunks`.
    fn stbl(stsc: &[u32], chunks: Vec<u8>) -> Vec<u8> {
        [
            full(b"stsz", &[0, 3, 10, 10, 10]),
            full(b"stts", &[1, 3, 512]),
            full(b"stsc", stsc),
            chunks,
        ]
        .concat()
    }

    fn parse(body: &[u8], file_len: u64) -> Result<Vec<Sample>, Mp4Error> {
        samples(&BoxRef { kind: *b"stbl", body }, 1, file_len)
    }

    #[test]
    fn tables_lay_out_into_samples() {
        // Chunk 1 (offset 100) holds two samples, chunk 2 (offset 500) one.
        let body = stbl(&[2, 1, 2, 1, 2, 1, 1], full(b"stco", &[2, 100, 500]));
        let s = parse(&body, 1000).unwrap();
        let got: Vec<(u64, u64)> = s.iter().map(|s| (s.offset, s.dts)).collect();
        assert_eq!(got, [(100, 0), (110, 512), (500, 1024)]);
    }

    #[test]
    fn a_run_starting_at_chunk_zero_is_refused_not_a_panic() {
        // The second run's first chunk is 0: the old layout computed the
        // first run's end as 0 - 1.
        let body = stbl(&[2, 1, 3, 1, 0, 3, 1], full(b"stco", &[1, 100]));
        assert!(matches!(parse(&body, 1000), Err(Mp4Error::BadTrack { .. })));
    }

    #[test]
    fn a_chunk_offset_near_the_top_of_u64_is_past_the_end_not_an_overflow() {
        let mut co64 = full(b"co64", &[1]);
        co64.extend_from_slice(&(u64::MAX - 4).to_be_bytes());
        co64[3] += 8;
        let body = stbl(&[1, 1, 3, 1], co64);
        assert!(matches!(parse(&body, 1000), Err(Mp4Error::PastEnd { .. })));
    }
}

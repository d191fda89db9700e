//! What the live benchmarks share: ffmpeg's LL-DASH output encoded ahead
//! and pushed into a live door at the pace an encoder would (`push`).

pub mod push;

/// The `p` quantile (0..=1) of `samples`; NaN when there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

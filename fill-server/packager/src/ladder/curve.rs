//! The per-title decision, kept pure: each rung's trial points (CRF,
//! bitrate and PSNR, one curve per sampled clip) in, how to encode the
//! rung out. `trial.rs` makes the points with ffmpeg.
//!
//! A rung is encoded at the CRF its hardest sampled clip needs to reach
//! the target quality, capped at the fixed ladder's peak rate ("capped
//! CRF"): the encoder then spends what each scene needs, so a scene the
//! samples missed still gets bits, up to the cap. A rung whose clips
//! cannot reach the target, or would save less than `min_saving` of the
//! fixed rate doing so, keeps the fixed ladder's average bitrate: hard
//! titles encode exactly as before. An average bitrate far below the
//! fixed one was tried first and lost: one-pass ABR at 40 kbit/s starves
//! the keyframes (34 dB where CRF gave 45 dB at the same size).

use super::{Rate, Rung};

/// One trial encode: its CRF, its bitrate and its PSNR against the source
/// scaled to the rung's size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub crf: f64,
    pub kbps: f64,
    pub psnr: f64,
}

/// How the per-title ladder picks each rung's encode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// The quality every rung aims at, in dB of PSNR.
    pub target_psnr: f64,
    /// A rung goes per-title only if it saves at least this share of the
    /// fixed rate on its hardest sampled clip.
    pub min_saving: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            target_psnr: 45.0,
            min_saving: 0.1,
        }
    }
}

/// What the per-title ladder chose for one rung, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub height: u32,
    pub fixed_kbps: u32,
    /// How the rung is encoded: `Rate::Kbps(fixed_kbps)` or a capped CRF.
    pub rate: Rate,
    /// The rate the hardest sampled clip needs at the chosen CRF; `None`
    /// when some clip never reached the target within the trial points.
    pub needed_kbps: Option<u32>,
}

/// The highest CRF at which `points` still reach `target` dB, walking
/// from the best quality down and interpolating linearly between the two
/// trial points around the crossing; the highest CRF tried when all reach
/// it; `None` when even the best trial is below.
pub fn crf_for(points: &[Point], target: f64) -> Option<f64> {
    let sorted = sorted(points);
    let first = sorted.first()?;
    if first.psnr < target {
        return None;
    }
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.psnr < target {
            let t = ((a.psnr - target) / (a.psnr - b.psnr)).clamp(0.0, 1.0);
            return Some(a.crf + t * (b.crf - a.crf));
        }
    }
    sorted.last().map(|p| p.crf)
}

/// The bitrate at `crf`, interpolated linearly in log rate between the
/// trial points around it (held at the ends).
pub fn rate_at(points: &[Point], crf: f64) -> Option<f64> {
    let sorted = sorted(points);
    let (first, last) = (sorted.first()?, sorted.last()?);
    if crf <= first.crf {
        return Some(first.kbps);
    }
    if crf >= last.crf {
        return Some(last.kbps);
    }
    let i = sorted.iter().position(|p| p.crf >= crf)?;
    let (a, b) = (sorted[i - 1], sorted[i]);
    let t = (crf - a.crf) / (b.crf - a.crf);
    Some((a.kbps.ln() + t * (b.kbps.ln() - a.kbps.ln())).exp())
}

/// Usable points, by CRF (best quality first).
fn sorted(points: &[Point]) -> Vec<Point> {
    let mut v: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.kbps > 0.0 && p.kbps.is_finite() && p.crf.is_finite() && !p.psnr.is_nan())
        .collect();
    v.sort_by(|a, b| a.crf.total_cmp(&b.crf));
    v
}

/// The per-title encodes, highest rung first: `fixed` are the fixed
/// ladder's rungs and `trials[i]` the curves of rung `i`, one per clip.
pub fn choose(fixed: &[Rung], trials: &[Vec<Vec<Point>>], policy: &Policy) -> Vec<Choice> {
    fixed
        .iter()
        .enumerate()
        .map(|(i, rung)| {
            let clips = trials.get(i).map(Vec::as_slice).unwrap_or_default();
            let (crf, needed) = match hardest(clips, policy.target_psnr) {
                Some((crf, kbps)) => (Some(crf), Some(kbps)),
                None => (None, None),
            };
            let cap = f64::from(rung.kbps);
            let rate = match (crf, needed) {
                (Some(crf), Some(n)) if n <= cap * (1.0 - policy.min_saving) => Rate::CappedCrf {
                    crf: (crf * 10.0).floor() / 10.0,
                    max_kbps: rung.kbps,
                },
                _ => Rate::Kbps(rung.kbps),
            };
            Choice {
                height: rung.height,
                fixed_kbps: rung.kbps,
                rate,
                needed_kbps: needed.map(|n| n.round() as u32),
            }
        })
        .collect()
}

/// The CRF the hardest clip needs (the lowest) and the highest rate any
/// clip spends at it; `None` when a clip never gets there (or none ran).
fn hardest(clips: &[Vec<Point>], target: f64) -> Option<(f64, f64)> {
    let mut crf = f64::INFINITY;
    for clip in clips {
        crf = crf.min(crf_for(clip, target)?);
    }
    if !crf.is_finite() {
        return None;
    }
    let mut kbps: f64 = 0.0;
    for clip in clips {
        kbps = kbps.max(rate_at(clip, crf)?);
    }
    Some((crf, kbps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(f64, f64, f64)]) -> Vec<Point> {
        v.iter().map(|&(crf, kbps, psnr)| Point { crf, kbps, psnr }).collect()
    }

    #[test]
    fn finds_the_crf_and_its_rate() {
        let c = pts(&[(30.0, 100.0, 40.0), (20.0, 400.0, 50.0)]);
        assert_eq!(crf_for(&c, 45.0), Some(25.0));
        assert!((rate_at(&c, 25.0).unwrap() - 200.0).abs() < 1e-6);
        assert_eq!(crf_for(&c, 39.0), Some(30.0));
        assert_eq!(crf_for(&c, 51.0), None);
        assert_eq!(rate_at(&c, 40.0), Some(100.0));
        // A NaN point is ignored.
        let c = pts(&[(20.0, 400.0, 50.0), (25.0, 50.0, f64::NAN), (30.0, 100.0, 40.0)]);
        assert_eq!(crf_for(&c, 45.0), Some(25.0));
    }

    /// Curves like the ones measured here (x264 veryfast, 3 s, 720p and
    /// 360p): a still picture reaches 45 dB at ~90 kbit/s; noise never does.
    #[test]
    fn easy_saves_hard_keeps_the_fixed_rate() {
        let fixed = [
            Rung {
                height: 720,
                kbps: 2500,
            },
            Rung { height: 360, kbps: 700 },
        ];
        let still = vec![
            vec![pts(&[
                (18.0, 208.0, 55.8),
                (24.0, 134.0, 51.1),
                (30.0, 93.0, 46.9),
                (36.0, 78.0, 42.9),
            ])],
            vec![pts(&[
                (18.0, 103.0, 52.5),
                (24.0, 71.0, 47.8),
                (30.0, 55.0, 43.2),
                (36.0, 45.0, 39.4),
            ])],
        ];
        let c = choose(&fixed, &still, &Policy::default());
        assert_eq!(
            c[0].rate,
            Rate::CappedCrf {
                crf: 32.8,
                max_kbps: 2500
            },
            "{c:?}"
        );
        assert_eq!(c[0].needed_kbps, Some(86));
        assert_eq!(
            c[1].rate,
            Rate::CappedCrf {
                crf: 27.6,
                max_kbps: 700
            },
            "{c:?}"
        );
        let noise = vec![
            vec![pts(&[(18.0, 32930.0, 38.7), (24.0, 1895.0, 35.5), (30.0, 541.0, 34.6)])],
            vec![pts(&[(18.0, 1942.0, 41.1), (24.0, 266.0, 39.3), (30.0, 149.0, 37.1)])],
        ];
        let c = choose(&fixed, &noise, &Policy::default());
        assert_eq!((c[0].rate, c[1].rate), (Rate::Kbps(2500), Rate::Kbps(700)), "{c:?}");
        assert_eq!(c[0].needed_kbps, None);
    }

    /// One hard clip among easy ones decides the rung; a saving under
    /// `min_saving` keeps the fixed rate.
    #[test]
    fn the_hardest_clip_decides() {
        let fixed = [Rung {
            height: 720,
            kbps: 2500,
        }];
        let easy = pts(&[(20.0, 200.0, 50.0), (30.0, 100.0, 44.0)]);
        let hard = pts(&[(20.0, 2000.0, 46.0), (30.0, 500.0, 40.0)]);
        let c = choose(&fixed, &[vec![easy.clone(), hard]], &Policy::default());
        assert!(
            matches!(c[0].rate, Rate::CappedCrf { crf, .. } if (crf - 21.6).abs() < 0.05),
            "{c:?}"
        );
        assert!(c[0].needed_kbps.unwrap() > 1500, "{c:?}");
        let close = pts(&[(20.0, 3000.0, 46.0), (30.0, 800.0, 40.0)]);
        let c = choose(&fixed, &[vec![easy.clone(), close]], &Policy::default());
        assert_eq!(c[0].rate, Rate::Kbps(2500), "{c:?}");
        let never = pts(&[(20.0, 5000.0, 35.0), (30.0, 500.0, 30.0)]);
        let c = choose(&fixed, &[vec![easy, never]], &Policy::default());
        assert_eq!(c[0].rate, Rate::Kbps(2500));
    }
}

//! A synthetic viewing trace: a catalogue whose popularity follows a Zipf
//! law, decays with a title's age and is reshuffled a little every day,
//! with new releases (announced the day before) entering near the top.
//! Each ISP has its own taste: the same catalogue, its own jitter.


use nearcast_common::Name;
/// A small deterministic generator (xorshift*), so runs are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
pub struct Title {
    pub name: Name,
    pub size: u64,
    /// Day it becomes watchable (negative: back catalogue).
    pub release: i64,
    /// Intrinsic appeal (a Zipf weight).
    pub appeal: f64,
}

pub struct Params {
    pub titles: usize,
    pub isps: usize,
    pub days: i64,
    pub plays_per_isp_day: usize,
    pub releases_per_day: usize,
    pub zipf: f64,
    /// Days for a title's pull to halve after release.
    pub half_life: f64,
}

/// One play: day, ISP, title index, bytes.
pub struct Play {
    pub day: i64,
    pub isp: usize,
    pub title: usize,
    pub bytes: u64,
}

pub fn catalogue(p: &Params, rng: &mut Rng) -> Vec<Title> {
    let back = p.titles - p.releases_per_day * p.days as usize;
    (0..p.titles)
        .map(|i| {
            // Sizes: 0.3–3 GB, skewed toward the low end.
            let size = (300_000_000.0 * (1.0 + 9.0 * rng.unit().powi(2))) as u64;
            let (release, rank) = if i < back {
                (-((rng.next() % 365) as i64) - 1, i + 1)
            } else {
                let k = i - back;
                // New releases rank among the top 50 by appeal.
                ((k / p.releases_per_day) as i64, 1 + (rng.next() % 50) as usize)
            };
            Title {
                name: Name::new(format!("t{i:05}")).expect("a plain name"),
                size,
                release,
                appeal: 1.0 / (rank as f64).powf(p.zipf),
            }
        })
        .collect()
}

/// The day's popularity weights of every title in one ISP.
fn weights(cat: &[Title], day: i64, jitter: &[f64], p: &Params) -> Vec<f64> {
    cat.iter()
        .zip(jitter)
        .map(|(t, j)| {
            if t.release > day {
                return 0.0;
            }
            let age = (day - t.release) as f64;
            t.appeal * (0.15 + 0.85 * 0.5f64.powf(age / p.half_life)) * j
        })
        .collect()
}

/// Every play of the trace, day by day.
pub fn plays(cat: &[Title], p: &Params, rng: &mut Rng) -> Vec<Play> {
    let mut out = Vec::new();
    let mut jitter: Vec<Vec<f64>> = (0..p.isps).map(|_| cat.iter().map(|_| 0.5 + rng.unit()).collect()).collect();
    for day in 0..p.days {
        for (isp, jit) in jitter.iter_mut().enumerate() {
            // Daily churn: every title's taste drifts a little.
            for j in jit.iter_mut() {
                *j = (*j * (0.9 + 0.2 * rng.unit())).clamp(0.2, 3.0);
            }
            let w = weights(cat, day, jit, p);
            let total: f64 = w.iter().sum();
            let mut cdf = Vec::with_capacity(w.len());
            let mut acc = 0.0;
            for x in &w {
                acc += x / total;
                cdf.push(acc);
            }
            for _ in 0..p.plays_per_isp_day {
                let u = rng.unit();
                let title = cdf.partition_point(|&c| c < u).min(cat.len() - 1);
                // A play watches 20–100 % of the title.
                let bytes = (cat[title].size as f64 * (0.2 + 0.8 * rng.unit())) as u64;
                out.push(Play { day, isp, title, bytes });
            }
        }
    }
    out
}

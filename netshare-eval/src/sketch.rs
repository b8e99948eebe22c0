//! Sketch telemetry, the second downstream task of the paper: estimate the counts of the heavy
//! hitters with Count-Min, Count-Sketch and UnivMon, on the real and on the synthetic trace.
//! A synthetic trace is useful for sketch design when each sketch's error on it is close to its
//! error on the real trace, and the sketches rank the same.

/// One SplitMix64 step: add the increment, then the finaliser. A fast, well-mixed 64-bit hash.
pub fn mix64(z: u64) -> u64 {
    use netshare_core::seed;
    seed::mix64(z.wrapping_add(seed::GOLDEN))
}

/// A frequency sketch over `u32` keys.
pub trait Sketch {
    /// Adds `w` occurrences of `key`.
    fn add(&mut self, key: u32, w: f64);
    /// The estimated count of `key`.
    fn estimate(&self, key: u32) -> f64;
}

/// Count-Min: `depth` rows of `width` counters; the estimate is the row minimum (never below
/// the true count).
#[derive(Clone, Debug)]
pub struct CountMin {
    width: usize,
    seeds: Vec<u64>,
    table: Vec<f64>,
}

impl CountMin {
    /// A sketch with hash seeds derived from `seed`.
    pub fn new(depth: usize, width: usize, seed: u64) -> CountMin {
        let width = width.max(1);
        CountMin {
            width,
            seeds: (0..depth.max(1) as u64)
                .map(|r| mix64(seed ^ mix64(r)))
                .collect(),
            table: vec![0.0; depth.max(1) * width],
        }
    }
}

impl Sketch for CountMin {
    fn add(&mut self, key: u32, w: f64) {
        for (r, s) in self.seeds.iter().enumerate() {
            let b = (mix64(u64::from(key) ^ s) % self.width as u64) as usize;
            self.table[r * self.width + b] += w;
        }
    }

    fn estimate(&self, key: u32) -> f64 {
        self.seeds
            .iter()
            .enumerate()
            .map(|(r, s)| {
                self.table
                    [r * self.width + (mix64(u64::from(key) ^ s) % self.width as u64) as usize]
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Count-Sketch: signed counters; the estimate is the median over rows (unbiased).
#[derive(Clone, Debug)]
pub struct CountSketch {
    width: usize,
    seeds: Vec<u64>,
    table: Vec<f64>,
}

impl CountSketch {
    /// A sketch with hash seeds derived from `seed`.
    pub fn new(depth: usize, width: usize, seed: u64) -> CountSketch {
        let width = width.max(1);
        CountSketch {
            width,
            seeds: (0..depth.max(1) as u64)
                .map(|r| mix64(seed ^ mix64(r ^ 0xc5)))
                .collect(),
            table: vec![0.0; depth.max(1) * width],
        }
    }

    fn slot(&self, r: usize, key: u32) -> (usize, f64) {
        let h = mix64(u64::from(key) ^ self.seeds[r]);
        let b = ((h & 0xffff_ffff) % self.width as u64) as usize;
        (r * self.width + b, if h >> 63 == 1 { -1.0 } else { 1.0 })
    }
}

impl Sketch for CountSketch {
    fn add(&mut self, key: u32, w: f64) {
        for r in 0..self.seeds.len() {
            let (i, sign) = self.slot(r, key);
            self.table[i] += sign * w;
        }
    }

    fn estimate(&self, key: u32) -> f64 {
        let mut v: Vec<f64> = (0..self.seeds.len())
            .map(|r| {
                let (i, sign) = self.slot(r, key);
                sign * self.table[i]
            })
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
}

/// UnivMon (Liu et al., SIGCOMM 2016): level `l` holds a Count-Sketch of the keys whose
/// sampling hash has its `l` lowest bits set (a 2^-l substream). A key's count is estimated at
/// the deepest level that samples it, where fewer keys collide.
#[derive(Clone, Debug)]
pub struct UnivMon {
    sample_seed: u64,
    levels: Vec<CountSketch>,
}

impl UnivMon {
    /// `levels` Count-Sketches of `depth x width` each.
    pub fn new(levels: usize, depth: usize, width: usize, seed: u64) -> UnivMon {
        UnivMon {
            sample_seed: mix64(seed ^ 0x5eed),
            levels: (0..levels.max(1) as u64)
                .map(|l| CountSketch::new(depth, width, mix64(seed.wrapping_add(l))))
                .collect(),
        }
    }

    /// The deepest level `key` belongs to.
    fn depth_of(&self, key: u32) -> usize {
        let h = mix64(u64::from(key) ^ self.sample_seed);
        (h.trailing_ones() as usize).min(self.levels.len() - 1)
    }
}

impl Sketch for UnivMon {
    fn add(&mut self, key: u32, w: f64) {
        let d = self.depth_of(key);
        for l in &mut self.levels[..=d] {
            l.add(key, w);
        }
    }

    fn estimate(&self, key: u32) -> f64 {
        self.levels[self.depth_of(key)].estimate(key)
    }
}

/// Mean relative error of a sketch over the `top_k` most frequent keys of `keys`, averaged over
/// `repeats` hash seeds. `None` when there are no keys.
pub fn heavy_hitter_error(
    keys: &[u32],
    top_k: usize,
    repeats: usize,
    seed: u64,
    make: &dyn Fn(u64) -> Box<dyn Sketch>,
) -> Option<f64> {
    let mut counts: Vec<(u32, f64)> = crate::stats::counts(keys).into_iter().collect();
    counts.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.truncate(top_k);
    if counts.is_empty() || repeats == 0 {
        return None;
    }
    let mut errs = Vec::with_capacity(repeats);
    for r in 0..repeats as u64 {
        let mut s = make(mix64(seed ^ mix64(r)));
        for &k in keys {
            s.add(k, 1.0);
        }
        errs.push(
            crate::stats::sum(counts.iter().map(|&(k, c)| (s.estimate(k) - c).abs() / c))
                / counts.len() as f64,
        );
    }
    Some(crate::stats::sum(errs) / repeats as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipf_keys() -> Vec<u32> {
        let mut keys = Vec::new();
        for k in 0..500u32 {
            for _ in 0..(2000 / (k + 1)) {
                keys.push(k * 7919);
            }
        }
        keys
    }

    #[test]
    fn count_min_never_underestimates_and_is_exact_when_wide() {
        let keys = zipf_keys();
        let mut cm = CountMin::new(4, 64, 1);
        let mut wide = CountMin::new(4, 1 << 20, 1);
        for &k in &keys {
            cm.add(k, 1.0);
            wide.add(k, 1.0);
        }
        let truth = crate::stats::counts(&keys);
        for (&k, &c) in &truth {
            assert!(cm.estimate(k) >= c);
            assert_eq!(wide.estimate(k), c);
        }
    }

    #[test]
    fn sketch_errors_shrink_as_width_grows() {
        let keys = zipf_keys();
        for kind in 0..3 {
            let make = |w: usize| {
                move |s: u64| -> Box<dyn Sketch> {
                    match kind {
                        0 => Box::new(CountMin::new(4, w, s)),
                        1 => Box::new(CountSketch::new(5, w, s)),
                        _ => Box::new(UnivMon::new(4, 5, w, s)),
                    }
                }
            };
            let narrow = heavy_hitter_error(&keys, 20, 5, 3, &make(16)).expect("keys");
            let wide = heavy_hitter_error(&keys, 20, 5, 3, &make(4096)).expect("keys");
            assert!(wide < narrow, "sketch {kind}: {wide} !< {narrow}");
            assert!(wide < 0.05, "sketch {kind}: {wide}");
        }
    }
}

//! Samplers for write addresses ([`AddressDist`]).

use crate::params::AddressDist;
use crate::rng::Rng;

/// Picks data blocks in `start..start + count` according to an [`AddressDist`].
#[derive(Debug, Clone)]
pub struct AddressSampler {
    start: u64,
    count: u64,
    /// Odd multiplier coprime with `count`: rank -> block permutation, so "popular" blocks are
    /// scattered over the image instead of clustered at its start.
    stride: u64,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Uniform,
    /// Cumulative weights of ranks 0..count.
    Zipf(Vec<f64>),
    Sequential {
        cursor: u64,
    },
    HotSet {
        hot: u64,
        probability: f64,
    },
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl AddressSampler {
    /// A sampler over `count` blocks from `start` (`count` at least 1).
    pub fn new(dist: AddressDist, start: u64, count: u64, rng: &mut Rng) -> AddressSampler {
        let count = count.max(1);
        let mut stride = (rng.below(count) | 1).max(1);
        while gcd(stride, count) != 1 {
            stride += 2;
            if stride >= count {
                stride = 1;
            }
        }
        let kind = match dist {
            AddressDist::Uniform => Kind::Uniform,
            AddressDist::Sequential => Kind::Sequential { cursor: rng.below(count) },
            AddressDist::Zipf { skew } => {
                let mut acc = 0.0;
                let cdf = (0..count)
                    .map(|k| {
                        acc += 1.0 / ((k + 1) as f64).powf(skew);
                        acc
                    })
                    .collect();
                Kind::Zipf(cdf)
            }
            AddressDist::HotSet { fraction, probability } => {
                Kind::HotSet { hot: ((count as f64 * fraction) as u64).clamp(1, count), probability }
            }
        };
        AddressSampler { start, count, stride, kind }
    }

    fn place(&self, rank: u64) -> u64 {
        let r = (u128::from(rank) * u128::from(self.stride)) % u128::from(self.count);
        self.start + r as u64
    }

    /// The next block.
    pub fn sample(&mut self, rng: &mut Rng) -> u64 {
        match &mut self.kind {
            Kind::Uniform => self.start + rng.below(self.count),
            Kind::Sequential { cursor } => {
                let b = self.start + *cursor;
                *cursor = (*cursor + 1) % self.count;
                b
            }
            Kind::Zipf(cdf) => {
                let total = cdf.last().copied().unwrap_or(1.0);
                let u = rng.unit() * total;
                let rank = cdf.partition_point(|&c| c <= u).min(cdf.len().saturating_sub(1)) as u64;
                self.place(rank)
            }
            Kind::HotSet { hot, probability } => {
                let (hot, p) = (*hot, *probability);
                let rank = if rng.chance(p) { rng.below(hot) } else { rng.below(self.count) };
                self.place(rank)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_distribution_stays_in_range_and_zipf_is_skewed() {
        let mut rng = Rng::new(1);
        for dist in [
            AddressDist::Uniform,
            AddressDist::Sequential,
            AddressDist::Zipf { skew: 1.1 },
            AddressDist::HotSet { fraction: 0.01, probability: 0.9 },
        ] {
            let mut s = AddressSampler::new(dist, 10, 1000, &mut rng);
            let mut counts = vec![0u32; 1000];
            for _ in 0..20_000 {
                let b = s.sample(&mut rng);
                assert!((10..1010).contains(&b), "{dist:?} gave {b}");
                counts[(b - 10) as usize] += 1;
            }
            let max = counts.iter().copied().max().unwrap_or(0);
            match dist {
                AddressDist::Zipf { .. } | AddressDist::HotSet { .. } => assert!(max > 1000, "{dist:?}: max {max}"),
                _ => assert!(max < 100, "{dist:?}: max {max}"),
            }
        }
    }
}

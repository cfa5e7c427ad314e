//! Visit durations: a quantile sketch that can take a value back.
//!
//! A visit's duration changes while the visit is open, so a bucket must
//! be able to remove the duration it counted before and add the new one.
//! Sampling sketches (KLL, t-digest) cannot remove; this one keeps counts
//! in logarithmic bins of fixed edges (the scheme of DDSketch, Masson et
//! al., VLDB 2019): a value `x` ≥ 1 ms falls in bin `ceil(ln x / ln γ)`,
//! zero in a bin of its own, so removing is a decrement, merging is a sum
//! of counts, and any quantile read from it is within [`RELATIVE_ERROR`]
//! of a value of that rank. With γ = 1.02 a day's durations span at most
//! about 570 bins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest relative error of a quantile: (γ − 1) / (γ + 1).
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);

const GAMMA: f64 = 1.02;

/// Counts of durations (milliseconds) by bin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// Durations of 0 ms (a visit of one event).
    #[serde(default, skip_serializing_if = "is_zero")]
    zero: u64,
    /// Bin index → count; no empty bins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    bins: BTreeMap<i32, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn bin(ms: u64) -> i32 {
    // ms ≥ 1: ln ms ≥ 0; a day is bin 574.
    ((ms as f64).ln() / GAMMA.ln()).ceil() as i32
}

/// The value a bin stands for: the one of least relative error to either
/// edge, 2γ^i / (γ + 1).
fn value(bin: i32) -> f64 {
    2.0 * GAMMA.powi(bin) / (GAMMA + 1.0)
}

impl Durations {
    pub fn add(&mut self, ms: u64) {
        match ms {
            0 => self.zero += 1,
            ms => *self.bins.entry(bin(ms)).or_default() += 1,
        }
    }

    /// Takes back one duration added before (nothing when it was not).
    pub fn remove(&mut self, ms: u64) {
        if ms == 0 {
            self.zero = self.zero.saturating_sub(1);
            return;
        }
        let b = bin(ms);
        if let Some(count) = self.bins.get_mut(&b) {
            *count -= 1;
            if *count == 0 {
                self.bins.remove(&b);
            }
        }
    }

    pub fn merge(&mut self, other: &Durations) {
        self.zero += other.zero;
        for (b, count) in &other.bins {
            *self.bins.entry(*b).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.zero + self.bins.values().sum::<u64>()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in milliseconds: the value of rank
    /// ⌊q·(n−1)⌋, within [`RELATIVE_ERROR`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (b, count) in &self.bins {
            seen += count;
            if rank < seen {
                return Some(value(*b));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_error_of_the_exact_ones() {
        // Durations from 0 to about 3 hours, skewed towards short visits.
        let mut exact: Vec<u64> = (0..20_000u64).map(|i| (i * i * 37) % 10_800_000).collect();
        let mut sketch = Durations::default();
        for &d in &exact {
            sketch.add(d);
        }
        exact.sort_unstable();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            let want = exact[(q * (exact.len() - 1) as f64).floor() as usize] as f64;
            let got = sketch.quantile(q).expect("not empty");
            assert!(
                (got - want).abs() <= want * RELATIVE_ERROR + 1e-9,
                "q {q}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn a_removed_duration_leaves_the_sketch_as_if_never_added() {
        let mut a = Durations::default();
        let mut b = Durations::default();
        for d in [0, 5, 1_000, 60_000, 61_000] {
            a.add(d);
            b.add(d);
        }
        a.add(7_777);
        a.remove(7_777);
        a.add(0);
        a.remove(0);
        assert_eq!(a, b);
        // Merging is adding counts.
        let mut m = Durations::default();
        m.merge(&a);
        m.merge(&b);
        assert_eq!(m.count(), 10);
        assert_eq!(m.quantile(0.0), Some(0.0));
    }
}

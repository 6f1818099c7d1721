//! A compact latency histogram: exact below 1 µs, about 0.2 % relative precision above, fixed
//! memory whatever the number of samples.

use std::time::Duration;

/// Values below this many nanoseconds get one bucket each.
const LINEAR: u64 = 1024;
/// Buckets per power of two above [`LINEAR`] (precision 1/512).
const SUB_BUCKETS: u64 = 512;
/// Powers of two above [`LINEAR`] that fit a u64 of nanoseconds.
const OCTAVES: u64 = 64 - 10;

/// Latency samples in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (LINEAR + OCTAVES * SUB_BUCKETS) as usize],
            total: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.total += 1;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The latency below or at which `q` (0..=1) of the samples fall; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(value(i));
            }
        }
        Duration::from_nanos(value(self.counts.len() - 1))
    }
}

fn index(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    // For ns in [2^k, 2^(k+1)), k >= 10: keep the top 10 bits (the leading one plus 9).
    let k = 63 - u64::from(ns.leading_zeros());
    let shift = k - 9;
    let mantissa = (ns >> shift) - SUB_BUCKETS; // 0..512
    (LINEAR + (k - 10) * SUB_BUCKETS + mantissa) as usize
}

/// The upper edge of bucket `i` (the largest value it holds).
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = (i - LINEAR) / SUB_BUCKETS + 10;
    let mantissa = (i - LINEAR) % SUB_BUCKETS + SUB_BUCKETS;
    let shift = k - 9;
    let edge = (u128::from(mantissa + 1) << shift) - 1;
    u64::try_from(edge).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_in_order() {
        let mut last = 0;
        for ns in [
            0,
            1,
            1023,
            1024,
            1025,
            5_000,
            1_000_000,
            10_000_000_000,
            u64::MAX,
        ] {
            let i = index(ns);
            assert!(i >= last, "index({ns}) went backwards");
            last = i;
            let edge = value(i);
            assert!(edge >= ns, "bucket of {ns} ends at {edge}");
            assert!(
                edge - ns <= ns / 256 + 1,
                "bucket of {ns} too wide (ends at {edge})"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        for us in 1..=100 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.len(), 100);
        let p50 = h.quantile(0.50).as_nanos() as f64;
        let p99 = h.quantile(0.99).as_nanos() as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.01, "p50 = {p50} ns");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.01, "p99 = {p99} ns");
    }
}

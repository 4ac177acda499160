//! What one run of a case measured, and the medians over several runs.

use std::time::{Duration, Instant};

/// Round trips made before timing starts (caches, page faults, scheduler).
const WARM_UP: usize = 100;

/// What one run of a case measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Measure {
    /// Round trips: median and 99th percentile, in nanoseconds.
    Latency {
        p50_ns: f64,
        p99_ns: f64,
        round_trips: u64,
    },
    /// Messages moved in a time.
    Throughput { messages: u64, seconds: f64 },
}

impl Measure {
    /// The figure ratios compare, oriented so that higher is better (round trips per
    /// second at the median, or messages per second).
    pub(crate) fn score(&self) -> f64 {
        match *self {
            Measure::Latency { p50_ns, .. } => 1e9 / p50_ns,
            Measure::Throughput { messages, seconds } => messages as f64 / seconds,
        }
    }

    /// The latency figures of `samples` (nanoseconds, in any order).
    pub(crate) fn latency(mut samples: Vec<f64>) -> Measure {
        samples.sort_by(f64::total_cmp);
        Measure::Latency {
            p50_ns: percentile(&samples, 0.50),
            p99_ns: percentile(&samples, 0.99),
            round_trips: samples.len() as u64,
        }
    }

    /// The median of several runs of one case, figure by figure.
    pub(crate) fn median(runs: &[Measure]) -> Measure {
        fn med(mut v: Vec<f64>) -> f64 {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        }
        match runs[0] {
            Measure::Latency { .. } => {
                let (mut p50, mut p99, mut n) = (Vec::new(), Vec::new(), Vec::new());
                for r in runs {
                    if let Measure::Latency {
                        p50_ns,
                        p99_ns,
                        round_trips,
                    } = *r
                    {
                        p50.push(p50_ns);
                        p99.push(p99_ns);
                        n.push(round_trips as f64);
                    }
                }
                Measure::Latency {
                    p50_ns: med(p50),
                    p99_ns: med(p99),
                    round_trips: med(n) as u64,
                }
            }
            Measure::Throughput { .. } => {
                // The median rate, kept with the run that produced it.
                let mut v: Vec<Measure> = runs.to_vec();
                v.sort_by(|a, b| a.score().total_cmp(&b.score()));
                v[v.len() / 2]
            }
        }
    }
}

/// Times `round_trip` back to back for about `budget`, after a warm-up.
pub(crate) fn round_trips(
    budget: Duration,
    mut round_trip: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Measure> {
    for _ in 0..WARM_UP {
        round_trip()?;
    }
    let mut samples = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    let mut t0 = start;
    while t0 - start < budget {
        round_trip()?;
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as f64);
        t0 = t1;
    }
    Ok(Measure::latency(samples))
}

/// The value below which a `q` fraction of the sorted `samples` lie (nearest rank).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.50), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(
            Measure::latency(vec![3.0, 1.0, 2.0]),
            Measure::Latency {
                p50_ns: 2.0,
                p99_ns: 3.0,
                round_trips: 3
            }
        );
    }

    #[test]
    fn round_trips_are_timed_for_the_budget() {
        let mut calls = 0;
        let m = round_trips(Duration::from_millis(5), || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        let Measure::Latency { round_trips: n, .. } = m else {
            panic!("{m:?}")
        };
        assert!(n > 0);
        assert_eq!(calls as u64, n + WARM_UP as u64);
        assert!(round_trips(Duration::from_millis(5), || anyhow::bail!("broken")).is_err());
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let runs = [
            Measure::Latency {
                p50_ns: 3.0,
                p99_ns: 10.0,
                round_trips: 5,
            },
            Measure::Latency {
                p50_ns: 1.0,
                p99_ns: 30.0,
                round_trips: 7,
            },
            Measure::Latency {
                p50_ns: 2.0,
                p99_ns: 20.0,
                round_trips: 6,
            },
        ];
        assert_eq!(
            Measure::median(&runs),
            Measure::Latency {
                p50_ns: 2.0,
                p99_ns: 20.0,
                round_trips: 6
            }
        );
        let t = [
            Measure::Throughput {
                messages: 10,
                seconds: 1.0,
            },
            Measure::Throughput {
                messages: 30,
                seconds: 1.0,
            },
            Measure::Throughput {
                messages: 20,
                seconds: 1.0,
            },
        ];
        assert_eq!(Measure::median(&t).score(), 20.0);
    }
}

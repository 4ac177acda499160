//! What one run of a case measured, and the medians over several runs.

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

#[cfg(test)]
mod tests {
    use super::*;

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

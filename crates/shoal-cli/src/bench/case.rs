//! What `shoal bench` measures: transports × message sizes × patterns, as a table of
//! cases, each compared with the baseline transport measured in the same run.
//!
//! A new transport plugs in as one [`Transport`] variant and four match arms: its
//! [`name`](Transport::name), the patterns it [`supports`](Transport::supports), the
//! parent side in [`measure`](Transport::measure) and the peer side in
//! [`peer`](Transport::peer) (run in the re-executed `shoal __bench-peer`). A transport
//! that carries bytes reuses [`stream`]'s patterns through a
//! [`Link`](crate::bench::stream::Link) variant; a shoal object (a `Lock`, an `Event`)
//! is created by the parent, travels to the peer by name, and gets its own module with
//! a `measure` and a `peer` function. A new pattern (process start, say) is a
//! [`Pattern`] variant with its [`sizes`](Pattern::sizes). The baseline of every case is
//! the same pattern and size over [`Transport::BASELINE`].

use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use crate::bench::stream;
use crate::output;

/// A way for two processes to exchange messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// An OS pipe in each direction (the peer's stdin and stdout): the baseline.
    OsPipe,
    /// A connected Unix stream socket pair.
    UnixSocket,
}

impl Transport {
    /// Every transport, in the order the report lists them.
    pub(crate) const ALL: &'static [Transport] = &[Transport::OsPipe, Transport::UnixSocket];

    /// What every other transport is compared with.
    pub(crate) const BASELINE: Transport = Transport::OsPipe;

    /// The name in case names, tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::OsPipe => "os-pipe",
            Transport::UnixSocket => "unix-socket",
        }
    }

    /// Whether this transport can run `pattern`.
    pub(crate) fn supports(self, pattern: Pattern) -> bool {
        match self {
            Transport::OsPipe | Transport::UnixSocket => {
                matches!(pattern, Pattern::PingPong | Pattern::Throughput)
            }
        }
    }

    /// Runs the parent side of one case against a freshly started peer process.
    pub(crate) fn measure(self, case: &Case, budget: Duration) -> anyhow::Result<Measure> {
        match self {
            Transport::OsPipe | Transport::UnixSocket => {
                let (mut link, peer) = stream::Link::spawn(case, budget)?;
                let measure = stream::measure(&mut link, case, budget);
                drop(link);
                // The peer's own failure explains a broken link better than the link does.
                peer.finish()?;
                measure
            }
        }
    }

    /// Runs the peer side of one case in this (re-executed) process.
    pub(crate) fn peer(self, case: &Case) -> anyhow::Result<()> {
        match self {
            Transport::OsPipe | Transport::UnixSocket => {
                stream::peer(&mut stream::Link::for_peer(self)?, case)
            }
        }
    }
}

/// How the messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Pattern {
    /// One message there, the same size back; latency of the round trip.
    PingPong,
    /// One producer sends as fast as it can, one consumer reads: messages per second.
    Throughput,
}

impl Pattern {
    /// Every pattern, in report order.
    pub(crate) const ALL: &'static [Pattern] = &[Pattern::PingPong, Pattern::Throughput];

    /// The name in case names, tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pattern::PingPong => "ping-pong",
            Pattern::Throughput => "throughput",
        }
    }

    /// The message sizes this pattern is measured with (`[0]` for a pattern without
    /// messages, whose case names then leave the size out).
    pub(crate) fn sizes(self) -> &'static [usize] {
        match self {
            Pattern::PingPong | Pattern::Throughput => MESSAGE_SIZES,
        }
    }
}

/// Message sizes every message-passing transport is measured with.
pub(crate) const MESSAGE_SIZES: &[usize] = &[8, 64, 1024, 64 * 1024];

/// One measurement to make: a transport, a pattern and a message size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) transport: Transport,
    pub(crate) pattern: Pattern,
    pub(crate) size: usize,
}

impl Case {
    /// `ping-pong/1KiB/unix-socket`: what the filter matches and the JSON names.
    pub(crate) fn name(&self) -> String {
        if self.pattern.sizes() == [0] {
            return format!("{}/{}", self.pattern.name(), self.transport.name());
        }
        format!(
            "{}/{}/{}",
            self.pattern.name(),
            output::bytes(self.size as u64).replace(' ', ""),
            self.transport.name()
        )
    }

    /// The same measurement over the baseline transport.
    pub(crate) fn baseline(&self) -> Case {
        Case {
            transport: Transport::BASELINE,
            ..*self
        }
    }

    /// Every case, in report order: by pattern, then size, then transport.
    pub(crate) fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for &pattern in Pattern::ALL {
            for &size in pattern.sizes() {
                for &transport in Transport::ALL {
                    if transport.supports(pattern) {
                        cases.push(Case {
                            transport,
                            pattern,
                            size,
                        });
                    }
                }
            }
        }
        cases
    }

    /// The cases whose name contains `filter`, with the baselines they are compared
    /// with, in report order.
    pub(crate) fn selected(filter: Option<&str>) -> Vec<Case> {
        let all = Case::all();
        let wanted: Vec<Case> = all
            .iter()
            .filter(|c| filter.is_none_or(|f| c.name().contains(f)))
            .copied()
            .collect();
        all.into_iter()
            .filter(|c| wanted.contains(c) || wanted.iter().any(|w| w.baseline() == *c))
            .collect()
    }
}

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
    fn every_transport_and_pattern_has_every_size() {
        let all = Case::all();
        assert_eq!(
            all.len(),
            Transport::ALL.len() * Pattern::ALL.len() * MESSAGE_SIZES.len()
        );
        let names: Vec<String> = all.iter().map(Case::name).collect();
        assert!(names.contains(&"ping-pong/8B/os-pipe".to_owned()));
        assert!(names.contains(&"throughput/64KiB/unix-socket".to_owned()));
    }

    #[test]
    fn a_filter_keeps_the_baselines_it_needs() {
        let sel = Case::selected(Some("ping-pong/1KiB/unix"));
        let names: Vec<String> = sel.iter().map(Case::name).collect();
        assert_eq!(
            names,
            ["ping-pong/1KiB/os-pipe", "ping-pong/1KiB/unix-socket"]
        );
        assert!(Case::selected(Some("no such case")).is_empty());
        assert_eq!(Case::selected(None).len(), Case::all().len());
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

//! `--svg FILE`: throughput and latency per transport and message size, on log scales,
//! one panel per message pattern (plotters' SVG back-end: text stays text, no fonts
//! are needed to draw it).

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use crate::bench::case::Pattern;
use crate::bench::measure::Measure;
use crate::bench::transport::Transport;
use crate::bench::{Outcome, Settings};

/// One panel: a pattern, what its y axis shows, and how to get it from a measure.
struct Panel {
    pattern: Pattern,
    title: &'static str,
    y: &'static str,
    value: fn(&Measure, usize) -> Option<f64>,
}

fn mb_per_s(m: &Measure, size: usize) -> Option<f64> {
    match *m {
        Measure::Throughput { messages, seconds } => {
            Some(messages as f64 * size as f64 / seconds / 1e6)
        }
        Measure::Latency { .. } => None,
    }
}

fn p50_us(m: &Measure, _size: usize) -> Option<f64> {
    match *m {
        Measure::Latency { p50_ns, .. } => Some(p50_ns / 1e3),
        Measure::Throughput { .. } => None,
    }
}

const PANELS: [Panel; 3] = [
    Panel {
        pattern: Pattern::Throughput,
        title: "throughput, 1 producer -> 1 consumer",
        y: "MB/s (log)",
        value: mb_per_s,
    },
    Panel {
        pattern: Pattern::Throughput2x2,
        title: "throughput, 2 producers -> 2 consumers",
        y: "MB/s (log)",
        value: mb_per_s,
    },
    Panel {
        pattern: Pattern::PingPong,
        title: "ping-pong round trip, median",
        y: "microseconds (log)",
        value: p50_us,
    },
];

/// Writes the chart of `outcomes` to `path`.
pub(crate) fn chart(path: &Path, settings: &Settings, outcomes: &[Outcome]) -> anyhow::Result<()> {
    draw(path, settings, outcomes)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("could not draw the chart {}", path.display()))
}

fn draw(
    path: &Path,
    settings: &Settings,
    outcomes: &[Outcome],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 1500)).into_drawing_area();
    root.fill(&WHITE)?;
    let runs = match settings.runs {
        1 => "1 run".to_owned(),
        n => format!("medians of {n} runs"),
    };
    let root = root.titled(
        &format!(
            "shoal bench: {} CPUs, {}, {runs}",
            settings.cpus, settings.placement
        ),
        ("sans-serif", 20),
    )?;
    let areas = root.split_evenly((PANELS.len(), 1));
    for (panel, area) in PANELS.iter().zip(&areas) {
        // One line per transport, in the report's order.
        let mut lines: Vec<(Transport, Vec<(f64, f64)>)> = Vec::new();
        for o in outcomes.iter().filter(|o| o.case.pattern == panel.pattern) {
            let Some(v) = (panel.value)(&o.measure, o.case.size).filter(|v| *v > 0.0) else {
                continue;
            };
            let point = (o.case.size as f64, v);
            match lines.iter_mut().find(|(t, _)| *t == o.case.transport) {
                Some((_, points)) => points.push(point),
                None => lines.push((o.case.transport, vec![point])),
            }
        }
        let values = lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, v)| v));
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (0.1, 10.0)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((4f64..2e6f64).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("message size, bytes (log)")
            .y_desc(panel.y)
            .x_label_formatter(&|x| crate::output::bytes(x.round() as u64))
            .draw()?;
        for (i, (transport, points)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(transport.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

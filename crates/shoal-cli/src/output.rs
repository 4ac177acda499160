//! What every subcommand shares to print: aligned tables, human units, broken pipes.

use std::io::{self, Write};

/// Whether `err` comes from writing to a closed stdout (`shoal ls | head`).
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Where a column's cells sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table printed with its columns aligned, one header line then one line per row.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles and alignments.
    pub(crate) fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(t, _)| (*t).to_owned()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are ignored.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table, two spaces between columns, no trailing blanks.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let empty = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, (width, align)) in widths.iter().zip(&self.align).enumerate() {
                let cell = line.get(i).unwrap_or(&empty);
                let pad = width - cell.chars().count();
                if i > 0 {
                    text.push_str("  ");
                }
                match align {
                    Align::Left => {
                        text.push_str(cell);
                        text.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        text.extend(std::iter::repeat_n(' ', pad));
                        text.push_str(cell);
                    }
                }
            }
            writeln!(out, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

impl Table {
    /// Writes the table as GitHub-flavoured Markdown, for BENCHMARKS.md.
    pub(crate) fn write_markdown(&self, out: &mut impl Write) -> io::Result<()> {
        let line = |cells: &[String]| format!("| {} |", cells.join(" | "));
        writeln!(out, "{}", line(&self.header))?;
        let rule: Vec<String> = self
            .align
            .iter()
            .map(|a| match a {
                Align::Left => "---".to_owned(),
                Align::Right => "--:".to_owned(),
            })
            .collect();
        writeln!(out, "{}", line(&rule))?;
        for row in &self.rows {
            let mut cells = row.clone();
            cells.resize(self.header.len(), String::new());
            writeln!(out, "{}", line(&cells))?;
        }
        Ok(())
    }
}

/// A byte count in binary units: `8 B`, `64 KiB`, `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in nanoseconds with three significant digits: `130 ns`, `51.2 µs`.
pub(crate) fn nanos(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", significant(value))
}

/// A rate with a decimal prefix: `2.56M`, `17.2k`, `690`.
pub(crate) fn rate(per_second: f64) -> String {
    if per_second >= 1e9 {
        format!("{}G", significant(per_second / 1e9))
    } else if per_second >= 1e6 {
        format!("{}M", significant(per_second / 1e6))
    } else if per_second >= 1e3 {
        format!("{}k", significant(per_second / 1e3))
    } else {
        significant(per_second)
    }
}

/// A count: exact below 1000, then like [`rate`] (`7`, `950`, `1.26k`).
pub(crate) fn count(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        rate(n as f64)
    }
}

/// Three significant digits, without exponent.
fn significant(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let mut t = Table::new(&[("name", Align::Left), ("size", Align::Right)]);
        t.row(vec!["a".into(), "10".into()]);
        t.row(vec!["longer".into(), "2".into()]);
        let mut out = Vec::new();
        t.write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "name    size\na         10\nlonger     2\n");
    }

    #[test]
    fn tables_also_print_as_markdown() {
        let mut t = Table::new(&[("name", Align::Left), ("size", Align::Right)]);
        t.row(vec!["a".into()]);
        let mut out = Vec::new();
        t.write_markdown(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "| name | size |\n| --- | --: |\n| a |  |\n");
    }

    #[test]
    fn units_read_like_a_person_wrote_them() {
        assert_eq!(bytes(8), "8 B");
        assert_eq!(bytes(65536), "64 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(nanos(130.0), "130 ns");
        assert_eq!(nanos(51_234.0), "51.2 µs");
        assert_eq!(nanos(2_500_000.0), "2.50 ms");
        assert_eq!(rate(2_560_000.0), "2.56M");
        assert_eq!(rate(17_200.0), "17.2k");
        assert_eq!(rate(690.0), "690");
        assert_eq!(count(7), "7");
        assert_eq!(count(1260), "1.26k");
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("could not write the table");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}

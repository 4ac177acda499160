//! `shoal ls`, `shoal gc` and `shoal inspect`: the named segments under `/dev/shm`.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;
use shoal::shm::{NamedSegment, SegmentInfo, ShmError};
use shoal::SharedMemory;

use crate::output::{self, Align, Table};

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// Arguments of `shoal ls`.
#[derive(clap::Args, Debug)]
pub(crate) struct LsArgs {
    /// Only the segments whose name contains this text.
    filter: Option<String>,
    /// Print JSON (one array of objects) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `shoal gc`.
#[derive(clap::Args, Debug)]
pub(crate) struct GcArgs {
    /// Only the segments whose name contains this text.
    filter: Option<String>,
}

/// Arguments of `shoal inspect`.
#[derive(clap::Args, Debug)]
pub(crate) struct InspectArgs {
    /// The segment's name, as `shoal ls` shows it (the file name under /dev/shm).
    name: String,
}

/// One line of `shoal ls --json`.
#[derive(Serialize, Debug)]
struct SegmentRow<'a> {
    name: &'a str,
    /// The file's size in bytes.
    file_size: u64,
    /// What the header says the segment holds, `null` when the header is unreadable.
    kind: Option<String>,
    /// Why the header could not be read, `null` when it could.
    header_error: Option<String>,
    payload_size: Option<usize>,
    owner_pid: Option<u32>,
    owner_alive: bool,
    created_unix_ms: Option<u64>,
}

impl<'a> SegmentRow<'a> {
    fn new(seg: &'a NamedSegment) -> SegmentRow<'a> {
        let info = seg.header.as_ref().ok();
        SegmentRow {
            name: &seg.name,
            file_size: seg.file_len,
            kind: info.map(|h| h.kind.to_string()),
            header_error: seg.header.as_ref().err().map(ToString::to_string),
            payload_size: info.map(|h| h.payload_len),
            owner_pid: seg.owner_pid,
            owner_alive: seg.owner_alive,
            created_unix_ms: info.map(|h| h.created_unix_ms),
        }
    }
}

/// The named segments whose name contains `filter` (all of them without one).
fn named(filter: Option<&str>) -> anyhow::Result<Vec<NamedSegment>> {
    let mut all = shoal::shm::list_named().with_context(|| format!("could not list {SHM_DIR}"))?;
    if let Some(f) = filter {
        all.retain(|s| s.name.contains(f));
    }
    Ok(all)
}

/// `shoal ls`: one line per named segment.
pub(crate) fn ls(args: &LsArgs) -> anyhow::Result<()> {
    let segs = named(args.filter.as_deref())?;
    let mut out = io::stdout().lock();
    if args.json {
        let rows: Vec<SegmentRow<'_>> = segs.iter().map(SegmentRow::new).collect();
        serde_json::to_writer_pretty(&mut out, &rows).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if segs.is_empty() {
        writeln!(out, "no shoal segment in {SHM_DIR}")?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("SIZE", Align::Right),
        ("OWNER", Align::Right),
        ("ALIVE", Align::Left),
        ("KIND", Align::Left),
        ("PROBLEM", Align::Left),
    ]);
    for seg in &segs {
        let (kind, problem) = match &seg.header {
            Ok(h) => (h.kind.to_string(), String::new()),
            Err(e) => ("?".to_owned(), problem(&seg.name, e)),
        };
        table.row(vec![
            seg.name.clone(),
            output::bytes(seg.file_len),
            seg.owner_pid
                .map_or_else(|| "?".to_owned(), |p| p.to_string()),
            if seg.owner_alive { "yes" } else { "no" }.to_owned(),
            kind,
            problem,
        ]);
    }
    table.write_to(&mut out)?;
    Ok(())
}

/// What is wrong with a header, without the segment name the table already shows.
fn problem(name: &str, err: &ShmError) -> String {
    let text = err.to_string();
    let named = format!("segment {name:?} ");
    match text.strip_prefix(&named) {
        Some(rest) => rest.strip_prefix("is ").unwrap_or(rest).to_owned(),
        None => text,
    }
}

/// `shoal gc`: removes the segments whose recorded owner is gone.
///
/// The rule is [`shoal::shm::collect_dead`]'s (a known owner pid that no longer runs;
/// foreign files without an owner are left alone), restricted to the filter.
pub(crate) fn gc(args: &GcArgs) -> anyhow::Result<()> {
    let mut removed = Vec::new();
    for seg in named(args.filter.as_deref())? {
        if seg.owner_pid.is_none() || seg.owner_alive {
            continue;
        }
        match std::fs::remove_file(Path::new(SHM_DIR).join(&seg.name)) {
            Ok(()) => removed.push(seg),
            // Another collector got there first: it is gone either way.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("could not remove {:?}", seg.name)),
        }
    }
    let mut out = io::stdout().lock();
    if removed.is_empty() {
        writeln!(out, "no segment of a dead owner to remove")?;
    }
    for seg in &removed {
        let owner = seg.owner_pid.map_or_else(String::new, |p| p.to_string());
        writeln!(
            out,
            "removed {} ({}, owner {owner} is gone)",
            seg.name,
            output::bytes(seg.file_len)
        )?;
    }
    Ok(())
}

/// `shoal inspect NAME`: the header of one segment, or why it is not a shoal segment.
pub(crate) fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let name = args.name.as_str();
    let info = header_of(name)?;
    let mut out = io::stdout().lock();
    writeln!(out, "name:          {name}")?;
    match info {
        Some((h, owner_alive)) => {
            let alive = if owner_alive { "running" } else { "gone" };
            writeln!(out, "kind:          {}", h.kind)?;
            writeln!(
                out,
                "payload size:  {} ({} bytes)",
                output::bytes(h.payload_len as u64),
                h.payload_len
            )?;
            writeln!(out, "owner:         pid {} ({alive})", h.owner_pid)?;
            writeln!(
                out,
                "created:       {} ({} ms since the Unix epoch)",
                utc(h.created_unix_ms),
                h.created_unix_ms
            )?;
        }
        None => {
            // Not under the `shoal-` prefix `list_named` scans: a raw segment made with
            // a chosen name, which `SharedMemory::open` checked.
            let shm = SharedMemory::open(name).map_err(|e| refused(name, e))?;
            writeln!(out, "kind:          raw")?;
            writeln!(
                out,
                "payload size:  {} ({} bytes)",
                output::bytes(shm.size() as u64),
                shm.size()
            )?;
        }
    }
    Ok(())
}

/// The header of the named segment `name` and whether its owner runs: `Some` for
/// segments under the `shoal-` prefix, `None` for other names.
fn header_of(name: &str) -> anyhow::Result<Option<(SegmentInfo, bool)>> {
    if name.is_empty() || name.contains('/') {
        bail!("{name:?} is not a segment name (a file name under {SHM_DIR}, without '/')");
    }
    if !Path::new(SHM_DIR).join(name).exists() {
        bail!("there is no segment named {name:?} in {SHM_DIR}");
    }
    match named(Some(name))?.into_iter().find(|s| s.name == name) {
        Some(seg) => match seg.header {
            Ok(h) => Ok(Some((h, seg.owner_alive))),
            Err(e) => Err(refused(name, e)),
        },
        None => Ok(None),
    }
}

/// The error for a segment whose header is refused (or that vanished meanwhile).
fn refused(name: &str, err: ShmError) -> anyhow::Error {
    match &err {
        ShmError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            anyhow::anyhow!("there is no segment named {name:?} in {SHM_DIR}")
        }
        _ => anyhow::Error::new(err),
    }
}

/// `2026-11-23 16:13:49.123 UTC` from milliseconds since the Unix epoch.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(utc(1_795_450_429_123), "2026-11-23 16:13:49.123 UTC");
    }

    #[test]
    fn names_with_slashes_are_refused() {
        let err = header_of("a/b").unwrap_err();
        assert!(err.to_string().contains("not a segment name"), "{err}");
    }

    #[test]
    fn missing_names_are_reported_as_missing() {
        let name = format!("shoal-{}-missing-unit", std::process::id());
        let err = header_of(&name).unwrap_err();
        assert!(err.to_string().contains("there is no segment"), "{err}");
    }
}

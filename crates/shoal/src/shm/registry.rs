//! The named segments on this machine: what `shoal ls` shows and `shoal gc` removes.

use std::io;
use std::path::Path;

use crate::shm::{Segment, SegmentInfo, ShmError};
use crate::sys;

const SHM_DIR: &str = "/dev/shm";

/// A named shoal segment found under `/dev/shm`.
///
/// # Examples
/// ```
/// use shoal::shm::{list_named, SegmentKind};
///
/// let shm = shoal::SharedMemory::create(100)?;
/// let all = list_named()?;
/// let mine = all.iter().find(|s| Some(s.name.as_str()) == shm.name()).unwrap();
/// assert_eq!(mine.owner_pid, Some(std::process::id()));
/// assert!(mine.owner_alive);
/// assert!(mine.file_len >= 100);
/// assert_eq!(mine.header.as_ref().map(|h| h.kind).ok(), Some(SegmentKind::Raw));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct NamedSegment {
    /// The name (the file name under `/dev/shm`).
    pub name: String,
    /// The size of the file in bytes.
    pub file_len: u64,
    /// The header, or why it could not be read (a foreign or damaged file).
    pub header: Result<SegmentInfo, ShmError>,
    /// Whether the owner recorded in the header (or, failing that, in the name) runs.
    pub owner_alive: bool,
    /// The owner's pid, from the header or the name.
    pub owner_pid: Option<u32>,
}

/// The owner pid encoded in a generated name `shoal-<pid>-<id>`.
fn pid_from_name(name: &str) -> Option<u32> {
    name.strip_prefix("shoal-")?.split('-').next()?.parse().ok()
}

/// Lists the segments under `/dev/shm` whose names start with `shoal-`.
///
/// # Errors
/// When `/dev/shm` cannot be read.
///
/// # Examples
/// ```
/// let shm = shoal::SharedMemory::create(10)?;
/// let all = shoal::shm::list_named()?;
/// assert!(all.iter().any(|s| Some(s.name.as_str()) == shm.name() && s.owner_alive));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_named() -> io::Result<Vec<NamedSegment>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with("shoal-") {
            continue;
        }
        let file_len = entry.metadata().map_or(0, |m| m.len());
        let header = inspect_named(&name);
        let owner_pid = header
            .as_ref()
            .ok()
            .map(|h| h.owner_pid)
            .or_else(|| pid_from_name(&name));
        let owner_alive = owner_pid.is_some_and(sys::pid_alive);
        out.push(NamedSegment {
            name,
            file_len,
            header,
            owner_alive,
            owner_pid,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads the header of the named segment `name` (any kind), checking magic and version.
///
/// # Errors
/// [`ShmError::Io`] when there is no such segment; [`ShmError::NotShoal`] or
/// [`ShmError::Version`] when the file is foreign or from another layout version.
///
/// # Examples
/// ```
/// let shm = shoal::SharedMemory::create(10)?;
/// let info = shoal::shm::inspect_named(shm.name().unwrap())?;
/// assert_eq!(info.owner_pid, std::process::id());
/// assert!(shoal::shm::inspect_named("shoal-no-such-segment").is_err());
/// # Ok::<(), shoal::shm::ShmError>(())
/// ```
pub fn inspect_named(name: &str) -> Result<SegmentInfo, ShmError> {
    Segment::open_named(name, None)?.header_info()
}

/// Removes the named shoal segments whose owner process is gone; returns their names.
///
/// Segments without a readable owner (foreign files that happen to start with
/// `shoal-`) are left alone.
///
/// # Errors
/// When `/dev/shm` cannot be read. A segment that vanished meanwhile is not an error.
///
/// # Examples
/// ```
/// use std::path::Path;
///
/// // A segment left behind by a process that no longer runs (a pid above the
/// // kernel's limit cannot be alive).
/// let dead = format!("shoal-{}-doc-{}", 4_194_304 + 7, std::process::id());
/// std::fs::write(Path::new("/dev/shm").join(&dead), b"")?;
/// let live = shoal::SharedMemory::create(16)?;
///
/// let removed = shoal::shm::collect_dead()?;
/// assert!(!Path::new("/dev/shm").join(&dead).exists());
/// assert!(!removed.iter().any(|n| Some(n.as_str()) == live.name()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn collect_dead() -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for seg in list_named()? {
        if seg.owner_pid.is_some() && !seg.owner_alive {
            match std::fs::remove_file(Path::new(SHM_DIR).join(&seg.name)) {
                Ok(()) => removed.push(seg.name),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner_pid() {
        assert_eq!(pid_from_name("shoal-123-abc"), Some(123));
        assert_eq!(pid_from_name("shoal-x"), None);
        assert_eq!(pid_from_name("other-1-2"), None);
    }

    #[test]
    fn gc_removes_segments_of_dead_owners_only() {
        // A pid above the kernel's pid_max cannot belong to a live process.
        let dead = format!("shoal-{}-gc-test-{}", 4_194_304 + 7, std::process::id());
        std::fs::write(Path::new(SHM_DIR).join(&dead), b"").unwrap();
        let live = crate::SharedMemory::create(1).unwrap();
        let removed = collect_dead().unwrap();
        assert!(removed.contains(&dead));
        assert!(!removed.iter().any(|n| Some(n.as_str()) == live.name()));
        assert!(!Path::new(SHM_DIR).join(&dead).exists());
    }
}

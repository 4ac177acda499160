//! A file copied in two halves by two processes, each given the open source and
//! destination files (`handoff::Fd<File>`) and writing at its own offsets.
//!
//! Output:
//! copied 1000000 bytes, identical: true

use std::fs::File;
use std::os::unix::fs::FileExt;

use shoal::handoff::Fd;

/// Copies `[start, end)` of `src` into `dst` at the same offsets.
fn copy_range((src, dst, start, end): (Fd<File>, Fd<File>, u64, u64)) {
    let mut buf = vec![0u8; (end - start) as usize];
    src.read_exact_at(&mut buf, start).expect("read the source");
    dst.write_all_at(&buf, start).expect("write the copy");
}
shoal::entry!(copy_range);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shoal-file-halves-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("src"), &data)?;
    let dst = File::create(dir.join("dst"))?;
    dst.set_len(data.len() as u64)?;
    let half = data.len() as u64 / 2;
    let mut children = Vec::new();
    for (start, end) in [(0, half), (half, data.len() as u64)] {
        let args = (
            Fd(File::open(dir.join("src"))?),
            Fd(dst.try_clone()?),
            start,
            end,
        );
        children.push(shoal::Process::new(copy_range, args).start()?);
    }
    for child in children {
        child.join()?;
    }
    let copy = std::fs::read(dir.join("dst"))?;
    println!("copied {} bytes, identical: {}", copy.len(), copy == data);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

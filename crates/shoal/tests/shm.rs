//! Shared memory against other processes: values and arrays attached by name from a
//! child that gets only the name, headers that lie about their size, and named segments
//! truncated behind a reader's back (a clear error, never a SIGBUS).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shoal::shm::{inspect_named, SegmentKind, ShmError};
use shoal::sync::SyncError;
use shoal::{Array, Process, SharedMemory, Value};

mod common;
use common::{watchdog, Reap};

const LONG: Duration = Duration::from_secs(30);

/// A segment name no other test (in this or another process) uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shoal-test-shm-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn join(child: &Reap) -> i32 {
    child
        .0
        .join_timeout(LONG)
        .expect("join")
        .expect("the child did not finish in time")
}

/// Truncates `/dev/shm/<name>` from another process (coreutils' `truncate`).
fn truncate_elsewhere(name: &str, len: u64) {
    let status = Command::new("truncate")
        .arg("-s")
        .arg(len.to_string())
        .arg(format!("/dev/shm/{name}"))
        .status()
        .expect("run truncate");
    assert!(status.success());
}

// ---- values and arrays by name --------------------------------------------------------

/// Attaches to the named value and array by name alone and works on them under their
/// locks.
fn attach_by_name((value_name, array_name, n): (String, String, u32)) {
    let value = Value::<u64>::open(&value_name).expect("open the value by name");
    let array = Array::<u32>::open(&array_name).expect("open the array by name");
    for _ in 0..n {
        *value.lock().expect("a lock, no holder died") += 1;
        let mut g = array.lock().expect("a lock, no holder died");
        for x in g.iter_mut() {
            *x += 1;
        }
    }
    // A wrong type is refused with a clear error, in this process too.
    let err = Value::<u32>::open(&value_name).unwrap_err();
    assert!(err.to_string().contains("8 bytes"), "{err}");
}
shoal::entry!(attach_by_name);

#[test]
fn a_child_attaches_to_a_value_and_an_array_by_name() {
    watchdog(|| {
        let value_name = unique("value");
        let array_name = unique("array");
        let value = Value::create_named(&value_name, 0u64).unwrap();
        let array = Array::create_named(&array_name, &[0u32; 5]).unwrap();
        let children: Vec<Reap> = (0..2)
            .map(|_| {
                let args = (value_name.clone(), array_name.clone(), 2_000u32);
                Reap(Process::new(attach_by_name, args).start().unwrap())
            })
            .collect();
        // The creator increments beside them, under the same locks.
        for _ in 0..2_000 {
            *value.lock().unwrap() += 1;
            array.lock().unwrap()[0] += 1;
        }
        for c in &children {
            assert_eq!(join(c), 0);
        }
        assert_eq!(value.load(), 6_000);
        assert_eq!(array.to_vec(), [6_000, 4_000, 4_000, 4_000, 4_000]);
        // The creator removes every name it made.
        drop((value, array));
        for name in [&value_name, &array_name] {
            assert!(!std::path::Path::new("/dev/shm").join(name).exists());
            let lock = format!("{name}.lock");
            assert!(!std::path::Path::new("/dev/shm").join(lock).exists());
        }
    });
}

#[test]
fn opening_by_name_refuses_what_does_not_fit() {
    let name = unique("fit");
    let array = Array::create_named_without_lock(&name, &[1u16, 2, 3]).unwrap();
    let shm_err = |e: SyncError| match e {
        SyncError::Shm { source, .. } => source,
        other => panic!("not a segment error: {other}"),
    };
    // Another element size, another alignment, another kind.
    let e = shm_err(Array::<u32>::open(&name).unwrap_err());
    assert!(matches!(e, ShmError::Layout { .. }), "{e}");
    let e = shm_err(Array::<[u8; 2]>::open(&name).unwrap_err());
    assert!(
        e.to_string().contains("aligned to 2 bytes, not 1 bytes"),
        "{e}"
    );
    let e = shm_err(Value::<u16>::open(&name).unwrap_err());
    assert!(
        matches!(
            e,
            ShmError::WrongKind {
                found: SegmentKind::Array,
                expected: SegmentKind::Value,
                ..
            }
        ),
        "{e}"
    );
    assert!(SharedMemory::open(&name).is_err());
    // The right type opens, without a lock since it was made without one.
    let same = Array::<u16>::open(&name).unwrap();
    assert!(same.get_lock().is_none());
    assert_eq!(same.to_vec(), [1, 2, 3]);
    drop(array);

    // A value whose lock segment went missing.
    let name = unique("lockless");
    let value = Value::create_named(&name, 0u8).unwrap();
    std::fs::remove_file(format!("/dev/shm/{name}.lock")).unwrap();
    let e = Value::<u8>::open(&name).unwrap_err();
    assert!(e.to_string().contains("lock segment"), "{e}");
    drop(value);
    let missing = shm_err(Value::<u8>::open(&unique("missing")).unwrap_err());
    assert!(
        matches!(&missing, ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{missing}"
    );
}

// ---- headers that lie ----------------------------------------------------------------

/// Overwrites the payload length in the header of `/dev/shm/<name>`.
fn forge_payload_len(name: &str, claimed: u64) {
    let file = OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    // The header's payload length is the u64 at byte 16.
    file.write_all_at(&claimed.to_le_bytes(), 16).unwrap();
}

#[test]
fn a_header_claiming_too_much_is_refused_without_overflow() {
    let shm = SharedMemory::create(100).unwrap();
    let name = shm.name().unwrap().to_owned();
    let file_len = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().len();
    // 2^64 - 64: header plus payload wraps around to zero in unchecked arithmetic.
    for claimed in [u64::MAX - 63, u64::MAX, file_len - 63] {
        forge_payload_len(&name, claimed);
        let err = SharedMemory::open(&name).unwrap_err();
        assert!(
            matches!(err, ShmError::SizeMismatch { claimed: c, file_len: f, .. } if c == claimed && f == file_len),
            "{err}"
        );
        assert!(err.to_string().contains("is damaged"), "{err}");
        let err = inspect_named(&name).unwrap_err();
        assert!(matches!(err, ShmError::SizeMismatch { .. }), "{err}");
    }
    // The exact size is still accepted.
    forge_payload_len(&name, file_len - 64);
    assert!(SharedMemory::open(&name).is_ok());
}

// ---- truncation behind a reader's back ------------------------------------------------

#[test]
fn a_truncated_shared_memory_segment_gives_an_error_not_sigbus() {
    let owner = SharedMemory::create(3 * 4096).unwrap();
    let name = owner.name().unwrap().to_owned();
    let reader = SharedMemory::open(&name).unwrap();
    let full = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().len();
    reader.write(8192, b"before").unwrap();
    truncate_elsewhere(&name, 4096);
    let mut buf = [0u8; 6];
    for shm in [&owner, &reader] {
        let err = shm.read(8192, &mut buf).unwrap_err();
        assert!(
            matches!(err, ShmError::Truncated { file_len: 4096, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("truncated by another process"),
            "{err}"
        );
        // Every access is refused, even one within the pages left.
        assert!(matches!(
            shm.read(0, &mut buf),
            Err(ShmError::Truncated { .. })
        ));
        assert!(matches!(
            shm.write(8192, b"after"),
            Err(ShmError::Truncated { .. })
        ));
        assert!(matches!(
            shm.atomic_u64(8192),
            Err(ShmError::Truncated { .. })
        ));
        assert!(matches!(shm.atomic_u32(0), Err(ShmError::Truncated { .. })));
    }
    // Grown back to its size, the segment is usable again (its lost pages read as zero).
    truncate_elsewhere(&name, full);
    reader.read(8192, &mut buf).unwrap();
    assert_eq!(buf, [0; 6]);
}

#[test]
fn a_truncated_value_or_array_gives_an_error_not_sigbus() {
    let value_name = unique("trunc-value");
    let value = Value::create_named(&value_name, [1u64; 4]).unwrap(); // copied under the lock
    let reader = Value::<[u64; 4]>::open(&value_name).unwrap();
    truncate_elsewhere(&value_name, 0);
    let err = reader.try_load().unwrap_err();
    assert!(
        matches!(err, ShmError::Truncated { file_len: 0, .. }),
        "{err}"
    );
    assert!(matches!(
        value.try_store([2; 4]),
        Err(ShmError::Truncated { .. })
    ));
    let panic = catch_unwind(AssertUnwindSafe(|| reader.load())).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("truncated by another process"),
        "{message}"
    );
    assert!(catch_unwind(AssertUnwindSafe(|| drop(reader.lock()))).is_err());

    // The lock's own segment is checked too.
    let lock_name = unique("trunc-lock");
    let locked = Value::create_named(&lock_name, 5u32).unwrap();
    truncate_elsewhere(&format!("{lock_name}.lock"), 0);
    let err = locked.try_load().unwrap_err();
    assert!(
        matches!(err, ShmError::Truncated { ref name, .. } if name.ends_with(".lock")),
        "{err}"
    );

    let array_name = unique("trunc-array");
    let array = Array::create_named_without_lock(&array_name, &[7u16; 4000]).unwrap();
    let reader = Array::<u16>::open(&array_name).unwrap();
    assert_eq!(reader.try_get(3999).unwrap(), Some(7));
    truncate_elsewhere(&array_name, 4096);
    assert!(matches!(
        reader.try_get(3999),
        Err(ShmError::Truncated { .. })
    ));
    assert!(matches!(array.set(0, 1), Err(ShmError::Truncated { .. })));
    assert!(catch_unwind(AssertUnwindSafe(|| reader.to_vec())).is_err());
    // Out of range stays `None`, truncated or not.
    assert_eq!(reader.try_get(4000).unwrap(), None);
}

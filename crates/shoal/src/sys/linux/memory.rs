//! Segments of memory shared between processes: memfd, POSIX shm, mmap.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::errno::{cvt, retry};

/// The size of a memory page, in bytes.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no memory preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            n as usize
        } else {
            4096
        }
    })
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("segment name {name:?} contains a NUL byte"),
        )
    })
}

fn set_len(fd: &OwnedFd, len: usize) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment size too large"))?;
    // SAFETY: ftruncate on a descriptor we own; no memory is passed.
    retry(|| unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

/// Creates an anonymous memory file of `len` bytes, sealed against shrinking.
///
/// The kernel frees it when the last descriptor and mapping are gone, so it cannot leak.
/// The shrink seal means no process holding the descriptor can truncate the file under
/// another process's mapping (which would turn its accesses into `SIGBUS`).
pub(crate) fn memfd_create_sealed(debug_name: &str, len: usize) -> io::Result<OwnedFd> {
    let name = c_name(debug_name)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_len(&fd, len)?;
    // SAFETY: fcntl F_ADD_SEALS takes an integer argument, no memory.
    cvt(unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
        )
    })?;
    Ok(fd)
}

/// Creates the named segment `/dev/shm/<name>` of `len` bytes, mode 0600.
///
/// # Errors
/// `AlreadyExists` when the name is taken.
pub(crate) fn shm_create(name: &str, len: usize) -> io::Result<OwnedFd> {
    let cname = c_name(&format!("/{name}"))?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let fd = retry(|| unsafe {
        libc::shm_open(
            cname.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600 as libc::mode_t,
        )
    })?;
    // SAFETY: shm_open just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Err(e) = set_len(&fd, len) {
        let _ = shm_unlink(name);
        return Err(e);
    }
    Ok(fd)
}

/// Opens the existing named segment `/dev/shm/<name>`; returns it with its size.
pub(crate) fn shm_open_existing(name: &str) -> io::Result<(OwnedFd, usize)> {
    let cname = c_name(&format!("/{name}"))?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let fd =
        retry(|| unsafe { libc::shm_open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) })?;
    // SAFETY: shm_open just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = fd_len(&fd)?;
    Ok((fd, len))
}

/// The size in bytes of the file behind `fd`.
pub(crate) fn fd_len(fd: &OwnedFd) -> io::Result<usize> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer for the duration of the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size as usize)
}

/// Removes the name `/dev/shm/<name>`; mappings and descriptors stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let cname = c_name(&format!("/{name}"))?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::shm_unlink(cname.as_ptr()) })?;
    Ok(())
}

/// A shared, read-write mapping of a whole segment, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` is an address range; it has no thread affinity. Access to the
// bytes goes through atomics or through the typed views in `shm`, which document their
// own synchronisation.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` shared and read-write.
    pub(crate) fn new(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty segment",
            ));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr = null) cannot overlap any
        // Rust object; `fd` is a valid descriptor for the duration of the call.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null without failing");
        Ok(Mapping { ptr, len })
    }

    /// The first byte of the mapping; page aligned.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `Mapping::new` and never unmapped
        // before; every borrow of its bytes is tied to `&self`, which ends here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_maps_and_refuses_to_shrink() {
        let fd = memfd_create_sealed("shoal-test", 8192).unwrap();
        let m = Mapping::new(&fd, 8192).unwrap();
        assert_eq!(m.len(), 8192);
        assert_eq!(m.as_ptr() as usize % page_size(), 0);
        // SAFETY: offset 100 is inside the 8192-byte mapping, which nothing else uses.
        unsafe { m.as_ptr().add(100).write(42) };
        let m2 = Mapping::new(&fd, 8192).unwrap();
        // SAFETY: as above; both mappings view the same page.
        assert_eq!(unsafe { m2.as_ptr().add(100).read() }, 42);
        // SAFETY: ftruncate takes no memory.
        let shrink = cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), 10) });
        assert_eq!(shrink.unwrap_err().raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn named_segment_lifecycle() {
        let name = format!("shoal-{}-sys-test", std::process::id());
        let fd = shm_create(&name, 4096).unwrap();
        assert_eq!(
            shm_create(&name, 4096).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let (fd2, len) = shm_open_existing(&name).unwrap();
        assert_eq!(len, 4096);
        drop((fd, fd2));
        shm_unlink(&name).unwrap();
        assert_eq!(
            shm_open_existing(&name).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}

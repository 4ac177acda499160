//! The one place where `-1` + `errno` becomes an [`io::Error`].

use std::io;

/// A return value of a libc call that signals failure with `-1`.
pub(crate) trait IsMinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty)*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool {
                self == -1
            }
        }
    )*};
}
impl_is_minus_one! { i32 i64 isize }

/// Turns a `-1` return into the current `errno` as an [`io::Error`].
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Calls `f` until it does not fail with `EINTR`.
pub(crate) fn retry<T: IsMinusOne>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_becomes_errno() {
        // SAFETY: close(-1) touches no memory; it only fails with EBADF.
        let err = cvt(unsafe { libc::close(-1) }).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert_eq!(cvt(5i32).unwrap(), 5);
    }

    #[test]
    fn retry_repeats_interrupted_calls() {
        let mut calls = 0;
        let out = retry(|| {
            calls += 1;
            if calls < 3 {
                // SAFETY: setting errno of the current thread is always allowed.
                unsafe { *libc::__errno_location() = libc::EINTR };
                -1
            } else {
                7i32
            }
        });
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls, 3);
    }
}

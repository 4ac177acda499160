//! Python's `multiprocessing.connection` frame format.
//!
//! A frame is a length header followed by that many payload bytes. The header is a
//! 4-byte big-endian *signed* length; lengths above `i32::MAX` are sent as `-1` followed
//! by an 8-byte big-endian unsigned length (Python 3.8+). Any other negative length is
//! malformed. The receiver checks the length against its maximum frame size before it
//! allocates anything, and grows the buffer only as bytes arrive, so a hostile header
//! costs nothing.

use std::io::{self, IoSlice, Read, Write};

use crate::net::NetError;

/// The default maximum frame size: 64 MiB.
///
/// # Examples
/// ```
/// use shoal::net::{Client, Listener, DEFAULT_MAX_FRAME_SIZE};
///
/// assert_eq!(DEFAULT_MAX_FRAME_SIZE, 64 * 1024 * 1024);
/// let listener = Listener::bind("127.0.0.1:0", None)?;
/// let conn = Client::connect(listener.address(), None)?;
/// assert_eq!(conn.max_frame_size(), DEFAULT_MAX_FRAME_SIZE);
/// # Ok::<(), shoal::net::NetError>(())
/// ```
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 << 20;

/// The largest length the 4-byte header form can carry.
const SHORT_MAX: usize = i32::MAX as usize;

/// Frames up to this size go out as one write of header and payload (Python does the
/// same, to keep Nagle's algorithm from delaying the payload behind the header).
const SMALL_FRAME: usize = 16 * 1024;

/// The receive buffer: small frames that arrive together are read with one call.
const RX_BUF: usize = 64 * 1024;

/// The first allocation for a large payload; it grows as bytes arrive.
const FIRST_CHUNK: usize = 1 << 20;

/// The longest header: `-1` then an 8-byte length.
pub(crate) const MAX_HEADER: usize = 12;

/// Writes the header for a `len`-byte payload into `out` and returns its length.
pub(crate) fn encode_header(len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    if len > SHORT_MAX {
        out[..4].copy_from_slice(&(-1i32).to_be_bytes());
        out[4..12].copy_from_slice(&(len as u64).to_be_bytes());
        12
    } else {
        out[..4].copy_from_slice(&(len as i32).to_be_bytes());
        4
    }
}

/// Parses the header at the start of `bytes`: `Ok(Some((payload length, header
/// length)))`, or `Ok(None)` when more bytes are needed.
///
/// # Errors
/// [`NetError::MalformedFrame`] for a negative length other than `-1`;
/// [`NetError::FrameTooLarge`] for a length above `limit`.
pub(crate) fn decode_header(
    bytes: &[u8],
    limit: usize,
) -> Result<Option<(usize, usize)>, NetError> {
    let Some(short) = bytes.first_chunk::<4>() else {
        return Ok(None);
    };
    let short = i32::from_be_bytes(*short);
    let (len, header) = match short {
        -1 => {
            let Some(long) = bytes.get(4..12) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(long);
            (u64::from_be_bytes(b), 12)
        }
        n if n < 0 => {
            return Err(NetError::MalformedFrame {
                reason: format!("negative length {n} in the frame header"),
            })
        }
        n => (n as u64, 4),
    };
    if len > limit as u64 {
        return Err(NetError::FrameTooLarge { len, max: limit });
    }
    Ok(Some((len as usize, header)))
}

/// Writes one frame whose payload is the concatenation of `parts`.
pub(crate) fn write_frame<W: Write>(
    w: &mut W,
    parts: &[&[u8]],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut header = [0u8; MAX_HEADER];
    let n = encode_header(len, &mut header);
    if len <= SMALL_FRAME {
        scratch.clear();
        scratch.extend_from_slice(&header[..n]);
        for p in parts {
            scratch.extend_from_slice(p);
        }
        w.write_all(scratch)?;
    } else {
        // One gathered write for header and payload: with TCP_NODELAY, separate writes
        // would cost a segment and a system call more per frame.
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(&header[..n]));
        slices.extend(parts.iter().map(|p| IoSlice::new(p)));
        write_all_vectored(w, &mut slices)?;
    }
    w.flush()
}

/// `Write::write_all` for several buffers (the std form is not stable yet).
fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The receiving side of a framed stream: a buffer of bytes read ahead of the frame
/// being parsed.
pub(crate) struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameReader {
    pub(crate) fn new() -> FrameReader {
        FrameReader {
            buf: vec![0u8; RX_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes read from the stream but not yet consumed.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill<R: Read>(&mut self, r: &mut R) -> Result<usize, NetError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::io("receive a frame", e)),
            }
        }
    }

    /// Reads the next header and returns the payload length (at most `limit`).
    ///
    /// # Errors
    /// [`NetError::Eof`] when the stream ends before the header's first byte;
    /// [`NetError::Truncated`] when it ends inside the header; the errors of
    /// [`decode_header`].
    pub(crate) fn read_header<R: Read>(
        &mut self,
        r: &mut R,
        limit: usize,
    ) -> Result<usize, NetError> {
        loop {
            if let Some((len, header)) = decode_header(&self.buf[self.start..self.end], limit)? {
                self.start += header;
                return Ok(len);
            }
            if self.fill(r)? == 0 {
                let received = self.buffered() as u64;
                if received == 0 {
                    return Err(NetError::Eof);
                }
                let short = self.buf[self.start..self.end].first_chunk::<4>().copied();
                let expected = if short == Some((-1i32).to_be_bytes()) {
                    12
                } else {
                    4
                };
                return Err(NetError::Truncated { expected, received });
            }
        }
    }

    /// Fills `dst` with the next `dst.len()` payload bytes; `already` bytes of the
    /// payload were read before (for the error report).
    fn read_exact<R: Read>(
        &mut self,
        r: &mut R,
        dst: &mut [u8],
        already: usize,
        total: usize,
    ) -> Result<(), NetError> {
        let from_buf = dst.len().min(self.buffered());
        dst[..from_buf].copy_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        let mut done = from_buf;
        while done < dst.len() {
            let want = dst.len() - done;
            if want < self.buf.len() / 2 {
                // Small remainder: read ahead into the buffer, so that the next frames
                // that are already on the wire come with the same call.
                if self.fill(r)? == 0 {
                    return Err(NetError::Truncated {
                        expected: total as u64,
                        received: (already + done) as u64,
                    });
                }
                let n = want.min(self.buffered());
                dst[done..done + n].copy_from_slice(&self.buf[self.start..self.start + n]);
                self.start += n;
                done += n;
                continue;
            }
            match r.read(&mut dst[done..]) {
                Ok(0) => {
                    return Err(NetError::Truncated {
                        expected: total as u64,
                        received: (already + done) as u64,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NetError::io("receive a frame", e)),
            }
        }
        Ok(())
    }

    /// Reads a `len`-byte payload into a new vector that grows as bytes arrive.
    pub(crate) fn read_payload<R: Read>(
        &mut self,
        r: &mut R,
        len: usize,
    ) -> Result<Vec<u8>, NetError> {
        let mut out = Vec::new();
        let mut done = 0;
        while done < len {
            let step = if done == 0 { FIRST_CHUNK } else { done };
            let next = len.min(done + step);
            out.resize(next, 0);
            self.read_exact(r, &mut out[done..next], done, len)?;
            done = next;
        }
        Ok(out)
    }

    /// Reads a `len`-byte payload into `dst[..len]` (`dst` is at least `len` long).
    pub(crate) fn read_payload_into<R: Read>(
        &mut self,
        r: &mut R,
        dst: &mut [u8],
    ) -> Result<(), NetError> {
        let total = dst.len();
        self.read_exact(r, dst, 0, total)
    }

    /// Reads one whole frame of at most `limit` bytes.
    pub(crate) fn read_frame<R: Read>(
        &mut self,
        r: &mut R,
        limit: usize,
    ) -> Result<Vec<u8>, NetError> {
        let len = self.read_header(r, limit)?;
        self.read_payload(r, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for p in payloads {
            write_frame(&mut out, &[p], &mut scratch).unwrap();
        }
        out
    }

    #[test]
    fn headers_match_python() {
        let mut h = [0u8; MAX_HEADER];
        assert_eq!(encode_header(5, &mut h), 4);
        assert_eq!(&h[..4], &[0, 0, 0, 5]);
        assert_eq!(encode_header(0x8000_0000, &mut h), 12);
        assert_eq!(&h, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(
            decode_header(&h, usize::MAX).unwrap(),
            Some((0x8000_0000, 12))
        );
        assert_eq!(decode_header(&h[..11], usize::MAX).unwrap(), None);
        assert_eq!(decode_header(&[0, 0, 1], 10).unwrap(), None);
    }

    #[test]
    fn frames_round_trip_through_any_split() {
        let big = vec![7u8; 200_000];
        let wire = framed(&[b"", b"hello", &big, b"x"]);
        for step in [1, 3, 4, 5, 4096, usize::MAX] {
            let mut r = Trickle { data: &wire, step };
            let mut fr = FrameReader::new();
            assert_eq!(fr.read_frame(&mut r, 1 << 20).unwrap(), b"");
            assert_eq!(fr.read_frame(&mut r, 1 << 20).unwrap(), b"hello");
            assert_eq!(fr.read_frame(&mut r, 1 << 20).unwrap(), big);
            assert_eq!(fr.read_frame(&mut r, 1 << 20).unwrap(), b"x");
            assert!(matches!(fr.read_frame(&mut r, 1 << 20), Err(NetError::Eof)));
        }
    }

    #[test]
    fn truncated_header_and_payload() {
        let wire = framed(&[b"hello"]);
        let mut fr = FrameReader::new();
        let err = fr.read_frame(&mut &wire[..2], 100).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Truncated {
                    expected: 4,
                    received: 2
                }
            ),
            "{err}"
        );
        let mut fr = FrameReader::new();
        let err = fr.read_frame(&mut &wire[..7], 100).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Truncated {
                    expected: 5,
                    received: 3
                }
            ),
            "{err}"
        );
        let long = [0xff, 0xff, 0xff, 0xff, 0, 0];
        let err = FrameReader::new()
            .read_frame(&mut &long[..], 100)
            .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Truncated {
                    expected: 12,
                    received: 6
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let short = [0x7f, 0xff, 0xff, 0xff];
        let err = FrameReader::new()
            .read_frame(&mut &short[..], 1024)
            .unwrap_err();
        assert!(matches!(
            err,
            NetError::FrameTooLarge {
                len: 0x7fff_ffff,
                max: 1024
            }
        ));
        let long = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let err = FrameReader::new()
            .read_frame(&mut &long[..], DEFAULT_MAX_FRAME_SIZE)
            .unwrap_err();
        assert!(
            matches!(err, NetError::FrameTooLarge { len: u64::MAX, .. }),
            "{err}"
        );
        // A length within the limit but never delivered costs only what arrived.
        let mut lying = vec![0x03, 0xff, 0xff, 0xff];
        lying.extend_from_slice(b"abc");
        let err = FrameReader::new()
            .read_frame(&mut &lying[..], usize::MAX)
            .unwrap_err();
        assert!(
            matches!(err, NetError::Truncated { received: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn negative_lengths_are_malformed() {
        let bad = [0xff, 0xff, 0xff, 0xfe, 1, 2];
        let err = FrameReader::new()
            .read_frame(&mut &bad[..], 100)
            .unwrap_err();
        assert!(matches!(err, NetError::MalformedFrame { .. }), "{err}");
        assert!(err.to_string().contains("negative length -2"));
    }

    #[test]
    fn long_form_is_accepted_for_small_lengths() {
        let mut wire = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2];
        wire.extend_from_slice(b"ok");
        assert_eq!(
            FrameReader::new().read_frame(&mut &wire[..], 10).unwrap(),
            b"ok"
        );
    }
}

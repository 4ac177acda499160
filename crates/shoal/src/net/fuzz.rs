//! Entry points for the cargo-fuzz targets in `fuzz/` (and their seed-corpus tests):
//! the frame decoder and the handshake, fed a hostile peer's bytes from memory.

use crate::net::auth::{self, AuthConfig, FrameIo};
use crate::net::frame::FrameReader;
use crate::net::{Digest, NetError};

/// A reader that hands out at most `step` bytes per call, to reach every buffer path.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Decodes `data` as a stream of frames and returns how many decoded. The first byte
/// picks the frame limit and the read size; decoding stops at the first error. Panics
/// only on a broken invariant.
pub fn frames(data: &[u8]) -> usize {
    let Some((&knobs, stream)) = data.split_first() else {
        return 0;
    };
    let limit = 1usize << (knobs % 32);
    let step = 1 + (knobs as usize >> 5) * 977;
    let mut r = Trickle { data: stream, step };
    let mut fr = FrameReader::new();
    let mut consumed = 0usize;
    let mut count = 0;
    loop {
        match fr.read_frame(&mut r, limit) {
            Ok(f) => {
                assert!(f.len() <= limit, "a frame above the limit was returned");
                consumed += f.len() + 4;
                assert!(consumed <= stream.len(), "more bytes came out than went in");
                count += 1;
            }
            Err(NetError::FrameTooLarge { len, max }) => {
                assert!(len > max as u64);
                return count;
            }
            Err(_) => return count,
        }
    }
}

/// Frames the peer sends come from a byte stream; what we send is dropped.
struct Peer<'a> {
    reader: FrameReader,
    stream: Trickle<'a>,
}

impl FrameIo for Peer<'_> {
    fn send_frame(&mut self, _payload: &[u8]) -> Result<(), NetError> {
        Ok(())
    }
    fn recv_frame(&mut self, limit: usize) -> Result<Vec<u8>, NetError> {
        let f = self.reader.read_frame(&mut self.stream, limit)?;
        assert!(f.len() <= limit);
        Ok(f)
    }
}

/// Runs one side of the handshake against a peer whose bytes are `data`. The first
/// byte picks the side, the digest, whether the legacy form is allowed and whether
/// compression is offered. Returns whether the peer was authenticated.
pub fn handshake(data: &[u8]) -> bool {
    let Some((&knobs, stream)) = data.split_first() else {
        return false;
    };
    let cfg = AuthConfig {
        key: b"fuzz-key".to_vec(),
        digest: [
            Digest::Md5,
            Digest::Sha256,
            Digest::Sha384,
            Digest::Sha3_256,
            Digest::Sha3_384,
        ][((knobs as usize >> 2) & 0x1f) % 5],
        allow_legacy: knobs & 2 != 0,
        features: if knobs & 0x80 != 0 {
            vec!["zstd"]
        } else {
            vec![]
        },
    };
    let mut peer = Peer {
        reader: FrameReader::new(),
        stream: Trickle {
            data: stream,
            step: usize::MAX,
        },
    };
    if knobs & 1 == 0 {
        // A fixed challenge, so that the fuzzer can find the right answer.
        let message = auth::challenge_message(&cfg, &[0x5a; 40]);
        auth::deliver_with(&mut peer, &cfg, &message).is_ok()
    } else {
        auth::answer_challenge(&mut peer, &cfg).is_ok()
    }
}

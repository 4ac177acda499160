//! The frame decoder of `shoal::net` against arbitrary bytes from a peer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shoal::net::fuzz::frames(data);
});

//! zstd compression of large frames, negotiated inside the authenticated challenges.
#![cfg(feature = "compression")]

mod common;
mod net_support;

use std::thread;

use common::watchdog;
use net_support::STEP;
use shoal::net::{Client, ClientBuilder, Connection, Listener, ListenerBuilder, NetError};

fn connect(server: ListenerBuilder, client: ClientBuilder) -> (Connection, Connection) {
    let listener = server.bind("127.0.0.1:0").unwrap();
    let address = listener.address().clone();
    let t = thread::spawn(move || client.connect(&address).unwrap());
    let s = listener.accept_timeout(STEP).unwrap();
    let c = t.join().unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    c.set_read_timeout(Some(STEP)).unwrap();
    (c, s)
}

/// Sends `m` from `from` on another thread while `to` receives it (large messages do
/// not fit the socket buffers).
fn exchange(from: &Connection, to: &Connection, m: &[u8]) {
    thread::scope(|scope| {
        scope.spawn(|| from.send_bytes(m).unwrap());
        let mut buf = vec![0u8; m.len()];
        assert_eq!(to.recv_bytes_into(&mut buf).unwrap(), m.len());
        assert!(buf == m);
    });
}

#[test]
fn compression_is_used_only_when_both_offer_it() {
    watchdog(|| {
        let (c, s) = connect(
            Listener::builder().authkey(b"k").compression(3),
            Client::builder().authkey(b"k").compression(3),
        );
        assert!(c.is_compressed() && s.is_compressed());
        let text: Vec<u8> = b"a fairly repetitive line of text\n"
            .iter()
            .copied()
            .cycle()
            .take(4 << 20)
            .collect();
        let noise: Vec<u8> = (0..200_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect();
        for m in [&b""[..], b"small", &text, &noise] {
            exchange(&c, &s, m);
            exchange(&s, &c, m);
        }

        for (server, client) in [
            (
                Listener::builder().authkey(b"k").compression(3),
                Client::builder().authkey(b"k"),
            ),
            (
                Listener::builder().authkey(b"k"),
                Client::builder().authkey(b"k").compression(3),
            ),
            // Without a key there is no negotiation, so no compression.
            (
                Listener::builder().compression(3),
                Client::builder().compression(3),
            ),
        ] {
            let (c, s) = connect(server, client);
            assert!(!c.is_compressed() && !s.is_compressed());
            exchange(&c, &s, &text);
        }
    });
}

#[test]
fn decompression_is_bounded_by_the_frame_limit() {
    watchdog(|| {
        let (c, s) = connect(
            Listener::builder()
                .authkey(b"k")
                .compression(3)
                .max_frame_size(1 << 20),
            Client::builder()
                .authkey(b"k")
                .compression(3)
                .max_frame_size(64 << 20),
        );
        // 32 MiB of zeros compress to a few KiB, well under the receiver's 1 MiB
        // frame limit; what they expand to is not.
        let zeros = vec![0u8; 32 << 20];
        thread::scope(|scope| {
            scope.spawn(|| c.send_bytes(&zeros));
        });
        let err = s.recv_bytes().unwrap_err();
        assert!(matches!(err, NetError::Compression { .. }), "{err}");
        assert!(s.is_closed());
    });
}

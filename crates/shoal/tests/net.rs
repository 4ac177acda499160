//! shoal's `net` between shoal peers, and against hostile raw sockets: every bad-input
//! class (truncated frame, huge length, malformed length, bad digest, early close,
//! stalled handshake) closes that connection with its own error while the listener goes
//! on serving others.

mod common;
mod net_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::watchdog;
use net_support::{socket_path, unique, STEP};
use shoal::net::{Address, AuthFailure, Client, Digest, Listener, NetError};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Reads one frame from a raw socket.
fn read_frame(s: &mut impl Read) -> Vec<u8> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).unwrap();
    let mut v = vec![0u8; i32::from_be_bytes(h) as usize];
    s.read_exact(&mut v).unwrap();
    v
}

fn raw_tcp(listener: &Listener) -> TcpStream {
    let Address::Tcp(a) = listener.address() else {
        unreachable!()
    };
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s
}

/// A well-behaved client checks that the listener still serves.
fn still_serves(listener: &Listener, key: Option<&'static [u8]>) {
    let address = listener.address().clone();
    let t = thread::spawn(move || {
        let c = Client::connect(&address, key).unwrap();
        c.send_bytes(b"still here").unwrap();
    });
    let conn = listener.accept_timeout(STEP).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"still here");
    t.join().unwrap();
}

#[test]
fn truncated_frame_closes_the_connection() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", None).unwrap();
        let mut raw = raw_tcp(&listener);
        let conn = listener.accept_timeout(STEP).unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        let mut bytes = frame(b"0123456789");
        bytes.truncate(7);
        raw.write_all(&bytes).unwrap();
        drop(raw);
        let err = conn.recv_bytes().unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Truncated {
                    expected: 10,
                    received: 3
                }
            ),
            "{err}"
        );
        assert!(conn.is_closed());
        assert!(matches!(conn.recv_bytes(), Err(NetError::Closed)));
        still_serves(&listener, None);
    });
}

#[test]
fn huge_length_is_refused_without_allocating() {
    watchdog(|| {
        let listener = Listener::builder()
            .max_frame_size(1 << 20)
            .bind("127.0.0.1:0")
            .unwrap();
        for header in [
            vec![0x7f, 0xff, 0xff, 0xff],
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            let mut raw = raw_tcp(&listener);
            let conn = listener.accept_timeout(STEP).unwrap();
            conn.set_read_timeout(Some(STEP)).unwrap();
            raw.write_all(&header).unwrap();
            let err = conn.recv_bytes().unwrap_err();
            assert!(
                matches!(err, NetError::FrameTooLarge { max: 1048576, .. }),
                "{err}"
            );
            // The connection is closed: the raw peer sees the end of the stream.
            let mut buf = [0u8; 1];
            assert_eq!(raw.read(&mut buf).unwrap_or(0), 0);
        }
        still_serves(&listener, None);
    });
}

#[test]
fn malformed_length_is_refused() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", None).unwrap();
        let mut raw = raw_tcp(&listener);
        let conn = listener.accept_timeout(STEP).unwrap();
        raw.write_all(&(-7i32).to_be_bytes()).unwrap();
        let err = conn.recv_bytes().unwrap_err();
        assert!(matches!(err, NetError::MalformedFrame { .. }), "{err}");
        still_serves(&listener, None);
    });
}

#[test]
fn huge_frame_in_the_handshake_is_refused() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
        let mut raw = raw_tcp(&listener);
        let t = thread::spawn(move || {
            let challenge = read_frame(&mut raw);
            assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
            // Python refuses handshake messages above 256 bytes; so does shoal.
            raw.write_all(&frame(&[0u8; 300])).unwrap();
        });
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(
            matches!(err, NetError::FrameTooLarge { len: 300, max: 256 }),
            "{err}"
        );
        t.join().unwrap();
        still_serves(&listener, Some(b"key"));
    });
}

#[test]
fn bad_digest_gets_failure_and_an_error() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
        let mut raw = raw_tcp(&listener);
        let t = thread::spawn(move || {
            read_frame(&mut raw);
            raw.write_all(&frame(b"{sha256}0123456789abcdef0123456789abcdef"))
                .unwrap();
            assert_eq!(read_frame(&mut raw), b"#FAILURE#");
        });
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Authentication(AuthFailure::DigestReceivedWrong)
            ),
            "{err}"
        );
        t.join().unwrap();
        still_serves(&listener, Some(b"key"));
    });
}

#[test]
fn wrong_key_is_refused_on_both_sides() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"right")).unwrap();
        let address = listener.address().clone();
        let t = thread::spawn(move || Client::connect(&address, Some(b"wrong")).unwrap_err());
        let server_err = listener.accept_timeout(STEP).unwrap_err();
        let client_err = t.join().unwrap();
        assert!(matches!(
            server_err,
            NetError::Authentication(AuthFailure::DigestReceivedWrong)
        ));
        assert!(matches!(
            client_err,
            NetError::Authentication(AuthFailure::DigestSentRejected)
        ));
        still_serves(&listener, Some(b"right"));
    });
}

#[test]
fn early_close_during_the_handshake() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
        drop(raw_tcp(&listener));
        let err = listener.accept_timeout(STEP).unwrap_err();
        // The challenge may or may not go out before the close is seen.
        assert!(matches!(err, NetError::Eof | NetError::Io { .. }), "{err}");
        let mut raw = raw_tcp(&listener);
        let t = thread::spawn(move || {
            read_frame(&mut raw);
            raw.write_all(&[0, 0, 0, 16, 1, 2]).unwrap();
        });
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Truncated {
                    expected: 16,
                    received: 2
                }
            ),
            "{err}"
        );
        t.join().unwrap();
        still_serves(&listener, Some(b"key"));
    });
}

#[test]
fn a_stalled_handshake_times_out() {
    watchdog(|| {
        let limit = Duration::from_millis(400);
        let listener = Listener::builder()
            .authkey(b"key")
            .handshake_timeout(Some(limit))
            .bind("127.0.0.1:0")
            .unwrap();
        // Silent after the challenge.
        let mut silent = raw_tcp(&listener);
        let start = Instant::now();
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(matches!(err, NetError::Timeout { .. }), "{err}");
        assert!(start.elapsed() >= limit);
        read_frame(&mut silent);
        // A trickle of one byte every 100 ms cannot stretch the limit past its total.
        let mut trickle = raw_tcp(&listener);
        let t = thread::spawn(move || {
            read_frame(&mut trickle);
            for b in frame(&[7u8; 40]) {
                if trickle.write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(matches!(err, NetError::Timeout { .. }), "{err}");
        assert!(start.elapsed() >= limit);
        t.join().unwrap();
        still_serves(&listener, Some(b"key"));
    });
}

#[test]
fn one_listener_serves_many_clients() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"many")).unwrap();
        let address = listener.address().clone();
        let server = thread::spawn(move || {
            let mut workers = Vec::new();
            for conn in listener.incoming().take(8) {
                let conn = conn.unwrap();
                workers.push(thread::spawn(move || {
                    conn.set_read_timeout(Some(STEP)).unwrap();
                    loop {
                        match conn.recv::<(u32, String)>() {
                            Ok((n, s)) => conn.send(&(n * 2, s.len())).unwrap(),
                            Err(NetError::Eof) => return,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }));
            }
            for w in workers {
                w.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..8u32)
            .map(|i| {
                let address = address.clone();
                thread::spawn(move || {
                    let c = Client::connect(&address, Some(b"many")).unwrap();
                    c.set_read_timeout(Some(STEP)).unwrap();
                    for j in 0..50u32 {
                        c.send(&(i * 1000 + j, "x".repeat(j as usize))).unwrap();
                        let back: (u32, usize) = c.recv().unwrap();
                        assert_eq!(back, ((i * 1000 + j) * 2, j as usize));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    });
}

fn round_trip(listen: &str) {
    let listener = Listener::bind(listen, Some(b"k")).unwrap();
    let address = listener.address().clone();
    let t = thread::spawn(move || {
        let c = Client::connect(&address, Some(b"k")).unwrap();
        c.set_read_timeout(Some(STEP)).unwrap();
        assert_eq!(c.peer_address(), Some(&address));
        c.send_bytes(b"ping").unwrap();
        assert_eq!(c.recv_bytes().unwrap(), b"pong");
    });
    let conn = listener.accept_timeout(STEP).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    if let Address::Tcp(a) = listener.address() {
        // An accepted TCP connection knows its client's address.
        assert!(matches!(conn.peer_address(), Some(Address::Tcp(p)) if p.ip() == a.ip()));
    }
    assert_eq!(conn.recv_bytes().unwrap(), b"ping");
    conn.send_bytes(b"pong").unwrap();
    t.join().unwrap();
}

#[test]
fn every_address_family() {
    watchdog(|| {
        round_trip("127.0.0.1:0");
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            round_trip("[::1]:0");
        }
        let path = socket_path("family");
        round_trip(path.to_str().unwrap());
        assert!(!path.exists(), "the listener removes its socket file");
        round_trip(&format!("@{}", unique("family")));
        round_trip(&format!("\0{}", unique("family")));
    });
}

#[test]
fn every_digest() {
    watchdog(|| {
        for d in [
            Digest::Md5,
            Digest::Sha256,
            Digest::Sha384,
            Digest::Sha3_256,
            Digest::Sha3_384,
        ] {
            let listener = Listener::builder()
                .authkey(b"d")
                .digest(d)
                .bind("127.0.0.1:0")
                .unwrap();
            let address = listener.address().clone();
            let t = thread::spawn(move || {
                Client::builder()
                    .authkey(b"d")
                    .digest(d)
                    .refuse_legacy_md5()
                    .connect(&address)
                    .unwrap()
                    .send_bytes(d.name().as_bytes())
                    .unwrap();
            });
            let conn = listener.accept_timeout(STEP).unwrap();
            conn.set_read_timeout(Some(STEP)).unwrap();
            assert_eq!(conn.recv_bytes().unwrap(), d.name().as_bytes());
            t.join().unwrap();
        }
    });
}

fn pair() -> (shoal::net::Connection, shoal::net::Connection) {
    let listener = Listener::bind(format!("@{}", unique("pair")).as_str(), None).unwrap();
    let client = Client::connect(listener.address(), None).unwrap();
    let server = listener.accept_timeout(STEP).unwrap();
    client.set_read_timeout(Some(STEP)).unwrap();
    server.set_read_timeout(Some(STEP)).unwrap();
    (client, server)
}

#[test]
fn poll_close_and_buffers() {
    watchdog(|| {
        let (a, b) = pair();
        assert!(!b.poll(Duration::ZERO).unwrap());
        let start = Instant::now();
        assert!(!b.poll(Duration::from_millis(50)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(50));
        a.send_bytes(b"one").unwrap();
        a.send_bytes(b"two").unwrap();
        assert!(b.poll(Duration::MAX).unwrap());
        let mut small = [0u8; 2];
        let err = b.recv_bytes_into(&mut small).unwrap_err();
        assert!(
            matches!(&err, NetError::BufferTooShort { message, capacity: 2 } if message == b"one"),
            "{err}"
        );
        // Still usable; the second frame came with the first read, so it waits inside
        // the connection, where the descriptor cannot show it.
        assert!(b.has_pending_input());
        assert!(b.poll(Duration::ZERO).unwrap());
        let mut big = [0u8; 8];
        assert_eq!(b.recv_bytes_into(&mut big).unwrap(), 3);
        assert_eq!(&big[..3], b"two");
        // A read time-out between frames leaves the connection usable.
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(b.recv_bytes(), Err(NetError::Timeout { .. })));
        assert!(!b.is_closed());
        b.set_read_timeout(Some(STEP)).unwrap();
        // Values that do not decode leave it usable too.
        a.send(&1u8).unwrap();
        assert!(matches!(b.recv::<String>(), Err(NetError::Codec(_))));
        a.send(&"text").unwrap();
        assert_eq!(b.recv::<String>().unwrap(), "text");
        a.close();
        assert!(matches!(a.send_bytes(b"x"), Err(NetError::Closed)));
        assert!(matches!(a.poll(Duration::ZERO), Err(NetError::Closed)));
        assert!(matches!(b.recv_bytes(), Err(NetError::Eof)));
    });
}

#[test]
fn sending_above_the_limit_is_refused_locally() {
    watchdog(|| {
        let listener = Listener::builder()
            .max_frame_size(1000)
            .bind("127.0.0.1:0")
            .unwrap();
        let c = Client::builder()
            .max_frame_size(1000)
            .connect(listener.address())
            .unwrap();
        let s = listener.accept_timeout(STEP).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        let err = c.send_bytes(&[0u8; 1001]).unwrap_err();
        assert!(matches!(
            err,
            NetError::FrameTooLarge {
                len: 1001,
                max: 1000
            }
        ));
        c.send_bytes(&[1u8; 1000]).unwrap();
        assert_eq!(s.recv_bytes().unwrap(), [1u8; 1000]);
    });
}

#[test]
fn close_wakes_a_blocked_receiver() {
    watchdog(|| {
        let (a, b) = pair();
        let b = Arc::new(b);
        let b2 = b.clone();
        let t = thread::spawn(move || b2.recv_bytes());
        thread::sleep(Duration::from_millis(50));
        b.close();
        assert!(t.join().unwrap().is_err());
        drop(a);
    });
}

#[test]
fn large_messages_both_ways_at_once() {
    watchdog(|| {
        // Both sides send 8 MiB before reading: needs the sender and the receiver of
        // one connection to run at the same time.
        let (a, b) = pair();
        let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let big2 = big.clone();
        let b = Arc::new(b);
        let b2 = b.clone();
        let reader = thread::spawn(move || b2.recv_bytes().unwrap());
        let t = thread::spawn(move || {
            a.send_bytes(&big).unwrap();
            let back = a.recv_bytes().unwrap();
            assert_eq!(back.len(), 8 << 20);
        });
        b.send_bytes(&big2).unwrap();
        assert_eq!(reader.join().unwrap().len(), 8 << 20);
        t.join().unwrap();
    });
}

#[test]
fn unix_raw_peer_sees_python_frames() {
    watchdog(|| {
        let path = socket_path("raw");
        let listener = Listener::bind(path.as_path(), None).unwrap();
        let mut raw = UnixStream::connect(&path).unwrap();
        raw.set_read_timeout(Some(STEP)).unwrap();
        let conn = listener.accept_timeout(STEP).unwrap();
        conn.send_bytes(b"abc").unwrap();
        let mut got = [0u8; 7];
        raw.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\0\0\0\x03abc");
    });
}

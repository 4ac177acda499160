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

use common::{watchdog, watchdog_secs};
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

#[test]
fn wait_covers_network_connections_beside_queues() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
        let address = listener.address().clone();
        let sender = thread::spawn(move || {
            let c = Client::connect(&address, Some(b"key")).unwrap();
            c.send_bytes(b"over the network").unwrap();
            c
        });
        let server = listener.accept().unwrap();
        let client = sender.join().unwrap();
        let queue: shoal::Queue<u32> = shoal::Queue::new().unwrap();

        let ready =
            shoal::channel::wait(&[&queue, &server], Some(Duration::from_secs(20))).unwrap();
        assert_eq!(ready, [1], "only the connection has a message");
        assert_eq!(server.recv_bytes().unwrap(), b"over the network");

        let idle =
            shoal::channel::wait(&[&queue, &server], Some(Duration::from_millis(20))).unwrap();
        assert!(idle.is_empty(), "nothing is ready: {idle:?}");

        client.send_bytes(b"again").unwrap();
        let conn_only = shoal::channel::wait(&[&server], Some(Duration::from_secs(20))).unwrap();
        assert_eq!(conn_only, [0]);
        queue.put(7).unwrap();
        let both = shoal::channel::wait(&[&queue, &server], Some(Duration::from_secs(20))).unwrap();
        assert_eq!(both, [0, 1], "a message waits on each");
    });
}

/// Whether the server has closed a raw client's socket (or reset it): reads to the end.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn silent_and_garbage_clients_delay_nobody() {
    // The handshake limit (60 s) is twice the watchdog's: had any proper client waited
    // for a silent one's limit, the watchdog would fail the test.
    watchdog_secs(30, || {
        let listener = Listener::builder()
            .authkey(b"key")
            .handshake_timeout(Some(Duration::from_secs(60)))
            .bind("127.0.0.1:0")
            .unwrap();
        // Silent clients read the challenge (so their handshake is under way) and say
        // nothing more.
        let mut silent: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut s = raw_tcp(&listener);
                read_frame(&mut s);
                s
            })
            .collect();
        // Garbage clients answer the challenge with junk of every shape, and stay
        // connected.
        let mut garbage: Vec<TcpStream> = (0..20)
            .map(|i| {
                let mut s = raw_tcp(&listener);
                read_frame(&mut s);
                let junk = match i % 4 {
                    0 => b"GET / HTTP/1.1\r\n\r\n".to_vec(),    // a huge length
                    1 => frame(&[0xA5; 37]),                    // a wrong digest
                    2 => (-5i32).to_be_bytes().to_vec(),        // a malformed length
                    _ => frame(b"{sha256}not a digest at all"), // a wrong tagged digest
                };
                s.write_all(&junk).unwrap();
                s
            })
            .collect();
        // Then 100 proper clients, ten at a time.
        let address = listener.address().clone();
        let clients: Vec<_> = (0..10u8)
            .map(|t| {
                let address = address.clone();
                thread::spawn(move || {
                    for i in 0..10u8 {
                        let c = Client::connect(&address, Some(b"key")).unwrap();
                        c.set_read_timeout(Some(STEP)).unwrap();
                        c.send_bytes(&[t, i]).unwrap();
                        assert_eq!(c.recv_bytes().unwrap(), [i, t]);
                    }
                })
            })
            .collect();
        let (mut served, mut refused) = (0, Vec::new());
        while served < 100 || refused.len() < 20 {
            match listener.accept_timeout(STEP) {
                Ok(conn) => {
                    conn.set_read_timeout(Some(STEP)).unwrap();
                    let got = conn.recv_bytes().unwrap();
                    conn.send_bytes(&[got[1], got[0]]).unwrap();
                    served += 1;
                }
                Err(e) => {
                    assert!(!matches!(e, NetError::Timeout { .. }), "{e}");
                    refused.push(e);
                }
            }
        }
        for c in clients {
            c.join().unwrap();
        }
        assert!(
            refused
                .iter()
                .any(|e| matches!(e, NetError::FrameTooLarge { .. }))
                && refused
                    .iter()
                    .any(|e| matches!(e, NetError::MalformedFrame { .. }))
                && refused
                    .iter()
                    .any(|e| matches!(e, NetError::Authentication(_))),
            "{refused:?}"
        );
        for g in &mut garbage {
            assert!(closed_by_server(g));
        }
        // All 100 were served while every silent handshake was still in flight.
        for s in &silent {
            s.set_nonblocking(true).unwrap();
            let err = (&*s).read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
        }
        // Dropping the listener ends them at once (long before their 60 s).
        drop(listener);
        for s in &mut silent {
            assert!(closed_by_server(s));
        }
    });
}

#[test]
fn the_bound_on_pending_handshakes_holds() {
    watchdog(|| {
        let listener = Listener::builder()
            .authkey(b"key")
            .max_pending_handshakes(2)
            .handshake_timeout(Some(Duration::from_secs(60)))
            .bind("127.0.0.1:0")
            .unwrap();
        let mut silent: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = raw_tcp(&listener);
                read_frame(&mut s);
                s
            })
            .collect();
        // Both slots are taken: the third client waits in the backlog, unchallenged.
        let mut third = raw_tcp(&listener);
        third
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let err = third.read(&mut [0u8; 4]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err}"
        );
        assert!(matches!(
            listener.accept_timeout(Duration::from_millis(50)),
            Err(NetError::Timeout { .. })
        ));
        // One silent client leaves: its handshake fails, and once `accept` has taken
        // that result the third client is challenged.
        silent.pop();
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(matches!(err, NetError::Eof | NetError::Io { .. }), "{err}");
        third.set_read_timeout(Some(STEP)).unwrap();
        read_frame(&mut third);
        drop(third);
        assert!(listener.accept_timeout(STEP).is_err());
        still_serves_after_a_slot_frees(&listener, &mut silent);
    });
}

/// The last silent client leaves too; a proper client is then served.
fn still_serves_after_a_slot_frees(listener: &Listener, silent: &mut Vec<TcpStream>) {
    silent.clear();
    assert!(listener.accept_timeout(STEP).is_err());
    still_serves(listener, Some(b"key"));
}

#[test]
fn handshakes_finish_in_any_order_across_accepting_threads() {
    watchdog(|| {
        let listener = Arc::new(
            Listener::builder()
                .authkey(b"key")
                .bind(socket_path("many-acceptors").as_path())
                .unwrap(),
        );
        // A silent Unix client first: four accepting threads are served around it.
        let Address::Unix(path) = listener.address().clone() else {
            unreachable!()
        };
        let _silent = UnixStream::connect(&path).unwrap();
        let acceptors: Vec<_> = (0..4)
            .map(|_| {
                let listener = listener.clone();
                thread::spawn(move || {
                    (0..5)
                        .map(|_| {
                            let conn = listener.accept_timeout(STEP).unwrap();
                            conn.set_read_timeout(Some(STEP)).unwrap();
                            conn.recv_bytes().unwrap()[0]
                        })
                        .collect::<Vec<u8>>()
                })
            })
            .collect();
        let address = listener.address().clone();
        for i in 0..20u8 {
            Client::connect(&address, Some(b"key"))
                .unwrap()
                .send_bytes(&[i])
                .unwrap();
        }
        let mut got: Vec<u8> = acceptors
            .into_iter()
            .flat_map(|a| a.join().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
    });
}

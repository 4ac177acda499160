//! Pipe and Connection semantics through the public API.

use std::time::{Duration, Instant};

use shoal::channel::{Connection, GetError, Pipe};

mod common;
use common::{watchdog, watchdog_secs, Reap};

#[test]
fn duplex_both_ways() {
    watchdog(|| {
        let (a, b) = Pipe::duplex().unwrap();
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                let n: u64 = b.recv().unwrap();
                b.send(&(n + 1)).unwrap();
            }
            b
        });
        for i in 0..1000u64 {
            a.send(&i).unwrap();
            assert_eq!(a.recv::<u64>().unwrap(), i + 1);
        }
        let b = t.join().unwrap();
        assert!(a.readable() && a.writable() && b.readable());
    });
}

#[test]
fn simplex_bytes_into_and_too_short() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        assert!(!tx.readable() && !rx.writable());
        assert!(rx.send_bytes(b"x").is_err());
        assert_eq!(tx.recv_bytes(), Err(GetError::Closed));
        tx.send_bytes(b"hello").unwrap();
        tx.send_bytes(b"world!").unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(rx.recv_bytes_into(&mut buf).unwrap(), 5);
        assert_eq!(&buf, b"hello");
        match rx.recv_bytes_into(&mut buf) {
            Err(GetError::BufferTooShort(m)) => assert_eq!(m, b"world!"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn poll_and_end_of_stream_after_close() {
    watchdog(|| {
        let (a, b) = Pipe::duplex().unwrap();
        let start = Instant::now();
        assert!(!b.poll(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        a.send_bytes(b"last").unwrap();
        assert!(b.poll(Duration::ZERO));
        a.close();
        assert_eq!(b.recv_bytes().unwrap(), b"last");
        assert_eq!(b.recv_bytes(), Err(GetError::Closed));
        assert!(b.poll(Duration::ZERO));
        assert!(b.send_bytes(b"x").is_err());
        let start = Instant::now();
        let (c, _d) = Pipe::duplex().unwrap();
        assert_eq!(
            c.recv_timeout::<u8>(Duration::from_millis(30)),
            Err(GetError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn large_messages_through_a_pipe() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let big2 = big.clone();
        let t = std::thread::spawn(move || tx.send_bytes(&big2).unwrap());
        assert_eq!(rx.recv_bytes().unwrap(), big);
        t.join().unwrap();
    });
}

#[test]
fn pipe_messages_are_read_in_place_whole() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        let sizes = [0usize, 100, 200_000, 2_000_000];
        let t = std::thread::spawn(move || {
            for n in sizes {
                tx.send_bytes(&vec![(n % 255) as u8; n]).unwrap();
            }
            tx.close();
        });
        for n in sizes {
            let ok = rx
                .recv_in_place(|m| {
                    let s = m.as_slice().expect("a pipe's message lies in one piece");
                    s.len() == n && s.iter().all(|&b| b == (n % 255) as u8)
                })
                .unwrap();
            assert!(ok, "message of {n} bytes");
        }
        assert_eq!(rx.recv_in_place(|m| m.len()), Err(GetError::Closed));
        t.join().unwrap();
    });
}

#[test]
fn pipe_capacity_sets_what_travels_in_one_piece() {
    watchdog(|| {
        // 8 MiB per direction: a 3 MiB message fits whole, so one thread can send it
        // and then receive it (with the default 512 KiB ring it would wait for a reader).
        let (a, b) = Pipe::builder().capacity(8 << 20).duplex().unwrap();
        let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        a.send_bytes(&big).unwrap();
        let same = b.recv_in_place(|m| m.as_slice() == Some(&big[..])).unwrap();
        assert!(same);
        let err = Pipe::builder().capacity(usize::MAX).simplex().unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    });
}

#[test]
fn timed_byte_receive_waits_at_most_its_limit() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        let limit = Duration::from_millis(50);
        let start = Instant::now();
        let err = rx.recv_bytes_timeout(limit).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(start.elapsed() >= limit);
        let mut buf = [0u8; 4];
        let err = rx.recv_bytes_into_timeout(&mut buf, limit).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        // The pipe is intact after a time-out: a later message arrives whole.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send_bytes(b"late but whole").unwrap();
            tx.send_bytes(b"too long for four bytes").unwrap();
            tx
        });
        let got = rx.recv_bytes_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(got, b"late but whole");
        let err = rx
            .recv_bytes_into_timeout(&mut buf, Duration::from_secs(30))
            .unwrap_err();
        assert!(matches!(&err, GetError::BufferTooShort(m) if m == b"too long for four bytes"));
        let tx = sender.join().unwrap();
        // A sender end cannot receive; a closed peer ends the stream at once.
        assert_eq!(tx.recv_bytes_timeout(limit), Err(GetError::Closed));
        tx.close();
        assert_eq!(
            rx.recv_bytes_timeout(Duration::from_secs(30)),
            Err(GetError::Closed)
        );
    });
}

#[test]
fn timed_send_gives_up_on_a_full_ring_and_sends_nothing() {
    watchdog(|| {
        let (tx, rx) = Pipe::builder().capacity(4096).simplex().unwrap();
        let mut sent = 0u32;
        let err = loop {
            match tx.send_timeout(&sent, Duration::from_millis(20)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert!(err.is_timeout(), "{err:?}");
        assert!(tx
            .send_bytes_timeout(&[0; 64], Duration::ZERO)
            .unwrap_err()
            .is_timeout());
        for i in 0..sent {
            assert_eq!(rx.recv::<u32>().unwrap(), i);
        }
        assert!(rx
            .recv_bytes_timeout(Duration::ZERO)
            .unwrap_err()
            .is_timeout());
    });
}

fn send_then_exit(tx: Connection) {
    tx.send_bytes(b"from the child").unwrap();
}
shoal::entry!(send_then_exit);

#[test]
fn timed_byte_receive_sees_a_dead_peer_as_the_end_not_a_timeout() {
    // The receive's limit (60 s) exceeds the watchdog's: the end must come from the
    // peer's death, not from the limit.
    watchdog_secs(30, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        let child = Reap(shoal::Process::new(send_then_exit, tx).start().unwrap());
        let long = Duration::from_secs(60);
        assert_eq!(rx.recv_bytes_timeout(long).unwrap(), b"from the child");
        assert_eq!(rx.recv_bytes_timeout(long), Err(GetError::Closed));
        assert_eq!(child.0.join_timeout(long).unwrap(), Some(0));
    });
}

#[test]
fn a_dead_peer_is_no_end_of_stream_where_that_rule_is_turned_off() {
    watchdog_secs(30, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        rx.set_peer_death_ends_stream(false);
        let child = Reap(
            shoal::Process::new(send_then_exit, tx.clone())
                .start()
                .unwrap(),
        );
        let long = Duration::from_secs(60);
        assert_eq!(rx.recv_bytes_timeout(long).unwrap(), b"from the child");
        assert_eq!(child.0.join_timeout(long).unwrap(), Some(0));
        // The only sender died: with the rule on, this would be the end of stream.
        assert!(!rx.poll(Duration::from_millis(50)));
        assert!(rx
            .recv_bytes_timeout(Duration::from_millis(50))
            .unwrap_err()
            .is_timeout());
        // The parent's own copy of the sending end still sends, and close still ends.
        tx.send_bytes(b"from the parent").unwrap();
        assert_eq!(rx.recv_bytes_timeout(long).unwrap(), b"from the parent");
        tx.close();
        assert_eq!(rx.recv_bytes_timeout(long), Err(GetError::Closed));
    });
}

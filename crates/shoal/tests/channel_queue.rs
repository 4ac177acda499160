//! Queue, JoinableQueue, SimpleQueue semantics through the public API.

use std::time::{Duration, Instant};

use shoal::channel::{GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use shoal::codec::Codec;

mod common;
use common::watchdog;

#[test]
fn typed_round_trip_with_every_codec() {
    watchdog(|| {
        for codec in [Codec::Bincode, Codec::Json, Codec::MessagePack] {
            let q: Queue<(u32, String, Vec<u8>)> = Queue::builder().codec(codec).build().unwrap();
            let big = vec![9u8; 5000];
            q.put((1, "a".into(), vec![])).unwrap();
            q.put((2, "b".into(), big.clone())).unwrap();
            assert_eq!(q.len(), 2);
            assert_eq!(q.get().unwrap(), (1, "a".into(), vec![]));
            assert_eq!(q.get().unwrap(), (2, "b".into(), big));
            assert!(q.is_empty());
            assert_eq!(q.codec(), codec);
        }
    });
}

#[test]
fn full_and_empty_give_the_message_back() {
    watchdog(|| {
        let q: Queue<String> = Queue::with_maxsize(2).unwrap();
        q.try_put("a".into()).unwrap();
        q.try_put("b".into()).unwrap();
        assert!(q.is_full());
        match q.try_put("c".into()) {
            Err(PutError::Full(m)) => assert_eq!(m, "c"),
            other => panic!("{other:?}"),
        }
        let start = Instant::now();
        match q.put_timeout("d".into(), Duration::from_millis(30)) {
            Err(PutError::Timeout(m)) => assert_eq!(m, "d"),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(q.get().unwrap(), "a");
        assert_eq!(q.get().unwrap(), "b");
        assert_eq!(q.try_get(), Err(GetError::Empty));
        let start = Instant::now();
        assert_eq!(
            q.get_timeout(Duration::from_millis(30)),
            Err(GetError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn close_wakes_waiters_fails_puts_and_drains() {
    watchdog(|| {
        let q: Queue<u64> = Queue::new().unwrap();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.get())
        };
        std::thread::sleep(Duration::from_millis(20));
        q.put(7).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 7);
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.get())
        };
        std::thread::sleep(Duration::from_millis(20));
        q.put(8).unwrap();
        q.put(9).unwrap();
        let first = waiter.join().unwrap().unwrap();
        q.close();
        assert!(q.is_closed());
        match q.put(10) {
            Err(PutError::Closed(m)) => assert_eq!(m, 10),
            other => panic!("{other:?}"),
        }
        let second = q.get().unwrap();
        assert_eq!((first, second), (8, 9));
        assert_eq!(q.get(), Err(GetError::Closed));
        assert_eq!(q.try_get(), Err(GetError::Closed));
        // A blocked getter is woken by close.
        let q2: Queue<u64> = Queue::new().unwrap();
        let waiter = {
            let q2 = q2.clone();
            std::thread::spawn(move || q2.get())
        };
        std::thread::sleep(Duration::from_millis(20));
        q2.close();
        assert_eq!(waiter.join().unwrap(), Err(GetError::Closed));
    });
}

#[test]
fn blocked_put_is_woken_by_close() {
    watchdog(|| {
        let q: Queue<u8> = Queue::with_maxsize(1).unwrap();
        q.put(1).unwrap();
        let putter = {
            let q = q.clone();
            std::thread::spawn(move || q.put(2))
        };
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert!(matches!(putter.join().unwrap(), Err(PutError::Closed(2))));
    });
}

#[test]
fn raw_bytes_and_messages_larger_than_the_ring() {
    watchdog(|| {
        let q: Queue<()> = Queue::builder().capacity_bytes(4096).build().unwrap();
        assert!(q.capacity_bytes() < 10_000);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let q2 = q.clone();
        let big2 = big.clone();
        let t = std::thread::spawn(move || {
            q2.put_bytes(b"small").unwrap();
            q2.put_bytes(&big2).unwrap();
            q2.put_bytes(b"").unwrap();
        });
        assert_eq!(q.get_bytes().unwrap(), b"small");
        let mut buf = Vec::new();
        assert_eq!(q.get_bytes_into(&mut buf).unwrap(), big.len());
        assert_eq!(buf, big);
        assert_eq!(q.get_bytes_timeout(Duration::from_secs(30)).unwrap(), b"");
        t.join().unwrap();
        assert_eq!(q.try_get_bytes(), Err(GetError::Empty));
    });
}

#[test]
fn put_many_and_get_many() {
    watchdog(|| {
        let q: Queue<u32> = Queue::new().unwrap();
        q.put_many((0..1000).collect()).unwrap();
        let mut got = Vec::new();
        while got.len() < 1000 {
            got.extend(q.get_many(300, Some(Duration::from_secs(10))).unwrap());
        }
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            q.get_many(5, Some(Duration::from_millis(1))),
            Err(GetError::Timeout)
        );
    });
}

#[test]
fn decode_error_returns_the_bytes() {
    watchdog(|| {
        let q: Queue<u64> = Queue::builder().codec(Codec::Json).build().unwrap();
        q.put_bytes(b"not json").unwrap();
        match q.get() {
            Err(GetError::Decode { bytes, error }) => {
                assert_eq!(bytes, b"not json");
                assert!(error.to_string().contains("JSON"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn serializing_outside_a_handoff_is_an_error() {
    let q: Queue<u8> = Queue::new().unwrap();
    let err = Codec::Bincode.encode(&q).unwrap_err();
    assert!(err.to_string().contains("Queue"), "{err}");
}

#[test]
fn joinable_queue_join_waits_for_task_done() {
    watchdog(|| {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        assert!(q.join_timeout(Duration::ZERO));
        for i in 0..10 {
            q.put(i).unwrap();
        }
        assert_eq!(q.unfinished(), 10);
        let start = Instant::now();
        assert!(!q.join_timeout(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    q.get().unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                    q.task_done().unwrap();
                }
            })
        };
        q.join();
        assert_eq!(q.unfinished(), 0);
        worker.join().unwrap();
        assert!(q.task_done().is_err());
    });
}

#[test]
fn simple_queue() {
    watchdog(|| {
        let q: SimpleQueue<Vec<String>> = SimpleQueue::new().unwrap();
        assert!(q.is_empty());
        q.put(vec!["x".into()]).unwrap();
        assert!(!q.is_empty());
        assert_eq!(q.get().unwrap(), vec!["x".to_owned()]);
        q.close();
        assert!(q.get().unwrap_err().is_closed());
    });
}

#[test]
fn readiness_descriptor_signals_puts() {
    watchdog(|| {
        let q: Queue<u8> = Queue::new().unwrap();
        let r = q.readiness();
        assert!(!r.wait(Duration::ZERO).unwrap());
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            q2.put(5).unwrap();
        });
        assert!(r.wait(Duration::from_secs(30)).unwrap());
        r.clear();
        assert_eq!(q.try_get().unwrap(), 5);
        assert!(!r.wait(Duration::ZERO).unwrap());
        t.join().unwrap();
    });
}

#[test]
fn reserve_write_in_place_commit_or_abandon() {
    use std::io::Write;
    watchdog(|| {
        let q: Queue<()> = Queue::builder().capacity_bytes(8192).build().unwrap();
        // Abandoned: nothing is delivered.
        let mut slot = q.reserve(300).unwrap();
        slot.write_all(b"never seen").unwrap();
        drop(slot);
        // Chunk by chunk across cells.
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut slot = q.reserve(data.len()).unwrap();
        let mut at = 0;
        loop {
            let chunk = slot.chunk_mut();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            chunk.copy_from_slice(&data[at..at + n]);
            slot.advance(n);
            at += n;
        }
        assert_eq!(slot.written(), data.len());
        slot.commit();
        // Partly written: the rest is zeroes.
        let mut slot = q.reserve(8).unwrap();
        slot.write_all(b"ab").unwrap();
        assert_eq!(slot.write(b"0123456789").unwrap(), 6);
        slot.commit();
        let mut slot = q.reserve(4).unwrap();
        slot.write_all(b"x").unwrap();
        slot.commit();
        assert_eq!(q.get_bytes().unwrap(), data);
        assert_eq!(q.get_bytes().unwrap(), b"ab012345");
        assert_eq!(q.get_bytes().unwrap(), b"x\0\0\0");
        assert_eq!(q.try_get_bytes(), Err(GetError::Empty));
        assert!(matches!(
            q.reserve(q.max_reserve() + 1),
            Err(PutError::TooLarge(()))
        ));
        // Full.
        let _a = q.reserve(q.max_reserve()).unwrap();
        let _b = q.reserve(q.max_reserve()).unwrap();
        assert!(matches!(q.try_reserve(1), Err(PutError::Full(()))));
    });
}

#[test]
fn messages_are_read_in_place_across_cells_and_parts() {
    watchdog(|| {
        let q: Queue<()> = Queue::builder()
            .cell_size(64)
            .capacity_bytes(16 * 1024)
            .build()
            .unwrap();
        let body = |len: usize| -> Vec<u8> { (0..len).map(|i| (i % 251) as u8).collect() };
        // One cell, several cells, and larger than half the ring (streamed in parts).
        let sizes = [10usize, 1000, 40_000];
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            for n in sizes {
                q2.put_bytes(&body(n)).unwrap();
            }
        });
        for n in sizes {
            let got = q
                .get_in_place(Some(Duration::from_secs(30)), |m| {
                    assert_eq!(m.len(), n);
                    let pieces: Vec<&[u8]> = m.chunks().collect();
                    assert_eq!(pieces.len() > 1, n > 48 && n < 8 * 1024, "{n} bytes");
                    pieces.concat()
                })
                .unwrap();
            assert_eq!(got, body(n));
        }
        t.join().unwrap();
        q.put_bytes_many(&[b"a", b"bb", b"ccc"]).unwrap();
        let mut lens = Vec::new();
        let n = q
            .get_many_in_place(10, Some(Duration::ZERO), |m| lens.push(m.to_vec()))
            .unwrap();
        assert_eq!(
            (n, lens),
            (3, vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()])
        );
        assert_eq!(
            q.get_in_place(Some(Duration::ZERO), |m| m.len()),
            Err(GetError::Timeout)
        );
    });
}

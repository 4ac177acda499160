//! The single-producer ring against its contract: wrapping, full rings, closing,
//! streaming, and what dead senders and receivers leave behind.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::super::RingConfig;
use super::*;

/// A token no live process has: pid 0x7fff_fff0 is above any default `pid_max`.
const DEAD: u64 = 0x7fff_fff0u64 << 32 | 1;

/// A pipe ring of 16 cells of 64 bytes: a 1 KiB record area.
fn ring() -> Ring {
    Ring::create(RingConfig {
        cell_size: 64,
        cells: 16,
        max_messages: 0,
        tag: crate::channel::TAG_PIPE,
        codec: 0,
    })
    .unwrap()
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

fn now() -> Deadline {
    Deadline::after(Duration::ZERO)
}

fn get(r: &Ring, d: Deadline) -> Result<Vec<u8>, WaitFail> {
    r.get(d, |b| b.to_vec())
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn records_wrap_with_padding_in_order() {
    let r = ring();
    assert_eq!(r.max_inline(), 480);
    let mut seed = 0u8;
    // Sizes that leave every kind of remainder at the end of the ring.
    for round in 0..200usize {
        let sizes = [round % 97, 0, 200 + round % 50, 7, 480 - round % 3];
        for &n in &sizes[..1 + round % sizes.len()] {
            seed = seed.wrapping_add(1);
            r.put(&body(n, seed), soon()).unwrap();
            assert_eq!(get(&r, now()).unwrap(), body(n, seed));
        }
        assert_eq!(get(&r, now()), Err(WaitFail::Timeout));
    }
    assert_eq!(r.len(), 0);
}

#[test]
fn full_ring_times_out_then_frees() {
    let r = ring();
    let mut put = 0;
    while r.put(&[1u8; 100], now()).is_ok() {
        put += 1;
    }
    assert!(put >= 5, "only {put} records of 128 bytes fit a 1 KiB ring");
    assert_eq!(r.len(), put);
    for _ in 0..put {
        assert_eq!(get(&r, now()).unwrap(), [1u8; 100]);
    }
    r.put(&[2u8; 100], now()).unwrap();
    assert_eq!(get(&r, now()).unwrap(), [2u8; 100]);
}

#[test]
fn close_drains_then_reports_closed() {
    let r = ring();
    r.put(b"x", now()).unwrap();
    r.mapped().close();
    assert_eq!(r.put(b"y", now()), Err(WaitFail::Closed));
    assert!(r.readable());
    assert_eq!(get(&r, now()).unwrap(), b"x");
    assert_eq!(get(&r, soon()), Err(WaitFail::Closed));
    assert!(r.readable());
}

#[test]
fn streamed_message_larger_than_the_ring() {
    let r = Arc::new(ring());
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let (r2, big2) = (Arc::clone(&r), big.clone());
    let t = std::thread::spawn(move || {
        r2.put(&big2, soon()).unwrap();
        r2.put(b"after", soon()).unwrap();
    });
    assert_eq!(get(&r, soon()).unwrap(), big);
    assert_eq!(get(&r, soon()).unwrap(), b"after");
    t.join().unwrap();
}

#[test]
fn a_record_committed_by_a_dead_sender_is_kept() {
    let r = ring();
    r.put(b"first", now()).unwrap();
    // A sender that committed "second" and died before publishing `tail.pos`.
    let tail = &r.ctrl().tail.0;
    let before = tail.pos.load(Ordering::SeqCst);
    tail.owner.store(DEAD, Ordering::SeqCst);
    r.push(None, b"second", F_FIRST).unwrap();
    tail.pos.store(before, Ordering::SeqCst);
    r.put(b"third", soon()).unwrap();
    assert_eq!(tail.owner.load(Ordering::SeqCst), 0);
    for want in [&b"first"[..], b"second", b"third"] {
        assert_eq!(get(&r, now()).unwrap(), want);
    }
}

#[test]
fn a_dead_senders_unfinished_record_is_overwritten() {
    let r = ring();
    let tail = &r.ctrl().tail.0;
    let before = tail.pos.load(Ordering::SeqCst);
    tail.owner.store(DEAD, Ordering::SeqCst);
    r.push(None, b"torn", F_FIRST).unwrap();
    // Killed before its commit: the header still says "not committed".
    r.rec_header(before).seq.store(0, Ordering::SeqCst);
    tail.pos.store(before, Ordering::SeqCst);
    assert_eq!(get(&r, now()), Err(WaitFail::Timeout));
    r.put(b"whole", soon()).unwrap();
    assert_eq!(get(&r, now()).unwrap(), b"whole");
    assert_eq!(get(&r, now()), Err(WaitFail::Timeout));
}

#[test]
fn a_dead_receivers_record_is_read_again() {
    let r = ring();
    r.put(b"kept", now()).unwrap();
    // A receiver that took the reader word and died while reading: the read
    // position never moved.
    r.ctrl().count.0.reader.store(DEAD, Ordering::SeqCst);
    assert_eq!(get(&r, soon()).unwrap(), b"kept");
    assert_eq!(r.ctrl().count.0.reader.load(Ordering::SeqCst), 0);
}

#[test]
fn an_end_held_by_a_live_thread_waits() {
    let r = ring();
    // Another thread of this (live) process holds the writer word.
    let other = claim::my_token() ^ 0xffff;
    r.ctrl().tail.0.owner.store(other, Ordering::SeqCst);
    assert_eq!(
        r.put(b"x", Deadline::after(Duration::from_millis(5))),
        Err(WaitFail::Timeout)
    );
    r.ctrl().tail.0.owner.store(0, Ordering::SeqCst);
    r.put(b"x", now()).unwrap();
    assert_eq!(get(&r, now()).unwrap(), b"x");
}

#[test]
fn an_impossible_header_is_skipped() {
    let r = ring();
    r.put(b"lost", now()).unwrap();
    // Scribble on the committed header: a length that crosses the end of the ring.
    r.rec_header(0).len.store(5000, Ordering::SeqCst);
    assert_eq!(get(&r, now()), Err(WaitFail::Timeout));
    r.put(b"next", now()).unwrap();
    assert_eq!(get(&r, now()).unwrap(), b"next");
}

#[test]
fn two_sending_threads_are_serialized() {
    let r = Arc::new(ring());
    let n = 3000u32;
    let senders: Vec<_> = (0..2u8)
        .map(|id| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for i in 0..n {
                    let len = [5usize, 60, 300, 1500][(i % 4) as usize];
                    let mut v = vec![id; len];
                    v[..4].copy_from_slice(&i.to_le_bytes());
                    r.put(&v, soon()).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u32; 2];
    for _ in 0..2 * n {
        let v = get(&r, soon()).unwrap();
        let id = v[v.len() - 1];
        let i = u32::from_le_bytes(v[..4].try_into().unwrap());
        assert_eq!(i, next[id as usize]);
        assert!(v[4..].iter().all(|&b| b == id));
        next[id as usize] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8),
    Get,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..=480, any::<u8>()).prop_map(|(n, s)| Op::Put(n, s)),
        Just(Op::Get),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Single-threaded against a `VecDeque`: FIFO contents; a put is refused only
    /// when something is in the ring (or, once, before a get that finds the ring
    /// empty and hands the last bytes read to the sender).
    #[test]
    fn ring_matches_a_vecdeque(ops in proptest::collection::vec(op(), 1..300)) {
        let r = ring();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for op in ops {
            match op {
                Op::Put(n, s) => {
                    let v = body(n, s);
                    match r.put(&v, now()) {
                        Ok(()) => model.push_back(v),
                        Err(e) => {
                            prop_assert_eq!(e, WaitFail::Timeout);
                            if model.is_empty() {
                                prop_assert_eq!(get(&r, now()), Err(WaitFail::Timeout));
                                r.put(&v, now()).unwrap();
                                model.push_back(v);
                            }
                        }
                    }
                }
                Op::Get => match model.pop_front() {
                    Some(v) => prop_assert_eq!(get(&r, now()).unwrap(), v),
                    None => prop_assert_eq!(get(&r, now()), Err(WaitFail::Timeout)),
                },
            }
            prop_assert_eq!(r.len(), model.len());
        }
    }
}

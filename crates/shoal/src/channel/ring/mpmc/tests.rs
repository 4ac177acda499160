use std::sync::Arc;
use std::time::Duration;

use super::super::{PutFail, WaitFail};
use super::*;

fn ring(cells: usize) -> Ring {
    Ring::create(RingConfig {
        cell_size: 64,
        cells,
        max_messages: 0,
        tag: 99,
        codec: 0,
    })
    .unwrap()
}

fn get_vec(r: &Ring) -> Result<Vec<u8>, GetFail> {
    r.try_get(|b| b.to_vec())
}

#[test]
fn fifo_single_and_multi_cell() {
    let r = ring(16);
    r.try_put(b"a", 0).unwrap();
    let big = vec![7u8; 200];
    r.try_put(&big, 0).unwrap();
    r.try_put(b"", 0).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(get_vec(&r).unwrap(), b"a");
    assert_eq!(get_vec(&r).unwrap(), big);
    assert_eq!(get_vec(&r).unwrap(), b"");
    assert!(matches!(get_vec(&r), Err(GetFail::Empty { .. })));
    assert_eq!(r.used_cells(), 0);
}

#[test]
fn full_then_free_after_laps() {
    let r = ring(4);
    for lap in 0..10u8 {
        for i in 0..4u8 {
            r.try_put(&[lap, i], 0).unwrap();
        }
        assert!(matches!(r.try_put(b"x", 0), Err(PutFail::Full { .. })));
        for i in 0..4u8 {
            assert_eq!(get_vec(&r).unwrap(), [lap, i]);
        }
    }
}

#[test]
fn streamed_message_larger_than_ring() {
    let r = Arc::new(ring(8));
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let r2 = Arc::clone(&r);
    let big2 = big.clone();
    let t = std::thread::spawn(move || r2.put(&big2, Deadline::NEVER).unwrap());
    let got = r
        .get(Deadline::after(Duration::from_secs(30)), |b| b.to_vec())
        .unwrap();
    t.join().unwrap();
    assert_eq!(got, big);
}

#[test]
fn dead_producer_claim_becomes_tombstone() {
    let r = ring(8);
    r.try_put(b"before", 0).unwrap();
    // Forge a claim by a dead process: slot owned by pid 0x7fff_fff0 (never a live pid
    // on a default pid_max), covering two cells at the tail.
    let tail = r.ctrl().tail.0.pos.load(Ordering::SeqCst);
    let s = r.map.slot_at(SLOTS - 1);
    s.owner.store(0x7fff_fff0u64 << 32 | 1, Ordering::SeqCst);
    s.put_cells.store(2, Ordering::SeqCst);
    s.put_pos.store(tail, Ordering::SeqCst);
    r.ctrl().tail.0.pos.store(tail + 2, Ordering::SeqCst);
    r.try_put(b"after", 0).unwrap();
    assert_eq!(get_vec(&r).unwrap(), b"before");
    let got = r
        .get(Deadline::after(Duration::from_secs(30)), |b| b.to_vec())
        .unwrap();
    assert_eq!(got, b"after");
}

#[test]
fn a_dead_consumers_message_is_put_again_by_a_producer() {
    let r = ring(2);
    r.try_put(b"1", 0).unwrap();
    r.try_put(b"2", 0).unwrap();
    // A dead consumer claimed the first message and never released it.
    let s = r.map.slot_at(SLOTS - 2);
    s.owner.store(0x7fff_fff1u64 << 32 | 1, Ordering::SeqCst);
    s.get_cells.store(1, Ordering::SeqCst);
    s.get_pos.store(0, Ordering::SeqCst);
    r.ctrl().head.0.pos.store(1, Ordering::SeqCst);
    assert_eq!(get_vec(&r).unwrap(), b"2");
    // The next put needs the dead consumer's cell: the producer settles the claim by
    // putting "1" again, then puts its own message.
    r.put(b"3", Deadline::after(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(get_vec(&r).unwrap(), b"1");
    assert_eq!(get_vec(&r).unwrap(), b"3");
}

#[test]
fn a_dead_consumers_message_is_put_again_by_a_waiting_consumer() {
    let r = ring(8);
    let big = vec![9u8; 150]; // four cells
    r.try_put(&big, 0).unwrap();
    let cells = r.cells_for(big.len());
    let s = r.map.slot_at(SLOTS - 2);
    s.owner.store(0x7fff_fff1u64 << 32 | 1, Ordering::SeqCst);
    s.get_cells.store(cells, Ordering::SeqCst);
    s.get_pos.store(0, Ordering::SeqCst);
    r.ctrl().head.0.pos.store(cells, Ordering::SeqCst);
    // Nothing readable: the waiting consumer finds the dead claim and the message
    // comes again, whole.
    let got = r
        .get(Deadline::after(Duration::from_secs(30)), |b| b.to_vec())
        .unwrap();
    assert_eq!(got, big);
    assert_eq!(
        s.get_pos.load(Ordering::SeqCst),
        IDLE,
        "the settled claim is forgotten"
    );
    assert!(matches!(get_vec(&r), Err(GetFail::Empty { .. })));
}

#[test]
fn close_drains_then_reports_closed() {
    let r = ring(4);
    r.try_put(b"x", 0).unwrap();
    r.mapped().close();
    assert_eq!(r.try_put(b"y", 0), Err(PutFail::Closed));
    assert_eq!(get_vec(&r).unwrap(), b"x");
    assert_eq!(get_vec(&r), Err(GetFail::Closed));
    assert_eq!(r.get(Deadline::NEVER, |b| b.len()), Err(WaitFail::Closed));
}

#[test]
fn blocking_get_times_out() {
    let r = ring(4);
    let start = Instant::now();
    let e = r.get(Deadline::after(Duration::from_millis(30)), |b| b.len());
    assert_eq!(e, Err(WaitFail::Timeout));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn threads_exchange_in_order() {
    let r = Arc::new(ring(64));
    let r2 = Arc::clone(&r);
    let n = 20_000u32;
    let t = std::thread::spawn(move || {
        for i in 0..n {
            let len = (i % 300) as usize;
            let mut v = vec![(i % 251) as u8; len];
            v.extend_from_slice(&i.to_le_bytes());
            r2.put(&v, Deadline::after(Duration::from_secs(30)))
                .unwrap();
        }
    });
    for i in 0..n {
        let v = r
            .get(Deadline::after(Duration::from_secs(30)), |b| b.to_vec())
            .unwrap();
        let (body, idx) = v.split_at(v.len() - 4);
        assert_eq!(u32::from_le_bytes(idx.try_into().unwrap()), i);
        assert!(body.iter().all(|&b| b == (i % 251) as u8));
    }
    t.join().unwrap();
}

#[test]
fn a_dead_consumers_message_keeps_its_unit_of_the_message_bound() {
    let r = Ring::create(RingConfig {
        cell_size: 64,
        cells: 8,
        max_messages: 1,
        tag: 99,
        codec: 0,
    })
    .unwrap();
    r.try_put(b"held", 0).unwrap();
    assert!(matches!(r.try_put(b"x", 0), Err(PutFail::Full { .. })));
    // A dead consumer claimed the message and never released it.
    let s = r.map.slot_at(SLOTS - 3);
    s.owner.store(0x7fff_fff2u64 << 32 | 1, Ordering::SeqCst);
    s.get_cells.store(1, Ordering::SeqCst);
    s.get_pos.store(0, Ordering::SeqCst);
    r.ctrl().head.0.pos.store(1, Ordering::SeqCst);
    let got = r
        .get(Deadline::after(Duration::from_secs(30)), |b| b.to_vec())
        .unwrap();
    assert_eq!(got, b"held");
    r.put(b"next", Deadline::after(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(get_vec(&r).unwrap(), b"next");
}

/// Forges a put claim of `cells` cells at the tail by the process `pid` (a thread that
/// CASed `tail` and then stopped), in slot `slot`; returns its first position.
fn forge_put_claim(r: &Ring, slot: usize, pid: u32, cells: u64) -> u64 {
    let tail = r.ctrl().tail.0.pos.load(Ordering::SeqCst);
    let s = r.map.slot_at(slot);
    s.owner.store(u64::from(pid) << 32 | 1, Ordering::SeqCst);
    s.put_cells.store(cells, Ordering::SeqCst);
    s.put_pos.store(tail, Ordering::SeqCst);
    r.ctrl().tail.0.pos.store(tail + cells, Ordering::SeqCst);
    tail
}

#[test]
fn a_dead_producers_whole_claim_is_repaired_at_once() {
    let r = ring(64);
    let at = forge_put_claim(&r, SLOTS - 1, 0x7fff_fff0, 32);
    r.try_put(b"after", 0).unwrap();
    assert!(matches!(get_vec(&r), Err(GetFail::Empty { pos }) if pos == at));
    // One repair covers every cell of the claim: the next message is readable at once.
    assert!(r.recover_put_claim(at));
    assert_eq!(get_vec(&r).unwrap(), b"after");
    assert_eq!(r.used_cells(), 0);
}

#[test]
fn the_repair_of_a_dead_claim_stops_at_a_live_claim() {
    let r = ring(64);
    let dead = forge_put_claim(&r, SLOTS - 1, 0x7fff_fff0, 10);
    // A claim of this (live) process right after it, not committed yet.
    let live = forge_put_claim(&r, SLOTS - 2, claim::my_pid(), 5);
    r.try_put(b"after", 0).unwrap();
    assert!(r.recover_put_claim(dead));
    assert!(!r.recover_put_claim(live), "a live claim is never repaired");
    assert!(matches!(get_vec(&r), Err(GetFail::Empty { pos }) if pos == live));
    let body = vec![5u8; 5 * 48];
    r.write_commit(live, &body, 0);
    r.map
        .slot_at(SLOTS - 2)
        .put_pos
        .store(IDLE, Ordering::SeqCst);
    assert_eq!(get_vec(&r).unwrap(), body);
    assert_eq!(get_vec(&r).unwrap(), b"after");
}

#[test]
fn a_dead_consumers_record_without_its_claim_leaves_the_message_alone() {
    let r = ring(8);
    r.try_put(b"one", 0).unwrap();
    // A consumer killed between writing its record and its CAS of `head`: the message
    // was never claimed, and must neither be put again nor freed under `head`.
    let head = r.ctrl().head.0.pos.load(Ordering::SeqCst);
    let s = r.map.slot_at(SLOTS - 2);
    s.owner.store(0x7fff_fff1u64 << 32 | 1, Ordering::SeqCst);
    s.get_cells.store(1, Ordering::SeqCst);
    s.get_pos.store(head, Ordering::SeqCst);
    r.recover_dead_consumers();
    assert!(!r.recover_get_claim(head));
    assert_eq!(get_vec(&r).unwrap(), b"one");
    assert!(matches!(get_vec(&r), Err(GetFail::Empty { .. })));
}

#[test]
fn a_dead_stream_writer_is_cleared_by_the_taker_of_its_token() {
    let r = ring(16);
    let st = &r.ctrl().stream.0;
    st.writer.store(0x7fff_fff3u64 << 32 | 1, Ordering::SeqCst);
    r.ctrl().tail.0.pos.fetch_or(STREAM_BIT, Ordering::SeqCst);
    assert_eq!(r.try_put(b"x", 0), Err(PutFail::Streaming));
    r.recover_dead_writer();
    assert_eq!(st.writer.load(Ordering::SeqCst), 0);
    assert_eq!(r.ctrl().tail.0.pos.load(Ordering::SeqCst) & STREAM_BIT, 0);
    // A live writer's token and bit are never touched.
    st.writer.store(claim::my_token(), Ordering::SeqCst);
    r.ctrl().tail.0.pos.fetch_or(STREAM_BIT, Ordering::SeqCst);
    r.recover_dead_writer();
    assert_eq!(st.writer.load(Ordering::SeqCst), claim::my_token());
    assert_ne!(r.ctrl().tail.0.pos.load(Ordering::SeqCst) & STREAM_BIT, 0);
    r.try_put(b"y", 0).unwrap();
}

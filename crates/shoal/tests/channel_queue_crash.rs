//! Queues whose producers are killed: messages streamed in parts (larger than half the
//! ring) whose writer dies mid-stream, and claims a dead producer leaves behind. Nothing
//! acknowledged may be lost, torn or duplicated, and the queue must move on.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shoal::channel::{GetError, Queue};
use shoal::sync::Event;
use shoal::{Process, SharedMemory};

mod common;
use common::{eventually, watchdog_secs, Reap};

// ----- messages ------------------------------------------------------------------------

/// One 64-bit word of the body of message `seq` of producer `id` (splitmix64).
fn word(id: u32, seq: u32, i: u64) -> u64 {
    let mut x = (u64::from(id) << 32 | u64::from(seq)) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Message `seq` of producer `id`, `len` bytes (at least 16): id, seq and len as u32,
/// four zero bytes, then words derived from all three.
fn message(id: u32, seq: u32, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut v = Vec::with_capacity(len + 8);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    let mut i = 0;
    while v.len() < len {
        v.extend_from_slice(&word(id, seq, i).to_le_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// The `(id, seq)` of a delivered message, or `None` when it is not exactly one of
/// [`message`]'s (torn, cut short, or mixed with another).
fn identify(buf: &[u8]) -> Option<(u32, u32)> {
    if buf.len() < 16 {
        return None;
    }
    let field = |i: usize| u32::from_le_bytes(buf[4 * i..4 * i + 4].try_into().unwrap());
    let (id, seq, len) = (field(0), field(1), field(2) as usize);
    (len == buf.len() && buf == message(id, seq, len).as_slice()).then_some((id, seq))
}

struct Rng(u64);
impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("seed {seed:#x}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the consumers of one run saw.
#[derive(Default)]
struct Seen {
    delivered: HashMap<(u32, u32), u32>,
    torn: usize,
}

impl Seen {
    fn record(&mut self, buf: &[u8]) {
        match identify(buf) {
            Some(key) => *self.delivered.entry(key).or_insert(0) += 1,
            None => self.torn += 1,
        }
    }
}

// ----- a dead writer mid-stream: the reproduction of issue 9 ---------------------------

/// The id of the messages of a writer that is killed.
const DEAD: u32 = 0xdead;

/// Streams one message (it blocks once the ring is full, since nobody reads yet).
fn stream_one((q, len): (Queue<()>, usize)) {
    let _ = q.put_bytes(&message(DEAD, 0, len));
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(stream_one);

/// A child streams 1 MiB into a 256 KiB ring nobody reads and is killed once the ring
/// is full; then live producers put a 200 KB message (streamed) and small ones, and
/// `consumers` consumers start. Every acknowledged message must come exactly once,
/// whole; the dead writer's message never (it was never finished).
fn dead_streamer_trial(rng: &mut Rng, consumers: usize) {
    let q: Queue<()> = Queue::builder().capacity_bytes(256 * 1024).build().unwrap();
    let child = Reap(
        Process::new(stream_one, (q.clone(), 1 << 20))
            .start()
            .unwrap(),
    );
    eventually("the streaming child fills the ring", || q.is_full());
    child.0.kill().unwrap();
    child.0.join().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..3u32)
        .map(|id| {
            let (q, acked) = (q.clone(), Arc::clone(&acked));
            let small: Vec<usize> = (0..20).map(|_| 16 + rng.below(400) as usize).collect();
            thread::spawn(move || {
                let sizes = if id == 0 { vec![200_000] } else { small };
                for (seq, len) in sizes.into_iter().enumerate() {
                    q.put_bytes(&message(id, seq as u32, len)).unwrap();
                    acked.lock().unwrap().push((id, seq as u32));
                }
            })
        })
        .collect();
    // Let the producers meet the dead writer's stream first, for a varying while.
    thread::sleep(Duration::from_micros(rng.below(3000)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let readers: Vec<_> = (0..consumers)
        .map(|_| {
            let (q, seen) = (q.clone(), Arc::clone(&seen));
            thread::spawn(move || loop {
                match q.get_bytes() {
                    Ok(buf) => seen.lock().unwrap().record(&buf),
                    Err(GetError::Closed) => return,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    for r in readers {
        r.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.torn, 0, "torn messages");
    let acked = acked.lock().unwrap();
    let lost: Vec<_> = acked
        .iter()
        .filter(|k| !seen.delivered.contains_key(k))
        .collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");
    for (k, n) in &seen.delivered {
        assert_eq!(*n, 1, "message {k:?} delivered {n} times");
        assert!(
            k.0 != DEAD,
            "the dead writer's unfinished message was delivered"
        );
    }
    assert_eq!(seen.delivered.len(), acked.len());
}

#[test]
fn a_writer_killed_mid_stream_loses_nothing_acknowledged_two_consumers() {
    watchdog_secs(240, || {
        let mut rng = Rng::seeded();
        for _ in 0..150 {
            dead_streamer_trial(&mut rng, 2);
        }
    });
}

#[test]
fn a_writer_killed_mid_stream_loses_nothing_acknowledged_one_consumer() {
    watchdog_secs(240, || {
        let mut rng = Rng::seeded();
        for _ in 0..150 {
            dead_streamer_trial(&mut rng, 1);
        }
    });
}

// ----- a storm of producers killed mid-stream ------------------------------------------

/// The storm's ring: messages above 28 KiB (half of it) are streamed in parts.
const STORM_RING: usize = 64 * 1024;
/// Producer ids tracked (live producers first, then one per victim started).
const IDS: usize = 2048;
/// Messages tracked per producer.
const SEQS: usize = 1 << 14;
// The statistics segment: counters, then each producer's acknowledged count and its
// "inside a streamed put" flag, then one delivered bit per (id, seq).
const STOP: usize = 0;
const TORN: usize = 8;
const DUPS: usize = 16;
const ACKED: usize = 64;
const STREAMING: usize = ACKED + 8 * IDS;
const BITS: usize = STREAMING + 8 * IDS;
const STATS_LEN: usize = BITS + IDS * SEQS / 8;
/// Live producers (never killed).
const LIVE: u32 = 3;

fn counter(stats: &SharedMemory, at: usize) -> &AtomicU64 {
    stats.atomic_u64(at).unwrap()
}

/// The length of message `seq` of producer `id`: up to twice the ring; a victim's are
/// mostly streamed, a live producer's mostly small.
fn storm_len(id: u32, seq: u32) -> usize {
    let x = word(id, seq, u64::MAX);
    let pick = x % 100;
    let r = (x >> 8) as usize;
    let streamed = if id < LIVE { pick < 10 } else { pick < 80 };
    if streamed {
        STORM_RING / 2 + r % (STORM_RING * 3 / 2) // 32 KiB to 128 KiB
    } else if pick.is_multiple_of(4) {
        200 + r % 4000 // several cells
    } else {
        16 + r % 100 // one cell
    }
}

/// Puts messages until told to stop (live producers) or killed (victims).
fn storm_producer((q, stats, id): (Queue<()>, SharedMemory, u32)) {
    let acked = counter(&stats, ACKED + 8 * id as usize);
    let streaming = counter(&stats, STREAMING + 8 * id as usize);
    for seq in 0..SEQS as u32 {
        if counter(&stats, STOP).load(SeqCst) != 0 {
            return;
        }
        let len = storm_len(id, seq);
        streaming.store(u64::from(len > STORM_RING / 2), SeqCst);
        q.put_bytes(&message(id, seq, len)).unwrap();
        streaming.store(0, SeqCst);
        acked.store(u64::from(seq) + 1, SeqCst);
    }
}
shoal::entry!(storm_producer);

/// Takes messages until the queue is closed and drained: one at a time, in batches, or
/// both in turn (`mode` 0, 1, 2), recording each delivery.
fn storm_consumer((q, stats, mode): (Queue<()>, SharedMemory, u32)) {
    let mut turn = 0u32;
    loop {
        turn += 1;
        let batched = mode == 1 || (mode == 2 && turn.is_multiple_of(2));
        let got = if batched {
            q.get_bytes_many(8, None)
        } else {
            q.get_bytes().map(|b| vec![b])
        };
        let batch = match got {
            Ok(batch) => batch,
            Err(GetError::Closed) => return,
            Err(e) => panic!("{e}"),
        };
        for buf in batch {
            let Some((id, seq)) =
                identify(&buf).filter(|&(id, seq)| (id as usize) < IDS && (seq as usize) < SEQS)
            else {
                counter(&stats, TORN).fetch_add(1, SeqCst);
                continue;
            };
            let bit = id as usize * SEQS + seq as usize;
            let word = counter(&stats, BITS + bit / 64 * 8);
            if word.fetch_or(1 << (bit % 64), SeqCst) & (1 << (bit % 64)) != 0 {
                counter(&stats, DUPS).fetch_add(1, SeqCst);
            }
        }
    }
}
shoal::entry!(storm_consumer);

/// Live producers and `consumers` consumers work while two victim producers, which
/// mostly stream messages (up to twice the ring), are SIGKILLed at random, `kills`
/// times. Every acknowledged message must be delivered exactly once, whole. `maxsize`
/// bounds the queue by messages (0: by bytes only).
fn stream_kill_storm(kills: usize, consumers: u32, maxsize: usize) {
    let q: Queue<()> = Queue::builder()
        .capacity_bytes(STORM_RING)
        .maxsize(maxsize)
        .build()
        .unwrap();
    let stats = SharedMemory::new(STATS_LEN).unwrap();
    let mut rng = Rng::seeded();
    let start = |id: u32| {
        assert!((id as usize) < IDS, "too many producers for the statistics");
        Reap(
            Process::new(storm_producer, (q.clone(), stats.clone(), id))
                .start()
                .unwrap(),
        )
    };
    let readers: Vec<Reap> = (0..consumers)
        .map(|i| {
            let mode = if consumers == 1 { 2 } else { i % 2 };
            Reap(
                Process::new(storm_consumer, (q.clone(), stats.clone(), mode))
                    .start()
                    .unwrap(),
            )
        })
        .collect();
    let live: Vec<Reap> = (0..LIVE).map(start).collect();
    let mut next = LIVE;
    let mut victims: Vec<(u32, Reap)> = (0..2)
        .map(|_| {
            next += 1;
            (next - 1, start(next - 1))
        })
        .collect();
    let mut mid_stream = 0;
    for _ in 0..kills {
        thread::sleep(Duration::from_micros(200 + rng.below(4000)));
        let v = rng.below(2) as usize;
        let (id, child) = &victims[v];
        child.0.kill().unwrap();
        child.0.join().unwrap();
        mid_stream += counter(&stats, STREAMING + 8 * *id as usize).load(SeqCst);
        victims[v] = (next, start(next));
        next += 1;
    }
    for (_, child) in &victims {
        child.0.kill().unwrap();
        child.0.join().unwrap();
    }
    counter(&stats, STOP).store(1, SeqCst);
    for p in &live {
        assert_eq!(p.0.join().unwrap(), 0, "a live producer failed");
    }
    q.close();
    for c in &readers {
        assert_eq!(c.0.join().unwrap(), 0, "a consumer failed");
    }
    assert_eq!(counter(&stats, TORN).load(SeqCst), 0, "torn messages");
    assert_eq!(counter(&stats, DUPS).load(SeqCst), 0, "duplicated messages");
    let (mut acked_total, mut streamed_acked) = (0, 0);
    let mut lost = Vec::new();
    for id in 0..next {
        let acked = counter(&stats, ACKED + 8 * id as usize).load(SeqCst) as u32;
        acked_total += acked;
        for seq in 0..SEQS as u32 {
            let bit = id as usize * SEQS + seq as usize;
            let word = counter(&stats, BITS + bit / 64 * 8).load(SeqCst);
            let delivered = word & (1 << (bit % 64)) != 0;
            if seq < acked {
                if storm_len(id, seq) > STORM_RING / 2 {
                    streamed_acked += 1;
                }
                if !delivered {
                    lost.push((id, seq, storm_len(id, seq)));
                }
            }
            // The put in progress when a victim died may or may not have committed;
            // nothing after it was ever put.
            assert!(
                seq <= acked || !delivered,
                "producer {id} #{seq} delivered but never put"
            );
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost (id, seq, len): {lost:?}",
        lost.len()
    );
    assert!(acked_total > 0);
    eprintln!(
        "stream kill storm, {consumers} consumer(s), maxsize {maxsize}: {kills} kills ({mid_stream} inside a \
         streamed put), {acked_total} messages acknowledged ({streamed_acked} streamed), \
         0 lost, 0 torn, 0 duplicated"
    );
}

#[test]
fn producers_killed_mid_stream_lose_nothing_acknowledged_one_consumer() {
    watchdog_secs(240, || stream_kill_storm(1000, 1, 0));
}

#[test]
fn producers_killed_mid_stream_lose_nothing_acknowledged_two_consumers() {
    watchdog_secs(240, || stream_kill_storm(1000, 2, 0));
}

/// The same storm on a queue bounded to 16 messages.
#[test]
fn producers_killed_mid_stream_lose_nothing_acknowledged_bounded_queue() {
    watchdog_secs(240, || stream_kill_storm(500, 2, 16));
}

/// Longer storms (run with `--ignored`).
#[test]
#[ignore]
fn producers_killed_mid_stream_soak() {
    // Storms of 1000 kills each: the statistics track up to IDS producers per storm.
    watchdog_secs(3600, || {
        for _ in 0..5 {
            stream_kill_storm(1000, 1, 0);
            stream_kill_storm(1000, 2, 0);
        }
    });
}

// ----- a dead producer's claim ---------------------------------------------------------

/// Reserves `len` bytes, writes a little, raises `held`, and commits only once `commit`
/// is raised (never, for a producer that is killed).
fn reserve_and_hold((q, len, held, commit): (Queue<()>, usize, Event, Event)) {
    let mut slot = q.reserve(len).unwrap();
    let _ = slot.write(b"held, never committed");
    held.set();
    while !commit.wait_timeout(Duration::from_secs(1)) {}
    slot.commit();
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(reserve_and_hold);

/// A child holding a reservation of `len` bytes (started, reservation made).
fn holder(q: &Queue<()>, len: usize) -> (Reap, Event) {
    let (held, commit) = (Event::new().unwrap(), Event::new().unwrap());
    let child = Reap(
        Process::new(
            reserve_and_hold,
            (q.clone(), len, held.clone(), commit.clone()),
        )
        .start()
        .unwrap(),
    );
    assert!(
        held.wait_timeout(Duration::from_secs(30)),
        "the child did not reserve"
    );
    (child, commit)
}

#[test]
fn a_producer_killed_holding_the_largest_reservation_does_not_stop_the_queue() {
    watchdog_secs(120, || {
        let q: Queue<()> = Queue::new().unwrap();
        q.put_bytes(b"before").unwrap();
        let (child, _commit) = holder(&q, q.max_reserve());
        q.put_bytes(b"after").unwrap();
        assert_eq!(q.get_bytes().unwrap(), b"before");
        child.0.kill().unwrap();
        child.0.join().unwrap();
        // Progress, not a timing: the next delivery comes (the watchdog is generous).
        assert_eq!(
            q.get_bytes_timeout(Duration::from_secs(60)).unwrap(),
            b"after"
        );
        // The cells are reused: the ring goes on for several laps.
        for i in 0..64u32 {
            q.put_bytes(&vec![i as u8; q.max_reserve() / 3]).unwrap();
            assert_eq!(q.get_bytes().unwrap(), vec![i as u8; q.max_reserve() / 3]);
        }
        assert!(q.is_empty());
    });
}

/// The repair of a dead claim stops where a live one begins: a reservation made right
/// after the dead one, committed only after the death, is delivered whole.
#[test]
fn the_repair_of_a_dead_claim_leaves_the_live_claim_after_it_alone() {
    watchdog_secs(120, || {
        let q: Queue<()> = Queue::builder().capacity_bytes(256 * 1024).build().unwrap();
        for round in 0..4 {
            let (dead, _) = holder(&q, q.max_reserve() / 2);
            let (live, commit) = holder(&q, 40_000);
            q.put_bytes(b"after").unwrap();
            dead.0.kill().unwrap();
            dead.0.join().unwrap();
            // The consumer waits at the live claim (it must not be repaired) ...
            let q2 = q.clone();
            let reader = thread::spawn(move || {
                (
                    q2.get_bytes_timeout(Duration::from_secs(60)).unwrap(),
                    q2.get_bytes_timeout(Duration::from_secs(60)).unwrap(),
                )
            });
            thread::sleep(Duration::from_millis(50));
            // ... until its producer commits it.
            commit.set();
            let (first, second) = reader.join().unwrap();
            assert_eq!(first.len(), 40_000, "round {round}");
            assert_eq!(&first[..21], b"held, never committed");
            assert!(first[21..].iter().all(|&b| b == 0));
            assert_eq!(second, b"after");
            drop(live);
        }
    });
}

/// How long a consumer waiting at a dead producer's claim of `len` bytes waits after the
/// kill: the stall figure of BENCHMARKS.md (run with `--ignored --nocapture`).
fn stall(q: &Queue<()>, len: usize) -> Duration {
    let (child, _commit) = holder(q, len);
    q.put_bytes(b"after").unwrap();
    let q2 = q.clone();
    let reader = thread::spawn(move || {
        let got = q2.get_bytes_timeout(Duration::from_secs(120)).unwrap();
        (got, Instant::now())
    });
    thread::sleep(Duration::from_millis(20));
    let killed = Instant::now();
    child.0.kill().unwrap();
    let (got, at) = reader.join().unwrap();
    assert_eq!(got, b"after");
    child.0.join().unwrap();
    at - killed
}

#[test]
#[ignore]
fn measure_the_stall_after_a_dead_claim() {
    watchdog_secs(600, || {
        // (case, ring capacity (None: the default), reservation (None: the largest))
        let cases = [
            ("1 KiB, 256 KiB ring", Some(256 * 1024), Some(1024)),
            ("112 KiB (largest), 256 KiB ring", Some(256 * 1024), None),
            ("largest reservation, default 1 MiB ring", None, None),
        ];
        for (name, capacity, len) in cases {
            let mut runs: Vec<Duration> = (0..3)
                .map(|_| {
                    let q: Queue<()> = match capacity {
                        Some(n) => Queue::builder().capacity_bytes(n).build().unwrap(),
                        None => Queue::new().unwrap(),
                    };
                    let len = len.unwrap_or(q.max_reserve());
                    stall(&q, len)
                })
                .collect();
            runs.sort();
            eprintln!(
                "stall after a dead claim, {name}: median {:?} (runs {runs:?})",
                runs[1]
            );
        }
    });
}

//! Channels between processes: queues and pipes handed to children, end of stream on a
//! killed peer, and a kill storm of producers and consumers.

use std::thread;
use std::time::Duration;

use shoal::channel::{GetError, JoinableQueue, Pipe, Queue};
use shoal::{Process, SharedMemory};

mod common;
use common::{watchdog_secs, Reap};

fn produce((q, from, n): (Queue<u64>, u64, u64)) {
    for i in from..from + n {
        q.put(i).unwrap();
    }
}
shoal::entry!(produce);

fn consume_and_report((q, out, n): (Queue<u64>, Queue<u64>, u64)) {
    let mut sum = 0;
    for _ in 0..n {
        sum += q.get().unwrap();
    }
    out.put(sum).unwrap();
}
shoal::entry!(consume_and_report);

#[test]
fn queue_between_processes() {
    watchdog_secs(60, || {
        let q: Queue<u64> = Queue::builder().capacity_bytes(16 * 1024).build().unwrap();
        let out: Queue<u64> = Queue::new().unwrap();
        let n = 20_000u64;
        let children: Vec<Reap> = (0..2)
            .map(|i| {
                Reap(
                    Process::new(produce, (q.clone(), i * n, n))
                        .start()
                        .unwrap(),
                )
            })
            .chain((0..2).map(|_| {
                Reap(
                    Process::new(consume_and_report, (q.clone(), out.clone(), n))
                        .start()
                        .unwrap(),
                )
            }))
            .collect();
        let total: u64 = (0..2).map(|_| out.get().unwrap()).sum();
        assert_eq!(total, (0..2 * n).sum::<u64>());
        for c in &children {
            assert_eq!(c.0.join().unwrap(), 0);
        }
    });
}

fn send_then_hang(conn: shoal::Connection) {
    for i in 0..3u32 {
        conn.send(&i).unwrap();
    }
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(send_then_hang);

#[test]
fn pipe_reports_end_of_stream_when_the_peer_is_killed() {
    watchdog_secs(60, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        let child = Reap(Process::new(send_then_hang, tx).start().unwrap());
        for i in 0..3u32 {
            assert_eq!(rx.recv::<u32>().unwrap(), i);
        }
        child.0.kill().unwrap();
        child.0.join().unwrap();
        assert_eq!(rx.recv::<u32>(), Err(GetError::Closed));
        assert!(rx.poll(Duration::ZERO));
    });
}

#[test]
fn pipe_end_of_stream_waits_for_every_sender() {
    watchdog_secs(60, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        let first = Reap(Process::new(send_then_hang, tx.clone()).start().unwrap());
        let second = Reap(Process::new(send_then_hang, tx).start().unwrap());
        for _ in 0..6 {
            rx.recv::<u32>().unwrap();
        }
        // One of two senders dies: the other still holds its end, so no end of stream.
        first.0.kill().unwrap();
        first.0.join().unwrap();
        assert_eq!(
            rx.recv_timeout::<u32>(Duration::from_millis(100)),
            Err(GetError::Timeout)
        );
        assert!(!rx.poll(Duration::ZERO));
        second.0.kill().unwrap();
        second.0.join().unwrap();
        assert_eq!(rx.recv::<u32>(), Err(GetError::Closed));
    });
}

fn work_tasks(q: JoinableQueue<u32>) {
    while let Ok(_task) = q.get() {
        q.task_done().unwrap();
    }
}
shoal::entry!(work_tasks);

#[test]
fn joinable_queue_across_processes() {
    watchdog_secs(60, || {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        let worker = Reap(Process::new(work_tasks, q.clone()).start().unwrap());
        for i in 0..500 {
            q.put(i).unwrap();
        }
        q.join();
        assert_eq!(q.unfinished(), 0);
        q.close();
        assert_eq!(worker.0.join().unwrap(), 0);
    });
}

fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}
shoal::entry!(sleep_ms);

#[test]
fn wait_over_queues_connections_and_processes() {
    use shoal::channel::{wait, Waitable};
    watchdog_secs(60, || {
        let q: Queue<u8> = Queue::new().unwrap();
        let (a, b) = Pipe::duplex().unwrap();
        let child = Reap(Process::new(sleep_ms, 300u64).start().unwrap());
        let objects: [&dyn Waitable; 3] = [&q, &b, &child.0];
        let start = std::time::Instant::now();
        assert!(wait(&objects, Some(Duration::from_millis(30)))
            .unwrap()
            .is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
        // The process ends first.
        assert_eq!(
            wait(&objects, Some(Duration::from_secs(30))).unwrap(),
            vec![2]
        );
        child.0.join().unwrap();
        // Then a queue filled by another thread while we wait.
        let only: [&dyn Waitable; 2] = [&q, &b];
        let q2 = q.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            q2.put(1).unwrap();
        });
        assert_eq!(wait(&only, Some(Duration::from_secs(30))).unwrap(), vec![0]);
        t.join().unwrap();
        // Then a connection.
        assert_eq!(q.get().unwrap(), 1);
        a.send(&5u8).unwrap();
        assert_eq!(wait(&only, None).unwrap(), vec![1]);
        assert_eq!(b.recv::<u8>().unwrap(), 5);
    });
}

// ----- kill storm ----------------------------------------------------------------------

/// Producer ids and sequence numbers tracked per id.
const IDS: usize = 4096;
const SEQS: usize = 1 << 13;
const TORN: usize = 0;
const DUPS: usize = 8;
const ACKED: usize = 64;
const BITS: usize = ACKED + 8 * IDS;
const STATS_LEN: usize = BITS + IDS * SEQS / 8;
/// 64 KiB ring: messages above 32 KiB are streamed in parts.
const RING: usize = 64 * 1024;

fn message(id: u32, seq: u32) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9e37_79b9) ^ seq.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 15;
    let len = match x % 100 {
        0 => 33_000 + (x >> 8) as usize % 20_000, // streamed in parts
        1..=5 => 200 + (x >> 8) as usize % 4000,  // several cells
        _ => 12 + (x >> 8) as usize % 100,        // one cell
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    while v.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8);
    }
    v
}

fn storm_producer((q, stats, id): (Queue<()>, SharedMemory, u32)) {
    let acked = stats.atomic_u64(ACKED + 8 * id as usize).unwrap();
    for seq in 0..SEQS as u32 {
        q.put_bytes(&message(id, seq)).unwrap();
        acked.store(u64::from(seq) + 1, std::sync::atomic::Ordering::SeqCst);
    }
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(storm_producer);

fn storm_consumer((q, stats): (Queue<()>, SharedMemory)) {
    use std::sync::atomic::Ordering::SeqCst;
    // Half of the consumers take batches (one claim for several messages).
    let batched = std::process::id() % 2 == 1;
    let mut pending: std::collections::VecDeque<Vec<u8>> = Default::default();
    loop {
        let buf = match pending.pop_front() {
            Some(b) => b,
            None if batched => match q.get_bytes_many(8, None) {
                Ok(batch) => {
                    pending.extend(batch);
                    continue;
                }
                Err(GetError::Closed) => return,
                Err(e) => panic!("{e}"),
            },
            None => match q.get_bytes() {
                Ok(b) => b,
                Err(GetError::Closed) => return,
                Err(e) => panic!("{e}"),
            },
        };
        let field = |i: usize| u32::from_le_bytes(buf[4 * i..4 * i + 4].try_into().unwrap());
        if buf.len() < 12 || buf.len() != field(2) as usize {
            stats.atomic_u64(TORN).unwrap().fetch_add(1, SeqCst);
            continue;
        }
        let (id, seq) = (field(0), field(1));
        if id as usize >= IDS || seq as usize >= SEQS || buf != message(id, seq) {
            stats.atomic_u64(TORN).unwrap().fetch_add(1, SeqCst);
            continue;
        }
        let bit = id as usize * SEQS + seq as usize;
        let word = stats.atomic_u64(BITS + bit / 64 * 8).unwrap();
        if word.fetch_or(1 << (bit % 64), SeqCst) & (1 << (bit % 64)) != 0 {
            stats.atomic_u64(DUPS).unwrap().fetch_add(1, SeqCst);
        }
    }
}
shoal::entry!(storm_consumer);

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kill_storm(kills: usize, maxsize: usize) {
    use std::sync::atomic::Ordering::SeqCst;
    let q: Queue<()> = Queue::builder()
        .capacity_bytes(RING)
        .maxsize(maxsize)
        .build()
        .unwrap();
    let stats = SharedMemory::new(STATS_LEN).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill storm seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut next_id = 0u32;
    let start_producer = |next_id: &mut u32| {
        let id = *next_id;
        *next_id += 1;
        assert!(
            (id as usize) < IDS,
            "too many producers for the statistics segment"
        );
        Reap(
            Process::new(storm_producer, (q.clone(), stats.clone(), id))
                .start()
                .unwrap(),
        )
    };
    let start_consumer = || {
        Reap(
            Process::new(storm_consumer, (q.clone(), stats.clone()))
                .start()
                .unwrap(),
        )
    };
    let mut producers: Vec<Reap> = (0..2).map(|_| start_producer(&mut next_id)).collect();
    let mut consumers: Vec<Reap> = (0..2).map(|_| start_consumer()).collect();
    let mut consumer_kills = 0;
    for _ in 0..kills {
        thread::sleep(Duration::from_micros(500 + rng.below(8000)));
        let victim = rng.below(4) as usize;
        if victim < 2 {
            producers[victim].0.kill().unwrap();
            producers[victim].0.join().unwrap();
            producers[victim] = start_producer(&mut next_id);
        } else {
            consumers[victim - 2].0.kill().unwrap();
            consumers[victim - 2].0.join().unwrap();
            consumers[victim - 2] = start_consumer();
            consumer_kills += 1;
        }
    }
    // Stop the producers (killed too: their last put may be half done), then let the
    // consumers drain everything and see the queue closed.
    for p in &producers {
        p.0.kill().unwrap();
        p.0.join().unwrap();
    }
    q.close();
    for c in &consumers {
        assert_eq!(c.0.join().unwrap(), 0, "a consumer failed");
    }
    assert_eq!(
        stats.atomic_u64(TORN).unwrap().load(SeqCst),
        0,
        "torn messages"
    );
    assert_eq!(
        stats.atomic_u64(DUPS).unwrap().load(SeqCst),
        0,
        "duplicated messages"
    );
    let mut missing = 0;
    let mut acked_total = 0;
    for id in 0..next_id as usize {
        let acked = stats.atomic_u64(ACKED + 8 * id).unwrap().load(SeqCst) as usize;
        acked_total += acked;
        for seq in 0..SEQS {
            let bit = id * SEQS + seq;
            let word = stats.atomic_u64(BITS + bit / 64 * 8).unwrap().load(SeqCst);
            let delivered = word & (1 << (bit % 64)) != 0;
            if seq < acked && !delivered {
                missing += 1;
            }
            // The put in progress when the producer died (seq == acked) may or may not
            // have committed; nothing after it was ever put.
            assert!(
                seq <= acked || !delivered,
                "producer {id} #{seq} delivered but never put"
            );
        }
    }
    assert!(acked_total > 0);
    // A consumer killed between its get and its record loses what it held: one message,
    // or one batch of at most 8 (the documented limit of one-phase gets).
    assert!(
        missing <= 8 * consumer_kills,
        "{missing} acknowledged messages lost, more than the {consumer_kills} consumer kills"
    );
    eprintln!(
        "kill storm: {kills} kills ({consumer_kills} consumers), {acked_total} messages acknowledged, {missing} lost with killed consumers"
    );
}

#[test]
fn kill_storm_200() {
    watchdog_secs(60, || kill_storm(200, 0));
}

/// The same storm on a queue bounded to 16 messages: a killed consumer must give its
/// unit of the bound back.
#[test]
fn kill_storm_200_bounded() {
    watchdog_secs(60, || kill_storm(200, 16));
}

/// A longer storm (run with `--ignored`).
#[test]
#[ignore]
fn kill_storm_soak() {
    watchdog_secs(1800, || kill_storm(3000, 0));
}

//! Crash tests of `Pipe` through the public API: senders and receivers SIGKILLed at
//! random moments while messages of every size (some streamed in parts, some larger
//! than the ring) go through, and several threads sending on one end at once.
//!
//! Every message carries its sender id and sequence number, and its length and content
//! are derived from them, so that the receiver verifies every byte. Set
//! `SHOAL_STORM_SEED` to replay the kill moments of a failed run (the seed is printed).
//!
//! Two ring bugs found here have a minimal reproduction each, ignored until fixed:
//! `streamed_message_survives_a_killed_waiting_sender` (which also keeps
//! `two_senders_kill_storm` ignored) and `poll_sees_a_sender_waiting_for_room_already_read`
//! (which is why the receiving loops call `recv_bytes` without `poll` first).

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shoal::channel::{GetError, PutError, Queue};
use shoal::{Connection, Pipe, Process, SharedMemory};

mod common;
use common::{eventually, watchdog_secs, Reap};

// ----- messages ------------------------------------------------------------------------

/// Ring bytes of each direction of a pipe.
const RING: usize = 512 * 1024;
/// Longest message sent in one record; longer ones are streamed in parts.
const INLINE_MAX: usize = RING / 2 - 32;
/// Longest message sent.
const MAX_LEN: usize = 1536 * 1024;
/// The sequence number of the known last message of the sender storm.
const FINAL: u32 = u32::MAX;
/// Its length: larger than the ring.
const FINAL_LEN: usize = 1_000_000;
/// The sequence number of a message many times larger than the ring.
const LONG: u32 = u32::MAX - 1;
const LONG_LEN: usize = 6 << 20;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(id: u32, seq: u32) -> u64 {
    (u64::from(id) << 32) | u64::from(seq)
}

/// Senders with ids from here on send no message longer than one record.
const INLINE_ONLY: u32 = 1 << 24;

/// The length of message `seq` of sender `id`: mostly small, some near or above the
/// largest single record, a few larger than the ring (unless `id >= INLINE_ONLY`).
fn msg_len(id: u32, seq: u32) -> usize {
    let len = match seq {
        FINAL => FINAL_LEN,
        LONG => LONG_LEN,
        _ => random_len(id, seq),
    };
    if id >= INLINE_ONLY {
        len.min(INLINE_MAX)
    } else {
        len
    }
}

fn random_len(id: u32, seq: u32) -> usize {
    let h = mix(key(id, seq));
    let r = (h >> 32) as usize;
    match h % 200 {
        // Larger than the ring.
        0..=2 => RING + 1 + r % (MAX_LEN - RING),
        // Streamed, smaller than the ring.
        3..=4 => INLINE_MAX + 1 + r % (RING - INLINE_MAX),
        // Around the largest single record.
        5 => INLINE_MAX - 16 + r % 33,
        6..=25 => 64 * 1024 + r % (INLINE_MAX - 64 * 1024),
        26..=50 => 200 + r % (64 * 1024),
        _ => 8 + r % 192,
    }
}

/// Message `seq` of sender `id`: `id`, `seq` (little endian), then bytes derived from
/// both.
fn message(id: u32, seq: u32) -> Vec<u8> {
    let len = msg_len(id, seq);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    let mut x = mix(key(id, seq) ^ 0x5555_5555_5555_5555) | 1;
    while v.len() < len {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (len - v.len()).min(8);
        v.extend_from_slice(&x.to_le_bytes()[..n]);
    }
    v
}

/// The `(id, seq)` of a received message whose every byte is as sent.
fn verify(buf: &[u8]) -> Result<(u32, u32), String> {
    let Some((head, _)) = buf.split_first_chunk::<8>() else {
        return Err(format!("torn message of {} bytes", buf.len()));
    };
    let id = u32::from_le_bytes(head[..4].try_into().unwrap());
    let seq = u32::from_le_bytes(head[4..].try_into().unwrap());
    let want = msg_len(id, seq);
    if buf.len() != want {
        return Err(format!(
            "torn message: sender {id} #{seq} has {} bytes instead of {want}",
            buf.len()
        ));
    }
    if buf != message(id, seq) {
        let at = buf
            .iter()
            .zip(message(id, seq))
            .position(|(a, b)| *a != b)
            .unwrap_or(0);
        return Err(format!(
            "corrupt message: sender {id} #{seq} ({want} bytes) differs from byte {at}"
        ));
    }
    Ok((id, seq))
}

// ----- storm helpers -------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn seeded(what: &str) -> Rng {
        let seed = std::env::var("SHOAL_STORM_SEED")
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("{what}: seed {seed:#x} (replay with SHOAL_STORM_SEED={seed:x})");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// How long a victim runs before it is killed: sometimes at once (while it takes
    /// over the dead one's end), mostly a few milliseconds, sometimes long enough to
    /// stream a large message.
    fn pause(&mut self) -> Duration {
        match self.below(16) {
            0..=1 => Duration::ZERO,
            2 => Duration::from_micros(10_000 + self.below(30_000)),
            _ => Duration::from_micros(self.below(8_000)),
        }
    }
}

/// Processes killed by each default storm, and by each soak.
const KILLS: usize = 300;
const SOAK_KILLS: usize = 5000;

/// Per-process words of a storm in a shared segment.
const STARTED: usize = 0;
/// Sender storm: 1 + the seq of the send in progress (0 before the first). Receiver
/// storm: 1 while in a receive.
const IN_FLIGHT: usize = 1;
/// Sender storm: how many sends returned `Ok`.
const ACKED: usize = 2;
/// Errors seen by the process (a send or receive that failed).
const ERRORS: usize = 3;
const WORDS: usize = 4;

fn word(stats: &SharedMemory, id: u32, w: usize) -> &AtomicU64 {
    stats.atomic_u64((id as usize * WORDS + w) * 8).unwrap()
}

fn stats_for(processes: usize) -> SharedMemory {
    SharedMemory::new(processes * WORDS * 8).unwrap()
}

// ----- 1. sender kill storm ------------------------------------------------------------

/// Sends messages `0, 1, ...` of sender `base + id` until killed, counting the
/// acknowledged.
fn storm_sender((tx, stats, base, id): (Connection, SharedMemory, u32, u32)) {
    word(&stats, id, STARTED).store(1, SeqCst);
    for seq in 0..FINAL {
        let m = message(base + id, seq);
        word(&stats, id, IN_FLIGHT).store(u64::from(seq) + 1, SeqCst);
        if tx.send_bytes(&m).is_err() {
            word(&stats, id, ERRORS).fetch_add(1, SeqCst);
            break;
        }
        word(&stats, id, ACKED).store(u64::from(seq) + 1, SeqCst);
    }
    // Wait to be killed like the others.
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(storm_sender);

/// Sends `n` messages as sender `base + id`, then the final one, then closes the pipe.
fn final_sender(
    (tx, stats, base, id, n): (Connection, SharedMemory, u32, u32, u32),
) -> Result<(), String> {
    word(&stats, id, STARTED).store(1, SeqCst);
    for seq in (0..n).chain([FINAL]) {
        tx.send_bytes(&message(base + id, seq))
            .map_err(|e| format!("final sender #{seq}: {e}"))?;
        word(&stats, id, ACKED).fetch_add(1, SeqCst);
    }
    tx.close();
    Ok(())
}
shoal::entry!(final_sender);

/// What the receiving side of the sender storm saw.
struct Received {
    /// Messages received from each sender.
    per_sender: Vec<u64>,
    messages: u64,
    bytes: u64,
    streamed: u64,
    /// End of stream reported while no sender was alive (then received again).
    ends_between_senders: u64,
}

/// Receives until the final message and the end of stream after it, checking every
/// message: whole and intact, per sender in order without gap or duplicate, and when
/// `one_at_a_time`, senders one after the other.
/// Sender ids are `base..base + senders`.
fn receive_storm(rx: Connection, base: u32, senders: usize, one_at_a_time: bool) -> Received {
    let mut got = Received {
        per_sender: vec![0; senders],
        messages: 0,
        bytes: 0,
        streamed: 0,
        ends_between_senders: 0,
    };
    let mut last_id = 0;
    let mut final_seen = false;
    loop {
        // No `poll` first: see `poll_sees_a_sender_waiting_for_room_already_read`. The
        // watchdog bounds this wait.
        match rx.recv_bytes() {
            Ok(buf) => {
                assert!(!final_seen, "a message after the final one");
                let (id, seq) = verify(&buf).unwrap_or_else(|e| panic!("{e}"));
                let id = id
                    .checked_sub(base)
                    .filter(|&i| (i as usize) < senders)
                    .unwrap_or_else(|| panic!("message from unknown sender {id}"));
                assert!(
                    !one_at_a_time || id >= last_id,
                    "sender {id} #{seq} arrived after a message of sender {last_id}"
                );
                last_id = id;
                let n = &mut got.per_sender[id as usize];
                if seq == FINAL {
                    final_seen = true;
                } else {
                    assert_eq!(
                        u64::from(seq),
                        *n,
                        "sender {id}: #{seq} arrived when #{n} was due (gap, duplicate or reorder)"
                    );
                }
                *n += 1;
                got.messages += 1;
                got.bytes += buf.len() as u64;
                got.streamed += u64::from(buf.len() > INLINE_MAX);
            }
            Err(GetError::Closed) if final_seen => break,
            // The sender just killed is dead and its messages are drained: the stream
            // goes on when the next one sends.
            Err(GetError::Closed) => {
                got.ends_between_senders += 1;
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("receive failed: {e}"),
        }
    }
    // End of stream stays.
    assert_eq!(rx.recv_bytes(), Err(GetError::Closed));
    got
}

/// Kills `kills` senders, `width` of them alive at a time (each killed one replaced by
/// a new one with a new id), then lets a last sender send a known final message and
/// close; the test process receives. `streamed`: some messages are longer than one
/// record (up to three rings), else none.
fn sender_storm(kills: usize, width: usize, streamed: bool) {
    let started = Instant::now();
    let (tx, rx) = Pipe::simplex().unwrap();
    let senders = kills + 1;
    let stats = stats_for(senders);
    let base = if streamed { 0 } else { INLINE_ONLY };
    let what = format!(
        "pipe sender storm ({width} alive, {})",
        if streamed {
            "all sizes"
        } else {
            "no streamed message"
        }
    );
    let mut rng = Rng::seeded(&what);
    let receiver = thread::spawn(move || receive_storm(rx, base, senders, width == 1));
    let (mut mid_send, mut mid_stream) = (0, 0);
    let mut alive: Vec<(Reap, u32)> = Vec::new();
    let mut next = 0u32;
    while (next as usize) < kills || !alive.is_empty() {
        while alive.len() < width && (next as usize) < kills {
            let id = next;
            next += 1;
            let child = Reap(
                Process::new(storm_sender, (tx.clone(), stats.clone(), base, id))
                    .start()
                    .unwrap(),
            );
            eventually("the sender starts", || {
                word(&stats, id, STARTED).load(SeqCst) == 1 || receiver.is_finished()
            });
            alive.push((child, id));
        }
        if receiver.is_finished() {
            break;
        }
        thread::sleep(rng.pause());
        let (child, id) = alive.swap_remove(rng.below(alive.len() as u64) as usize);
        child.0.kill().unwrap();
        child.0.join().unwrap();
        assert_eq!(
            word(&stats, id, ERRORS).load(SeqCst),
            0,
            "sender {id}: a send failed"
        );
        let in_flight = word(&stats, id, IN_FLIGHT).load(SeqCst);
        if in_flight > word(&stats, id, ACKED).load(SeqCst) {
            mid_send += 1;
            mid_stream += usize::from(msg_len(base + id, in_flight as u32 - 1) > INLINE_MAX);
        }
    }
    if receiver.is_finished() {
        // It failed: show why.
        receiver.join().unwrap();
        panic!("the receiver stopped before the end");
    }
    drop(alive);
    let last = kills as u32;
    let tail = 20;
    let child = Reap(
        Process::new(final_sender, (tx.clone(), stats.clone(), base, last, tail))
            .start()
            .unwrap(),
    );
    assert_eq!(
        child.0.join_timeout(Duration::from_secs(60)).unwrap(),
        Some(0),
        "the final sender failed"
    );
    let got = receiver.join().unwrap();
    let mut acked_total = 0;
    let mut extra = 0;
    for id in 0..kills as u32 {
        let acked = word(&stats, id, ACKED).load(SeqCst);
        let in_flight = word(&stats, id, IN_FLIGHT).load(SeqCst);
        let n = got.per_sender[id as usize];
        assert!(
            n >= acked,
            "sender {id}: {acked} sends returned Ok but only {n} messages arrived"
        );
        assert!(
            n <= in_flight,
            "sender {id}: {n} messages arrived but only {in_flight} were sent"
        );
        acked_total += acked;
        extra += n - acked;
    }
    assert_eq!(got.per_sender[last as usize], u64::from(tail) + 1);
    eprintln!(
        "{what}: {kills} senders killed ({mid_send} in a send, \
         {mid_stream} of them streaming a message), {} messages ({} MiB, {} streamed) \
         received, {acked_total} acknowledged by killed senders, {extra} more from killed \
         senders, {} ends of stream between senders, {:.1?}",
        got.messages,
        got.bytes >> 20,
        got.streamed,
        got.ends_between_senders,
        started.elapsed()
    );
}

#[test]
fn sender_kill_storm() {
    watchdog_secs(120, || sender_storm(KILLS, 1, true));
}

/// Two sender processes at a time on clones of the same end, one of them killed at a
/// time: a live sender takes the dead one's writer word over while the other competes
/// for it. No message is streamed (see the next test).
#[test]
fn two_senders_kill_storm_no_streamed_message() {
    watchdog_secs(120, || sender_storm(KILLS, 2, false));
}

/// The same with messages of all sizes.
#[test]
fn two_senders_kill_storm() {
    watchdog_secs(120, || sender_storm(KILLS, 2, true));
}

/// Longer sender storms (run with `--run-ignored ignored-only`).
#[test]
#[ignore]
fn sender_kill_storm_soak() {
    watchdog_secs(1800, || {
        sender_storm(SOAK_KILLS, 1, true);
        sender_storm(SOAK_KILLS, 2, false);
    });
}

// ----- 2. receiver kill storm ----------------------------------------------------------

/// The sender id of the test process in the receiver storm.
const PARENT: u32 = 7;

/// One report of a receiver: `(receiver, seq, 0)` for a verified message,
/// `(receiver, 0, 1)` for a torn or corrupt one.
type Report = (u32, u32, u32);

/// Receives until end of stream (or killed), reporting each message.
fn storm_receiver(
    (rx, reports, stats, rid): (Connection, Queue<Report>, SharedMemory, u32),
) -> Result<(), String> {
    word(&stats, rid, STARTED).store(1, SeqCst);
    loop {
        word(&stats, rid, IN_FLIGHT).store(1, SeqCst);
        let got = rx.recv_bytes();
        word(&stats, rid, IN_FLIGHT).store(0, SeqCst);
        match got {
            Ok(buf) => {
                let report = match verify(&buf) {
                    Ok((PARENT, seq)) => (rid, seq, 0),
                    Ok(_) | Err(_) => (rid, 0, 1),
                };
                reports
                    .put(report)
                    .map_err(|e| format!("receiver {rid}: report: {e}"))?;
            }
            Err(GetError::Closed) => return Ok(()),
            Err(e) => {
                word(&stats, rid, ERRORS).fetch_add(1, SeqCst);
                return Err(format!("receiver {rid}: {e}"));
            }
        }
    }
}
shoal::entry!(storm_receiver);

fn receiver_storm(kills: usize) {
    let started = Instant::now();
    let (tx, rx) = Pipe::simplex().unwrap();
    let receivers = kills + 1;
    let stats = stats_for(receivers);
    let reports: Queue<Report> = Queue::new().unwrap();
    let mut rng = Rng::seeded("pipe receiver storm");

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let (mut seq, mut closed) = (0u32, 0u64);
            'send: while !stop.load(SeqCst) {
                let m = message(PARENT, seq);
                loop {
                    match tx.send_bytes(&m) {
                        Ok(()) => break,
                        // The receiver died while the ring was full: the message did not
                        // go (a streamed one went only in part); again when the next
                        // receiver runs.
                        Err(PutError::Closed(())) => {
                            closed += 1;
                            if stop.load(SeqCst) {
                                break 'send;
                            }
                            thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => panic!("send #{seq} failed: {e}"),
                    }
                }
                seq += 1;
            }
            (tx, seq, closed)
        })
    };
    let collector = {
        let reports = reports.clone();
        thread::spawn(move || {
            let mut all = Vec::new();
            loop {
                match reports.get_timeout(Duration::from_secs(30)) {
                    Ok(r) => all.push(r),
                    Err(GetError::Closed) => return all,
                    Err(e) => panic!("no report for 30 s after {}: {e}", all.len()),
                }
            }
        })
    };
    let start_receiver = |rid: u32| {
        Reap(
            Process::new(
                storm_receiver,
                (rx.clone(), reports.clone(), stats.clone(), rid),
            )
            .start()
            .unwrap(),
        )
    };
    let (mut killed, mut in_recv) = (0, 0);
    for rid in 0..kills as u32 {
        let child = start_receiver(rid);
        eventually("the receiver starts", || {
            word(&stats, rid, STARTED).load(SeqCst) == 1
        });
        thread::sleep(rng.pause());
        child.0.kill().unwrap();
        child.0.join().unwrap();
        killed += 1;
        in_recv += word(&stats, rid, IN_FLIGHT).load(SeqCst);
        assert_eq!(
            word(&stats, rid, ERRORS).load(SeqCst),
            0,
            "receiver {rid}: a receive failed"
        );
        if sender.is_finished() || collector.is_finished() {
            break;
        }
    }
    stop.store(true, SeqCst);
    let (tx, sent, closed) = sender.join().unwrap();
    // The last receiver drains the pipe and sees it closed.
    tx.close();
    let last = killed;
    let child = start_receiver(last);
    assert_eq!(
        child.0.join_timeout(Duration::from_secs(60)).unwrap(),
        Some(0),
        "the last receiver failed"
    );
    reports.close();
    let all = collector.join().unwrap();

    // Reports come in the order received. Between two reports of one receiver nothing is
    // missing; where receivers changed, at most one message per killed receiver (the one
    // it took and could not report).
    let mut prev: (u32, i64) = (0, -1);
    let mut missing = 0;
    for (i, &(rid, seq, bad)) in all
        .iter()
        .chain([&(last, sent, 0)]) // the end: every message sent was received
        .enumerate()
    {
        assert_eq!(
            bad, 0,
            "report {i}: receiver {rid} got a torn or corrupt message"
        );
        let (prid, pseq) = prev;
        assert!(rid >= prid, "report {i}: receiver {rid} after {prid}");
        assert!(
            i64::from(seq) > pseq,
            "report {i}: receiver {rid} got #{seq} after #{pseq} (duplicate or reorder)"
        );
        let gap = (i64::from(seq) - pseq - 1) as u32;
        assert!(
            gap <= rid - prid,
            "report {i}: {gap} messages lost before #{seq} while {} receivers were killed",
            rid - prid
        );
        missing += gap;
        prev = (rid, i64::from(seq));
    }
    eprintln!(
        "pipe receiver storm: {killed} receivers killed ({in_recv} in a receive), {sent} messages sent ({closed} sends \
         refused while no receiver lived), {} reported, {missing} lost with killed receivers, \
         {:.1?}",
        all.len(),
        started.elapsed()
    );
}

#[test]
fn receiver_kill_storm() {
    watchdog_secs(120, || receiver_storm(KILLS));
}

/// A longer receiver storm (run with `--run-ignored ignored-only`).
#[test]
#[ignore]
fn receiver_kill_storm_soak() {
    watchdog_secs(1800, || receiver_storm(SOAK_KILLS));
}

// ----- 3. threads sending on one end ---------------------------------------------------

#[test]
fn threads_sending_on_clones_of_one_end() {
    watchdog_secs(120, || {
        const THREADS: u32 = 3;
        const EACH: u32 = 150;
        let (tx, rx) = Pipe::simplex().unwrap();
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for seq in 0..EACH {
                        tx.send_bytes(&message(t, seq)).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; THREADS as usize];
        for _ in 0..THREADS * EACH {
            let buf = rx.recv_bytes().unwrap();
            let (t, seq) = verify(&buf).unwrap_or_else(|e| panic!("{e}"));
            assert!(t < THREADS, "message from unknown sender {t}");
            assert_eq!(seq, next[t as usize], "thread {t}: out of order");
            next[t as usize] += 1;
        }
        for s in senders {
            s.join().unwrap();
        }
        tx.close();
        assert_eq!(rx.recv_bytes(), Err(GetError::Closed));
    });
}

// ----- a sender killed while waiting for the writer word -------------------------------

/// Sends `seqs` one after the other, counting the acknowledged, then waits to be killed.
fn send_these((tx, stats, id, seqs): (Connection, SharedMemory, u32, Vec<u32>)) {
    word(&stats, id, STARTED).store(1, SeqCst);
    for seq in seqs {
        word(&stats, id, IN_FLIGHT).store(u64::from(seq) + 1, SeqCst);
        if tx.send_bytes(&message(id, seq)).is_err() {
            word(&stats, id, ERRORS).fetch_add(1, SeqCst);
            break;
        }
        word(&stats, id, ACKED).fetch_add(1, SeqCst);
    }
    thread::sleep(Duration::from_secs(600));
}
shoal::entry!(send_these);

/// Sends `sig` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Sender A streams a message six times the ring while the test process does not read
/// yet; sender B calls `send_bytes` meanwhile (it waits for the writer word A holds) and
/// is killed there. A is then stopped (SIGSTOP) and the test process receives: it must
/// wait for the rest of A's message (A lives), and once A goes on (SIGCONT), receive it
/// whole, then A's next message, with no end of stream reported in between.
#[test]
fn streamed_message_survives_a_killed_waiting_sender() {
    watchdog_secs(120, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        let stats = stats_for(2);
        let (a, b) = (0u32, 1u32);
        let sender_a = Reap(
            Process::new(send_these, (tx.clone(), stats.clone(), a, vec![LONG, 0]))
                .start()
                .unwrap(),
        );
        eventually("A starts", || word(&stats, a, STARTED).load(SeqCst) == 1);
        // Once A's first part is in the ring, A holds the writer word until its message
        // (six rings long) is read: B can only wait, and A is mid-message from here on.
        eventually("A's first part is in the ring", || rx.poll(Duration::ZERO));
        let sender_b = Reap(
            Process::new(send_these, (tx.clone(), stats.clone(), b, vec![0]))
                .start()
                .unwrap(),
        );
        eventually("B starts", || word(&stats, b, STARTED).load(SeqCst) == 1);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(word(&stats, b, ACKED).load(SeqCst), 0, "B sent before A");
        sender_b.0.kill().unwrap();
        sender_b.0.join().unwrap();
        signal(sender_a.0.pid(), "STOP");

        let (report, results) = std::sync::mpsc::channel();
        let receiver = thread::spawn(move || loop {
            let r = rx.recv_bytes().map(|buf| verify(&buf));
            let done = matches!(r, Ok(Ok((_, 0))));
            if report.send(r).is_err() || done {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        });
        // What the receiver reported while A was stopped in the middle of its message.
        let early = results.recv_timeout(Duration::from_millis(300));
        signal(sender_a.0.pid(), "CONT");
        let mut all: Vec<_> = early.into_iter().collect();
        while !matches!(all.last(), Some(Ok(Ok((_, 0))))) {
            all.push(
                results
                    .recv_timeout(Duration::from_secs(30))
                    .expect("A's messages never came"),
            );
        }
        receiver.join().unwrap();
        eventually("A's sends return", || {
            word(&stats, a, ACKED).load(SeqCst) == 2
        });
        assert_eq!(
            all,
            [Ok(Ok((a, LONG))), Ok(Ok((a, 0)))],
            "A's two sends returned Ok"
        );
        drop(sender_a);
    });
}

// ----- poll while the sender waits for room --------------------------------------------

/// The receiver has read everything but published less than a sixteenth of the ring of
/// it (the read position is handed to the sender lazily); the sender then needs nearly
/// the whole ring for a record that wraps around its end. `recv` hands the read
/// position over when it finds nothing; `poll` must too, or the sender waits for room
/// forever while `poll` waits for data.
#[test]
fn poll_sees_a_sender_waiting_for_room_already_read() {
    watchdog_secs(120, || {
        let (tx, rx) = Pipe::simplex().unwrap();
        // Records take 16 header bytes plus the data, rounded up to 16.
        let a = vec![1u8; 240_000]; // record 240_016: read and published
        let b = vec![2u8; 30_000]; // record 30_016: read, not published (< 32 KiB)
        let c = vec![3u8; INLINE_MAX]; // record 262_128 from 270_032: wraps, padded
        tx.send_bytes(&a).unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), a);
        tx.send_bytes(&b).unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), b);
        let sender = {
            let c = c.clone();
            thread::spawn(move || tx.send_bytes(&c).unwrap())
        };
        assert!(
            rx.poll(Duration::from_secs(10)),
            "poll saw nothing for 10 s while the sender waited for room already read"
        );
        assert_eq!(rx.recv_bytes().unwrap(), c);
        sender.join().unwrap();
    });
}

//! The hot paths of the channels, one thread, no waiting: the program that
//! `scripts/callgrind.sh` runs under `valgrind --tool=callgrind` to count the
//! instructions one message costs, a measure the machine's noise does not move.
//!
//! `instructions <case> <n>` runs `n` round trips of `case` (a put immediately taken
//! back, so the ring never fills and nothing waits); the script runs each case twice
//! (`n` and `2n`) and divides the difference of the two totals by `n`, which cancels
//! the cost of starting the program and creating the channel. Without arguments (as
//! `cargo bench` runs it) every case runs a few messages, a smoke test.
#![allow(missing_docs)]

use shoal::channel::{Pipe, Queue};

/// The cases, each with the message it moves.
const CASES: [&str; 6] = [
    "queue-bytes-8",
    "queue-bytes-64",
    "queue-u64",
    "queue-batch64-8",
    "pipe-bytes-8",
    "pipe-bytes-64",
];

fn run(case: &str, n: u64) -> Result<u64, String> {
    let err = |e: &dyn std::fmt::Display| format!("{case}: {e}");
    let mut sum = 0u64;
    match case {
        "queue-bytes-8" | "queue-bytes-64" => {
            let size = if case.ends_with("-8") { 8 } else { 64 };
            let q: Queue<()> = Queue::new().map_err(|e| err(&e))?;
            let msg = vec![7u8; size];
            let mut buf = Vec::with_capacity(size);
            for _ in 0..n {
                q.put_bytes(&msg).map_err(|e| err(&e))?;
                sum += q.get_bytes_into(&mut buf).map_err(|e| err(&e))? as u64;
            }
        }
        "queue-u64" => {
            let q: Queue<u64> = Queue::new().map_err(|e| err(&e))?;
            for i in 0..n {
                q.put(i).map_err(|e| err(&e))?;
                sum += q.get().map_err(|e| err(&e))?;
            }
        }
        "queue-batch64-8" => {
            // Counted per message: n messages in batches of 64.
            let q: Queue<()> = Queue::new().map_err(|e| err(&e))?;
            let msg = [7u8; 8];
            let batch: Vec<&[u8]> = vec![&msg[..]; 64];
            let mut left = n;
            while left > 0 {
                let k = left.min(64) as usize;
                q.put_bytes_many(&batch[..k]).map_err(|e| err(&e))?;
                let mut got = 0;
                while got < k {
                    got += q
                        .get_many_in_place(k - got, None, |m| sum += m.len() as u64)
                        .map_err(|e| err(&e))?;
                }
                left -= k as u64;
            }
        }
        "pipe-bytes-8" | "pipe-bytes-64" => {
            let size = if case.ends_with("-8") { 8 } else { 64 };
            let (tx, rx) = Pipe::simplex().map_err(|e| err(&e))?;
            let msg = vec![7u8; size];
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                tx.send_bytes(&msg).map_err(|e| err(&e))?;
                sum += rx.recv_bytes_into(&mut buf).map_err(|e| err(&e))? as u64;
            }
        }
        other => {
            return Err(format!(
                "no case `{other}`; the cases are {}",
                CASES.join(", ")
            ))
        }
    }
    Ok(sum)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [case, n] if !case.starts_with('-') => match n.parse::<u64>() {
            Ok(n) => run(case, n).map(|_| ()),
            Err(e) => Err(format!("`{n}` is not a number of messages: {e}")),
        },
        // `cargo bench` (which passes `--bench`) or no arguments: every case, briefly.
        _ => CASES
            .iter()
            .try_for_each(|case| run(case, 1000).map(|_| ())),
    };
    if let Err(e) = result {
        eprintln!("instructions: {e}");
        std::process::exit(2);
    }
}

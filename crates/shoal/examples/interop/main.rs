//! Rust and Python on one queue or pipe: the Rust side of
//! `crates/shoal-py/tests/test_interop.py`, which runs it.
//!
//! - `interop parent PYTHON SCRIPT N`: makes two queues, starts `PYTHON SCRIPT` with
//!   them passed as `to_python` and `from_python` (`shoal::process::Command`), sends `N`
//!   numbers as raw little-endian bytes and checks the `N` answers (each number plus
//!   one) while it sends.
//! - `interop child`: the program a Python parent starts with
//!   `shoal.subprocess.Popen(pass_objects={"pipe": ...})`: answers every message on the
//!   inherited pipe end with its bytes reversed, until an empty message.
//! - `interop typed`: attaches the inherited queue `pickles` (made in Python) and tries a
//!   typed `get`, printing the error.
//! - `interop offer PYTHON SCRIPT`: passes a MessagePack queue holding one message to
//!   `PYTHON SCRIPT`, which tries `get()` on it.
//! - `interop selftest`: a Rust parent and a Rust program on a passed pipe, then the
//!   same pipe end asked for as a queue.
//! - `interop offer-bincode PYTHON SCRIPT`: as `offer`, a bincode queue (which Python
//!   reads as raw bytes only).
//!
//! Queues opened by name (no descriptor passed: the programs are unrelated):
//! - `interop named-open NAME`: opens the MessagePack queue a Python program serves
//!   under `NAME`, takes records until `None` and prints a summary (a typed open of a
//!   queue of pickles fails, naming what works).
//! - `interop named-open-bytes NAME`: opens the queue served under `NAME` for raw
//!   bytes, takes messages until an empty one and prints their count and size.
//! - `interop named-create NAME N`: serves a MessagePack queue under `NAME` and a raw
//!   one under `NAME-done`, prints `ready`, puts `N` records and `None`, and waits for
//!   a message on `NAME-done` before it exits.

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal::codec::Codec;
use shoal::process::Command;
use shoal::{Connection, Queue};

/// What the named queues carry: a map `{"id": …, "name": …, "score": …}` in
/// MessagePack, a dict in Python.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: u32,
    name: String,
    score: f64,
}

const WAIT: Duration = Duration::from_secs(60);

fn parent(python: &str, script: &str, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let to_python: Queue<()> = Queue::builder().maxsize(1024).build()?;
    let from_python: Queue<()> = Queue::new()?;
    let mut cmd = Command::new(python);
    cmd.arg(script);
    cmd.pass("to_python", &to_python)?
        .pass("from_python", &from_python)?;
    let mut child = cmd.spawn()?;
    let mut answered = 0u64;
    // Each answer is the next number plus one.
    let check = |answered: &mut u64, data: Vec<u8>| -> Result<(), String> {
        let got = u64::from_le_bytes(data.try_into().map_err(|_| "an answer is not 8 bytes")?);
        if got != *answered + 1 {
            return Err(format!("answer {answered} was {got}"));
        }
        *answered += 1;
        Ok(())
    };
    for i in 0..n {
        while to_python
            .put_bytes_timeout(&i.to_le_bytes(), Duration::ZERO)
            .is_err()
        {
            // Full: take answers meanwhile (both sides send while the other reads).
            check(&mut answered, from_python.get_bytes_timeout(WAIT)?)?;
        }
        while let Ok(data) = from_python.get_bytes_timeout(Duration::ZERO) {
            check(&mut answered, data)?;
        }
    }
    while answered < n {
        check(&mut answered, from_python.get_bytes_timeout(WAIT)?)?;
    }
    to_python.put_bytes(b"")?;
    let status = child.wait()?;
    println!("rust parent: {n} messages each way, python exited with {status}");
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    let pipe: Connection = shoal::inherited("pipe")?;
    let mut n = 0u64;
    loop {
        match pipe.recv_bytes_timeout(WAIT) {
            Ok(data) if data.is_empty() => break,
            Ok(mut data) => {
                data.reverse();
                pipe.send_bytes(&data)?;
                n += 1;
            }
            Err(e) if e.is_closed() => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("rust child: answered {n} messages");
    Ok(())
}

fn typed() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<u32> = shoal::inherited("pickles")?;
    match q.get_timeout(WAIT) {
        Ok(v) => println!("rust typed get: decoded {v}"),
        Err(e) => println!("rust typed get: {e}"),
    }
    Ok(())
}

fn offer(python: &str, script: &str, codec: Codec) -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<String> = Queue::builder().codec(codec).build()?;
    q.put("hello".to_owned())?;
    let mut cmd = Command::new(python);
    cmd.arg(script);
    cmd.pass("msgpack", &q)?;
    let status = cmd.status()?;
    println!("rust offer: python exited with {status}");
    Ok(())
}

fn selftest() -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let (ours, theirs) = shoal::Pipe::duplex()?;
    let mut cmd = Command::new(&exe);
    cmd.arg("child").stdout(std::process::Stdio::piped());
    cmd.pass("pipe", &theirs)?;
    let child = cmd.spawn()?;
    for i in 0..1000u32 {
        let message = format!("message {i}").into_bytes();
        ours.send_bytes(&message)?;
        let mut back = ours.recv_bytes_timeout(WAIT)?;
        back.reverse();
        if back != message {
            return Err(format!("message {i} came back as {back:?}").into());
        }
    }
    ours.send_bytes(b"")?;
    let out = child.wait_with_output()?;
    print!("rust selftest: {}", String::from_utf8_lossy(&out.stdout));
    let mut cmd = Command::new(&exe);
    cmd.arg("wrong-kind");
    cmd.pass("pipe", &theirs)?;
    cmd.status()?;
    Ok(())
}

fn wrong_kind() -> Result<(), Box<dyn std::error::Error>> {
    match shoal::inherited::<Queue<u8>>("pipe") {
        Ok(_) => println!("rust wrong-kind: attached a pipe end as a queue"),
        Err(e) => println!("rust wrong-kind: {e}"),
    }
    Ok(())
}

fn named_open(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<Option<Record>> = Queue::open_named(name)?;
    let (mut n, mut total, mut longest) = (0u32, 0.0f64, String::new());
    while let Some(record) = q.get_timeout(WAIT)? {
        if record.id != n {
            return Err(format!("record {n} came as {record:?}").into());
        }
        n += 1;
        total += record.score;
        if record.name.len() > longest.len() {
            longest = record.name;
        }
    }
    println!("rust named-open: {n} records, total score {total:.2}, longest name {longest:?}");
    Ok(())
}

fn named_open_bytes(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<()> = Queue::open_named_bytes(name)?;
    let (mut n, mut bytes) = (0usize, 0usize);
    loop {
        let data = q.get_bytes_timeout(WAIT)?;
        if data.is_empty() {
            break;
        }
        n += 1;
        bytes += data.len();
    }
    println!(
        "rust named-open-bytes: {n} messages, {bytes} bytes, codec {}",
        q.codec().name()
    );
    Ok(())
}

fn named_create(name: &str, n: u32) -> Result<(), Box<dyn std::error::Error>> {
    let records = Queue::builder()
        .codec(Codec::MessagePack)
        .build_named::<Option<Record>>(name)?;
    let done = Queue::builder()
        .codec(Codec::Raw)
        .build_named::<()>(&format!("{name}-done"))?;
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    for id in 0..n {
        records.put(Some(Record {
            id,
            name: format!("record-{id}"),
            score: f64::from(id) / 2.0,
        }))?;
    }
    records.put(None)?;
    let answer = done.get_bytes_timeout(WAIT)?;
    println!(
        "rust named-create: the opener answered {:?}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["parent", python, script, n] => match n.parse() {
            Ok(n) => parent(python, script, n),
            Err(e) => Err(format!("N: {e}").into()),
        },
        ["child"] => child(),
        ["typed"] => typed(),
        ["selftest"] => selftest(),
        ["wrong-kind"] => wrong_kind(),
        ["offer", python, script] => offer(python, script, Codec::MessagePack),
        ["offer-bincode", python, script] => offer(python, script, Codec::Bincode),
        ["named-open", name] => named_open(name),
        ["named-open-bytes", name] => named_open_bytes(name),
        ["named-create", name, n] => match n.parse() {
            Ok(n) => named_create(name, n),
            Err(e) => Err(format!("N: {e}").into()),
        },
        _ => Err(
            "usage: interop parent PYTHON SCRIPT N | child | typed | offer PYTHON SCRIPT \
                  | offer-bincode PYTHON SCRIPT | selftest | named-open NAME \
                  | named-open-bytes NAME | named-create NAME N"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interop: {e}");
            ExitCode::FAILURE
        }
    }
}

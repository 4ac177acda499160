//! The shapes a process entry may take: no argument, one argument (a tuple for
//! several), and a method taking `self` (Python's `Process` subclass with `run`); each
//! as a `Process` entry and as a pool initializer.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal::{Event, Pool, Process, Queue, Value};

mod common;
use common::watchdog;

const LIMIT: Duration = Duration::from_secs(60);

fn no_argument() -> i32 {
    17
}
shoal::entry!(no_argument);

fn two_arguments((value, add): (Value<u32>, u32)) {
    value.store(value.load() + add);
}
shoal::entry!(two_arguments);

/// The state of a child, as the attributes of a Python `Process` subclass.
#[derive(Serialize, Deserialize)]
struct Counter {
    upto: u32,
    out: Queue<u32>,
    done: Event,
}

impl Counter {
    /// The subclass's `run`.
    fn run(self) -> Result<(), String> {
        for i in 0..self.upto {
            self.out.put(i).map_err(|e| e.to_string())?;
        }
        self.done.set();
        Ok(())
    }
}
shoal::entry!(Counter::run);

#[test]
fn an_entry_of_no_argument_starts_with_unit() {
    watchdog(|| {
        let child = Process::new(no_argument, ()).daemon(true).start().unwrap();
        assert_eq!(child.join_timeout(LIMIT).unwrap(), Some(17));
    });
}

#[test]
fn an_entry_of_a_tuple_takes_several_arguments() {
    watchdog(|| {
        let value = Value::new(1u32).unwrap();
        let child = Process::new(two_arguments, (value.clone(), 41))
            .start()
            .unwrap();
        assert_eq!(child.join_timeout(LIMIT).unwrap(), Some(0));
        assert_eq!(value.load(), 42);
    });
}

#[test]
fn a_method_taking_self_is_an_entry() {
    watchdog(|| {
        let out = Queue::new().unwrap();
        let done = Event::new().unwrap();
        let counter = Counter {
            upto: 3,
            out: out.clone(),
            done: done.clone(),
        };
        let child = Process::new(Counter::run, counter).start().unwrap();
        assert_eq!(child.join_timeout(LIMIT).unwrap(), Some(0));
        assert!(done.is_set());
        let got: Vec<u32> = (0..3).map(|_| out.get_timeout(LIMIT).unwrap()).collect();
        assert_eq!(got, [0, 1, 2]);
    });
}

static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn mark_ready() {
    READY.store(true, std::sync::atomic::Ordering::SeqCst);
}
shoal::entry!(mark_ready);

fn was_initialized(_: ()) -> bool {
    READY.load(std::sync::atomic::Ordering::SeqCst)
}
shoal::task!(was_initialized);

#[test]
fn a_pool_initializer_may_take_no_argument() {
    watchdog(|| {
        let pool = Pool::builder()
            .processes(1)
            .initializer(mark_ready, ())
            .build()
            .unwrap();
        assert!(pool.apply(was_initialized, ()).unwrap());
    });
}

static INIT_FILE: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

fn keep_file(file: shoal::handoff::Fd<std::fs::File>) {
    INIT_FILE
        .set(file.into_inner())
        .expect("set once per worker");
}
shoal::entry!(keep_file);

fn append_line(n: u32) -> bool {
    use std::io::Write;
    let mut file = INIT_FILE.get().expect("the initializer ran");
    writeln!(file, "task {n}").is_ok()
}
shoal::task!(append_line);

#[test]
fn a_file_in_the_initializer_reaches_forkserver_workers_inside_fd() {
    watchdog(|| {
        use std::io::{Read, Seek};
        let path = std::env::temp_dir().join(format!(
            "shoal-init-fd-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap(); // the open descriptor is all that is left
        let pool = Pool::builder()
            .processes(1)
            .start_method(shoal::process::StartMethod::ForkServer)
            .initializer(keep_file, shoal::handoff::Fd(file.try_clone().unwrap()))
            .build()
            .unwrap();
        assert!(pool.apply(append_line, 7).unwrap());
        let mut text = String::new();
        let mut file = file;
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "task 7\n");
    });
}

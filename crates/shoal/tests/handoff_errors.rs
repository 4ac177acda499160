//! Sending a shoal object where only bytes travel (a queue, a pipe, a network
//! connection) fails with a message that names what does work, in shoal's
//! own words (no encoder's enum wrapping); and a shoal object passed where it does work
//! (a `Process` argument, a pool task argument) arrives as the same object.

use std::time::Duration;

use shoal::net::{Client, Listener};
use shoal::{JoinableQueue, Lock, Pipe, Pool, Process, Queue, SimpleQueue, Value};

mod common;
use common::watchdog;

/// What every refusal says: the object, that it is not a message, where it travels.
fn assert_names_what_works(message: &str, what: &str) {
    assert!(
        message.contains(&format!("a shoal {what} cannot be sent as a message")),
        "{message}"
    );
    assert!(
        message.contains(
            "inside the arguments of a `Process`, of a pool task or of a pool's initializer"
        ),
        "{message}"
    );
    assert!(!message.contains("OtherString"), "{message}");
    assert!(!message.contains("through a shoal channel"), "{message}");
}

#[test]
fn a_lock_through_a_queue_is_refused_with_what_works() {
    let lock = Lock::new().unwrap();
    let queue: Queue<Lock> = Queue::new().unwrap();
    let err = queue.put(lock.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not put a message: a shoal Lock cannot be sent as a message: it travels to \
         another process only inside the arguments of a `Process`, of a pool task or of a \
         pool's initializer, to a program started with `shoal::process::Command::pass`, or \
         through `shoal::handoff` with descriptors the program passes itself; messages of \
         a `Queue`, `SimpleQueue`, `JoinableQueue`, pipe `Connection` or `net::Connection` \
         carry bytes only"
    );
    // The message comes back with the error, and the queue is as before.
    assert!(queue.is_empty());

    let simple: SimpleQueue<Lock> = SimpleQueue::new().unwrap();
    assert_names_what_works(&simple.put(lock.clone()).unwrap_err().to_string(), "Lock");
    let joinable: JoinableQueue<Lock> = JoinableQueue::new().unwrap();
    assert_names_what_works(&joinable.put(lock).unwrap_err().to_string(), "Lock");
}

#[test]
fn a_value_through_a_pipe_is_refused_with_what_works() {
    let (left, _right) = Pipe::duplex().unwrap();
    let value = Value::new(1u32).unwrap();
    let err = left.send(&(7u8, value)).unwrap_err();
    assert_names_what_works(&err.to_string(), "Value");
}

#[test]
fn a_queue_through_a_net_connection_is_refused_with_what_works() {
    watchdog(|| {
        let listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
        let address = listener.address().clone();
        let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
        let server = listener.accept_timeout(Duration::from_secs(20)).unwrap();
        let _client = client.join().unwrap().unwrap();
        let queue: Queue<u8> = Queue::new().unwrap();
        let err = server.send(&queue).unwrap_err();
        assert_names_what_works(&err.to_string(), "Queue");
    });
}

fn count(n: u32) -> u32 {
    n + 1
}
shoal::task!(count);

fn takes_a_lock(lock: Lock) -> bool {
    lock.try_acquire().is_ok()
}
shoal::task!(takes_a_lock);

#[test]
fn a_lock_as_a_pool_task_argument_travels_as_the_message_says() {
    watchdog(|| {
        let pool = Pool::new(1).unwrap();
        let lock = Lock::new().unwrap();
        assert!(
            pool.apply(takes_a_lock, lock.clone()).unwrap(),
            "free: the worker takes it"
        );
        let _held = lock.acquire().unwrap();
        assert!(
            !pool.apply(takes_a_lock, lock.clone()).unwrap(),
            "the same lock, held here"
        );
        assert_eq!(pool.apply(count, 1).unwrap(), 2, "the pool goes on");
    });
}

#[test]
fn json_serialization_of_a_shoal_object_says_the_same() {
    let err = serde_json::to_string(&Lock::new().unwrap()).unwrap_err();
    assert_names_what_works(&err.to_string(), "Lock");
}

fn increment(value: Value<u32>) {
    *value.lock().expect("a lock, no holder died") += 1;
}
shoal::entry!(increment);

#[test]
fn the_way_that_works_does_work() {
    watchdog(|| {
        let value = Value::new(41u32).unwrap();
        let child = Process::new(increment, value.clone()).start().unwrap();
        assert_eq!(
            child.join_timeout(Duration::from_secs(60)).unwrap(),
            Some(0)
        );
        assert_eq!(value.load(), 42);
    });
}

#[test]
fn decoding_errors_are_in_plain_words() {
    // A pipe end that receives bytes that are not the type asked for.
    let (left, right) = Pipe::duplex().unwrap();
    left.send_bytes(&[200]).unwrap();
    let err = right.recv::<bool>().unwrap_err().to_string();
    assert!(err.contains("200 is not a boolean"), "{err}");
    assert!(!err.contains("InvalidBooleanValue"), "{err}");
}

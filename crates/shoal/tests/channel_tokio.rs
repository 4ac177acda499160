//! The `tokio` feature: async gets and puts on queues and pipes, across processes.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use common::{watchdog, Reap};
use shoal::channel::{Connection, GetError, Pipe, Queue};
use shoal::Process;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Child: waits a little (so that the parent is asleep in `recv_async`), then sends
/// `n` numbered messages and a last one of 200 KiB (streamed through the ring).
fn send_numbers((tx, n): (Connection, u32)) {
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..n {
        tx.send(&i).unwrap();
    }
    tx.send_bytes(&vec![9u8; 200 * 1024]).unwrap();
}
shoal::entry!(send_numbers);

/// Child: sends one message (becoming the ring's known sender), then waits to be killed.
fn hold(tx: Connection) {
    tx.send_bytes(b"hello").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}
shoal::entry!(hold);

#[test]
fn recv_async_from_a_child_process() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        let n = 10_000;
        let _child = Reap(Process::new(send_numbers, (tx, n)).start().unwrap());
        runtime().block_on(async {
            for i in 0..n {
                assert_eq!(rx.recv_async::<u32>().await.unwrap(), i);
            }
            let big = rx.recv_bytes_async().await.unwrap();
            assert_eq!(big.len(), 200 * 1024);
            assert!(big.iter().all(|&b| b == 9));
        });
    });
}

#[test]
fn recv_async_reports_end_of_stream_when_the_sender_is_killed() {
    watchdog(|| {
        let (tx, rx) = Pipe::simplex().unwrap();
        let child = Reap(Process::new(hold, tx).start().unwrap());
        runtime().block_on(async {
            assert_eq!(rx.recv_bytes_async().await.unwrap(), b"hello");
            let waiter = async { rx.recv_bytes_async().await };
            let killer = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                child.0.kill().unwrap();
            };
            let (got, ()) = tokio::join!(waiter, killer);
            assert!(matches!(got, Err(GetError::Closed)), "{got:?}");
        });
    });
}

#[test]
fn put_async_and_get_async_in_one_runtime() {
    watchdog(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A bound of 4 messages: the producer waits for room most of the time.
            let q: Queue<u64> = Queue::with_maxsize(4).unwrap();
            let n = 5_000u64;
            let producer = tokio::spawn({
                let q = q.clone();
                async move {
                    for i in 0..n {
                        q.put_async(i).await.unwrap();
                    }
                }
            });
            for i in 0..n {
                assert_eq!(q.get_async().await.unwrap(), i);
            }
            producer.await.unwrap();
            q.put_bytes_async(b"raw").await.unwrap();
            assert_eq!(q.get_bytes_async().await.unwrap(), b"raw");
            q.close();
            assert!(matches!(q.get_async().await, Err(GetError::Closed)));
            assert!(q.put_async(1).await.is_err());
        });
    });
}

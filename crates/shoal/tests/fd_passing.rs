//! Sockets, listeners and files handed to child processes as `handoff::Fd` arguments,
//! under every start method.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shoal::handoff::Fd;
use shoal::process::StartMethod;
use shoal::Process;

mod common;
use common::{watchdog, Reap};

const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::ForkServer,
    StartMethod::Fork,
];
const LONG: Duration = Duration::from_secs(60);

/// Serves one connection: answers each line in capitals until the client closes.
fn serve(conn: Fd<TcpStream>) {
    let conn = conn.into_inner();
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut out = conn.try_clone().unwrap();
    for line in BufReader::new(conn).lines() {
        writeln!(out, "{}", line.unwrap().to_uppercase()).unwrap();
    }
}
shoal::entry!(serve);

#[test]
fn a_connection_accepted_in_the_parent_is_served_by_a_child() {
    watchdog(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for method in METHODS {
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            client.set_read_timeout(Some(LONG)).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            let child = Reap(
                Process::new(serve, Fd(accepted))
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            // The parent's copy went into the argument and is closed: only the child
            // holds the connection now.
            let mut reader = BufReader::new(client.try_clone().unwrap());
            for word in ["one", "two"] {
                writeln!(client, "{word}").unwrap();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert_eq!(line, format!("{}\n", word.to_uppercase()), "{method:?}");
            }
            client.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0), "{method:?}");
        }
    });
}

/// Accepts one connection on the passed listener and says hello.
fn accept_one(listener: Fd<TcpListener>) {
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(b"hello").unwrap();
}
shoal::entry!(accept_one);

/// Writes its half of a file: `(file, offset, bytes)`.
fn write_half((file, offset, bytes): (Fd<File>, u64, Vec<u8>)) {
    file.write_all_at(&bytes, offset).unwrap();
}
shoal::entry!(write_half);

/// Answers on a Unix socket and on a raw descriptor.
fn unix_and_raw((sock, raw): (Fd<UnixStream>, Fd<OwnedFd>)) {
    let mut sock = sock.into_inner();
    sock.write_all(b"unix").unwrap();
    let mut raw = File::from(raw.into_inner());
    raw.write_all(b"raw").unwrap();
}
shoal::entry!(unix_and_raw);

#[test]
fn listeners_files_unix_sockets_and_raw_descriptors_travel_under_every_start_method() {
    watchdog(|| {
        for method in METHODS {
            // A listener: the child accepts.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let child = Reap(
                Process::new(accept_one, Fd(listener))
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            let mut client = TcpStream::connect(addr).unwrap();
            client.set_read_timeout(Some(LONG)).unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            assert_eq!(got, "hello", "{method:?}");
            assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0), "{method:?}");

            // A file copied in two halves, one by a child, one here.
            let mut file = tempfile_in_tmp();
            let child = Reap(
                Process::new(
                    write_half,
                    (Fd(file.try_clone().unwrap()), 4, b"half".to_vec()),
                )
                .start_method(method)
                .start()
                .unwrap(),
            );
            file.write_all_at(b"one ", 0).unwrap();
            assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0), "{method:?}");
            let mut all = String::new();
            file.seek(SeekFrom::Start(0)).unwrap();
            file.read_to_string(&mut all).unwrap();
            assert_eq!(all, "one half", "{method:?}");

            // A Unix socket and a raw descriptor (a pipe's write end).
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            ours.set_read_timeout(Some(LONG)).unwrap();
            let (mut read_end, write_end) = pipe();
            let child = Reap(
                Process::new(unix_and_raw, (Fd(theirs), Fd(write_end)))
                    .start_method(method)
                    .start()
                    .unwrap(),
            );
            assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0), "{method:?}");
            let mut got = [0u8; 4];
            ours.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"unix", "{method:?}");
            let mut got = String::new();
            read_end.read_to_string(&mut got).unwrap();
            assert_eq!(got, "raw", "{method:?}");
        }
    });
}

#[test]
fn a_descriptor_outside_a_process_argument_is_refused_with_where_it_travels() {
    let (a, _b) = UnixStream::pair().unwrap();
    let err = shoal::codec::Codec::Bincode
        .encode(&Fd(a))
        .unwrap_err()
        .to_string();
    assert!(err.contains("descriptor (socket or file)"), "{err}");
}

/// A new empty file in the temporary directory, removed at once (open handles keep it).
fn tempfile_in_tmp() -> File {
    let path = std::env::temp_dir().join(format!(
        "shoal-fd-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

/// A pipe: (read end, write end).
fn pipe() -> (File, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (File::from(OwnedFd::from(r)), OwnedFd::from(w))
}

/// A pool task serving one connection: answers each line in capitals, returns how many.
fn serve_in_pool(conn: Fd<TcpStream>) -> u32 {
    let conn = conn.into_inner();
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut n = 0;
    for line in BufReader::new(conn).lines() {
        writeln!(out, "{}", line.unwrap().to_uppercase()).unwrap();
        n += 1;
    }
    n
}
shoal::task!(serve_in_pool);

/// A pool task given a shoal queue inside its argument.
fn put_square((q, x): (shoal::Queue<u64>, u64)) -> u64 {
    q.put(x * x).unwrap();
    x
}
shoal::task!(put_square);

#[test]
fn connections_accepted_in_the_parent_are_served_by_pool_tasks() {
    watchdog(|| {
        for method in METHODS {
            let pool = shoal::Pool::builder()
                .processes(2)
                .start_method(method)
                .build()
                .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients: Vec<_> = (0..4)
                .map(|c| {
                    std::thread::spawn(move || {
                        let mut conn = TcpStream::connect(addr).unwrap();
                        conn.set_read_timeout(Some(LONG)).unwrap();
                        let mut reader = BufReader::new(conn.try_clone().unwrap());
                        for i in 0..3 {
                            writeln!(conn, "client {c} line {i}").unwrap();
                            let mut line = String::new();
                            reader.read_line(&mut line).unwrap();
                            assert_eq!(line, format!("CLIENT {c} LINE {i}\n"));
                        }
                        conn.shutdown(std::net::Shutdown::Write).unwrap();
                    })
                })
                .collect();
            let served: Vec<_> = (0..4)
                .map(|_| {
                    let (conn, _) = listener.accept().unwrap();
                    pool.apply_async(serve_in_pool, Fd(conn))
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
            for r in served {
                assert_eq!(r.get().unwrap(), 3, "{method:?}");
            }
            // Shoal objects travel inside task arguments too, among plain items.
            let q: shoal::Queue<u64> = shoal::Queue::new().unwrap();
            let xs = pool
                .map(put_square, (1..=5u64).map(|x| (q.clone(), x)))
                .unwrap();
            assert_eq!(xs, vec![1, 2, 3, 4, 5], "{method:?}");
            let mut squares: Vec<u64> = (0..5).map(|_| q.get_timeout(LONG).unwrap()).collect();
            squares.sort_unstable();
            assert_eq!(squares, vec![1, 4, 9, 16, 25], "{method:?}");
            pool.close();
            pool.join().unwrap();
        }
    });
}

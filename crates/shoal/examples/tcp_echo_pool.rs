//! A TCP echo server whose connections a pool of worker processes serves: the parent
//! accepts, and each accepted socket travels to a pool task as its descriptor
//! (`handoff::Fd`). Three clients, each answered by a worker.
//!
//! Output:
//! client 0 got: echo from a worker: hello 0
//! client 1 got: echo from a worker: hello 1
//! client 2 got: echo from a worker: hello 2
//! served 3 connections

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use shoal::handoff::Fd;

/// Serves one connection: echoes each line in capitals.
fn serve(conn: Fd<TcpStream>) -> usize {
    let conn = conn.into_inner();
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut out = conn.try_clone().expect("a socket clones");
    let mut lines = 0;
    for line in BufReader::new(conn).lines().map_while(Result::ok) {
        if writeln!(out, "echo from a worker: {line}").is_err() {
            break;
        }
        lines += 1;
    }
    lines
}
shoal::task!(serve);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = shoal::Pool::builder().processes(2).build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut served = Vec::new();
    for i in 0..3 {
        let mut client = TcpStream::connect(addr)?;
        let (conn, _) = listener.accept()?;
        served.push(pool.apply_async(serve, Fd(conn)));
        writeln!(client, "hello {i}")?;
        let mut answer = String::new();
        BufReader::new(client.try_clone()?).read_line(&mut answer)?;
        println!("client {i} got: {}", answer.trim_end());
        client.shutdown(std::net::Shutdown::Write)?;
    }
    let mut n = 0;
    for s in served {
        n += usize::from(s.get()? > 0);
    }
    println!("served {n} connections");
    Ok(())
}

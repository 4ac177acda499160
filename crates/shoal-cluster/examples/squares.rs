//! One program, both sides of a cluster pool.
//!
//! ```text
//! export SHOAL_CLUSTER_KEY=$(head -c 32 /dev/urandom | base64)
//! cargo run -p shoal-cluster --example squares -- --redis redis://127.0.0.1 --pool squares --processes 4   # on each worker host
//! cargo run -p shoal-cluster --example squares -- submit redis://127.0.0.1 squares 10000                  # anywhere
//! ```

use std::process::ExitCode;

fn square(x: u64) -> u64 {
    x * x
}
shoal::task!(square);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = if args.first().map(String::as_str) == Some("submit") {
        submit(&args[1..])
    } else {
        // A worker host: it runs `square` for every submitter of the pool.
        shoal_cluster::serve().map_err(Into::into)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn submit(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [url, pool, n] = args else {
        return Err("usage: squares submit URL POOL COUNT".into());
    };
    let n: u64 = n.parse()?;
    let pool = shoal_cluster::Pool::connect(url, pool)?;
    let started = std::time::Instant::now();
    let squares = pool.map(square, 0..n)?;
    let took = started.elapsed();
    let sum: u64 = squares.iter().copied().fold(0, u64::wrapping_add);
    println!(
        "{n} tasks in {took:.2?} ({:.0} tasks/s), checksum {sum}, {:?}",
        n as f64 / took.as_secs_f64(),
        pool.stats()
    );
    Ok(())
}

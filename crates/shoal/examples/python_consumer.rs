//! A Rust producer feeding a Python consumer: the Rust program serves a MessagePack
//! queue by name, starts a Python script (any program: it inherits nothing), which
//! opens the queue by name with `shoal.Queue(name=..., create=False)` and reads the
//! records as dicts, and sends 10 000 sensor readings.
//!
//! The interpreter is `$SHOAL_PYTHON`, else `python3`; it needs the package `shoal`
//! (`pip install .`).
//!
//! Output:
//! python consumer: 10000 readings from 4 sensors, mean 23.99, hottest sensor-3 at 30.48
//! python exited with exit status: 0

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal::codec::Codec;
use shoal::Queue;

/// One record; MessagePack writes it as a map of its field names, which Python reads
/// as a dict.
#[derive(Serialize, Deserialize)]
struct Reading {
    sensor: String,
    seq: u32,
    celsius: f64,
}

const CONSUMER: &str = r#"
import sys
import shoal

readings = shoal.Queue(name=sys.argv[1], create=False)  # the producer's codec: msgpack
count, total, sensors, hottest = 0, 0.0, set(), None
while (r := readings.get(timeout=60)) is not None:
    count += 1
    total += r["celsius"]
    sensors.add(r["sensor"])
    if hottest is None or r["celsius"] > hottest["celsius"]:
        hottest = r
print(f"python consumer: {count} readings from {len(sensors)} sensors, mean {total / count:.2f}, "
      f"hottest {hottest['sensor']} at {hottest['celsius']:.2f}")
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("readings-{}", std::process::id());
    // `Option`: `None` (MessagePack nil, Python's None) ends the stream.
    let readings = Queue::builder()
        .codec(Codec::MessagePack)
        .maxsize(1024)
        .build_named::<Option<Reading>>(&name)?;
    let python = std::env::var("SHOAL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut consumer = std::process::Command::new(&python)
        .args(["-c", CONSUMER, &name])
        .spawn()
        .map_err(|e| format!("could not start {python}: {e}"))?;
    let wait = Duration::from_secs(60);
    for seq in 0..10_000u32 {
        let reading = Reading {
            sensor: format!("sensor-{}", seq % 4),
            seq,
            celsius: 17.5 + f64::from(seq % 4) + f64::from(seq % 500) / 50.0,
        };
        if let Err(e) = readings.put_timeout(Some(reading), wait) {
            let _ = consumer.kill();
            return Err(format!("the consumer stopped taking readings: {e}").into());
        }
    }
    readings.put_timeout(None, wait)?;
    let status = consumer.wait()?;
    println!("python exited with {status}");
    Ok(())
}

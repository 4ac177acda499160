//! A shared array of bytes, changed in place by a child under the array's lock.
//!
//! Output:
//! before hello world
//! after HELLO WORLD

use shoal::{Array, Process};

fn shout(text: Array<u8>) {
    let mut guard = text.lock().expect("a lock, no holder died");
    guard.make_ascii_uppercase();
}
shoal::entry!(shout);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = Array::new(b"hello world")?;
    println!("before {}", String::from_utf8(text.to_vec())?);
    Process::new(shout, text.clone()).start()?.join()?;
    println!("after {}", String::from_utf8(text.to_vec())?);
    Ok(())
}

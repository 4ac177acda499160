//! A pipe between a parent and its child: the child sends three numbers and closes its
//! end; the parent receives until end of stream.
//!
//! Output:
//! received 0
//! received 1
//! received 2
//! end of stream

use shoal::{Connection, Pipe, Process};

fn child(tx: Connection) {
    for i in 0..3u32 {
        tx.send(&i).expect("send");
    }
    tx.close();
}
shoal::entry!(child);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tx, rx) = Pipe::simplex()?;
    let p = Process::new(child, tx).start()?;
    loop {
        match rx.recv::<u32>() {
            Ok(n) => println!("received {n}"),
            Err(e) if e.is_closed() => {
                println!("end of stream");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    p.join()?;
    Ok(())
}

//! A manager: a server holds a dict and a queue; three worker processes connect as
//! clients, take words from the queue and record their lengths in the dict. A Python
//! program could be one of the clients (`SyncManager(address, authkey).connect()`).
//!
//! Output:
//! lengths: [("manager", 7), ("processes", 9), ("shared", 6), ("shoal", 5)]
//! objects on the server: 2

use std::time::Duration;

use shoal::manager::{Builtin, Client, DictProxy, QueueProxy, Server};

const KEY: &[u8] = b"example key";

/// Takes words until the queue is empty and records each word's length.
fn worker(address: String) {
    let client = Client::connect(address.as_str(), KEY).expect("the manager");
    let words: QueueProxy<String> = client.create("words", vec![]).expect("the queue").into();
    let lengths: DictProxy<String, usize> = client.shared_dict("lengths").expect("the dict");
    while let Ok(word) = words.get_timeout(Duration::from_millis(100)) {
        lengths.insert(&word, &word.len()).expect("an insert");
    }
}
shoal::entry!(worker);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0", KEY)?;
    server.register_shared("words", Builtin::Queue);
    server.register_shared("lengths", Builtin::Dict);
    let server = server.start()?;
    let address = server.address().to_string();

    let client = Client::connect(address.as_str(), KEY)?;
    let words: QueueProxy<String> = client.create("words", vec![])?.into();
    for w in ["shoal", "shared", "manager", "processes"] {
        words.put(&w.to_owned())?;
    }
    let workers = (0..3)
        .map(|_| shoal::Process::new(worker, address.clone()).start())
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        w.join()?;
    }
    let lengths: DictProxy<String, usize> = client.shared_dict("lengths")?;
    let mut items = lengths.items()?;
    items.sort();
    println!("lengths: {items:?}");
    println!("objects on the server: {}", client.number_of_objects()?);
    Ok(())
}

//! Listener and Client with an auth key: a wrong key is refused, the right one talks.
//!
//! Output:
//! wrong key refused
//! server got: hello
//! client got: HELLO

use shoal::net::{Client, Listener, NetError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = Listener::bind("127.0.0.1:0", Some(b"secret key"))?;
    let address = listener.address().clone();
    let server = std::thread::spawn(move || -> Result<(), NetError> {
        // A client that fails the challenge is dropped; serve the next one.
        let conn = loop {
            match listener.accept() {
                Ok(conn) => break conn,
                Err(NetError::Authentication(_)) => continue,
                Err(e) => return Err(e),
            }
        };
        let msg: String = conn.recv()?;
        println!("server got: {msg}");
        conn.send(&msg.to_uppercase())
    });
    match Client::connect(&address, Some(b"wrong key")) {
        Err(NetError::Authentication(_)) => println!("wrong key refused"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    let conn = Client::connect(&address, Some(b"secret key"))?;
    conn.send("hello")?;
    let back: String = conn.recv()?;
    server.join().expect("server thread")?;
    println!("client got: {back}");
    Ok(())
}

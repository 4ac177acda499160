//! A Rust manager server and client for Python's `multiprocessing.managers`: the Rust
//! side of `crates/shoal-py/tests/test_manager_interop.py`, which runs it.
//!
//! - `manager_server serve KEY`: serves on a free loopback port, with the standard type
//!   ids, a shared dict under `get_shared`, a shared lock under `get_lock` and a
//!   registered `Counter`; prints
//!   `ADDRESS host:port`, then serves until a client sends `shutdown`.
//! - `manager_server client HOST:PORT KEY TYPEID`: on the shared dict that `TYPEID`
//!   gives, reads `"from_python"`, writes `"from_rust"` (that value plus one) and
//!   `"rust_list"`, prints `READ value`; then checks that a missing key raises
//!   `KeyError` and prints `KEYERROR ok`, that `get_nowait` on a new queue raises
//!   `queue.Empty` (`EMPTY ok`) and a missing attribute of a new namespace
//!   `AttributeError` (`ATTRIBUTEERROR ok`).
//! - `manager_server bump HOST:PORT KEY N`: adds 1 to the shared dict's `"n"` `N` times,
//!   each read-modify-write under the shared lock.
//! - `manager_server bench HOST:PORT KEY TYPEID N`: `N` writes and `N` reads of one key
//!   of the shared dict `TYPEID` gives; prints `CALLS_PER_SECOND n`.
//! - `manager_server wrong-key HOST:PORT`: connects with a wrong key and prints the
//!   error's kind (`REFUSED` for an authentication failure).

use std::io::Write;
use std::process::ExitCode;

use shoal::manager::{
    Builtin, CallError, Client, Kwds, LockProxy, Managed, ManagerError, Server, Value,
};

/// A counter with `increment(by=1)` and `value()`.
#[derive(Default)]
struct Counter(i64);

impl Managed for Counter {
    fn exposed(&self) -> &[&str] {
        &["increment", "value"]
    }

    fn call(&mut self, method: &str, args: Vec<Value>, kwds: Kwds) -> Result<Value, CallError> {
        if method == "increment" {
            let by = args
                .first()
                .or_else(|| kwds.get("by"))
                .unwrap_or(&Value::I64(1));
            match by {
                Value::I64(n) => self.0 += n,
                _ => return Err(CallError::type_error("increment(by) takes an integer")),
            }
        }
        Ok(Value::I64(self.0))
    }

    fn repr(&self) -> String {
        format!("Counter({})", self.0)
    }
}

fn serve(key: &str) -> Result<(), ManagerError> {
    let server = Server::bind("127.0.0.1:0", key.as_bytes())?;
    server.register_shared("get_shared", Builtin::Dict);
    server.register_shared("get_lock", Builtin::Lock);
    server.register("Counter", |_args, _kwds| Ok(Counter::default()));
    println!("ADDRESS {}", server.address());
    let _ = std::io::stdout().flush();
    server.serve_forever()
}

fn client(address: &str, key: &str, typeid: &str) -> Result<(), ManagerError> {
    let client = Client::connect(address, key.as_bytes())?;
    let shared = client.shared_dict::<String, i64>(typeid)?;
    let n = shared
        .get(&"from_python".to_owned())?
        .ok_or_else(|| ManagerError::Protocol {
            reason: "the Python side wrote no \"from_python\"".to_owned(),
        })?;
    shared.insert(&"from_rust".to_owned(), &(n + 1))?;
    // Values of no single Rust type go through the untyped proxy.
    shared.proxy().call(
        "__setitem__",
        vec![
            Value::String("rust_list".into()),
            Value::List(vec![
                Value::String("a".into()),
                Value::F64(2.5),
                Value::None,
            ]),
        ],
    )?;
    println!("READ {n}");
    match shared
        .proxy()
        .call("__getitem__", vec![Value::String("missing".into())])
    {
        Err(ManagerError::Remote(e)) if e.is("builtins", "KeyError") => println!("KEYERROR ok"),
        other => println!("KEYERROR wrong: {other:?}"),
    }
    match client.queue::<u8>()?.get_nowait() {
        Err(ManagerError::Remote(e)) if e.is("queue", "Empty") => println!("EMPTY ok"),
        other => println!("EMPTY wrong: {other:?}"),
    }
    match client.namespace()?.get::<u8>("missing") {
        Err(ManagerError::Remote(e))
            if e.name() == "AttributeError" && e.message().contains("missing") =>
        {
            println!("ATTRIBUTEERROR ok")
        }
        other => println!("ATTRIBUTEERROR wrong: {other:?}"),
    }
    Ok(())
}

fn bump(address: &str, key: &str, n: &str) -> Result<(), ManagerError> {
    let n: u64 = n.parse().map_err(|_| ManagerError::Protocol {
        reason: format!("{n:?} is not a number of rounds"),
    })?;
    let client = Client::connect(address, key.as_bytes())?;
    let shared = client.shared_dict::<String, u64>("get_shared")?;
    let lock = LockProxy::from(client.create("get_lock", vec![])?);
    let k = "n".to_owned();
    for _ in 0..n {
        lock.acquire()?;
        let v = shared.get(&k)?.unwrap_or(0);
        shared.insert(&k, &(v + 1))?;
        lock.release()?;
    }
    Ok(())
}

fn bench(address: &str, key: &str, typeid: &str, n: &str) -> Result<(), ManagerError> {
    let n: u64 = n.parse().map_err(|_| ManagerError::Protocol {
        reason: format!("{n:?} is not a number of calls"),
    })?;
    let client = Client::connect(address, key.as_bytes())?;
    let shared = client.shared_dict::<String, u64>(typeid)?;
    let k = "bench".to_owned();
    let start = std::time::Instant::now();
    for i in 0..n {
        shared.insert(&k, &i)?;
        shared.get(&k)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("CALLS_PER_SECOND {:.0}", (2 * n) as f64 / secs);
    Ok(())
}

fn wrong_key(address: &str) -> Result<(), ManagerError> {
    match Client::connect(address, b"not the key") {
        Err(ManagerError::AuthRefused { .. }) => println!("REFUSED"),
        Err(e) => println!("OTHER {e}"),
        Ok(_) => println!("ACCEPTED"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve", key] => serve(key),
        ["client", address, key, typeid] => client(address, key, typeid),
        ["bump", address, key, n] => bump(address, key, n),
        ["bench", address, key, typeid, n] => bench(address, key, typeid, n),
        ["wrong-key", address] => wrong_key(address),
        _ => {
            eprintln!("usage: manager_server serve KEY | client HOST:PORT KEY TYPEID | bump HOST:PORT KEY N | bench HOST:PORT KEY TYPEID N | wrong-key HOST:PORT");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("manager_server: {e:#}");
            ExitCode::from(2)
        }
    }
}

//! The manager server and client: Rust to Rust over TCP and Unix sockets, wrong keys,
//! a server killed under its clients, clients in several processes on one dict, a
//! lock holder killed, registered types, reference counts.

use std::time::Duration;

use shoal::manager::{
    kwds, Builtin, CallError, Client, Kwds, Managed, ManagerError, Server, Value,
};
use shoal::{Process, Queue};

mod common;
mod net_support;
use common::{watchdog, Reap};

const KEY: &[u8] = b"manager test key";
const WAIT: Duration = Duration::from_secs(30);

fn started() -> shoal::manager::ServerHandle {
    let server = Server::bind("127.0.0.1:0", KEY).unwrap();
    server.register_shared("get_shared", Builtin::Dict);
    server.register_shared("get_lock", Builtin::Lock);
    server.register_shared("get_queue", Builtin::Queue);
    server.start().unwrap()
}

fn is_remote(e: &ManagerError, module: &str, name: &str) -> bool {
    e.remote().is_some_and(|r| r.is(module, name))
}

#[test]
fn a_rust_client_uses_every_standard_type_over_tcp() {
    watchdog(|| {
        let server = started();
        let client = Client::connect(server.address(), KEY).unwrap();

        let d = client.dict::<String, i64>().unwrap();
        d.update(&[("b".into(), 2), ("a".into(), 1)]).unwrap();
        d.insert(&"c".into(), &3).unwrap();
        assert_eq!(d.keys().unwrap(), ["b", "a", "c"]); // insertion order, as Python
        assert_eq!(d.values().unwrap(), [2, 1, 3]);
        assert_eq!(d.len().unwrap(), 3);
        assert_eq!(d.setdefault(&"a".into(), &9).unwrap(), 1);
        assert_eq!(d.remove(&"b".into()).unwrap(), Some(2));
        assert_eq!(d.remove(&"b".into()).unwrap(), None);
        assert!(!d.contains(&"b".into()).unwrap());
        d.clear().unwrap();
        assert!(d.is_empty().unwrap());

        let l = client.list::<String>().unwrap();
        l.extend(&["x".into(), "y".into()]).unwrap();
        l.insert(0, &"w".into()).unwrap();
        l.append(&"y".into()).unwrap();
        assert_eq!(l.count(&"y".into()).unwrap(), 2);
        assert_eq!(l.index(&"x".into()).unwrap(), 1);
        l.remove(&"y".into()).unwrap();
        l.set(-1, &"z".into()).unwrap();
        l.reverse().unwrap();
        assert_eq!(l.to_vec().unwrap(), ["z", "x", "w"]);
        assert_eq!(l.pop_at(0).unwrap(), "z");
        let err = l.remove(&"nothing".into()).unwrap_err();
        assert!(is_remote(&err, "builtins", "ValueError"), "{err}");

        let ns = client.namespace().unwrap();
        ns.set("name", "shoal").unwrap();
        ns.set("sizes", &vec![1u8, 2]).unwrap();
        assert_eq!(ns.get::<String>("name").unwrap(), "shoal");
        assert_eq!(ns.get::<Vec<u8>>("sizes").unwrap(), [1, 2]);
        let err = ns.get::<u8>("name").unwrap_err();
        assert!(matches!(err, ManagerError::Codec { .. }), "{err}");
        assert!(err.to_string().contains("attribute \"name\""), "{err}");

        let q = client.queue::<(u32, String)>().unwrap();
        q.put(&(1, "one".into())).unwrap();
        q.put_nowait(&(2, "two".into())).unwrap();
        assert_eq!(q.qsize().unwrap(), 2);
        assert_eq!(q.get().unwrap(), (1, "one".into()));
        assert_eq!(q.get_nowait().unwrap(), (2, "two".into()));
        let err = q.get_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(is_remote(&err, "queue", "Empty"), "{err}");
        assert_eq!(err.to_string(), "the managed object raised queue.Empty");

        let rlock = client.rlock().unwrap();
        assert!(rlock.acquire().unwrap() && rlock.acquire().unwrap());
        rlock.release().unwrap();
        rlock.release().unwrap();
        let err = rlock.release().unwrap_err();
        assert!(is_remote(&err, "builtins", "RuntimeError"), "{err}");

        let v = client.value("i", &5i32).unwrap();
        v.set(&6).unwrap();
        assert_eq!(v.get().unwrap(), 6);

        let ev = client.event().unwrap();
        assert!(!ev.is_set().unwrap());
        ev.set().unwrap();
        assert!(ev.wait_timeout(WAIT).unwrap());

        // Keyword arguments, and a method that is not exposed.
        let raw = d.proxy();
        let got = raw
            .call_kw(
                "get",
                vec![Value::String("k".into())],
                kwds([("default", Value::I64(7))]),
            )
            .unwrap();
        assert_eq!(got, Value::I64(7));
        let err = raw.call("no_such_method", vec![]).unwrap_err();
        assert!(
            matches!(&err, ManagerError::Server { text } if text.contains("not in exposed")),
            "{err}"
        );
        server.shutdown();
    });
}

#[test]
fn a_blocked_get_is_woken_by_a_put_from_another_client() {
    watchdog(|| {
        let server = started();
        let address = server.address().clone();
        let consumer = {
            let address = address.clone();
            std::thread::spawn(move || {
                let client = Client::connect(&address, KEY)?;
                let q = client.create("get_queue", vec![])?;
                shoal::manager::QueueProxy::<u64>::from(q).get_timeout(WAIT)
            })
        };
        let client = Client::connect(&address, KEY).unwrap();
        let q =
            shoal::manager::QueueProxy::<u64>::from(client.create("get_queue", vec![]).unwrap());
        q.put(&99).unwrap();
        assert_eq!(consumer.join().unwrap().unwrap(), 99);
    });
}

#[test]
fn a_wrong_key_is_refused_with_its_own_error() {
    watchdog(|| {
        let server = started();
        let err = Client::connect(server.address(), b"wrong").unwrap_err();
        assert!(matches!(err, ManagerError::AuthRefused { .. }), "{err}");
        assert!(
            err.to_string().contains("refused the authentication key"),
            "{err}"
        );
        // The server goes on serving the right key.
        assert!(Client::connect(server.address(), KEY).is_ok());
    });
}

#[test]
fn a_server_on_a_unix_socket_counts_references() {
    watchdog(|| {
        let path =
            std::env::temp_dir().join(format!("shoal-manager-test-{}.sock", std::process::id()));
        let server = Server::bind(&path, KEY).unwrap().start().unwrap();
        let client = Client::connect(&path, KEY).unwrap();
        let a = client.list::<u8>().unwrap();
        let b = client.dict::<u8, u8>().unwrap();
        assert_eq!(client.number_of_objects().unwrap(), 2);
        assert!(client.debug_info().unwrap().contains("refcount=1"));
        drop(a);
        assert_eq!(client.number_of_objects().unwrap(), 1);
        drop(b);
        assert_eq!(server.number_of_objects(), 0);
        client.shutdown().unwrap();
        drop(server);
        assert!(!path.exists());
    });
}

/// A bank account: `deposit(amount)`, `balance()`; overdrafts raise ValueError.
struct Account(i64);

impl Managed for Account {
    fn exposed(&self) -> &[&str] {
        &["deposit", "balance"]
    }

    fn call(&mut self, method: &str, args: Vec<Value>, kwds: Kwds) -> Result<Value, CallError> {
        if method == "deposit" {
            let amount = match (args.as_slice(), kwds.get("amount")) {
                ([Value::I64(n)], None) | ([], Some(Value::I64(n))) => *n,
                _ => return Err(CallError::type_error("deposit(amount) takes one integer")),
            };
            if self.0 + amount < 0 {
                return Err(CallError::value_error(format!(
                    "a withdrawal of {} exceeds the balance of {}",
                    -amount, self.0
                )));
            }
            self.0 += amount;
        }
        Ok(Value::I64(self.0))
    }
}

#[test]
fn a_registered_type_is_created_with_arguments_and_raises_its_errors() {
    watchdog(|| {
        let server = Server::bind("127.0.0.1:0", KEY).unwrap();
        server.register("Account", |args, _kwds| match args.as_slice() {
            [Value::I64(n)] => Ok(Account(*n)),
            [] => Ok(Account(0)),
            _ => Err(CallError::type_error("Account(balance) takes an integer")),
        });
        let server = server.start().unwrap();
        let client = Client::connect(server.address(), KEY).unwrap();
        let acct = client.create("Account", vec![Value::I64(10)]).unwrap();
        assert_eq!(acct.exposed(), ["deposit", "balance"]);
        assert_eq!(
            acct.call("deposit", vec![Value::I64(5)]).unwrap(),
            Value::I64(15)
        );
        let got = acct
            .call_kw("deposit", vec![], kwds([("amount", Value::I64(-15))]))
            .unwrap();
        assert_eq!(got, Value::I64(0));
        let err = acct.call("deposit", vec![Value::I64(-1)]).unwrap_err();
        let remote = err.remote().unwrap();
        assert_eq!(remote.type_name(), "ValueError");
        assert_eq!(
            remote.message(),
            "a withdrawal of 1 exceeds the balance of 0"
        );
        let err = client.create("Account", vec![Value::None]).unwrap_err();
        assert!(
            matches!(&err, ManagerError::Server { text } if text.contains("takes an integer")),
            "{err}"
        );
        let err = client.create("Unknown", vec![]).unwrap_err();
        assert!(
            matches!(&err, ManagerError::Server { text } if text.contains("Unknown")),
            "{err}"
        );
    });
}

/// Serves in a child process and reports the address.
fn serve_in_child(report: Queue<String>) {
    let server = Server::bind("127.0.0.1:0", KEY).unwrap();
    server.register_shared("get_shared", Builtin::Dict);
    server.register_shared("get_lock", Builtin::Lock);
    report.put(server.address().to_string()).unwrap();
    server.serve_forever().unwrap();
}
shoal::entry!(serve_in_child);

#[test]
fn every_call_fails_at_once_when_the_server_is_killed() {
    watchdog(|| {
        let report: Queue<String> = Queue::new().unwrap();
        let child = Reap(
            Process::new(serve_in_child, report.clone())
                .start()
                .unwrap(),
        );
        let address = report.get_timeout(WAIT).unwrap();
        let client = Client::connect(address.as_str(), KEY).unwrap();
        let d = client.shared_dict::<String, u32>("get_shared").unwrap();
        let q = client.queue::<u32>().unwrap();
        let lock = client.lock().unwrap();
        d.insert(&"alive".into(), &1).unwrap();
        q.put(&1).unwrap();
        assert!(lock.acquire().unwrap());
        // A call in flight (blocked on the server, unless the kill comes first) when
        // the server dies returns too.
        let q2 = client.queue::<u32>().unwrap();
        let blocked = std::thread::spawn(move || q2.get());
        child.0.kill().unwrap();
        assert_eq!(child.0.join_timeout(WAIT).unwrap(), Some(-9));
        let gone = |r: Result<(), ManagerError>| {
            let err = r.unwrap_err();
            assert!(matches!(err, ManagerError::ServerGone { .. }), "{err}");
            assert!(err.to_string().contains("is gone"), "{err}");
        };
        gone(d.insert(&"dead".into(), &2));
        gone(d.len().map(drop));
        gone(q.get_nowait().map(drop));
        gone(lock.release());
        gone(client.dict::<u8, u8>().map(drop));
        gone(Client::connect(address.as_str(), KEY).map(drop));
        gone(blocked.join().unwrap().map(drop));
    });
}

/// Adds 1 to the shared dict's `"n"` `rounds` times under the shared lock, and records
/// its pid under its own key.
fn bump((address, who, rounds): (String, u32, u32)) {
    let client = Client::connect(address.as_str(), KEY).unwrap();
    let d = client.shared_dict::<String, u64>("get_shared").unwrap();
    let lock = client
        .create("get_lock", vec![])
        .map(shoal::manager::LockProxy::from)
        .unwrap();
    for _ in 0..rounds {
        assert!(lock.acquire_timeout(WAIT).unwrap());
        let n = d.get(&"n".into()).unwrap().unwrap_or(0);
        d.insert(&"n".into(), &(n + 1)).unwrap();
        lock.release().unwrap();
    }
    d.insert(&format!("child-{who}"), &u64::from(std::process::id()))
        .unwrap();
}
shoal::entry!(bump);

#[test]
fn clients_in_several_processes_share_one_dict() {
    watchdog(|| {
        let server = started();
        let address = server.address().to_string();
        let children: Vec<Reap> = (0..4u32)
            .map(|who| {
                Reap(
                    Process::new(bump, (address.clone(), who, 25))
                        .start()
                        .unwrap(),
                )
            })
            .collect();
        for c in &children {
            assert_eq!(c.0.join_timeout(WAIT).unwrap(), Some(0));
        }
        let client = Client::connect(address.as_str(), KEY).unwrap();
        let d = client.shared_dict::<String, u64>("get_shared").unwrap();
        assert_eq!(d.get(&"n".into()).unwrap(), Some(100));
        for (who, c) in children.iter().enumerate() {
            assert_eq!(
                d.get(&format!("child-{who}")).unwrap(),
                Some(u64::from(c.0.pid()))
            );
        }
    });
}

/// Takes the shared lock, reports it, and waits to be killed.
fn hold_lock((address, report): (String, Queue<String>)) {
    let client = Client::connect(address.as_str(), KEY).unwrap();
    let lock = client
        .create("get_lock", vec![])
        .map(shoal::manager::LockProxy::from)
        .unwrap();
    assert!(lock.acquire().unwrap());
    report.put("held".into()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}
shoal::entry!(hold_lock);

#[test]
fn a_lock_whose_holder_is_killed_is_released() {
    watchdog(|| {
        let server = started();
        let address = server.address().to_string();
        let report: Queue<String> = Queue::new().unwrap();
        let holder = Reap(
            Process::new(hold_lock, (address.clone(), report.clone()))
                .start()
                .unwrap(),
        );
        assert_eq!(report.get_timeout(WAIT).unwrap(), "held");
        let client = Client::connect(address.as_str(), KEY).unwrap();
        let lock = client
            .create("get_lock", vec![])
            .map(shoal::manager::LockProxy::from)
            .unwrap();
        assert!(!lock.try_acquire().unwrap());
        holder.0.kill().unwrap();
        holder.0.join_timeout(WAIT).unwrap();
        assert!(lock.acquire_timeout(WAIT).unwrap());
    });
}

/// A manager over TLS: the listener and the client's connections are the caller's own
/// (`Server::from_listener`, `Client::connect_with`); a client without TLS is refused.
#[cfg(feature = "tls")]
#[test]
fn a_manager_over_tls_serves_a_client_that_speaks_tls_only() {
    watchdog(|| {
        let (server_cfg, client_cfg) = net_support::tls_configs();
        let listener = shoal::net::Listener::builder()
            .authkey(KEY)
            .tls(server_cfg)
            .handshake_timeout(Some(WAIT))
            .bind("127.0.0.1:0")
            .unwrap();
        let server = Server::from_listener(listener).start().unwrap();
        let tls = shoal::net::Client::builder()
            .authkey(KEY)
            .tls(client_cfg, "localhost")
            .unwrap();
        let client = Client::connect_with(server.address(), tls).unwrap();
        let d = client.dict::<String, u32>().unwrap();
        d.insert(&"over tls".to_owned(), &7).unwrap();
        assert_eq!(d.get(&"over tls".to_owned()).unwrap(), Some(7));

        // The same key without TLS does not get a manager to talk to.
        let plain = Client::connect(server.address(), KEY).unwrap_err();
        assert!(
            matches!(
                plain,
                ManagerError::AuthRefused { .. }
                    | ManagerError::ServerGone { .. }
                    | ManagerError::Net(_)
            ),
            "{plain}"
        );
        drop(d);
        server.shutdown();
    });
}

/// `Server::spawn` runs the server in a child process with a shared object of a
/// built-in type; `shutdown` stops it, and the address then refuses clients.
#[test]
fn a_spawned_server_serves_its_shared_objects_until_shut_down() {
    watchdog(|| {
        let server = Server::spawn("127.0.0.1:0", KEY, &[("get_jobs", Builtin::Queue)]).unwrap();
        assert_ne!(server.pid(), Some(std::process::id()));
        let a = Client::connect(server.address(), KEY).unwrap();
        let b = Client::connect(server.address(), KEY).unwrap();
        let put = a.create("get_jobs", vec![]).unwrap();
        let get = b.create("get_jobs", vec![]).unwrap();
        put.call("put", vec![Value::String("first".into())])
            .unwrap();
        assert_eq!(
            get.call("get", vec![]).unwrap(),
            Value::String("first".into())
        );
        let address = server.address().clone();
        server.shutdown().unwrap();
        let gone = Client::connect(&address, KEY).unwrap_err();
        assert!(matches!(gone, ManagerError::ServerGone { .. }), "{gone}");
    });
}

#[test]
fn spawning_on_an_address_in_use_says_so() {
    watchdog(|| {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let err = Server::spawn(address, KEY, &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("could not serve"), "{text}");
    });
}

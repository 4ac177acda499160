//! shoal's `net` against Python's own `multiprocessing.connection`: Python listener ↔
//! shoal client and Python client ↔ shoal listener, over TCP, Unix paths and abstract
//! names, with the right key (accepted), a wrong key (refused on both sides) and no key,
//! against `python3` (legacy HMAC-MD5 form up to 3.11) and any Python 3.12+ found
//! (tagged `{sha256}` form).

mod common;
mod net_support;

use common::watchdog;
use net_support::{pythons, socket_path, unique, Python, STEP};
use shoal::net::{AuthFailure, Client, Connection, Listener, NetError};

/// The messages the Python script sends and expects back (see mp_connection.py).
fn messages() -> Vec<Vec<u8>> {
    let one_mib: Vec<u8> = (0..256u32)
        .map(|b| b as u8)
        .cycle()
        .take(256 * 4096)
        .collect();
    vec![
        b"".to_vec(),
        b"hello".to_vec(),
        vec![b'x'; 100_000],
        one_mib,
    ]
}

/// Plays the Python script's client part against an echoing peer.
fn talk(conn: &Connection) {
    conn.set_read_timeout(Some(STEP)).unwrap();
    for m in messages() {
        conn.send_bytes(&m).unwrap();
        let back = conn.recv_bytes().unwrap();
        assert_eq!(back.len(), m.len() + 5);
        assert!(back.starts_with(b"echo:") && back[5..] == m[..]);
    }
    conn.send_bytes(b"bye").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"bye");
}

/// Plays the Python script's server part.
fn echo(conn: &Connection) {
    conn.set_read_timeout(Some(STEP)).unwrap();
    loop {
        match conn.recv_bytes() {
            Ok(m) if m == b"bye" => {
                conn.send_bytes(b"bye").unwrap();
                return;
            }
            Ok(m) => conn
                .send_bytes(&[b"echo:".as_slice(), &m].concat())
                .unwrap(),
            Err(NetError::Eof) => return,
            Err(e) => panic!("echo failed: {e}"),
        }
    }
}

/// (family argument for the script, address text for it, the same for shoal) of a
/// fresh address.
fn fresh(family: &str) -> (String, String, String) {
    match family {
        "tcp" => ("tcp".into(), "127.0.0.1:0".into(), "127.0.0.1:0".into()),
        "unix" => {
            let p = socket_path("py").to_string_lossy().into_owned();
            ("unix".into(), p.clone(), p)
        }
        "abstract" => {
            let name = unique("py");
            ("abstract".into(), name.clone(), format!("@{name}"))
        }
        _ => unreachable!(),
    }
}

fn python_listens(family: &str) {
    for py in pythons() {
        let (fam, addr, _) = fresh(family);
        let mut p = Python::start(&py, &["serve", &fam, &addr, "key", "3"]);
        let line = p.line();
        let text = line.strip_prefix("listening ").unwrap().to_owned();
        // Right key.
        let conn = Client::connect(text.as_str(), Some(b"key")).unwrap();
        talk(&conn);
        drop(conn);
        assert_eq!(p.line(), "served", "{}", p.version);
        // Wrong key: refused here and there.
        let err = Client::connect(text.as_str(), Some(b"not the key")).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Authentication(AuthFailure::DigestSentRejected)
            ),
            "{}: {err}",
            p.version
        );
        assert!(p.line().starts_with("auth-error"), "{}", p.version);
        // The listener goes on serving.
        let conn = Client::connect(text.as_str(), Some(b"key")).unwrap();
        talk(&conn);
        drop(conn);
        assert_eq!(p.line(), "served");
        assert_eq!(p.wait(), 0);
    }
}

fn shoal_listens(family: &str) {
    for py in pythons() {
        let (fam, _, addr) = fresh(family);
        let listener = Listener::bind(addr.as_str(), Some(b"key")).unwrap();
        let text = match listener.address() {
            shoal::net::Address::Abstract(n) => String::from_utf8(n.clone()).unwrap(),
            a => a.to_string(),
        };
        // Right key.
        let mut p = Python::start(&py, &["connect", &fam, &text, "key"]);
        let conn = listener.accept_timeout(STEP).unwrap();
        echo(&conn);
        assert_eq!(p.line(), "ok", "{}", p.version);
        assert_eq!(p.wait(), 0);
        // Wrong key: refused here and there.
        let mut p = Python::start(&py, &["connect", &fam, &text, "wrong"]);
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Authentication(AuthFailure::DigestReceivedWrong)
            ),
            "{}: {err}",
            p.version
        );
        assert!(p.line().starts_with("auth-error"), "{}", p.version);
        assert_eq!(p.wait(), 3);
        // The listener goes on serving.
        let mut p = Python::start(&py, &["connect", &fam, &text, "key"]);
        let conn = listener.accept_timeout(STEP).unwrap();
        echo(&conn);
        assert_eq!(p.line(), "ok");
        assert_eq!(p.wait(), 0);
    }
}

#[test]
fn python_listener_shoal_client_tcp() {
    watchdog(|| python_listens("tcp"));
}

#[test]
fn python_listener_shoal_client_unix() {
    watchdog(|| python_listens("unix"));
}

#[test]
fn python_listener_shoal_client_abstract() {
    watchdog(|| python_listens("abstract"));
}

#[test]
fn shoal_listener_python_client_tcp() {
    watchdog(|| shoal_listens("tcp"));
}

#[test]
fn shoal_listener_python_client_unix() {
    watchdog(|| shoal_listens("unix"));
}

#[test]
fn shoal_listener_python_client_abstract() {
    watchdog(|| shoal_listens("abstract"));
}

#[test]
fn no_key_on_either_side() {
    watchdog(|| {
        let py = "python3";
        let mut p = Python::start(py, &["serve", "tcp", "127.0.0.1:0", "-", "1"]);
        let line = p.line();
        let text = line.strip_prefix("listening ").unwrap().to_owned();
        talk(&Client::connect(text.as_str(), None).unwrap());
        assert_eq!(p.line(), "served");

        let listener = Listener::bind("127.0.0.1:0", None).unwrap();
        let text = listener.address().to_string();
        let mut p = Python::start(py, &["connect", "tcp", &text, "-"]);
        echo(&listener.accept_timeout(STEP).unwrap());
        assert_eq!(p.line(), "ok");
    });
}

#[test]
fn refusing_legacy_md5_refuses_only_old_pythons() {
    watchdog(|| {
        let listener = Listener::builder()
            .authkey(b"key")
            .refuse_legacy_md5()
            .bind("127.0.0.1:0")
            .unwrap();
        let text = listener.address().to_string();
        for py in pythons() {
            let mut p = Python::start(&py, &["connect", "tcp", &text, "key"]);
            let minor: u32 = p.version["python 3.".len()..].parse().unwrap();
            let result = listener.accept_timeout(STEP);
            if minor >= 12 {
                echo(&result.unwrap());
                assert_eq!(p.line(), "ok");
            } else {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, NetError::Authentication(AuthFailure::LegacyRefused)),
                    "{err}"
                );
                assert_eq!(p.wait(), 3);
            }
        }
        // The same from the client side, against a Python listener.
        for py in pythons() {
            let mut p = Python::start(&py, &["serve", "tcp", "127.0.0.1:0", "key", "1"]);
            let minor: u32 = p.version["python 3.".len()..].parse().unwrap();
            let line = p.line();
            let text = line.strip_prefix("listening ").unwrap().to_owned();
            let result = Client::builder()
                .authkey(b"key")
                .refuse_legacy_md5()
                .connect(text.as_str());
            if minor >= 12 {
                talk(&result.unwrap());
                assert_eq!(p.line(), "served");
            } else {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, NetError::Authentication(AuthFailure::LegacyRefused)),
                    "{err}"
                );
                // Python sees the connection end in its handshake.
                assert!(p.line().starts_with("conn-error"), "{}", p.version);
            }
            assert_eq!(p.wait(), 0);
        }
    });
}

/// A shoal peer that offers compression talks plainly with Python, which never offers it.
#[cfg(feature = "compression")]
#[test]
fn compression_offers_are_ignored_by_python() {
    watchdog(|| {
        for py in pythons() {
            let mut p = Python::start(&py, &["serve", "tcp", "127.0.0.1:0", "key", "1"]);
            let line = p.line();
            let text = line.strip_prefix("listening ").unwrap().to_owned();
            let conn = Client::builder()
                .authkey(b"key")
                .compression(3)
                .connect(text.as_str())
                .unwrap();
            assert!(!conn.is_compressed());
            talk(&conn);
            drop(conn);
            assert_eq!(p.line(), "served", "{}", p.version);

            let listener = Listener::builder()
                .authkey(b"key")
                .compression(3)
                .bind("127.0.0.1:0")
                .unwrap();
            let text = listener.address().to_string();
            let mut p = Python::start(&py, &["connect", "tcp", &text, "key"]);
            let conn = listener.accept_timeout(STEP).unwrap();
            assert!(!conn.is_compressed());
            echo(&conn);
            assert_eq!(p.line(), "ok", "{}", p.version);
        }
    });
}

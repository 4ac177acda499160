//! TLS under the framing and the HMAC handshake, with a self-signed certificate made in
//! the test (rcgen).
#![cfg(feature = "tls")]

mod common;
mod net_support;

use std::thread;
use std::time::Duration;

use common::watchdog;
use net_support::{tls_configs as configs, STEP};
use shoal::net::{Client, Listener, NetError};

#[test]
fn tls_round_trip_with_a_self_signed_certificate() {
    watchdog(|| {
        let (server_cfg, client_cfg) = configs();
        let listener = Listener::builder()
            .authkey(b"key")
            .tls(server_cfg)
            .bind("127.0.0.1:0")
            .unwrap();
        let address = listener.address().clone();
        let t = thread::spawn(move || {
            let c = Client::builder()
                .authkey(b"key")
                .tls(client_cfg, "localhost")
                .unwrap()
                .connect(&address)
                .unwrap();
            assert!(c.is_encrypted());
            // The server's session tickets make the socket readable, but carry no
            // message.
            assert!(!c.poll(Duration::from_millis(100)).unwrap());
            c.set_read_timeout(Some(STEP)).unwrap();
            c.send_bytes(b"over tls").unwrap();
            let big = c.recv_bytes().unwrap();
            assert_eq!(big.len(), 3 << 20);
            assert!(big.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
            c.send(&("done", 7u64)).unwrap();
        });
        let conn = listener.accept_timeout(STEP).unwrap();
        assert!(conn.is_encrypted());
        conn.set_read_timeout(Some(STEP)).unwrap();
        assert!(conn.poll(STEP).unwrap());
        assert_eq!(conn.recv_bytes().unwrap(), b"over tls");
        let big: Vec<u8> = (0..3usize << 20).map(|i| (i % 253) as u8).collect();
        conn.send_bytes(&big).unwrap();
        assert_eq!(
            conn.recv::<(String, u64)>().unwrap(),
            ("done".to_owned(), 7)
        );
        t.join().unwrap();
        assert!(matches!(conn.recv_bytes(), Err(NetError::Eof)));
    });
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    watchdog(|| {
        let (server_cfg, client_cfg) = configs();
        let listener = Listener::builder()
            .tls(server_cfg)
            .handshake_timeout(Some(Duration::from_secs(5)))
            .bind("127.0.0.1:0")
            .unwrap();
        let address = listener.address().clone();
        let cc = client_cfg.clone();
        let t = thread::spawn(move || {
            Client::builder()
                .tls(cc, "not-localhost.example")
                .unwrap()
                .connect(&address)
                .unwrap_err()
        });
        let server_err = listener.accept_timeout(STEP).unwrap_err();
        let client_err = t.join().unwrap();
        assert!(matches!(client_err, NetError::Tls { .. }), "{client_err}");
        assert!(
            matches!(
                server_err,
                NetError::Tls { .. } | NetError::Eof | NetError::Io { .. }
            ),
            "{server_err}"
        );
        // A plain client cannot talk to a TLS listener either.
        let address = listener.address().clone();
        let t = thread::spawn(move || {
            let c = Client::builder()
                .handshake_timeout(Some(Duration::from_secs(5)))
                .connect(&address)
                .unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            c.send_bytes(b"plain text").unwrap();
            c.recv_bytes().unwrap_err()
        });
        let err = listener.accept_timeout(STEP).unwrap_err();
        assert!(matches!(err, NetError::Tls { .. }), "{err}");
        t.join().unwrap();
        // The listener goes on serving.
        let address = listener.address().clone();
        let t = thread::spawn(move || {
            let c = Client::builder()
                .tls(client_cfg, "localhost")
                .unwrap()
                .connect(&address)
                .unwrap();
            c.send_bytes(b"fine").unwrap();
        });
        let conn = listener.accept_timeout(STEP).unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"fine");
        t.join().unwrap();
    });
}

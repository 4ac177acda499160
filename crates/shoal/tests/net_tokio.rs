//! The async accept of `net::Listener` on tokio.
#![cfg(feature = "tokio")]

mod common;
mod net_support;

use std::thread;
use std::time::Duration;

use common::watchdog;
use net_support::{unique, STEP};
use shoal::net::{Client, Listener, NetError};

#[test]
fn async_accept_serves_clients_and_survives_bad_ones() {
    watchdog(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        for address in ["127.0.0.1:0".to_owned(), format!("@{}", unique("tokio"))] {
            let listener = Listener::builder()
                .authkey(b"k")
                .handshake_timeout(Some(Duration::from_secs(5)))
                .bind(address.as_str())
                .unwrap();
            let target = listener.address().clone();
            let clients = thread::spawn(move || {
                // A wrong key first, then three good clients.
                let err = Client::connect(&target, Some(b"wrong")).unwrap_err();
                assert!(matches!(err, NetError::Authentication(_)), "{err}");
                for i in 0..3u8 {
                    let c = Client::connect(&target, Some(b"k")).unwrap();
                    c.send_bytes(&[i]).unwrap();
                }
            });
            rt.block_on(async {
                let err = listener.accept_async().await.unwrap_err();
                assert!(matches!(err, NetError::Authentication(_)), "{err}");
                // Handshakes run side by side, so a later client may finish its own
                // first: every client is served, in whichever order.
                let mut seen = Vec::new();
                for _ in 0..3u8 {
                    let conn = listener.accept_async().await.unwrap();
                    conn.set_read_timeout(Some(STEP)).unwrap();
                    seen.extend(conn.recv_bytes().unwrap());
                }
                seen.sort_unstable();
                assert_eq!(seen, [0, 1, 2]);
            });
            clients.join().unwrap();
            // The blocking accept still works on the same listener.
            let target = listener.address().clone();
            let t = thread::spawn(move || Client::connect(&target, Some(b"k")).unwrap());
            listener.accept_timeout(STEP).unwrap();
            t.join().unwrap();
        }
    });
}

#[test]
fn async_accept_is_not_held_up_by_a_silent_client() {
    // The handshake limit is longer than the watchdog: waiting for it would fail.
    common::watchdog_secs(30, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let listener = Listener::builder()
            .authkey(b"k")
            .handshake_timeout(Some(Duration::from_secs(60)))
            .bind("127.0.0.1:0")
            .unwrap();
        let shoal::net::Address::Tcp(addr) = listener.address().clone() else {
            unreachable!()
        };
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        let target = listener.address().clone();
        let client = thread::spawn(move || {
            let c = Client::connect(&target, Some(b"k")).unwrap();
            c.send_bytes(b"not delayed").unwrap();
        });
        let conn = rt.block_on(listener.accept_async()).unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"not delayed");
        client.join().unwrap();
    });
}

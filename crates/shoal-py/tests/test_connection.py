"""Listener and Client from Python: authentication, and a plain multiprocessing peer."""

from __future__ import annotations

import multiprocessing.connection as std_connection
import subprocess
import threading

import pytest
import shoal
from shoal.connection import Client, Listener


def serve_once(listener, out):
    try:
        with listener.accept() as conn:
            conn.send(conn.recv() * 2)
    except (OSError, EOFError, shoal.AuthenticationError) as e:  # reported to the test thread
        out.append(e)


def test_tcp_with_authkey():
    with Listener(("127.0.0.1", 0), authkey=b"secret") as listener:
        errors: list = []
        t = threading.Thread(target=serve_once, args=(listener, errors))
        t.start()
        with Client(listener.address, authkey=b"secret") as conn:
            conn.send(21)
            assert conn.recv() == 42
        t.join(30)
        assert not errors


def test_wrong_key_is_refused():
    with Listener(("127.0.0.1", 0), authkey=b"right") as listener:
        errors: list = []
        t = threading.Thread(target=serve_once, args=(listener, errors))
        t.daemon = True
        t.start()
        with pytest.raises(shoal.AuthenticationError):
            Client(listener.address, authkey=b"wrong")


def test_unix_socket_and_a_standard_library_client():
    with Listener(family="AF_UNIX", authkey=b"k") as listener:
        errors: list = []
        t = threading.Thread(target=serve_once, args=(listener, errors))
        t.start()
        with std_connection.Client(listener.address, authkey=b"k") as conn:
            conn.send("ab")
            assert conn.recv() == "abab"
        t.join(30)
        assert not errors


def test_standard_library_listener_and_shoal_client():
    with std_connection.Listener(("127.0.0.1", 0), authkey=b"k") as listener:
        t = threading.Thread(target=lambda: serve_once(listener, []))
        t.start()
        with Client(listener.address, authkey=b"k") as conn:
            conn.send(5)
            assert conn.recv() == 10
        t.join(30)


def test_end_of_stream_and_wait():
    with Listener(("127.0.0.1", 0)) as listener:
        client = Client(listener.address)
        server = listener.accept()
        assert shoal.connection.wait([server], timeout=0.01) == []
        client.send_bytes(b"x")
        assert shoal.connection.wait([server], timeout=10) == [server]
        assert server.recv_bytes() == b"x"
        client.close()
        with pytest.raises(EOFError):
            server.recv_bytes()
        server.close()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost, made with the openssl command."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


def test_tls_and_compression(certificate):
    cert, key = certificate
    with Listener(("127.0.0.1", 0), authkey=b"k", tls_cert=cert, tls_key=key, compression=3) as listener:
        errors: list = []
        t = threading.Thread(target=serve_once, args=(listener, errors))
        t.start()
        port = listener.address[1]
        with Client(("127.0.0.1", port), authkey=b"k", tls_ca=cert, tls_server_name="localhost",
                    compression=3) as conn:
            assert conn.encrypted and conn.compressed
            conn.send("x" * 100_000)
            assert conn.recv() == "x" * 200_000
        t.join(30)
        assert not errors


def test_tls_with_an_untrusted_certificate_fails(certificate, tmp_path):
    cert, key = certificate
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(other / "k.pem"),
         "-out", str(other / "c.pem"), "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )
    with Listener(("127.0.0.1", 0), tls_cert=cert, tls_key=key) as listener:
        t = threading.Thread(target=serve_once, args=(listener, []), daemon=True)
        t.start()
        with pytest.raises(OSError):
            Client(listener.address, tls_ca=str(other / "c.pem"), tls_server_name="localhost")

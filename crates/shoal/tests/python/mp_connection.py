"""Python's own multiprocessing.connection on one side of shoal's net tests.

    mp_connection.py serve FAMILY ADDRESS KEY COUNT   listen, print the address, echo COUNT clients
    mp_connection.py connect FAMILY ADDRESS KEY       connect, run the message script, print "ok"

FAMILY is tcp (ADDRESS host:port, [v6]:port), unix (a path) or abstract (a name);
KEY is the auth key, or "-" for none. Every line printed is flushed at once; an
authentication failure prints "auth-error ..." (and exits 3 for connect).
"""
import sys
from multiprocessing.connection import AuthenticationError, Client, Listener

# The messages the connecting side sends, each echoed back with an "echo:" prefix:
# empty, small, above Python's 16 KiB single-write limit, and 1 MiB.
MESSAGES = [b"", b"hello", b"x" * 100_000, bytes(range(256)) * 4096]


def address(family, text):
    if family == "tcp":
        host, port = text.rsplit(":", 1)
        return (host.strip("[]"), int(port))
    if family == "unix":
        return text
    if family == "abstract":
        return "\0" + text
    raise SystemExit("unknown family " + family)


def key(text):
    return None if text == "-" else text.encode()


def echo(conn):
    while True:
        try:
            m = conn.recv_bytes()
        except EOFError:
            return
        if m == b"bye":
            conn.send_bytes(b"bye")
            return
        conn.send_bytes(b"echo:" + m)


def serve(family, text, authkey, count):
    with Listener(address(family, text), authkey=key(authkey)) as listener:
        a = listener.address
        if isinstance(a, tuple):
            a = "[%s]:%d" % a[:2] if ":" in a[0] else "%s:%d" % a
        elif isinstance(a, bytes):
            a = "@" + a[1:].decode()
        elif a.startswith("\0"):
            a = "@" + a[1:]
        print("listening " + a, flush=True)
        for _ in range(count):
            try:
                conn = listener.accept()
            except AuthenticationError as e:
                print("auth-error " + str(e), flush=True)
                continue
            except (EOFError, OSError) as e:
                print("conn-error " + repr(e), flush=True)
                continue
            with conn:
                echo(conn)
            print("served", flush=True)


def connect(family, text, authkey):
    try:
        conn = Client(address(family, text), authkey=key(authkey))
    except AuthenticationError as e:
        print("auth-error " + str(e), flush=True)
        sys.exit(3)
    with conn:
        for m in MESSAGES:
            conn.send_bytes(m)
            r = conn.recv_bytes()
            assert r == b"echo:" + m, (len(r), len(m))
        conn.send_bytes(b"bye")
        assert conn.recv_bytes() == b"bye"
    print("ok", flush=True)


if __name__ == "__main__":
    print("python %d.%d" % sys.version_info[:2], flush=True)
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        connect(sys.argv[2], sys.argv[3], sys.argv[4])

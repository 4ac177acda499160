"""Listener and Client with an auth key: a wrong key is refused, the right one talks.

Output:
wrong key refused
server got: hello
client got: HELLO
"""

import shoal as multiprocessing
from shoal.connection import Client, Listener


def server(listener, ready):
    ready.set()
    for _ in range(2):
        try:
            with listener.accept() as conn:
                msg = conn.recv()
                print("server got:", msg, flush=True)
                conn.send(msg.upper())
        except multiprocessing.AuthenticationError:
            pass


if __name__ == "__main__":
    import threading

    listener = Listener(("127.0.0.1", 0), authkey=b"secret key")
    ready = threading.Event()
    t = threading.Thread(target=server, args=(listener, ready))
    t.start()
    ready.wait(10)
    try:
        Client(listener.address, authkey=b"wrong key")
    except multiprocessing.AuthenticationError:
        print("wrong key refused", flush=True)
    with Client(listener.address, authkey=b"secret key") as conn:
        conn.send("hello")
        print("client got:", conn.recv())
    t.join(30)
    listener.close()

"""A pipe between a parent and its child: the child sends, the parent receives until
end of stream.

Output:
received 0
received 1
received 2
end of stream
"""

import shoal as multiprocessing


def child(conn):
    for i in range(3):
        conn.send(i)
    conn.close()


if __name__ == "__main__":
    receiver, sender = multiprocessing.Pipe(duplex=False)
    p = multiprocessing.Process(target=child, args=(sender,))
    p.start()
    sender.close()  # the parent's copy: end of stream comes once the child's is closed too
    while True:
        try:
            print("received", receiver.recv())
        except EOFError:
            print("end of stream")
            break
    p.join()

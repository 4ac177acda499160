"""A shared array of characters, changed in place by a child.

Output:
before b'hello world'
after b'HELLO WORLD'
"""

import shoal as multiprocessing


def shout(text):
    with text.get_lock():
        text.value = text.value.upper()


if __name__ == "__main__":
    text = multiprocessing.Array("c", b"hello world")
    print("before", text.value)
    p = multiprocessing.Process(target=shout, args=(text,))
    p.start()
    p.join()
    print("after", text.value)

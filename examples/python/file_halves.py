"""A file copied in two halves by two processes writing at their own offsets.

Output:
copied 1000000 bytes, identical: True
"""

import os
import tempfile

import shoal as multiprocessing


def copy_range(src, dst, start, end):
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        fin.seek(start)
        fout.seek(start)
        fout.write(fin.read(end - start))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
        data = os.urandom(1_000_000)
        with open(src, "wb") as f:
            f.write(data)
        with open(dst, "wb") as f:
            f.truncate(len(data))
        half = len(data) // 2
        ps = [
            multiprocessing.Process(target=copy_range, args=(src, dst, 0, half)),
            multiprocessing.Process(target=copy_range, args=(src, dst, half, len(data))),
        ]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        with open(dst, "rb") as f:
            print(f"copied {len(data)} bytes, identical: {f.read() == data}")

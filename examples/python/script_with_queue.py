"""A script calls another program with arguments and a queue: the child is any
program started with `shoal.subprocess.Popen`, here a Python one that reads its
arguments, attaches the queue with `shoal.inherited` and answers on it.

Output:
the script was called with ['3', 'squares']
answers: [0, 1, 4]
exit status: 0
"""

import sys

import shoal
import shoal.subprocess

CHILD = """
import sys, shoal
answers = shoal.inherited("answers")
n, what = int(sys.argv[1]), sys.argv[2]
answers.put(sys.argv[1:])
answers.put([i * i for i in range(n)] if what == "squares" else [])
"""

if __name__ == "__main__":
    answers = shoal.Queue()
    child = shoal.subprocess.Popen([sys.executable, "-c", CHILD, "3", "squares"], pass_objects={"answers": answers})
    print("the script was called with", answers.get(timeout=60))
    print("answers:", answers.get(timeout=60))
    print("exit status:", child.wait(timeout=60))

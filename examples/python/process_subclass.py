"""A Process subclass that overrides run(), and its exit code.

Output:
Worker-1 squares 7: 49
exit code 0
"""

import shoal as multiprocessing


class Squarer(multiprocessing.Process):
    def __init__(self, x, results):
        super().__init__(name="Worker-1")
        self.x, self.results = x, results

    def run(self):
        self.results.put(f"{multiprocessing.current_process().name} squares {self.x}: {self.x * self.x}")


if __name__ == "__main__":
    results = multiprocessing.SimpleQueue()
    p = Squarer(7, results)
    p.start()
    print(results.get())
    p.join()
    print("exit code", p.exitcode)

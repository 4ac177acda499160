"""Word counts gathered by three processes into one shoal.SharedDict (no manager
server), with a SharedList of the lines each worker finished, in order of arrival.

Output:
the 6
fox 3
dog 2
lines done 6
"""

import shoal as multiprocessing

LINES = [
    "the quick brown fox",
    "the lazy dog",
    "the fox jumps",
    "over the dog",
    "the end",
    "the fox again",
]


def count(lines, counts, done):
    local = {}
    for line in lines:
        for word in line.split():
            local[word] = local.get(word, 0) + 1
        done.append(line)
    # Each worker owns the keys "<word>/<worker>", so no two write the same key.
    worker = multiprocessing.current_process().name
    counts.update({f"{word}/{worker}": n for word, n in local.items()})


if __name__ == "__main__":
    counts = multiprocessing.SharedDict()
    done = multiprocessing.SharedList()
    ps = [
        multiprocessing.Process(target=count, args=(LINES[i::3], counts, done), name=f"w{i}")
        for i in range(3)
    ]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    totals = {}
    for key, n in counts.items():
        word = key.split("/")[0]
        totals[word] = totals.get(word, 0) + n
    for word in ("the", "fox", "dog"):
        print(word, totals[word])
    print("lines done", len(done))

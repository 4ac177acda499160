"""A shared bank account made correct by its lock: four processes deposit and
withdraw; without the lock some updates would be lost.

Output:
balance 1000
"""

import shoal as multiprocessing


def deposit(balance, times):
    for _ in range(times):
        with balance.get_lock():
            balance.value += 2


def withdraw(balance, times):
    for _ in range(times):
        with balance.get_lock():
            balance.value -= 1


if __name__ == "__main__":
    balance = multiprocessing.Value("i", 0)
    ps = [multiprocessing.Process(target=deposit, args=(balance, 1000)) for _ in range(2)]
    ps += [multiprocessing.Process(target=withdraw, args=(balance, 1500)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("balance", balance.value)

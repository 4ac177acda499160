//! The spin-then-sleep wait shared by the primitives that sleep on a futex word.
#![deny(unsafe_code)]

use std::sync::atomic::AtomicU32;

use crate::sys::{self, Deadline, WaitOutcome};

/// Spins briefly, with exponential backoff and then a few yields, until `ready` holds.
/// Returns whether it did.
///
/// Waking a sleeping process on another CPU costs ~50 µs, a store seen by a spinning one
/// ~0.1 µs: when the other side is busy and answers quickly (ping-pong), the answer is
/// met here. The pause phase is short (31 `pause` instructions): it only helps while the
/// other side runs on another CPU, and when both share one CPU (a loaded machine) every
/// pause delays the answer. The yields that follow hand the CPU to the other side in
/// that case, and cost one cheap system call each otherwise. Measured on a loaded 2-vCPU
/// machine, a 1023-pause budget made an Event ping-pong that shares a CPU 12 times
/// slower (26 µs against 2 µs) and a 4-process barrier 10 times slower.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    for round in 0..5u32 {
        if ready() {
            return true;
        }
        for _ in 0..(1u32 << round) {
            std::hint::spin_loop();
        }
    }
    for _ in 0..8 {
        if ready() {
            return true;
        }
        std::thread::yield_now();
    }
    ready()
}

/// Sleeps on `word` while it holds `expected`, at most until `deadline`.
///
/// The kernel fails a futex wait only for an unmapped word (`EFAULT`), which a live
/// reference into a mapped segment rules out; should it happen anyway, the caller is
/// told it was woken (it re-checks its condition), after a yield so that it cannot
/// turn into a hot loop with the CPU all to itself.
pub(crate) fn sleep_on(word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitOutcome {
    match sys::futex_wait(word, expected, deadline) {
        Ok(outcome) => outcome,
        Err(_) => {
            std::thread::yield_now();
            WaitOutcome::Woken
        }
    }
}

/// Wakes every process and thread sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    sys::futex_wake(word, u32::MAX);
}

/// Wakes one sleeper on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    sys::futex_wake(word, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_until_sees_a_ready_condition() {
        assert!(spin_until(|| true));
        assert!(!spin_until(|| false));
    }
}

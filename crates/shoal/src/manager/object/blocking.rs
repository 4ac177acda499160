//! The objects calls may wait on: `Queue`, `Lock`/`RLock`, `Semaphore`, `Condition`,
//! `Barrier` (and `Event`'s wait), each a state under a mutex with a condition variable.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_pickle::Value;

use crate::manager::args::{bind, integer, seconds, truthy, Kwds};
use crate::manager::pickle;
use crate::manager::CallError;

use super::{int, none, Ctx, Reply};

/// A mutex and the condition its waiters sleep on.
#[derive(Default)]
pub(crate) struct Blocking<T> {
    pub(super) state: Mutex<T>,
    pub(super) changed: Condvar,
}

/// How long one slice of a blocking wait lasts before the server checks whether the
/// client is still there (a client killed while waiting must not take an item or a
/// lock afterwards).
const SLICE: Duration = Duration::from_millis(100);

impl<T> Blocking<T> {
    pub(super) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `ready` holds (the guard), the deadline passes or the client goes
    /// away (`None` for both).
    pub(super) fn wait_for(
        &self,
        timeout: Option<Duration>,
        ctx: &Ctx<'_>,
        mut ready: impl FnMut(&mut T) -> bool,
    ) -> Option<MutexGuard<'_, T>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut guard = self.lock();
        loop {
            if ready(&mut guard) {
                return Some(guard);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if d <= now => return None,
                Some(d) => (d - now).min(SLICE),
                None => SLICE,
            };
            guard = self
                .changed
                .wait_timeout(guard, slice)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if (ctx.abandoned)() {
                return None;
            }
        }
    }
}

pub(crate) struct QueueState {
    pub(super) items: VecDeque<Value>,
    pub(super) maxsize: usize,
    pub(super) unfinished: u64,
}

#[derive(Default)]
pub(crate) struct LockState {
    /// The connection holding the lock.
    pub(super) owner: Option<u64>,
    /// How many times the owner took it (an `RLock` counts).
    pub(super) count: u32,
}

pub(crate) struct SemaphoreState {
    pub(super) value: u64,
    /// The start value, which a bounded semaphore may not exceed.
    pub(super) bound: Option<u64>,
}

#[derive(Default)]
pub(crate) struct ConditionState {
    pub(super) lock: LockState,
    /// The tickets of the waiters not yet notified, in order of arrival.
    pub(super) waiters: VecDeque<u64>,
    pub(super) next_ticket: u64,
}

pub(crate) struct BarrierState {
    pub(super) parties: u64,
    /// How many wait in the current round.
    pub(super) count: u64,
    pub(super) round: u64,
    pub(super) broken: bool,
    /// The round a `reset` ended (its waiters are told the barrier broke).
    pub(super) reset_round: Option<u64>,
    pub(super) timeout: Option<Duration>,
}

pub(super) fn queue_call(
    q: &Blocking<QueueState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    let full = |s: &QueueState| s.maxsize > 0 && s.items.len() >= s.maxsize;
    match method {
        "put" | "put_nowait" => {
            let (item, block, timeout) = if method == "put" {
                let [item, block, timeout] =
                    bind(method, args, kwds, ["item", "block", "timeout"], 1)?;
                (item, block.as_ref().is_none_or(truthy), timeout)
            } else {
                let [item] = bind(method, args, kwds, ["item"], 1)?;
                (item, false, None)
            };
            let timeout = if block {
                seconds(timeout.as_ref(), false)?
            } else {
                Some(Duration::ZERO)
            };
            match q.wait_for(timeout, ctx, |s| !full(s)) {
                Some(mut s) => {
                    s.items.push_back(item.unwrap_or(Value::None));
                    s.unfinished += 1;
                    q.changed.notify_all();
                    none()
                }
                None => Err(CallError::new("queue", "Full", vec![])),
            }
        }
        "get" | "get_nowait" => {
            let (block, timeout) = if method == "get" {
                let [block, timeout] = bind(method, args, kwds, ["block", "timeout"], 0)?;
                (block.as_ref().is_none_or(truthy), timeout)
            } else {
                bind::<0>(method, args, kwds, [], 0)?;
                (false, None)
            };
            let timeout = if block {
                seconds(timeout.as_ref(), false)?
            } else {
                Some(Duration::ZERO)
            };
            match q.wait_for(timeout, ctx, |s| !s.items.is_empty()) {
                Some(mut s) => {
                    let item = s.items.pop_front().unwrap_or(Value::None);
                    q.changed.notify_all();
                    Ok(item.into())
                }
                None => Err(CallError::new("queue", "Empty", vec![])),
            }
        }
        "qsize" => Ok(int(q.lock().items.len()).into()),
        "empty" => Ok(Value::Bool(q.lock().items.is_empty()).into()),
        "full" => Ok(Value::Bool(full(&q.lock())).into()),
        "task_done" => {
            let mut s = q.lock();
            if s.unfinished == 0 {
                return Err(CallError::value_error("task_done() called too many times"));
            }
            s.unfinished -= 1;
            q.changed.notify_all();
            none()
        }
        _ => {
            // "join"
            q.wait_for(None, ctx, |s| s.unfinished == 0);
            none()
        }
    }
}

pub(super) fn lock_call(
    l: &Blocking<LockState>,
    reentrant: bool,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    if method == "release" {
        bind::<0>(method, args, kwds, [], 0)?;
        let mut s = l.lock();
        if reentrant {
            if s.owner != Some(ctx.conn) {
                return Err(CallError::runtime_error("cannot release un-acquired lock"));
            }
            s.count -= 1;
            if s.count == 0 {
                s.owner = None;
            }
        } else {
            if s.owner.is_none() {
                return Err(CallError::runtime_error("release unlocked lock"));
            }
            s.owner = None;
            s.count = 0;
        }
        l.changed.notify_all();
        return none();
    }
    let timeout = acquire_timeout(method, args, kwds)?;
    let me = ctx.conn;
    let got = l
        .wait_for(timeout, ctx, |s| {
            s.owner.is_none() || (reentrant && s.owner == Some(me))
        })
        .map(|mut s| {
            s.owner = Some(me);
            s.count += 1;
        })
        .is_some();
    Ok(Value::Bool(got).into())
}

/// The time limit of `acquire(blocking=True, timeout=-1)`: `None` for none, zero for a
/// non-blocking call.
pub(super) fn acquire_timeout(
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
) -> Result<Option<Duration>, CallError> {
    let [blocking, timeout] = bind(method, args, kwds, ["blocking", "timeout"], 0)?;
    let blocking = blocking.as_ref().is_none_or(truthy);
    let timeout = match timeout {
        Some(t) if !blocking && t != Value::None && !pickle::eq(&t, &Value::I64(-1)) => {
            return Err(CallError::value_error(
                "can't specify a timeout for a non-blocking call",
            ))
        }
        Some(t) => {
            if matches!(t, Value::I64(i) if i < -1)
                || matches!(t, Value::F64(f) if f < 0.0 && f != -1.0)
            {
                return Err(CallError::value_error(
                    "timeout value must be a non-negative number",
                ));
            }
            seconds(Some(&t), true)?
        }
        None => None,
    };
    Ok(if blocking {
        timeout
    } else {
        Some(Duration::ZERO)
    })
}

pub(super) fn semaphore_call(
    sem: &Blocking<SemaphoreState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    if method == "release" {
        let [n] = bind(method, args, kwds, ["n"], 0)?;
        let n = match n {
            Some(v) => integer(&v, "n")?,
            None => 1,
        };
        if n < 1 {
            return Err(CallError::value_error("n must be one or more"));
        }
        let mut s = sem.lock();
        let value = s.value + n as u64;
        if s.bound.is_some_and(|b| value > b) {
            return Err(CallError::value_error("Semaphore released too many times"));
        }
        s.value = value;
        sem.changed.notify_all();
        return none();
    }
    let timeout = acquire_timeout(method, args, kwds)?;
    let got = sem
        .wait_for(timeout, ctx, |s| s.value > 0)
        .map(|mut s| s.value -= 1)
        .is_some();
    Ok(Value::Bool(got).into())
}

pub(super) fn condition_call(
    c: &Blocking<ConditionState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    let me = ctx.conn;
    let owned = |s: &ConditionState, what: &str| {
        if s.lock.owner == Some(me) {
            Ok(())
        } else {
            Err(CallError::runtime_error(format!(
                "cannot {what} un-acquired lock"
            )))
        }
    };
    match method {
        "acquire" => {
            let timeout = acquire_timeout(method, args, kwds)?;
            let got = c
                .wait_for(timeout, ctx, |s| {
                    s.lock.owner.is_none() || s.lock.owner == Some(me)
                })
                .map(|mut s| {
                    s.lock.owner = Some(me);
                    s.lock.count += 1;
                })
                .is_some();
            Ok(Value::Bool(got).into())
        }
        "release" => {
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = c.lock();
            owned(&s, "release")?;
            s.lock.count -= 1;
            if s.lock.count == 0 {
                s.lock.owner = None;
            }
            c.changed.notify_all();
            none()
        }
        "wait" => {
            let [timeout] = bind(method, args, kwds, ["timeout"], 0)?;
            let timeout = seconds(timeout.as_ref(), true)?;
            let (ticket, count) = {
                let mut s = c.lock();
                owned(&s, "wait on")?;
                let ticket = s.next_ticket;
                s.next_ticket += 1;
                s.waiters.push_back(ticket);
                let count = std::mem::take(&mut s.lock.count);
                s.lock.owner = None;
                c.changed.notify_all();
                (ticket, count)
            };
            let notified = c
                .wait_for(timeout, ctx, |s| !s.waiters.contains(&ticket))
                .is_some();
            // Taken again before returning, notified or not, as Python's wait does.
            let Some(mut s) = c.wait_for(None, ctx, |s| s.lock.owner.is_none()) else {
                c.lock().waiters.retain(|t| *t != ticket);
                return Ok(Value::Bool(false).into());
            };
            s.waiters.retain(|t| *t != ticket);
            s.lock.owner = Some(me);
            s.lock.count = count;
            Ok(Value::Bool(notified).into())
        }
        "notify" => {
            let [n] = bind(method, args, kwds, ["n"], 0)?;
            let n = match n {
                Some(v) => integer(&v, "n")?.max(0) as usize,
                None => 1,
            };
            let mut s = c.lock();
            owned(&s, "notify on")?;
            let n = n.min(s.waiters.len());
            s.waiters.drain(..n);
            c.changed.notify_all();
            none()
        }
        _ => {
            // "notify_all"
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = c.lock();
            owned(&s, "notify on")?;
            s.waiters.clear();
            c.changed.notify_all();
            none()
        }
    }
}

pub(super) fn broken_barrier() -> CallError {
    CallError::new("threading", "BrokenBarrierError", vec![])
}

pub(super) fn barrier_call(
    b: &Blocking<BarrierState>,
    method: &str,
    args: Vec<Value>,
    kwds: Kwds,
    ctx: &Ctx<'_>,
) -> Result<Reply, CallError> {
    match method {
        "__getattribute__" => {
            let [name] = bind(method, args, kwds, ["name"], 1)?;
            let s = b.lock();
            match name {
                Some(Value::String(n)) if n == "parties" => Ok(Value::I64(s.parties as i64).into()),
                Some(Value::String(n)) if n == "n_waiting" => Ok(Value::I64(s.count as i64).into()),
                Some(Value::String(n)) if n == "broken" => Ok(Value::Bool(s.broken).into()),
                other => Err(CallError::attribute_error(format!(
                    "'Barrier' object has no attribute {}",
                    pickle::repr(&other.unwrap_or(Value::None))
                ))),
            }
        }
        "wait" => {
            let [timeout] = bind(method, args, kwds, ["timeout"], 0)?;
            let (index, round, timeout) = {
                let mut s = b.lock();
                if s.broken {
                    return Err(broken_barrier());
                }
                let index = s.count;
                s.count += 1;
                if s.count == s.parties {
                    s.count = 0;
                    s.round += 1;
                    b.changed.notify_all();
                    return Ok(Value::I64(index as i64).into());
                }
                let timeout = match timeout {
                    Some(t) => seconds(Some(&t), true)?,
                    None => s.timeout,
                };
                (index, s.round, timeout)
            };
            match b.wait_for(timeout, ctx, |s| s.round != round || s.broken) {
                Some(s) if s.round != round && s.reset_round != Some(round) => {
                    Ok(Value::I64(index as i64).into())
                }
                Some(_) => Err(broken_barrier()),
                None => {
                    // Timed out (or the client went): the barrier breaks, as Python's.
                    let mut s = b.lock();
                    if s.round == round {
                        s.broken = true;
                        s.count = s.count.saturating_sub(1);
                        b.changed.notify_all();
                    }
                    Err(broken_barrier())
                }
            }
        }
        "abort" => {
            bind::<0>(method, args, kwds, [], 0)?;
            b.lock().broken = true;
            b.changed.notify_all();
            none()
        }
        _ => {
            // "reset"
            bind::<0>(method, args, kwds, [], 0)?;
            let mut s = b.lock();
            if s.count > 0 {
                s.reset_round = Some(s.round);
            }
            s.count = 0;
            s.round += 1;
            s.broken = false;
            b.changed.notify_all();
            none()
        }
    }
}

//! `Value::lock`, `Array::lock` and `AsyncResult::get_timeout` return one flat `Result`
//! with one error enum; the errors' messages are checked word for word.

use std::time::Duration;

use shoal::pool::TaskError;
use shoal::sync::GuardError;
use shoal::{Array, Pool, Process, Value};

mod common;
use common::watchdog;

fn die_holding((value, array): (Value<u32>, Array<u8>)) {
    let mut v = value.lock().expect("a lock, no holder died");
    *v = 7;
    let a = array.lock().expect("a lock, no holder died");
    // Both guards stay held: the process exits holding both locks.
    std::mem::forget(v);
    std::mem::forget(a);
    std::process::exit(0);
}
shoal::entry!(die_holding);

#[test]
fn a_dead_holder_is_one_variant_of_one_error() {
    watchdog(|| {
        let value = Value::new(0u32).unwrap();
        let array = Array::new(&[1u8, 2, 3]).unwrap();
        let child = Process::new(die_holding, (value.clone(), array.clone()))
            .start()
            .unwrap();
        assert_eq!(
            child.join_timeout(Duration::from_secs(60)).unwrap(),
            Some(0)
        );

        let err = value.lock().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, GuardError::OwnerDied(_)), "{err:?}");
        assert!(text.contains(&child.pid().to_string()), "{text}");
        // The guard is inside: the half-done update is visible, and the lock is held.
        let guard = err.into_guard().unwrap();
        assert_eq!(*guard, 7);
        drop(guard);
        assert_eq!(*value.lock().unwrap(), 7, "reported once, usable again");

        let guard = array.lock().or_else(GuardError::into_guard).unwrap();
        assert_eq!(&*guard, &[1, 2, 3]);
    });
}

#[test]
fn no_lock_is_the_other_variant_with_its_sentence() {
    let value = Value::without_lock(1u64).unwrap();
    let err = value.lock().unwrap_err();
    assert!(matches!(err, GuardError::NoLock(_)));
    assert_eq!(
        err.to_string(),
        "this shared value was created without a lock"
    );
    let no_lock = value.lock().or_else(GuardError::into_guard).unwrap_err();
    assert_eq!(
        no_lock.to_string(),
        "this shared value was created without a lock"
    );

    let array = Array::without_lock(&[0u8; 4]).unwrap();
    assert_eq!(
        array.lock().unwrap_err().to_string(),
        "this shared array was created without a lock"
    );
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}
shoal::task!(nap);

#[test]
fn get_timeout_is_flat_and_can_wait_again() {
    watchdog(|| {
        let pool = Pool::new(1).unwrap();
        let mut pending = pool.apply_async(nap, 400);
        let err = pending.get_timeout(Duration::from_millis(1)).unwrap_err();
        assert_eq!(
            err,
            TaskError::WaitTimeout {
                waited: Duration::from_millis(1)
            }
        );
        assert_eq!(
            err.to_string(),
            "the result was not ready within 1ms; the work goes on and can be waited for again"
        );
        assert_eq!(err.task(), None);
        // The same handle waits again and gets the result; a third call is told it was
        // taken.
        assert_eq!(pending.get_timeout(Duration::from_secs(60)), Ok(400));
        let taken = pending.get_timeout(Duration::ZERO).unwrap_err();
        assert_eq!(taken, TaskError::Taken);
        assert_eq!(
            taken.to_string(),
            "the result was already taken from this handle"
        );
    });
}

fn hundred_over(x: i32) -> i32 {
    100 / x
}
shoal::task!(hundred_over);

#[test]
fn get_timeout_reports_the_task_error_in_the_same_enum() {
    watchdog(|| {
        let pool = Pool::new(1).unwrap();
        let mut failing = pool.apply_async(hundred_over, 0);
        let err = failing.get_timeout(Duration::from_secs(60)).unwrap_err();
        assert!(err.is_panic(), "{err}");
        assert!(
            err.to_string().starts_with("task 0 panicked in worker"),
            "{err}"
        );
    });
}

//! A property test of the ring (through `Queue`'s raw-bytes API) against a `VecDeque`
//! model, single-threaded so that every `Full` and `Empty` is predictable.

use std::collections::VecDeque;

use proptest::prelude::*;
use shoal::channel::{GetError, PutError, Queue};

/// 16 cells of 64 bytes (48 data bytes each); messages up to 8 cells are carried inline.
const CELLS: usize = 16;
const DATA: usize = 48;

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8),
    Get,
    PutMany(Vec<usize>),
    GetMany(usize),
    Len,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..=8 * DATA, any::<u8>()).prop_map(|(n, b)| Op::Put(n, b)),
        4 => Just(Op::Get),
        1 => proptest::collection::vec(0usize..=2 * DATA, 0..6).prop_map(Op::PutMany),
        1 => Just(Op::Len),
        2 => (1usize..6).prop_map(Op::GetMany),
    ]
}

fn cells_for(len: usize) -> usize {
    len.div_ceil(DATA).max(1)
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_a_vecdeque(ops in proptest::collection::vec(op(), 1..200), maxsize in 0usize..6) {
        let q: Queue<()> = Queue::builder()
            .cell_size(64)
            .capacity_bytes(CELLS * 64)
            .maxsize(maxsize)
            .build()
            .unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut seed = 0u8;
        let used = |m: &VecDeque<Vec<u8>>| m.iter().map(|v| cells_for(v.len())).sum::<usize>();
        let fits = |m: &VecDeque<Vec<u8>>, len: usize| {
            used(m) + cells_for(len) <= CELLS && (maxsize == 0 || m.len() < maxsize)
        };
        for op in ops {
            match op {
                Op::Put(n, s) => {
                    let v = body(n, s);
                    let expect_ok = fits(&model, n);
                    match q.try_put_bytes(&v) {
                        Ok(()) => {
                            prop_assert!(expect_ok, "put of {} succeeded on a full model", n);
                            model.push_back(v);
                        }
                        Err(PutError::Full(())) => prop_assert!(!expect_ok, "put of {} reported full", n),
                        Err(e) => prop_assert!(false, "unexpected {}", e),
                    }
                }
                Op::PutMany(sizes) => {
                    // put_many blocks while full: only call it when everything fits.
                    let msgs: Vec<Vec<u8>> = sizes.iter().map(|&n| { seed = seed.wrapping_add(1); body(n, seed) }).collect();
                    let mut trial = model.clone();
                    let mut all_fit = true;
                    for m in &msgs {
                        if !fits(&trial, m.len()) { all_fit = false; break; }
                        trial.push_back(m.clone());
                    }
                    if all_fit {
                        for m in &msgs {
                            q.put_bytes(m).unwrap();
                        }
                        model = trial;
                    }
                }
                Op::Get => match q.try_get_bytes() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(GetError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                },
                Op::GetMany(n) => match q.get_bytes_many(n, Some(std::time::Duration::ZERO)) {
                    Ok(vs) => {
                        prop_assert_eq!(vs.len(), n.min(model.len()));
                        for v in vs {
                            prop_assert_eq!(Some(v), model.pop_front());
                        }
                    }
                    Err(GetError::Timeout) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                },
                Op::Len => {
                    prop_assert_eq!(q.len(), model.len());
                    prop_assert_eq!(q.is_empty(), model.is_empty());
                }
            }
        }
        while let Some(v) = model.pop_front() {
            prop_assert_eq!(q.try_get_bytes().unwrap(), v);
        }
        prop_assert_eq!(q.try_get_bytes(), Err(GetError::Empty));
    }
}

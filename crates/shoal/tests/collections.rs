//! Shared containers against other processes: four processes hammering one dict checked
//! against an exact model, holders SIGKILLed mid-update (the dict and the list stay
//! consistent and usable), growth across generations followed by every process, and
//! the segments' names cleaned up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shoal::codec::Codec;
use shoal::collections::{CollectionError, Format, RawDict, SharedDict, SharedList};
use shoal::process::StartMethod;
use shoal::shm::{list_named, SegmentKind};
use shoal::Process;

mod common;
use common::{eventually, watchdog_secs, Reap};

const LONG: Duration = Duration::from_secs(60);

/// A container name no other test (in this or another process) uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shoal-test-col-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// xorshift64*: the same sequence in the child and in the parent's replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Operations per process in the model test.
const OPS: u32 = 100_000;
const PROCESSES: u32 = 4;
const KEYS_PER_PROCESS: u64 = 300;
const COUNTER: &str = "counter";

fn key(process: u32, k: u64) -> String {
    format!("p{process}-k{k}")
}

/// A value whose every part can be checked: `n` copies of `n`, with a tag.
fn value(n: u64) -> (u64, Vec<u64>) {
    (n, vec![n; (n % 13) as usize])
}

/// What one process does to its own keys, returned as the final state of its keys and
/// its increments of the shared counter. `dict` is `None` in the parent's replay.
fn run_model(
    dict: Option<&SharedDict<String, (u64, Vec<u64>)>>,
    process: u32,
    seed: u64,
    ops: u32,
) -> (HashMap<String, (u64, Vec<u64>)>, u64) {
    let mut rng = Rng(seed | 1);
    let mut model = HashMap::new();
    let mut increments = 0;
    for _ in 0..ops {
        let k = key(process, rng.below(KEYS_PER_PROCESS));
        let n = rng.next() >> 40;
        match rng.below(10) {
            0..=3 => {
                let old = model.insert(k.clone(), value(n));
                if let Some(d) = dict {
                    assert_eq!(d.insert(&k, &value(n)).unwrap(), old, "insert {k}");
                }
            }
            4..=5 => {
                let old = model.remove(&k);
                if let Some(d) = dict {
                    assert_eq!(d.remove(&k).unwrap(), old, "remove {k}");
                }
            }
            6..=7 => {
                if let Some(d) = dict {
                    assert_eq!(d.get(&k).unwrap(), model.get(&k).cloned(), "get {k}");
                }
            }
            8 => {
                let new = model.get(&k).map(|v| value(v.0 + 1));
                match &new {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(&k),
                };
                if let Some(d) = dict {
                    let got = d.update(&k, |v| v.map(|v| value(v.0 + 1))).unwrap();
                    assert_eq!(got, new, "update {k}");
                }
            }
            _ => {
                increments += 1;
                if let Some(d) = dict {
                    d.update(COUNTER, |v| {
                        let c = v.map_or(0, |v| v.0);
                        Some(value(c + 1))
                    })
                    .unwrap();
                }
            }
        }
    }
    (model, increments)
}

fn hammer_model((name, process, seed, ops): (String, u32, u64, u32)) {
    let dict: SharedDict<String, (u64, Vec<u64>)> = SharedDict::open(&name).expect("open");
    run_model(Some(&dict), process, seed, ops);
}
shoal::entry!(hammer_model);

#[test]
fn four_processes_of_mixed_operations_match_the_model() {
    watchdog_secs(300, || {
        let name = unique("model");
        let dict: SharedDict<String, (u64, Vec<u64>)> = SharedDict::create_named(&name).unwrap();
        let seeds: Vec<u64> = (0..PROCESSES)
            .map(|p| 0x9e37_79b9_7f4a_7c15 ^ (u64::from(p) << 32) ^ u64::from(std::process::id()))
            .collect();
        let children: Vec<Reap> = (0..PROCESSES)
            .map(|p| {
                let args = (name.clone(), p, seeds[p as usize], OPS);
                Reap(Process::new(hammer_model, args).start().unwrap())
            })
            .collect();
        for c in &children {
            let code = c.0.join_timeout(Duration::from_secs(240)).unwrap();
            assert_eq!(code, Some(0), "a child failed or did not finish");
        }
        // Replay each process's operations: the final dict is exactly their union.
        let mut expected = HashMap::new();
        let mut increments = 0;
        for p in 0..PROCESSES {
            let (model, inc) = run_model(None, p, seeds[p as usize], OPS);
            expected.extend(model);
            increments += inc;
        }
        assert!(increments > 0);
        expected.insert(COUNTER.to_owned(), value(increments));
        let got: HashMap<_, _> = dict.iter().unwrap().collect();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
        assert_eq!(dict.len().unwrap(), expected.len());
        dict.raw().check().unwrap();
    });
}

// ---- holders killed mid-update --------------------------------------------------------

/// Updates the dict without end: new keys with growing values (so that the dict moves
/// to new generations), removals, and a counter; `started` is set once running.
fn hammer_until_killed((name, seed): (String, u64)) {
    let dict: SharedDict<u64, Vec<u64>> = SharedDict::open(&name).expect("open");
    let mut rng = Rng(seed | 1);
    dict.insert(&u64::MAX, &vec![]).unwrap(); // "started"
    loop {
        let k = rng.below(2_000);
        let n = rng.below(64);
        match rng.below(4) {
            0 | 1 => drop(dict.insert(&k, &vec![n; n as usize]).unwrap()),
            2 => drop(dict.remove(&k).unwrap()),
            _ => drop(
                dict.update(&0u64, |v| {
                    let c = v.map_or(0, |v| v.len() as u64);
                    Some(vec![c + 1; c as usize + 1])
                })
                .unwrap(),
            ),
        }
        if rng.below(500) == 0 {
            dict.clear().unwrap();
            dict.insert(&u64::MAX, &vec![]).unwrap();
        }
    }
}
shoal::entry!(hammer_until_killed);

/// Every value decodes and has its shape (`n` copies of `n`, or the counter's `c`
/// copies of `c`), the length matches the iteration, the invariants hold.
fn check_consistent(dict: &SharedDict<u64, Vec<u64>>) {
    dict.raw().check().expect("the dict's invariants hold");
    let entries: Vec<(u64, Vec<u64>)> = dict.iter().expect("every entry decodes").collect();
    assert_eq!(entries.len(), dict.len().unwrap());
    for (k, v) in &entries {
        if *k == u64::MAX {
            continue;
        }
        let n = v.len() as u64;
        assert!(v.iter().all(|x| *x == n), "a torn value under {k}: {v:?}");
    }
}

#[test]
fn a_holder_killed_mid_update_leaves_the_dict_consistent_200_times() {
    watchdog_secs(300, || {
        let name = unique("kill");
        let dict: SharedDict<u64, Vec<u64>> = SharedDict::create_named(&name).unwrap();
        let mut rng = Rng(u64::from(std::process::id()) << 16 | 7);
        for round in 0..200u64 {
            let child = Reap(
                Process::new(hammer_until_killed, (name.clone(), rng.next()))
                    .start_method(StartMethod::Fork)
                    .start()
                    .unwrap(),
            );
            eventually("the child starts updating", || {
                dict.contains_key(&u64::MAX).unwrap()
            });
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
            child.0.kill().unwrap();
            assert!(
                child.0.join_timeout(LONG).unwrap().is_some(),
                "the killed child was not reaped"
            );
            drop(child);
            check_consistent(&dict);
            // A writer killed mid-update left the update counter odd; the next
            // operation closed it.
            assert_eq!(dict.raw().version() % 2, 0);
            // Still usable: a write, a read, a removal.
            dict.insert(&(1_000_000 + round), &vec![3; 3]).unwrap();
            assert_eq!(dict.get(&(1_000_000 + round)).unwrap(), Some(vec![3; 3]));
            assert_eq!(dict.remove(&(1_000_000 + round)).unwrap(), Some(vec![3; 3]));
            dict.remove(&u64::MAX).unwrap();
        }
        check_consistent(&dict);
        // Some kills landed while the child held the lock (it holds it for most of
        // each operation), and were repaired.
        assert!(dict.raw().recoveries() > 0);
    });
}

fn push_until_killed((name, seed): (String, u64)) {
    let list: SharedList<Vec<u32>> = SharedList::open(&name).expect("open");
    let mut rng = Rng(seed | 1);
    loop {
        let n = rng.below(40) as u32;
        match rng.below(8) {
            0..=3 => list.push(&vec![n; n as usize]).unwrap(),
            4 => {
                let len = list.len().unwrap();
                list.insert(rng.below(len as u64 + 1) as usize, &vec![n; n as usize])
                    .unwrap();
            }
            5 => {
                let len = list.len().unwrap();
                if len > 0 {
                    list.remove(rng.below(len as u64) as usize).unwrap();
                }
            }
            6 => {
                let len = list.len().unwrap();
                if len > 0 {
                    list.set(rng.below(len as u64) as usize, &vec![n; n as usize])
                        .unwrap();
                }
            }
            _ => {
                if list.len().unwrap() > 3_000 {
                    list.clear().unwrap();
                }
                drop(list.pop().unwrap());
            }
        }
    }
}
shoal::entry!(push_until_killed);

#[test]
fn a_holder_killed_mid_update_leaves_the_list_consistent() {
    watchdog_secs(300, || {
        let name = unique("list-kill");
        let list: SharedList<Vec<u32>> = SharedList::create_named(&name).unwrap();
        let mut rng = Rng(u64::from(std::process::id()) << 20 | 3);
        for _ in 0..60 {
            let before = list.len().unwrap();
            list.push(&vec![]).unwrap();
            let child = Reap(
                Process::new(push_until_killed, (name.clone(), rng.next()))
                    .start_method(StartMethod::Fork)
                    .start()
                    .unwrap(),
            );
            eventually("the child starts updating", || {
                list.len().unwrap() != before + 1
            });
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
            child.0.kill().unwrap();
            assert!(child.0.join_timeout(LONG).unwrap().is_some());
            drop(child);
            let items: Vec<Vec<u32>> = list.iter().expect("every item decodes").collect();
            assert_eq!(items.len(), list.len().unwrap());
            for v in &items {
                assert!(
                    v.iter().all(|x| *x as usize == v.len()),
                    "a torn item: {v:?}"
                );
            }
            list.push(&vec![1]).unwrap();
            assert_eq!(list.pop().unwrap(), Some(vec![1]));
        }
        assert!(list.raw().recoveries() > 0);
    });
}

// ---- growth, names, formats -----------------------------------------------------------

fn grow_from_child((name, from, to): (String, u64, u64)) {
    let dict: SharedDict<u64, String> = SharedDict::open(&name).expect("open");
    for k in from..to {
        dict.insert(&k, &format!("value {k}")).unwrap();
    }
}
shoal::entry!(grow_from_child);

#[test]
fn generations_made_by_a_child_are_followed_and_cleaned_up() {
    watchdog_secs(120, || {
        let name = unique("grow");
        let dict: SharedDict<u64, String> = SharedDict::create_named(&name).unwrap();
        dict.insert(&0, &"value 0".to_owned()).unwrap();
        let child = Reap(
            Process::new(grow_from_child, (name.clone(), 1u64, 20_000u64))
                .start()
                .unwrap(),
        );
        assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0));
        drop(child);
        // The child grew the dict through several generations; this handle follows.
        assert_eq!(dict.len().unwrap(), 20_000);
        assert_eq!(dict.get(&19_999).unwrap().as_deref(), Some("value 19999"));
        dict.raw().check().unwrap();
        // Only the current generation's segment is left, owned by the creator.
        let mine: Vec<_> = list_named()
            .unwrap()
            .into_iter()
            .filter(|s| s.name == name || s.name.starts_with(&format!("{name}.")))
            .collect();
        let kinds: Vec<_> = mine
            .iter()
            .map(|s| s.header.as_ref().map(|h| h.kind).ok())
            .collect();
        assert_eq!(
            mine.len(),
            3,
            "{:?}",
            mine.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        assert!(kinds.contains(&Some(SegmentKind::Dict)));
        assert!(kinds.contains(&Some(SegmentKind::CollectionData)));
        assert!(mine.iter().all(|s| s.owner_pid == Some(std::process::id())));
        drop(dict);
        for s in &mine {
            assert!(
                !Path::new("/dev/shm").join(&s.name).exists(),
                "{} left",
                s.name
            );
        }
    });
}

#[test]
fn a_single_process_matches_a_model_through_growth_and_clear() {
    let dict: SharedDict<u64, Vec<u8>> = SharedDict::new().unwrap();
    let list: SharedList<u64> = SharedList::new().unwrap();
    let mut model = HashMap::new();
    let mut vec_model = Vec::new();
    let mut rng = Rng(42);
    for i in 0..6_000u64 {
        let k = rng.below(2_000);
        match rng.below(5) {
            0 | 1 => {
                let v = vec![(i % 251) as u8; rng.below(100) as usize];
                assert_eq!(dict.insert(&k, &v).unwrap(), model.insert(k, v));
                list.push(&i).unwrap();
                vec_model.push(i);
            }
            2 => {
                assert_eq!(dict.remove(&k).unwrap(), model.remove(&k));
                if !vec_model.is_empty() {
                    let at = rng.below(vec_model.len() as u64) as usize;
                    assert_eq!(list.remove(at).unwrap(), vec_model.remove(at));
                }
            }
            3 => {
                assert_eq!(dict.get(&k).unwrap(), model.get(&k).cloned());
                let at = rng.below(vec_model.len() as u64 + 1) as usize;
                list.insert(at, &i).unwrap();
                vec_model.insert(at, i);
            }
            _ => {
                if !vec_model.is_empty() {
                    let at = rng.below(vec_model.len() as u64) as usize;
                    assert_eq!(list.set(at, &i).unwrap(), vec_model[at]);
                    vec_model[at] = i;
                }
            }
        }
    }
    assert_eq!(dict.len().unwrap(), model.len());
    let got: HashMap<_, _> = dict.iter().unwrap().collect();
    assert_eq!(got, model);
    assert_eq!(list.iter().unwrap().collect::<Vec<_>>(), vec_model);
    dict.raw().check().unwrap();
    dict.clear().unwrap();
    list.clear().unwrap();
    assert!(dict.is_empty().unwrap() && list.is_empty().unwrap());
    assert_eq!(dict.get(&1).unwrap(), None);
    assert!(matches!(
        list.get(0),
        Err(CollectionError::IndexOutOfRange { index: 0, len: 0 })
    ));
}

#[test]
fn formats_are_checked_and_another_layout_version_is_refused() {
    let name = unique("format");
    let dict: SharedDict<String, u32> =
        SharedDict::create_named_with(&name, Codec::MessagePack).unwrap();
    dict.insert("a", &1).unwrap();
    let wrong = SharedDict::<String, u32>::open_with(&name, Codec::Bincode).unwrap_err();
    assert!(
        matches!(
            wrong,
            CollectionError::WrongFormat {
                found: Format::MessagePack,
                expected: Format::Bincode,
                ..
            }
        ),
        "{wrong}"
    );
    assert!(wrong.to_string().contains("MessagePack"), "{wrong}");
    // The bytes-level view reads the same entries: keys in MessagePack.
    let raw = RawDict::open(&name, Some(Format::MessagePack)).unwrap();
    let key = Codec::MessagePack.encode("a").unwrap();
    assert_eq!(
        raw.get(&key).unwrap(),
        Some(Codec::MessagePack.encode(&1u32).unwrap())
    );
    // A pickled (Python) dict is not a serde one.
    let pickled = RawDict::create(None, Format::Pickle).unwrap();
    let e = SharedDict::<String, u32>::open(pickled.name()).unwrap_err();
    assert!(
        matches!(
            e,
            CollectionError::WrongFormat {
                found: Format::Pickle,
                ..
            }
        ),
        "{e}"
    );

    // A root of another container layout version: bytes 8..12 of the payload.
    let path = Path::new("/dev/shm").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64 + 8..64 + 12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = SharedDict::<String, u32>::open(&name).unwrap_err();
    assert!(
        matches!(
            e,
            CollectionError::Version {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("layout version 99"), "{e}");
}

#[test]
fn a_dict_travels_to_a_child_as_its_name() {
    let dict: SharedDict<String, u64> = SharedDict::new().unwrap();
    let child = Reap(Process::new(add_one, dict.clone()).start().unwrap());
    assert_eq!(child.0.join_timeout(LONG).unwrap(), Some(0));
    assert_eq!(dict.get("from child").unwrap(), Some(1));
}

fn add_one(dict: SharedDict<String, u64>) {
    dict.update("from child", |v| Some(v.unwrap_or(0) + 1))
        .unwrap();
}
shoal::entry!(add_one);

#[test]
fn keys_are_stored_as_the_python_package_encodes_them() {
    // The MessagePack bytes Python's `shoal.SharedDict` stores for "a", b"a", 5, 200,
    // -1, -200 and 2**63: the most compact form of each, as rmp-serde writes them.
    let dict: SharedDict<String, u8> = SharedDict::new().unwrap();
    let keys: [(&[u8], Vec<u8>); 7] = [
        (b"\xa1a", Codec::MessagePack.encode("a").unwrap()),
        (
            b"\xc4\x01a",
            Codec::MessagePack.encode(&serde_bytes_like(b"a")).unwrap(),
        ),
        (b"\x05", Codec::MessagePack.encode(&5i64).unwrap()),
        (b"\xcc\xc8", Codec::MessagePack.encode(&200i64).unwrap()),
        (b"\xff", Codec::MessagePack.encode(&-1i64).unwrap()),
        (
            b"\xd1\xff\x38",
            Codec::MessagePack.encode(&-200i64).unwrap(),
        ),
        (
            b"\xcf\x80\x00\x00\x00\x00\x00\x00\x00",
            Codec::MessagePack.encode(&(1u64 << 63)).unwrap(),
        ),
    ];
    for (python, rust) in &keys {
        assert_eq!(*python, rust.as_slice());
    }
    // A value stored under Python's bytes for "a" is found by the Rust key "a".
    dict.raw()
        .set(b"\xa1a", &Codec::Bincode.encode(&7u8).unwrap())
        .unwrap();
    assert_eq!(dict.get("a").unwrap(), Some(7));
}

/// Bytes that serde encodes as bytes (MessagePack `bin`), as Python's `bytes` keys are.
fn serde_bytes_like(b: &[u8]) -> impl serde::Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(b)
}

//! The bodies of the cargo-fuzz targets (`fuzz/`) over their seed corpora, as ordinary
//! tests: CI runs these; longer fuzzing runs are done with `cargo fuzz` (see
//! BENCHMARKS.md).

use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no seed corpus at {}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Every prefix and a few bit flips of `data`: the shapes a fuzzer tries first.
fn mutations(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..=data.len()).map(|n| data[..n].to_vec()).collect();
    for i in (0..data.len()).step_by(3) {
        let mut m = data.to_vec();
        m[i] ^= 0x80;
        out.push(m);
    }
    out
}

#[test]
fn frame_decoder_seeds() {
    for (name, data) in seeds("frame_decoder") {
        let n = shoal::net::fuzz::frames(&data);
        let expected = match name.as_str() {
            "two_frames" => 2,
            "long_form" => 1,
            "many_small" => 40,
            _ => 0,
        };
        assert_eq!(n, expected, "{name}");
        for m in mutations(&data) {
            shoal::net::fuzz::frames(&m);
        }
    }
}

#[test]
fn handshake_seeds() {
    for (name, data) in seeds("handshake") {
        let ok = shoal::net::fuzz::handshake(&data);
        let expected = name.starts_with("server_")
            || name.starts_with("client_sha")
            || name == "client_md5"
            || name == "client_legacy";
        assert_eq!(ok, expected, "{name}");
        for m in mutations(&data) {
            shoal::net::fuzz::handshake(&m);
        }
    }
}

/// A small deterministic mutator (xorshift), so that CI runs a bounded, repeatable
/// fuzzing pass over the seeds without cargo-fuzz.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..1 + self.below(4) {
            match self.below(6) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
                1 => {
                    let i = self.below(v.len() + 1);
                    let b = self.next() as u8;
                    v.insert(i, b);
                }
                2 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v.remove(i);
                }
                3 if v.len() >= 4 => {
                    // An interesting length where a header may sit.
                    let i = self.below(v.len() - 3);
                    let n: [i32; 6] = [-1, -2, 0, 255, 256, i32::MAX];
                    v[i..i + 4].copy_from_slice(&n[self.below(6)].to_be_bytes());
                }
                4 if !other.is_empty() => {
                    let i = self.below(v.len() + 1);
                    let j = self.below(other.len());
                    let k = j + self.below(other.len() - j);
                    v.splice(i..i, other[j..=k].iter().copied());
                }
                _ => v.truncate(self.below(v.len() + 1)),
            }
        }
        v
    }
}

#[test]
fn bounded_random_mutations_of_the_seeds() {
    fn frames(d: &[u8]) {
        shoal::net::fuzz::frames(d);
    }
    fn handshake(d: &[u8]) {
        shoal::net::fuzz::handshake(d);
    }
    for (target, run) in [
        ("frame_decoder", frames as fn(&[u8])),
        ("handshake", handshake),
    ] {
        let seeds = seeds(target);
        let mut m = Mutator(0x9e37_79b9_7f4a_7c15);
        for i in 0..10_000 {
            let a = &seeds[i % seeds.len()].1;
            let b = &seeds[m.below(seeds.len())].1;
            run(&m.mutate(a, b));
        }
    }
}

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

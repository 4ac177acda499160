//! Helpers of the `net*` integration tests: unique names, and Python subprocesses that
//! are killed when a test ends (the watchdog is the shared one in `tests/common`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long a test may wait for one step (a line from Python, an accept).
pub const STEP: Duration = Duration::from_secs(30);

/// A name no other test (in this or another process) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shoal-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Unix socket path in the temporary directory (removed by the listener).
pub fn socket_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique(what)))
}

/// The helper script driving Python's multiprocessing.connection.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mp_connection.py")
}

/// Python interpreters to test against: `python3`, plus any Python 3.12+ named in
/// `SHOAL_TEST_PYTHONS` (colon-separated) or found under `~/.pyenv/versions`, so that
/// both handshake forms (legacy before 3.12, tagged from 3.12) meet shoal where those
/// are installed.
pub fn pythons() -> Vec<String> {
    let mut found = vec!["python3".to_owned()];
    if let Ok(list) = std::env::var("SHOAL_TEST_PYTHONS") {
        found.extend(list.split(':').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let versions = PathBuf::from(home).join(".pyenv/versions");
        if let Ok(dir) = std::fs::read_dir(versions) {
            let mut extra: Vec<String> = dir
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.split('.')
                        .nth(1)
                        .and_then(|m| m.parse::<u32>().ok())
                        .is_some_and(|m| m >= 12)
                        && n.starts_with("3.")
                })
                .map(|e| e.path().join("bin/python3").to_string_lossy().into_owned())
                .filter(|p| std::path::Path::new(p).exists())
                .collect();
            extra.sort();
            // The oldest and the newest tagged-form Python are enough.
            if extra.len() > 2 {
                extra = vec![extra[0].clone(), extra[extra.len() - 1].clone()];
            }
            found.extend(extra);
        }
    }
    found
}

/// A Python subprocess whose stdout is read line by line with a time limit; it is
/// killed and reaped when dropped.
pub struct Python {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub version: String,
}

impl Python {
    pub fn start(python: &str, args: &[&str]) -> Python {
        let mut child = Command::new(python)
            .arg(script())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {python}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Python {
            child,
            lines,
            version: String::new(),
        };
        p.version = p.line();
        assert!(p.version.starts_with("python 3."), "{}", p.version);
        p
    }

    /// The next line the script prints (fails the test after [`STEP`]).
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(STEP) {
            Ok(l) => l,
            Err(_) => panic!("python printed nothing within {STEP:?}"),
        }
    }

    /// Waits for the script to exit and returns its exit code.
    pub fn wait(&mut self) -> i32 {
        for _ in 0..(STEP.as_millis() / 20) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("python did not exit within {STEP:?}");
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server configuration with a fresh self-signed certificate for `localhost`, and a
/// client configuration that trusts it.
#[cfg(feature = "tls")]
pub fn tls_configs() -> (
    std::sync::Arc<shoal::net::rustls::ServerConfig>,
    std::sync::Arc<shoal::net::rustls::ClientConfig>,
) {
    use std::sync::Arc;

    use shoal::net::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use shoal::net::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

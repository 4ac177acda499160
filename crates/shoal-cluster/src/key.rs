//! [`ClusterKey`]: the secret every task and result message is signed with.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ClusterError;

/// The environment variable a cluster key is read from when no key file is given.
pub const KEY_ENV: &str = "SHOAL_CLUSTER_KEY";

/// The shortest key accepted, in bytes.
const MIN_KEY_LEN: usize = 16;

/// A cluster key: the secret shared by every submitter and worker host of a cluster,
/// with which each task and result message is signed (HMAC-SHA256).
///
/// Write access to Redis is not enough to run code on a worker host: a message whose
/// signature does not check is dead-lettered before it is decoded. Keys are at least
/// 16 bytes; a file holding one may end with a newline, which is not part of the key.
///
/// # Examples
/// ```
/// use shoal_cluster::ClusterKey;
///
/// let key = ClusterKey::new(b"a long enough secret".to_vec())?;
/// assert!(ClusterKey::new(b"short".to_vec()).is_err());
/// assert!(format!("{key:?}").contains("redacted"));
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
#[derive(Clone)]
pub struct ClusterKey {
    /// The HMAC state keyed once: each signature starts from a clone of it, which
    /// saves hashing the key's two padded blocks per message.
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(redacted)")
    }
}

impl ClusterKey {
    /// A key made of `bytes`.
    ///
    /// # Errors
    /// [`ClusterError::Key`] when the key is shorter than 16 bytes.
    ///
    /// # Examples
    /// ```
    /// let key = shoal_cluster::ClusterKey::new(vec![7; 32])?;
    /// # let _ = key;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn new(bytes: Vec<u8>) -> Result<ClusterKey, ClusterError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(ClusterError::Key(format!(
                "a cluster key needs at least {MIN_KEY_LEN} bytes, this one has {}",
                bytes.len()
            )));
        }
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("HMAC takes keys of any length");
        Ok(ClusterKey { keyed })
    }

    /// The key held in the file at `path` (one trailing newline is dropped).
    ///
    /// # Errors
    /// [`ClusterError::Key`] when the file cannot be read or the key is too short.
    ///
    /// # Examples
    /// ```
    /// let path = std::env::temp_dir().join(format!("shoal-key-doc-{}", std::process::id()));
    /// std::fs::write(&path, "0123456789abcdef0123456789abcdef\n")?;
    /// let key = shoal_cluster::ClusterKey::from_file(&path)?;
    /// std::fs::remove_file(&path)?;
    /// # let _ = key;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClusterKey, ClusterError> {
        let path = path.as_ref();
        let mut bytes = std::fs::read(path).map_err(|e| {
            ClusterError::Key(format!(
                "could not read the cluster key file {}: {e}",
                path.display()
            ))
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        ClusterKey::new(bytes)
    }

    /// The key in the `SHOAL_CLUSTER_KEY` environment variable.
    ///
    /// # Errors
    /// [`ClusterError::Key`] when the variable is unset or too short.
    ///
    /// # Examples
    /// ```no_run
    /// // SHOAL_CLUSTER_KEY=... in the environment of every submitter and worker host
    /// let key = shoal_cluster::ClusterKey::from_env()?;
    /// # let _ = key;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn from_env() -> Result<ClusterKey, ClusterError> {
        match std::env::var_os(KEY_ENV) {
            Some(v) => {
                ClusterKey::new(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
            }
            None => Err(ClusterError::Key(format!(
                "no cluster key: {KEY_ENV} is not set and no key file was given"
            ))),
        }
    }

    /// The key from `file` when given, else from `SHOAL_CLUSTER_KEY`: the rule every
    /// side of a cluster follows.
    ///
    /// # Errors
    /// As [`from_file`](ClusterKey::from_file) and [`from_env`](ClusterKey::from_env).
    ///
    /// # Examples
    /// ```no_run
    /// let key = shoal_cluster::ClusterKey::load(None::<&str>)?; // from the environment
    /// # let _ = key;
    /// # Ok::<(), shoal_cluster::ClusterError>(())
    /// ```
    pub fn load(file: Option<impl AsRef<Path>>) -> Result<ClusterKey, ClusterError> {
        match file {
            Some(f) => ClusterKey::from_file(f),
            None => ClusterKey::from_env(),
        }
    }

    /// A MAC over `parts`, one after the other, each length-prefixed.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        mac
    }
}

//! What the client and listener builders share.

use std::time::Duration;

use crate::net::auth::AuthConfig;
use crate::net::{Digest, DEFAULT_MAX_FRAME_SIZE};

/// The default time limit of the TLS and HMAC handshakes.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of one connection, from its builder.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) authkey: Option<Vec<u8>>,
    pub(crate) digest: Digest,
    pub(crate) allow_legacy: bool,
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Option<Duration>,
    /// zstd level to offer, when compression is wanted.
    pub(crate) compression: Option<i32>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::net::tls::TlsSide>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            authkey: None,
            digest: Digest::Sha256,
            allow_legacy: true,
            max_frame: DEFAULT_MAX_FRAME_SIZE,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            compression: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Options {
    /// Whether a connection with these settings exchanges anything before it is ready
    /// (TLS or the HMAC challenges).
    pub(crate) fn has_handshake(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        self.authkey.is_some()
    }

    /// The handshake settings, when there is an auth key.
    pub(crate) fn auth(&self) -> Option<AuthConfig> {
        let key = self.authkey.clone()?;
        let mut features = Vec::new();
        if self.compression.is_some() {
            features.push(crate::net::connection::ZSTD_FEATURE);
        }
        Some(AuthConfig {
            key,
            digest: self.digest,
            allow_legacy: self.allow_legacy,
            features,
        })
    }
}

//! The HMAC challenge–response of Python's `multiprocessing.connection`.
//!
//! The serving side sends `#CHALLENGE#` + message; the other side answers with an HMAC
//! of the message under the shared key; the server replies `#WELCOME#` or `#FAILURE#`.
//! [`Listener`](crate::net::Listener) delivers a challenge and then answers one;
//! [`Client`](crate::net::Client) answers and then delivers, as Python does.
//!
//! Two forms exist on the wire, and both sides here speak both, negotiated as Python 3.12+
//! does:
//!
//! | form | challenge message | response |
//! |---|---|---|
//! | legacy (Python ≤ 3.11) | 20 random bytes | raw HMAC-MD5 (16 bytes) |
//! | tagged (Python ≥ 3.12) | `{sha256}` + 40 random bytes | `{sha256}` + HMAC-SHA256 |
//!
//! The HMAC always covers the whole message, `{digest}` tag included, so a peer cannot
//! downgrade a tagged challenge. A legacy client answers a tagged challenge with a raw
//! HMAC-MD5 of the whole message, which is accepted unless the legacy form is refused.
//!
//! shoal peers may append `#SHOAL#` and a comma-separated feature list (such as `zstd`)
//! after the 40 random bytes of a tagged challenge. Python ignores it (it is part of the
//! MAC'd message), shoal peers read it to negotiate options: an option is on only when
//! both challenges named it, and the MAC protects both lists from tampering.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Sha256, Sha384};
use sha3::{Sha3_256, Sha3_384};

use crate::net::{AuthFailure, NetError};

pub(crate) const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub(crate) const WELCOME: &[u8] = b"#WELCOME#";
pub(crate) const FAILURE: &[u8] = b"#FAILURE#";

/// Random bytes in a tagged challenge (Python 3.12+'s `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// The whole message of a legacy challenge.
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
/// A legacy (untagged HMAC-MD5) response.
const MD5_DIGEST_LEN: usize = 16;
/// Python refuses handshake messages longer than this.
pub(crate) const HANDSHAKE_LIMIT: usize = 256;
/// The marker before the feature list of a shoal challenge.
const FEATURES_MARK: &[u8] = b"#SHOAL#";

/// The HMAC digest a challenge asks for.
///
/// These are the digests Python 3.12+ accepts (`md5`, `sha256`, `sha384`, `sha3_256`,
/// `sha3_384`). A listener asks for [`Digest::Sha256`] unless told otherwise, as Python
/// does.
///
/// # Examples
/// ```
/// use shoal::net::Digest;
///
/// assert_eq!(Digest::from_name("sha256"), Some(Digest::Sha256));
/// assert_eq!(Digest::Sha3_384.name(), "sha3_384");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// HMAC-MD5 (the legacy form uses it untagged).
    Md5,
    /// HMAC-SHA-256, the default.
    #[default]
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA3-256.
    Sha3_256,
    /// HMAC-SHA3-384.
    Sha3_384,
}

impl Digest {
    const ALL: [Digest; 5] = [
        Digest::Md5,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha3_256,
        Digest::Sha3_384,
    ];

    /// The name Python uses inside the `{…}` tag.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Digest;
    ///
    /// assert_eq!(Digest::default().name(), "sha256");
    /// assert_eq!(Digest::Sha3_384.name(), "sha3_384");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    /// The digest with this tag name, if it is one Python accepts.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Digest;
    ///
    /// assert_eq!(Digest::from_name("sha384"), Some(Digest::Sha384));
    /// assert_eq!(Digest::from_name("sha1"), None);
    /// for d in [Digest::Md5, Digest::Sha256, Digest::Sha3_256] {
    ///     assert_eq!(Digest::from_name(d.name()), Some(d));
    /// }
    /// ```
    pub fn from_name(name: &str) -> Option<Digest> {
        Digest::ALL.into_iter().find(|d| d.name() == name)
    }

    /// HMAC of `message` under `key`.
    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length, so this cannot fail.
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<Sha384>>(key, message),
            Digest::Sha3_256 => run::<Hmac<Sha3_256>>(key, message),
            Digest::Sha3_384 => run::<Hmac<Sha3_384>>(key, message),
        }
    }

    /// Compares `mac` with the HMAC of `message` in constant time.
    fn verify(self, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
        let expected = self.mac(key, message);
        expected.len() == mac.len()
            && expected
                .iter()
                .zip(mac)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// What one side of a handshake does.
#[derive(Clone, Debug)]
pub(crate) struct AuthConfig {
    pub(crate) key: Vec<u8>,
    pub(crate) digest: Digest,
    pub(crate) allow_legacy: bool,
    /// Options this side offers (`zstd`).
    pub(crate) features: Vec<&'static str>,
}

/// The options the peer's challenge offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerFeatures(pub(crate) Vec<String>);

impl PeerFeatures {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|f| f == name)
    }
}

/// Framed transport for the handshake.
pub(crate) trait FrameIo {
    fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError>;
    fn recv_frame(&mut self, limit: usize) -> Result<Vec<u8>, NetError>;
}

fn protocol(reason: String) -> NetError {
    NetError::Authentication(AuthFailure::Protocol { reason })
}

fn show(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(48)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > 48 {
        format!("b\"{shown}\"… ({} bytes)", bytes.len())
    } else {
        format!("b\"{shown}\"")
    }
}

/// Splits a challenge message or a response into its digest and payload: `None` for the
/// legacy (untagged) form.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8]), AuthFailure> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        let longest = Digest::ALL
            .iter()
            .map(|d| d.name().len())
            .max()
            .unwrap_or(0);
        if let Some(close) = message.iter().take(longest + 2).position(|&b| b == b'}') {
            let name = &message[1..close];
            return match std::str::from_utf8(name).ok().and_then(Digest::from_name) {
                Some(d) => Ok((Some(d), &message[close + 1..])),
                None => Err(AuthFailure::UnsupportedDigest {
                    name: String::from_utf8_lossy(name).into_owned(),
                }),
            };
        }
    }
    Err(AuthFailure::Protocol {
        reason: format!(
            "unsupported message length, missing digest prefix or unsupported digest: {}",
            show(message)
        ),
    })
}

/// The feature list a shoal peer appended to a tagged challenge's payload.
fn features_of(payload: &[u8]) -> PeerFeatures {
    match payload.get(MESSAGE_LENGTH..) {
        Some(rest) if rest.starts_with(FEATURES_MARK) => PeerFeatures(
            String::from_utf8_lossy(&rest[FEATURES_MARK.len()..])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => PeerFeatures::default(),
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, NetError> {
    use std::io::Read;
    let mut out = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(|e| NetError::io("read random bytes for a challenge", e))?;
    Ok(out)
}

/// The challenge message (what follows `#CHALLENGE#`) this side sends.
pub(crate) fn challenge_message(cfg: &AuthConfig, random: &[u8]) -> Vec<u8> {
    let mut m = format!("{{{}}}", cfg.digest.name()).into_bytes();
    m.extend_from_slice(random);
    if !cfg.features.is_empty() {
        m.extend_from_slice(FEATURES_MARK);
        m.extend_from_slice(cfg.features.join(",").as_bytes());
    }
    m
}

/// The response to a challenge message (Python's `_create_response`).
fn create_response(cfg: &AuthConfig, message: &[u8]) -> Result<Vec<u8>, AuthFailure> {
    match digest_and_payload(message)?.0 {
        None if !cfg.allow_legacy => Err(AuthFailure::LegacyRefused),
        None => Ok(Digest::Md5.mac(&cfg.key, message)),
        Some(d) => {
            let mut r = format!("{{{}}}", d.name()).into_bytes();
            r.extend(d.mac(&cfg.key, message));
            Ok(r)
        }
    }
}

/// Checks a response to our challenge `message` (Python's `_verify_challenge`).
fn verify_response(cfg: &AuthConfig, message: &[u8], response: &[u8]) -> Result<(), AuthFailure> {
    let (digest, mac) = digest_and_payload(response)?;
    let digest = match digest {
        Some(d) => d,
        None if cfg.allow_legacy => Digest::Md5,
        None => return Err(AuthFailure::LegacyRefused),
    };
    if digest.verify(&cfg.key, message, mac) {
        Ok(())
    } else {
        Err(AuthFailure::DigestReceivedWrong)
    }
}

/// Sends a challenge and checks the answer (Python's `deliver_challenge`).
pub(crate) fn deliver_challenge<T: FrameIo>(io: &mut T, cfg: &AuthConfig) -> Result<(), NetError> {
    let message = challenge_message(cfg, &random_bytes(MESSAGE_LENGTH)?);
    deliver_with(io, cfg, &message)
}

/// [`deliver_challenge`] with a given message (tests and fuzzing fix the random bytes).
pub(crate) fn deliver_with<T: FrameIo>(
    io: &mut T,
    cfg: &AuthConfig,
    message: &[u8],
) -> Result<(), NetError> {
    let mut frame = CHALLENGE.to_vec();
    frame.extend_from_slice(message);
    io.send_frame(&frame)?;
    let response = io.recv_frame(HANDSHAKE_LIMIT)?;
    match verify_response(cfg, message, &response) {
        Ok(()) => io.send_frame(WELCOME),
        Err(why) => {
            // Tell the peer, as Python does; it may already be gone.
            let _ = io.send_frame(FAILURE);
            Err(NetError::Authentication(why))
        }
    }
}

/// Answers a challenge (Python's `answer_challenge`) and returns the options the peer
/// offered in it.
pub(crate) fn answer_challenge<T: FrameIo>(
    io: &mut T,
    cfg: &AuthConfig,
) -> Result<PeerFeatures, NetError> {
    let frame = io.recv_frame(HANDSHAKE_LIMIT)?;
    let Some(message) = frame.strip_prefix(CHALLENGE) else {
        return Err(protocol(format!(
            "expected a challenge, got {}",
            show(&frame)
        )));
    };
    if message.len() < MD5ONLY_MESSAGE_LENGTH {
        return Err(protocol(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    let features = match digest_and_payload(message) {
        Ok((Some(_), payload)) => features_of(payload),
        _ => PeerFeatures::default(),
    };
    let response = create_response(cfg, message).map_err(NetError::Authentication)?;
    io.send_frame(&response)?;
    let verdict = io.recv_frame(HANDSHAKE_LIMIT)?;
    if verdict == WELCOME {
        Ok(features)
    } else if verdict == FAILURE {
        Err(NetError::Authentication(AuthFailure::DigestSentRejected))
    } else {
        Err(protocol(format!(
            "expected #WELCOME#, got {}",
            show(&verdict)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Frames queued in memory: what the peer will send, and what we sent.
    #[derive(Default)]
    pub(crate) struct Script {
        incoming: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl FrameIo for Script {
        fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError> {
            self.sent.push(payload.to_vec());
            Ok(())
        }
        fn recv_frame(&mut self, limit: usize) -> Result<Vec<u8>, NetError> {
            let f = self.incoming.pop_front().ok_or(NetError::Eof)?;
            if f.len() > limit {
                return Err(NetError::FrameTooLarge {
                    len: f.len() as u64,
                    max: limit,
                });
            }
            Ok(f)
        }
    }

    fn cfg(key: &[u8]) -> AuthConfig {
        AuthConfig {
            key: key.to_vec(),
            digest: Digest::Sha256,
            allow_legacy: true,
            features: vec![],
        }
    }

    /// Known answers computed with Python: `hmac.new(b"key", m, d).digest()`.
    #[test]
    fn digests_match_python() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(Digest::Md5.mac(b"key", b"The quick brown fox jumps over the lazy dog")),
            "80070713463e7749b90c2dc24911e275"
        );
        assert_eq!(
            hex(Digest::Sha256.mac(b"key", b"The quick brown fox jumps over the lazy dog")),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn legacy_challenge_gets_raw_md5() {
        let c = cfg(b"secret");
        let msg = [9u8; 20];
        let mut s = Script::default();
        let mut ch = CHALLENGE.to_vec();
        ch.extend_from_slice(&msg);
        s.incoming.push_back(ch);
        s.incoming.push_back(WELCOME.to_vec());
        assert_eq!(
            answer_challenge(&mut s, &c).unwrap(),
            PeerFeatures::default()
        );
        assert_eq!(s.sent[0], Digest::Md5.mac(b"secret", &msg));
        let strict = AuthConfig {
            allow_legacy: false,
            ..c
        };
        let mut s = Script::default();
        let mut ch = CHALLENGE.to_vec();
        ch.extend_from_slice(&msg);
        s.incoming.push_back(ch);
        let err = answer_challenge(&mut s, &strict).unwrap_err();
        assert!(matches!(
            err,
            NetError::Authentication(AuthFailure::LegacyRefused)
        ));
    }

    #[test]
    fn tagged_round_trip_and_features() {
        let mut server = AuthConfig {
            features: vec!["zstd"],
            ..cfg(b"k")
        };
        server.digest = Digest::Sha3_384;
        let message = challenge_message(&server, &[1u8; 40]);
        assert!(message.starts_with(b"{sha3_384}"));
        let client = cfg(b"k");
        let response = create_response(&client, &message).unwrap();
        assert!(response.starts_with(b"{sha3_384}"));
        verify_response(&server, &message, &response).unwrap();
        // A legacy client's raw MD5 of the whole tagged message is accepted too.
        let legacy = Digest::Md5.mac(b"k", &message);
        verify_response(&server, &message, &legacy).unwrap();
        let (_, payload) = digest_and_payload(&message).unwrap();
        assert!(features_of(payload).has("zstd"));
        let other = cfg(b"other");
        let wrong = create_response(&other, &message).unwrap();
        assert_eq!(
            verify_response(&server, &message, &wrong),
            Err(AuthFailure::DigestReceivedWrong)
        );
    }

    #[test]
    fn bad_digest_gets_failure() {
        let c = cfg(b"key");
        let mut s = Script::default();
        s.incoming
            .push_back(b"{sha256}not the right mac at all, no no no".to_vec());
        let err = deliver_with(
            &mut s,
            &c,
            b"{sha256}0123456789012345678901234567890123456789",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Authentication(AuthFailure::DigestReceivedWrong)
            ),
            "{err}"
        );
        assert_eq!(s.sent.last().unwrap(), FAILURE);
        let mut s = Script::default();
        s.incoming.push_back(b"{sha1}0123456789abcdef".to_vec());
        let err = deliver_with(
            &mut s,
            &c,
            b"{sha256}0123456789012345678901234567890123456789",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported digest \"sha1\""),
            "{err}"
        );
    }

    #[test]
    fn early_close_and_junk() {
        let c = cfg(b"key");
        let mut s = Script::default();
        assert!(matches!(answer_challenge(&mut s, &c), Err(NetError::Eof)));
        let mut s = Script::default();
        s.incoming
            .push_back(b"hello there, not a challenge".to_vec());
        let err = answer_challenge(&mut s, &c).unwrap_err();
        assert!(err.to_string().contains("expected a challenge"), "{err}");
        let mut s = Script::default();
        s.incoming.push_back(b"#CHALLENGE#short".to_vec());
        let err = answer_challenge(&mut s, &c).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
        let mut s = Script::default();
        s.incoming.push_back([CHALLENGE, &[0u8; 20]].concat());
        s.incoming.push_back(FAILURE.to_vec());
        let err = answer_challenge(&mut s, &c).unwrap_err();
        assert!(matches!(
            err,
            NetError::Authentication(AuthFailure::DigestSentRejected)
        ));
    }
}

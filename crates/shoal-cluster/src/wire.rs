//! The messages on the streams, and their signatures.
//!
//! Tasks and results travel in signed envelopes (format 2):
//!
//! ```text
//! "SHC2" | kind u8 | HMAC-SHA256 [32] | body
//! ```
//!
//! A task entry's field `m` holds one envelope whose body is a [`TaskMessage`]: a chunk
//! of tasks of one call (one task name, one reply stream), each with its own id. A
//! result entry holds one or more fields `m`, each an envelope whose body is a
//! [`ResultMessage`]: the results of one task entry.
//!
//! The MAC covers a domain string, the kind, the pool name and the body, so a
//! signature is valid for one pool and one kind only (a result cannot be replayed as a
//! task, nor a task of one pool on another). The body is decoded (bincode) only after
//! the MAC checked, in constant time. An envelope of another format (`SHC1`, the one
//! task per entry format of earlier releases) is refused as such, before any check.

use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::key::ClusterKey;

/// The first bytes of every envelope: `SHC` and the format's digit.
const MAGIC: &[u8; 3] = b"SHC";
/// The format this build writes and reads.
const FORMAT: u8 = b'2';
/// Bytes of the header: magic, format, kind, MAC.
const HEADER: usize = 4 + 1 + 32;
/// What the MAC is bound to besides the message.
const DOMAIN: &[u8] = b"shoal-cluster/2";
/// The codec of bodies.
const CODEC: shoal::codec::Codec = shoal::codec::Codec::Bincode;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Task = 1,
    Result = 2,
}

/// A chunk of tasks of one call, as a worker host receives it: one stream entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskMessage {
    /// The stream their results go to (the submitter's).
    pub(crate) reply: String,
    /// The registered task name.
    pub(crate) task: String,
    /// How long each task may run, in milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    /// How many times the entry may be delivered before it is dead-lettered.
    pub(crate) max_deliveries: u32,
    /// The tasks: each one's id (unique for its submitter) and argument (encoded with
    /// `shoal::pool::TASK_CODEC`).
    pub(crate) items: Vec<(u64, Vec<u8>)>,
}

/// Why a task gave no value, as it travels back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// The task panicked.
    Panicked(String),
    /// The task ran past its timeout.
    Timeout(u64),
    /// The worker process running it died.
    WorkerDied(String),
    /// No task of that name is registered on the host.
    NotRegistered(String),
    /// The argument or result could not be decoded or encoded.
    Codec(String),
    /// It was delivered too many times and went to the dead-letter stream.
    DeadLettered(u32),
    /// Anything else the host's pool reported.
    Other(String),
}

/// The results of one task entry, as the submitter receives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResultMessage {
    /// The worker host that ran them.
    pub(crate) host: String,
    /// Per task: its id, and its encoded value or why there is none.
    pub(crate) results: Vec<(u64, Result<Vec<u8>, Failure>)>,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Too short, or not a shoal envelope.
    Malformed,
    /// A shoal envelope of another format (its digit).
    OtherFormat(u8),
    /// The kind byte is not the one expected.
    WrongKind,
    /// The MAC does not check.
    BadSignature,
    /// Signed, but the body does not decode.
    Undecodable(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Malformed => f.write_str("the message is not a signed shoal envelope"),
            Refused::OtherFormat(v) => write!(
                f,
                "the message is in shoal-cluster wire format {}, this program reads format {}",
                char::from(*v),
                char::from(FORMAT)
            ),
            Refused::WrongKind => f.write_str("the message is signed for another kind"),
            Refused::BadSignature => f.write_str("the message's signature does not check"),
            Refused::Undecodable(e) => write!(f, "the signed message does not decode: {e}"),
        }
    }
}

fn mac(key: &ClusterKey, pool: &str, kind: Kind, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    key.mac(&[DOMAIN, &[kind as u8], pool.as_bytes(), body])
}

/// Encodes and signs `value` for `pool`.
pub(crate) fn seal<T: Serialize>(
    key: &ClusterKey,
    pool: &str,
    kind: Kind,
    value: &T,
) -> Result<Vec<u8>, String> {
    let body = CODEC
        .encode(value)
        .map_err(|e| format!("could not encode a message: {e}"))?;
    let tag = mac(key, pool, kind, &body).finalize().into_bytes();
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(kind as u8);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks the signature of `bytes`, then (only then) decodes its body.
pub(crate) fn open<T: for<'de> Deserialize<'de>>(
    key: &ClusterKey,
    pool: &str,
    kind: Kind,
    bytes: &[u8],
) -> Result<T, Refused> {
    if bytes.len() < 4 || &bytes[..3] != MAGIC {
        return Err(Refused::Malformed);
    }
    if bytes[3] != FORMAT {
        return Err(if bytes[3].is_ascii_digit() {
            Refused::OtherFormat(bytes[3])
        } else {
            Refused::Malformed
        });
    }
    if bytes.len() < HEADER {
        return Err(Refused::Malformed);
    }
    if bytes[4] != kind as u8 {
        return Err(Refused::WrongKind);
    }
    let (tag, body) = bytes[5..].split_at(32);
    mac(key, pool, kind, body)
        .verify_slice(tag)
        .map_err(|_| Refused::BadSignature)?;
    CODEC
        .decode(body)
        .map_err(|e| Refused::Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new(vec![b; 32]).unwrap()
    }

    fn task() -> TaskMessage {
        TaskMessage {
            reply: "r".into(),
            task: "t::f".into(),
            timeout_ms: Some(5),
            max_deliveries: 3,
            items: vec![(7, vec![1, 2, 3]), (8, vec![4])],
        }
    }

    #[test]
    fn a_sealed_message_opens_with_its_key_pool_and_kind_only() {
        let m = seal(&key(1), "p", Kind::Task, &task()).unwrap();
        assert_eq!(
            open::<TaskMessage>(&key(1), "p", Kind::Task, &m),
            Ok(task())
        );
        assert_eq!(
            open::<TaskMessage>(&key(2), "p", Kind::Task, &m),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            open::<TaskMessage>(&key(1), "q", Kind::Task, &m),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            open::<ResultMessage>(&key(1), "p", Kind::Result, &m),
            Err(Refused::WrongKind)
        );
        assert_eq!(
            open::<TaskMessage>(&key(1), "p", Kind::Task, b"plain bytes"),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn every_flipped_bit_is_refused_before_decoding() {
        let m = seal(&key(1), "p", Kind::Task, &task()).unwrap();
        for i in 5..m.len() {
            for bit in 0..8 {
                let mut bad = m.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(
                    open::<TaskMessage>(&key(1), "p", Kind::Task, &bad),
                    Err(Refused::BadSignature),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn an_envelope_of_another_format_is_refused_as_such() {
        let mut m = seal(&key(1), "p", Kind::Task, &task()).unwrap();
        m[3] = b'1';
        let refused = open::<TaskMessage>(&key(1), "p", Kind::Task, &m).unwrap_err();
        assert_eq!(refused, Refused::OtherFormat(b'1'));
        assert_eq!(
            refused.to_string(),
            "the message is in shoal-cluster wire format 1, this program reads format 2"
        );
        m[3] = b'x';
        assert_eq!(
            open::<TaskMessage>(&key(1), "p", Kind::Task, &m),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn a_signed_body_that_does_not_decode_is_refused_as_such() {
        let m = seal(&key(1), "p", Kind::Task, &"just a string").unwrap();
        assert!(matches!(
            open::<TaskMessage>(&key(1), "p", Kind::Task, &m),
            Err(Refused::Undecodable(_))
        ));
    }
}

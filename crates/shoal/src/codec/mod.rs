//! Turning Rust values into bytes and back (serde; bincode by default, JSON and
//! MessagePack selectable so that programs in other languages can read the same queue).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

mod append;
mod read;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A value could not be encoded or decoded.
///
/// # Examples
/// ```
/// use shoal::codec::Codec;
///
/// let e = Codec::Json.decode::<u32>(br#""text""#).unwrap_err();
/// assert!(e.to_string().starts_with("could not decode a 6-byte JSON message"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// An error in these words (one reported by another process, with its context).
    pub(crate) fn new(message: String) -> CodecError {
        CodecError { message }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for CodecError {}

thread_local! {
    /// The last refusal of a value to be encoded on this thread (a shoal object outside
    /// a handoff), for the codec to report as it is: a serde encoder would wrap it in
    /// its own words.
    static REFUSED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Whether `REFUSED` holds one: a plain flag, cheap to test on every encoding.
    static HAS_REFUSAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records why a value refuses to be encoded, for the error of the encoding under way.
pub(crate) fn record_refusal(refusal: String) {
    REFUSED.with(|r| *r.borrow_mut() = Some(refusal));
    HAS_REFUSAL.set(true);
}

/// The refusal recorded on this thread since the last call, if any.
fn take_refusal() -> Option<String> {
    if !HAS_REFUSAL.get() {
        return None;
    }
    HAS_REFUSAL.set(false);
    REFUSED.with(|r| r.borrow_mut().take())
}

/// The error of a failed encoding: a shoal object's refusal as it is (it says what
/// does work), anything else after `context`.
fn encode_failure(context: &str, e: &dyn fmt::Display) -> CodecError {
    let message = match take_refusal() {
        Some(refusal) => refusal,
        None => format!("{context}: {e}"),
    };
    CodecError { message }
}

/// bincode's own words for an encoding error, without its enum wrapping (its
/// `Display` prints the variant, as `OtherString("…")`).
fn bincode_encode_message(e: &bincode::error::EncodeError) -> String {
    match e {
        bincode::error::EncodeError::OtherString(s) => s.clone(),
        bincode::error::EncodeError::Other(s) => (*s).to_owned(),
        bincode::error::EncodeError::Io { inner, .. } => inner.to_string(),
        other => format!("{other:?}"),
    }
}

/// bincode's own words for a decoding error, as [`bincode_encode_message`].
fn bincode_decode_message(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError;
    match e {
        DecodeError::OtherString(s) => s.clone(),
        DecodeError::Other(s) => (*s).to_owned(),
        DecodeError::UnexpectedEnd { additional } => {
            format!("the message ends {additional} bytes too early")
        }
        DecodeError::Utf8 { inner } => format!("a string is not UTF-8: {inner}"),
        DecodeError::InvalidBooleanValue(v) => format!("{v} is not a boolean"),
        DecodeError::UnexpectedVariant {
            type_name, found, ..
        } => {
            format!("{found} is not a variant of {type_name}")
        }
        other => format!("{other:?}"),
    }
}

/// Encodes `value` with the default codec (bincode, standard configuration).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    take_refusal();
    bincode::serde::encode_to_vec(value, config())
        .map_err(|e| encode_failure("could not encode a value", &bincode_encode_message(&e)))
}

/// Decodes a value encoded by [`encode`]; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError {
            message: format!(
                "could not decode a {}-byte message: {}",
                bytes.len(),
                bincode_decode_message(&e)
            ),
        })?;
    if used != bytes.len() {
        return Err(CodecError {
            message: format!(
                "{} bytes were left over after decoding a {}-byte message",
                bytes.len() - used,
                bytes.len()
            ),
        });
    }
    Ok(value)
}

/// Appends the bincode encoding of `value` to `out`, as [`Codec::encode_into`] with
/// [`Codec::Bincode`] does but without its per-call costs (for the pool, which encodes
/// millions of small values): the fast serializer of `append.rs`, and bincode itself
/// only when that gives up, for bincode's error.
#[inline]
pub(crate) fn bincode_append<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let at = out.len();
    if append::append(value, out).is_ok() {
        return Ok(());
    }
    out.truncate(at);
    Codec::Bincode.encode_into(value, out)
}

/// Decodes the bincode value that takes exactly the first `len` bytes of `bytes` (the
/// bytes after them may belong to other values), as [`decode`] does on those bytes but
/// without its per-call costs (for the pool, which decodes millions of small values):
/// the fast reader of `read.rs`, and bincode itself only when that gives up, for
/// bincode's answer.
///
/// # Errors
/// When those bytes are not a valid encoding of a `T`, or when the value ends before or
/// after `len` bytes.
#[inline]
pub(crate) fn bincode_decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
    len: usize,
) -> Result<T, CodecError> {
    match bytes.get(..len) {
        Some(own) => match read::read_exact(own) {
            Ok(value) => Ok(value),
            Err(append::GaveUp) => decode(own),
        },
        None => Err(CodecError {
            message: format!("a {len}-byte message was cut to {} bytes", bytes.len()),
        }),
    }
}

/// A wire format for typed channel messages.
///
/// [`Codec::Bincode`] is the default: compact and the fastest. [`Codec::Json`] and
/// [`Codec::MessagePack`] let programs written in other languages read and write the
/// same queue (MessagePack encodes structs as maps with field names, so that readers do
/// not depend on field order).
///
/// # Examples
/// ```
/// use shoal::codec::Codec;
///
/// let bytes = Codec::Json.encode(&(1, "two"))?;
/// assert_eq!(bytes, br#"[1,"two"]"#);
/// let back: (u32, String) = Codec::Json.decode(&bytes)?;
/// assert_eq!(back, (1, "two".to_owned()));
/// # Ok::<(), shoal::codec::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2, standard configuration (varint integers).
    #[default]
    Bincode,
    /// JSON (serde_json).
    Json,
    /// MessagePack (rmp-serde), structs as maps.
    MessagePack,
    /// Python's pickle: the codec of the queues that shoal's Python package makes.
    /// Rust neither encodes nor decodes it: a Rust program exchanges raw bytes with
    /// such a queue (`put_bytes`/`get_bytes`), or both sides agree on another codec.
    Pickle,
    /// Raw bytes: the queue carries messages that no codec wrote, exchanged with
    /// `put_bytes`/`get_bytes` on every side (the Python package's `codec="bytes"`).
    /// Typed messages are refused, naming the calls that work.
    Raw,
}

impl Codec {
    /// The codec's name, as shown in errors.
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// assert_eq!(Codec::default().name(), "bincode");
    /// let err = Codec::Json.decode::<u8>(b"not json").unwrap_err();
    /// assert!(err.to_string().contains(Codec::Json.name()));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "JSON",
            Codec::MessagePack => "MessagePack",
            Codec::Pickle => "pickle",
            Codec::Raw => "raw bytes",
        }
    }

    /// The codec's number in a ring's header (`docs/ring-format.md`).
    pub(crate) fn id(self) -> u32 {
        match self {
            Codec::Bincode => 1,
            Codec::Json => 2,
            Codec::MessagePack => 3,
            Codec::Pickle => 4,
            Codec::Raw => 0,
        }
    }

    /// The codec with this number, if any.
    pub(crate) fn from_id(id: u32) -> Option<Codec> {
        Some(match id {
            1 => Codec::Bincode,
            2 => Codec::Json,
            3 => Codec::MessagePack,
            4 => Codec::Pickle,
            0 => Codec::Raw,
            _ => return None,
        })
    }

    /// Encodes `value` into a new vector.
    ///
    /// # Errors
    /// When serde fails (for example a map with non-string keys in JSON, or a shoal
    /// object serialized outside a handoff).
    ///
    /// # Examples
    /// ```
    /// use std::collections::BTreeMap;
    /// use shoal::codec::Codec;
    ///
    /// assert_eq!(Codec::Json.encode(&[1, 2, 3])?, b"[1,2,3]");
    /// assert!(Codec::Bincode.encode(&[1, 2, 3])?.len() < 8); // compact
    /// // JSON object keys must be strings: a map keyed by pairs cannot be encoded.
    /// let by_pair = BTreeMap::from([((1u8, 2u8), "x")]);
    /// assert!(Codec::Json.encode(&by_pair).is_err());
    /// # Ok::<(), shoal::codec::CodecError>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Appends the encoding of `value` to `out` (which callers reuse to avoid an
    /// allocation per message).
    ///
    /// # Errors
    /// As [`encode`](Codec::encode).
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let mut out = Vec::new();
    /// Codec::Json.encode_into(&1, &mut out)?;
    /// Codec::Json.encode_into("two", &mut out)?; // appends
    /// assert_eq!(out, br#"1"two""#);
    /// out.clear(); // reuse the allocation for the next message
    /// Codec::Json.encode_into(&true, &mut out)?;
    /// assert_eq!(out, b"true");
    /// # Ok::<(), shoal::codec::CodecError>(())
    /// ```
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // The context is formatted on failure only: this runs once per message.
        let fail = |e: &dyn fmt::Display| {
            encode_failure(&format!("could not encode a value as {}", self.name()), e)
        };
        take_refusal();
        match self {
            Codec::Bincode => bincode::serde::encode_into_std_write(value, out, config())
                .map(|_| ())
                .map_err(|e| fail(&bincode_encode_message(&e))),
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| fail(&e)),
            Codec::MessagePack => value
                .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
                .map_err(|e| fail(&e)),
            Codec::Pickle => Err(CodecError {
                message: PICKLE_FROM_RUST.to_owned(),
            }),
            Codec::Raw => Err(CodecError {
                message: RAW_TYPED.to_owned(),
            }),
        }
    }

    /// Decodes one value from all of `bytes`; trailing bytes are an error.
    ///
    /// # Errors
    /// When the bytes are not a valid encoding of a `T`.
    ///
    /// # Examples
    /// ```
    /// use shoal::codec::Codec;
    ///
    /// let bytes = Codec::MessagePack.encode(&(7u16, "seven"))?;
    /// let back: (u16, String) = Codec::MessagePack.decode(&bytes)?;
    /// assert_eq!(back, (7, "seven".to_owned()));
    ///
    /// let mut longer = bytes.clone();
    /// longer.push(0);
    /// assert!(Codec::MessagePack.decode::<(u16, String)>(&longer).is_err()); // trailing bytes
    /// # Ok::<(), shoal::codec::CodecError>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let fail = |e: &dyn fmt::Display| CodecError {
            message: format!(
                "could not decode a {}-byte {} message: {e}",
                bytes.len(),
                self.name()
            ),
        };
        match self {
            Codec::Bincode => decode(bytes),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| fail(&e)),
            Codec::MessagePack => {
                let mut rest = bytes;
                let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))
                    .map_err(|e| fail(&e))?;
                let rest = rest.len();
                if rest != 0 {
                    return Err(fail(&format_args!("{rest} bytes were left over")));
                }
                Ok(value)
            }
            Codec::Pickle => Err(CodecError {
                message: PICKLE_FROM_RUST.to_owned(),
            }),
            Codec::Raw => Err(CodecError {
                message: RAW_TYPED.to_owned(),
            }),
        }
    }
}

/// Why typed messages are refused on a queue of raw bytes.
const RAW_TYPED: &str = "this queue carries raw bytes, not typed messages (it was made \
     with Codec::Raw, or codec=\"bytes\" in Python): exchange them with put_bytes/get_bytes, \
     or make the queue with Codec::MessagePack for typed messages that Python reads too";

/// Why a Rust program cannot use typed messages on a queue of Python pickles.
const PICKLE_FROM_RUST: &str = "this queue carries Python pickles (it was made by shoal's \
     Python package), which Rust neither encodes nor decodes: exchange raw bytes with \
     put_bytes/get_bytes (the Python side's put_bytes/get_bytes), or make the queue in \
     Rust with Codec::MessagePack or Codec::Json and decode those in Python";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_is_refused_both_ways_naming_what_works() {
        let e = Codec::Pickle.encode(&1u8).unwrap_err().to_string();
        assert!(
            e.contains("Python pickles") && e.contains("put_bytes"),
            "{e}"
        );
        let e = Codec::Pickle.decode::<u8>(b"\x80\x04K\x01.").unwrap_err();
        assert!(e.to_string().contains("get_bytes"), "{e}");
        assert_eq!(Codec::from_id(Codec::Pickle.id()), Some(Codec::Pickle));
        assert_eq!(Codec::Pickle.name(), "pickle");
    }

    #[test]
    fn raw_refuses_typed_messages_naming_what_works() {
        let e = Codec::Raw.encode(&1u8).unwrap_err().to_string();
        assert!(e.contains("raw bytes") && e.contains("put_bytes"), "{e}");
        let e = Codec::Raw.decode::<u8>(b"\x01").unwrap_err().to_string();
        assert!(e.contains("get_bytes"), "{e}");
        assert_eq!(Codec::from_id(Codec::Raw.id()), Some(Codec::Raw));
    }

    #[test]
    fn round_trip_and_trailing_bytes() {
        let bytes = encode(&(1u8, "two".to_owned())).unwrap();
        let back: (u8, String) = decode(&bytes).unwrap();
        assert_eq!(back, (1, "two".to_owned()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(u8, String)>(&longer)
            .unwrap_err()
            .to_string()
            .contains("left over"));
        assert!(decode::<(u8, String)>(&bytes[..2]).is_err());
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        name: String,
    }

    #[test]
    fn every_codec_round_trips_and_refuses_trailing_bytes() {
        let p = Point {
            x: -3,
            name: "p".to_owned(),
        };
        for codec in [Codec::Bincode, Codec::Json, Codec::MessagePack] {
            let bytes = codec.encode(&p).unwrap();
            assert_eq!(codec.decode::<Point>(&bytes).unwrap(), p, "{codec:?}");
            let mut longer = bytes.clone();
            longer.extend_from_slice(b"  7");
            assert!(codec.decode::<Point>(&longer).is_err(), "{codec:?}");
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
        }
        assert_eq!(Codec::Json.encode(&p).unwrap(), br#"{"x":-3,"name":"p"}"#);
    }
}

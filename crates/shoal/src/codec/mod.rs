//! Turning Rust values into bytes and back (serde; bincode by default).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A value could not be encoded or decoded.
#[derive(Debug)]
pub struct CodecError {
    message: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for CodecError {}

/// Encodes `value` with the default codec (bincode, standard configuration).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError {
        message: format!("could not encode a value: {e}"),
    })
}

/// Decodes a value encoded by [`encode`]; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError {
            message: format!("could not decode a {}-byte message: {e}", bytes.len()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

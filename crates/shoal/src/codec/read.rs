//! [`Reader`]: a serde deserializer that reads bincode's standard format (variable
//! integers, little-endian) straight from a slice, the counterpart of `append.rs`.
//!
//! A pool decodes millions of small values (one argument, one result per task).
//! bincode's own decoder goes through its generic reader and a large error type on
//! every value, which costs more than a trivial task; this one is a few inlined loads
//! per value. It accepts only what bincode accepts, with the same meaning (the tests
//! compare the two on every kind of value and on damaged bytes), and gives up on
//! anything else: on what bincode refuses, on what the value's own `Deserialize`
//! refuses, and on the rare forms it leaves to bincode (`char`). The caller then
//! decodes with bincode, whose answer (a value or an error saying why) stands.
//!
//! The format is the table of `append.rs`, read back: integers wider than a byte are
//! one byte below 251, else a marker (251, 252, 253, 254) and 2, 4, 8 or 16 bytes, a
//! marker wider than the type being refused as bincode refuses it.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use super::append::{GaveUp, SINGLE_BYTE_MAX, U128_BYTE, U16_BYTE, U32_BYTE, U64_BYTE};

impl de::Error for GaveUp {
    #[cold]
    fn custom<T: fmt::Display>(_: T) -> GaveUp {
        GaveUp
    }
}

/// Decodes a `T` from all of `bytes` in bincode's standard format; `Err` when it
/// cannot (bytes left over included).
#[inline]
pub(crate) fn read_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GaveUp> {
    let mut r = Reader { buf: bytes };
    let value = T::deserialize(&mut r)?;
    if r.buf.is_empty() {
        Ok(value)
    } else {
        Err(GaveUp)
    }
}

/// The deserializer (see the module docs): the bytes not read yet.
pub(crate) struct Reader<'de> {
    buf: &'de [u8],
}

impl<'de> Reader<'de> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], GaveUp> {
        if self.buf.len() < n {
            return Err(GaveUp);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GaveUp> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, GaveUp> {
        let (&b, rest) = self.buf.split_first().ok_or(GaveUp)?;
        self.buf = rest;
        Ok(b)
    }

    /// A variable integer whose marker is at most `widest` (bincode refuses a marker
    /// wider than the type it decodes).
    #[inline]
    fn varint(&mut self, widest: u8) -> Result<u128, GaveUp> {
        let b = self.byte()?;
        if b <= SINGLE_BYTE_MAX {
            return Ok(u128::from(b));
        }
        if b > widest {
            return Err(GaveUp);
        }
        Ok(match b {
            U16_BYTE => u128::from(u16::from_le_bytes(self.array()?)),
            U32_BYTE => u128::from(u32::from_le_bytes(self.array()?)),
            U64_BYTE => u128::from(u64::from_le_bytes(self.array()?)),
            _ => u128::from_le_bytes(self.array()?),
        })
    }

    /// A `u64` variable integer (the common case, without going through `u128`).
    #[inline]
    fn varint64(&mut self) -> Result<u64, GaveUp> {
        let b = self.byte()?;
        match b {
            0..=SINGLE_BYTE_MAX => Ok(u64::from(b)),
            U16_BYTE => Ok(u64::from(u16::from_le_bytes(self.array()?))),
            U32_BYTE => Ok(u64::from(u32::from_le_bytes(self.array()?))),
            U64_BYTE => Ok(u64::from_le_bytes(self.array()?)),
            _ => Err(GaveUp),
        }
    }

    /// A length (a `u64` variable integer).
    #[inline]
    fn len(&mut self) -> Result<usize, GaveUp> {
        usize::try_from(self.varint64()?).map_err(|_| GaveUp)
    }

    /// bincode's zigzag, undone: `2n` is `n`, `2|n| - 1` is `-|n|`.
    #[inline]
    fn unzigzag(n: u128) -> i128 {
        if n & 1 == 0 {
            (n / 2) as i128
        } else {
            !((n / 2) as i128)
        }
    }

    #[inline]
    fn unzigzag64(n: u64) -> i64 {
        if n & 1 == 0 {
            (n / 2) as i64
        } else {
            !((n / 2) as i64)
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = GaveUp;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, GaveUp> {
        // bincode refuses it too: the format does not describe itself.
        Err(GaveUp)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(GaveUp),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_i8(self.byte()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.varint(U16_BYTE)?;
        visitor.visit_i16(Reader::unzigzag(n) as i16)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.varint(U32_BYTE)?;
        visitor.visit_i32(Reader::unzigzag(n) as i32)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.varint64()?;
        visitor.visit_i64(Reader::unzigzag64(n))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.varint(U128_BYTE)?;
        visitor.visit_i128(Reader::unzigzag(n))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_u8(self.byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_u16(self.varint(U16_BYTE)? as u16)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_u32(self.varint(U32_BYTE)? as u32)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_u64(self.varint64()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_u128(self.varint(U128_BYTE)?)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, _: V) -> Result<V::Value, GaveUp> {
        // Left to bincode, whose rules for a UTF-8 character this need not copy.
        Err(GaveUp)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.len()?;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| GaveUp)?;
        visitor.visit_borrowed_str(s)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(GaveUp),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let len = self.len()?;
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        visitor.visit_seq(Items { r: self, left: len })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GaveUp> {
        let len = self.len()?;
        visitor.visit_map(Items { r: self, left: len })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, GaveUp> {
        // bincode refuses it too (variants are read by index).
        Err(GaveUp)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, GaveUp> {
        // bincode refuses it too.
        Err(GaveUp)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map: `left` more.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = GaveUp;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GaveUp> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = GaveUp;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, GaveUp> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, GaveUp> {
        seed.deserialize(&mut *self.r)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = GaveUp;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), GaveUp> {
        let index = self.varint(U32_BYTE)? as u32;
        let value = seed.deserialize(IntoDeserializer::<GaveUp>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = GaveUp;

    #[inline]
    fn unit_variant(self) -> Result<(), GaveUp> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, GaveUp> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, GaveUp> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GaveUp> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Dot,
        Circle(f64),
        Pair(i8, u128),
        Named { id: u32, tag: Option<u16> },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Record {
        name: String,
        unit: (),
        bytes: Vec<u8>,
        shapes: Vec<Shape>,
        map: BTreeMap<i16, bool>,
        wide: (i128, u64, i64, i32),
        flag: Option<bool>,
        small: (u8, i8, u16, f32),
    }

    /// bincode's answer for `bytes`, as a `T` taking all of them.
    fn bincodes<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
        match bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard()) {
            Ok((v, used)) if used == bytes.len() => Some(v),
            _ => None,
        }
    }

    /// Encodes `value` with bincode and checks that the reader gives it back.
    fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
        assert_eq!(read_exact::<T>(&bytes).ok().as_ref(), Some(value));
        if !bytes.is_empty() {
            let cut = &bytes[..bytes.len() - 1];
            assert!(read_exact::<T>(cut).is_err(), "{value:?} cut short");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            read_exact::<T>(&longer).is_err(),
            "{value:?} with a byte more"
        );
    }

    /// Wherever the reader decodes `bytes`, bincode gives the same value.
    fn agrees<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
        if let Ok(v) = read_exact::<T>(bytes) {
            assert_eq!(bincodes::<T>(bytes), Some(v), "{bytes:?}");
        }
    }

    fn record() -> Record {
        Record {
            name: "héllo".into(),
            unit: (),
            bytes: vec![0, 1, 255],
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Pair(-3, u128::MAX),
                Shape::Named {
                    id: 70_000,
                    tag: Some(300),
                },
                Shape::Named { id: 1, tag: None },
            ],
            map: [(-1, true), (400, false)].into_iter().collect(),
            wide: (i128::MIN, u64::MAX, i64::MIN, -40_000),
            flag: Some(false),
            small: (255, -128, 65_535, -0.25),
        }
    }

    #[test]
    fn integers_at_every_width_boundary_round_trip() {
        for v in [
            0u64,
            1,
            250,
            251,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            round_trips(&v);
            round_trips(&(v as u128 * 3));
            round_trips(&(v as u32));
            round_trips(&(v as u16));
            round_trips(&(v as i64));
            round_trips(&(v as i64).wrapping_neg());
            round_trips(&(v as i32));
            round_trips(&(v as i16));
            round_trips(&(v as i128).wrapping_neg());
            round_trips(&(v as usize));
        }
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        round_trips(&record());
        round_trips(&vec![record(); 3]);
        round_trips(&(true, false, 'x'.len_utf8(), f64::MIN_POSITIVE));
        round_trips(&Some(String::new()));
        round_trips(&None::<u64>);
        round_trips(&serde_bytes_like(vec![1, 2, 3]));
        round_trips(&());
    }

    /// A byte string that serde encodes as bytes (`serialize_bytes`), not as a sequence.
    fn serde_bytes_like(v: Vec<u8>) -> Bytes {
        Bytes(v)
    }

    #[derive(Debug, PartialEq)]
    struct Bytes(Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    #[test]
    fn what_bincode_refuses_is_refused() {
        // A bool other than 0 or 1, an option tag other than 0 or 1.
        assert!(read_exact::<bool>(&[2]).is_err());
        assert!(read_exact::<Option<u8>>(&[2, 0]).is_err());
        // A marker wider than the type, and the reserved marker.
        assert!(read_exact::<u16>(&[U32_BYTE, 0, 0, 0, 0]).is_err());
        assert!(read_exact::<u32>(&[U64_BYTE, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(read_exact::<u64>(&[U128_BYTE; 17]).is_err());
        assert!(read_exact::<u128>(&[255]).is_err());
        // A string that is not UTF-8, a length past the end.
        assert!(read_exact::<String>(&[2, 0xff, 0xfe]).is_err());
        assert!(read_exact::<Vec<u8>>(&[5, 1, 2]).is_err());
        // A variant index past the enum's.
        assert!(read_exact::<Shape>(&[9]).is_err());
        // A narrower marker than needed is bincode's too.
        assert_eq!(read_exact::<u64>(&[U16_BYTE, 5, 0]).ok(), Some(5));
        assert_eq!(bincodes::<u64>(&[U16_BYTE, 5, 0]), Some(5));
    }

    proptest! {
        #[test]
        fn damaged_bytes_decode_as_bincode_decodes_them(
            seed in any::<u64>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut r = record();
            r.wide.1 = seed;
            r.map.insert((seed % 1000) as i16, seed % 2 == 0);
            let mut bytes = bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap();
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let bytes = &bytes[..bytes.len() - cut % 3];
            agrees::<Record>(bytes);
            agrees::<Vec<Shape>>(bytes);
            agrees::<(u16, i32, Option<u64>)>(bytes);
        }

        #[test]
        fn integers_decode_as_bincode_decodes_them(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            agrees::<u16>(&bytes);
            agrees::<u32>(&bytes);
            agrees::<u64>(&bytes);
            agrees::<u128>(&bytes);
            agrees::<i16>(&bytes);
            agrees::<i32>(&bytes);
            agrees::<i64>(&bytes);
            agrees::<i128>(&bytes);
            agrees::<(bool, u8, i8)>(&bytes);
            // Floats compare by their bits (a NaN is not equal to itself).
            if let Ok((a, b)) = read_exact::<(f32, f64)>(&bytes) {
                let theirs = bincodes::<(f32, f64)>(&bytes).map(|(x, y)| (x.to_bits(), y.to_bits()));
                prop_assert_eq!(theirs, Some((a.to_bits(), b.to_bits())));
            }
            agrees::<String>(&bytes);
        }
    }
}

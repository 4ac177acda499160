//! [`Appender`]: a serde serializer that writes bincode's standard format (variable
//! integers, little-endian) straight into a `Vec<u8>`.
//!
//! A pool encodes millions of small values (one argument, one result per task).
//! bincode's own serializer goes through its generic writer and a large error type on
//! every byte it writes, which costs more than the task itself when the task is
//! trivial; this one is a handful of inlined stores per value. It writes exactly
//! bincode's bytes (the tests compare them on every kind of value), so what it
//! encodes bincode decodes. It refuses only what bincode refuses too (a sequence of
//! unknown length, `collect_str`) or what the value's own `Serialize` refuses: the
//! caller then encodes with bincode, whose error says why.
//!
//! | value                                  | bytes                                      |
//! |----------------------------------------|--------------------------------------------|
//! | `bool`, `u8`, `i8`                     | one byte                                   |
//! | other integers (signed: zigzag first)  | `< 251`: one byte; else 251, 252, 253, 254 then 2, 4, 8, 16 bytes |
//! | `f32`, `f64`                           | little-endian bytes                        |
//! | `char`                                 | its UTF-8 bytes                            |
//! | `str`, bytes, sequence, map            | length (as a `u64` integer), then the items |
//! | `Option`                               | 0, or 1 then the value                     |
//! | enum variant                           | index (as a `u32` integer), then the fields |
//! | unit, struct, tuple                    | the fields, nothing else                   |

use std::fmt;

use serde::ser::{self, Serialize};

/// Integers up to this value take one byte (the format of `read.rs` too).
pub(super) const SINGLE_BYTE_MAX: u8 = 250;
/// Marker bytes of the wider integers.
pub(super) const U16_BYTE: u8 = 251;
pub(super) const U32_BYTE: u8 = 252;
pub(super) const U64_BYTE: u8 = 253;
pub(super) const U128_BYTE: u8 = 254;

/// The fast path (this appender, or the reader of `read.rs`) gave up: the caller
/// encodes or decodes with bincode instead, for its answer.
#[derive(Debug)]
pub(crate) struct GaveUp;

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the value is left to bincode: the fast path gave up on it")
    }
}

impl std::error::Error for GaveUp {}

impl ser::Error for GaveUp {
    fn custom<T: fmt::Display>(_: T) -> GaveUp {
        GaveUp
    }
}

/// Appends `value` to `out` in bincode's standard format. On `Err` some bytes may have
/// been appended: the caller truncates.
#[inline]
pub(crate) fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), GaveUp> {
    value.serialize(&mut Appender { out })
}

/// The serializer (see the module docs).
pub(crate) struct Appender<'a> {
    out: &'a mut Vec<u8>,
}

impl Appender<'_> {
    #[inline]
    fn varint(&mut self, v: u64) {
        // Marker and bytes in one append: one check of the capacity, not two.
        if v <= u64::from(SINGLE_BYTE_MAX) {
            self.out.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            let [a, b] = (v as u16).to_le_bytes();
            self.out.extend_from_slice(&[U16_BYTE, a, b]);
        } else if v <= u64::from(u32::MAX) {
            let [a, b, c, d] = (v as u32).to_le_bytes();
            self.out.extend_from_slice(&[U32_BYTE, a, b, c, d]);
        } else {
            let [a, b, c, d, e, f, g, h] = v.to_le_bytes();
            self.out
                .extend_from_slice(&[U64_BYTE, a, b, c, d, e, f, g, h]);
        }
    }

    fn varint128(&mut self, v: u128) {
        match u64::try_from(v) {
            Ok(v) => self.varint(v),
            Err(_) => {
                self.out.push(U128_BYTE);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// bincode's zigzag: `2n` for `n ≥ 0`, `2|n| - 1` for `n < 0`.
    #[inline]
    fn zigzag(v: i64) -> u64 {
        if v < 0 {
            !(v as u64) * 2 + 1
        } else {
            (v as u64) * 2
        }
    }

    fn len(&mut self, len: Option<usize>) -> Result<(), GaveUp> {
        self.varint(len.ok_or(GaveUp)? as u64);
        Ok(())
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Appender<'b> {
    type Ok = ();
    type Error = GaveUp;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), GaveUp> {
        self.out.push(u8::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), GaveUp> {
        self.out.push(v as u8);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), GaveUp> {
        self.varint(Appender::zigzag(v.into()));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), GaveUp> {
        self.varint(Appender::zigzag(v.into()));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), GaveUp> {
        self.varint(Appender::zigzag(v));
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), GaveUp> {
        let z = if v < 0 {
            !(v as u128) * 2 + 1
        } else {
            (v as u128) * 2
        };
        self.varint128(z);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), GaveUp> {
        self.out.push(v);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), GaveUp> {
        self.varint(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), GaveUp> {
        self.varint(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), GaveUp> {
        self.varint(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), GaveUp> {
        self.varint128(v);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), GaveUp> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), GaveUp> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), GaveUp> {
        let mut buf = [0u8; 4];
        self.out
            .extend_from_slice(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), GaveUp> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), GaveUp> {
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), GaveUp> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), GaveUp> {
        self.out.push(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), GaveUp> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), GaveUp> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), GaveUp> {
        self.varint(index.into());
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), GaveUp> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), GaveUp> {
        self.varint(index.into());
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self, GaveUp> {
        self.len(len)?;
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, GaveUp> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, GaveUp> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, GaveUp> {
        self.varint(index.into());
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self, GaveUp> {
        self.len(len)?;
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, GaveUp> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, GaveUp> {
        self.varint(index.into());
        Ok(self)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Result<(), GaveUp> {
        // bincode refuses it too.
        Err(GaveUp)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound forms: each element, key, value or field is written in turn, with
/// nothing between them.
macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ty)?) => {
        impl<'a, 'b> ser::$trait for &'a mut Appender<'b> {
            type Ok = ();
            type Error = GaveUp;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_key: $key,)?
                value: &T,
            ) -> Result<(), GaveUp> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), GaveUp> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, &'static str);
compound!(SerializeStructVariant, serialize_field, &'static str);

impl<'a, 'b> ser::SerializeMap for &'a mut Appender<'b> {
    type Ok = ();
    type Error = GaveUp;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), GaveUp> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GaveUp> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), GaveUp> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Pair(i8, u128),
        Named { id: u32, tag: Option<char> },
    }

    #[derive(Serialize)]
    struct Record {
        name: String,
        unit: (),
        bytes: Vec<u8>,
        shapes: Vec<Shape>,
        map: BTreeMap<i16, bool>,
        wide: (i128, u64, i64, i32),
    }

    /// bincode's bytes and ours for `value`.
    fn both<T: Serialize>(value: &T) -> (Vec<u8>, Vec<u8>) {
        let expected = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
        let mut got = vec![7];
        append(value, &mut got).unwrap();
        (expected, got[1..].to_vec())
    }

    #[test]
    fn integers_are_bincodes_at_every_width_boundary() {
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
            let (a, b) = both(&v);
            assert_eq!(a, b, "{v}");
            let (a, b) = both(&(v as u128 * 3));
            assert_eq!(a, b, "{v} as u128");
        }
        for v in [
            0i64,
            -1,
            1,
            -125,
            125,
            -126,
            126,
            -40_000,
            i32::MIN as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let (a, b) = both(&v);
            assert_eq!(a, b, "{v}");
            let (a, b) = both(&(v as i32, v as i16, v as i8, i128::from(v) * 5));
            assert_eq!(a, b, "{v} narrowed and widened");
        }
        let (a, b) = both(&(u128::MAX, i128::MIN, u16::MAX, usize::MAX));
        assert_eq!(a, b);
    }

    #[test]
    fn compound_values_are_bincodes() {
        let r = Record {
            name: "naïve ☃".to_owned(),
            unit: (),
            bytes: (0..=255).collect(),
            shapes: vec![
                Shape::Dot,
                Shape::Circle(-1.5),
                Shape::Pair(-3, 1 << 100),
                Shape::Named {
                    id: 70_000,
                    tag: Some('ß'),
                },
                Shape::Named { id: 1, tag: None },
            ],
            map: (-300..300).step_by(7).map(|k| (k, k % 2 == 0)).collect(),
            wide: (-7, 1 << 40, -(1 << 40), 300),
        };
        let (a, b) = both(&r);
        assert_eq!(a, b);
        let (a, b) = both(&(1.25f32, 'x', Some(Some(2u8)), [3u16; 4], serde_bytes_like()));
        assert_eq!(a, b);
    }

    /// A value serialized as bytes (`serialize_bytes`), as `serde_bytes` does.
    fn serde_bytes_like() -> impl Serialize {
        struct B;
        impl Serialize for B {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&[1, 2, 3])
            }
        }
        B
    }

    #[test]
    fn what_bincode_refuses_is_refused() {
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeSeq;
                let seq = s.serialize_seq(None)?;
                seq.end()
            }
        }
        assert!(append(&Unsized, &mut Vec::new()).is_err());
        assert!(bincode::serde::encode_to_vec(&Unsized, bincode::config::standard()).is_err());
        struct Shown;
        impl Serialize for Shown {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&42)
            }
        }
        assert!(append(&Shown, &mut Vec::new()).is_err());
    }
}

//! Typed CBOR codecs: every type says how it is written and read in one place ([`Codec`]),
//! and [`wire_struct!`](crate::wire_struct) derives both directions of a struct encoded as a
//! CBOR array from one field list, so that the array length is computed, never written twice.
//! The primitives here carry no format of their own; the ABI ([`crate::abi`]) and the TA's
//! stored state each define their message encodings on top of them, independently.

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::cbor::{Reader, Writer};
use crate::error::{Error, Result, Uuid};

/// How values of `T` travel: `write` and `read` side by side. A codec is either the type
/// itself or a marker type naming an encoding ([`Bytes`], [`U32`], [`Opt`], [`List`], ...).
pub trait Codec<T> {
    /// How many CBOR items the value occupies where it is embedded (1, except for
    /// [`Flat`] argument groups that spread over several request arguments).
    const ITEMS: usize = 1;
    /// Appends `value`.
    fn write(value: &T, w: &mut Writer);
    /// Reads a value, checking everything the type promises.
    fn read(r: &mut Reader<'_>) -> Result<T>;
}

/// The codec of a field: the named one, or the type's own.
#[doc(hidden)]
#[macro_export]
macro_rules! wire_codec {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $codec:ty) => {
        $codec
    };
}

/// Declares a struct encoded as a CBOR array of its fields, in order, and derives its
/// [`Codec`](crate::codec::Codec). A field's encoding is its type's own unless named with
/// `as CODEC`.
#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident : $what:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty $(as $codec:ty)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::codec::Codec<$name> for $name {
            fn write(value: &$name, w: &mut $crate::cbor::Writer) {
                w.array([$(stringify!($field)),*].len());
                $( <$crate::wire_codec!($ty $(, $codec)?) as $crate::codec::Codec<$ty>>::write(&value.$field, w); )*
            }

            fn read(r: &mut $crate::cbor::Reader<'_>) -> $crate::error::Result<$name> {
                r.array_of([$(stringify!($field)),*].len() as u64, $what)?;
                Ok($name {
                    $( $field: <$crate::wire_codec!($ty $(, $codec)?) as $crate::codec::Codec<$ty>>::read(r)?, )*
                })
            }
        }
    };
}

/// Encodes `value` alone.
pub fn to_bytes<T, C: Codec<T>>(value: &T) -> Vec<u8> {
    let mut w = Writer::new();
    C::write(value, &mut w);
    w.into_bytes()
}

impl Codec<u64> for u64 {
    fn write(value: &u64, w: &mut Writer) {
        w.u64(*value);
    }
    fn read(r: &mut Reader<'_>) -> Result<u64> {
        r.u64()
    }
}

impl Codec<i64> for i64 {
    fn write(value: &i64, w: &mut Writer) {
        w.i64(*value);
    }
    fn read(r: &mut Reader<'_>) -> Result<i64> {
        r.i64()
    }
}

impl Codec<bool> for bool {
    fn write(value: &bool, w: &mut Writer) {
        w.bool(*value);
    }
    fn read(r: &mut Reader<'_>) -> Result<bool> {
        r.bool()
    }
}

/// A `u32` as a CBOR unsigned integer; a larger value is refused.
pub struct U32;

impl Codec<u32> for U32 {
    fn write(value: &u32, w: &mut Writer) {
        w.u64((*value).into());
    }
    fn read(r: &mut Reader<'_>) -> Result<u32> {
        let v = r.u64()?;
        u32::try_from(v).map_err(|_| Error::InvalidValue {
            context: r.context(),
            element: "index",
            reason: "out of range",
        })
    }
}

/// A byte string.
pub struct Bytes;

impl Codec<Vec<u8>> for Bytes {
    fn write(value: &Vec<u8>, w: &mut Writer) {
        w.bytes(value);
    }
    fn read(r: &mut Reader<'_>) -> Result<Vec<u8>> {
        r.bytes().map(<[u8]>::to_vec)
    }
}

/// A text string.
pub struct Text;

impl Codec<String> for Text {
    fn write(value: &String, w: &mut Writer) {
        w.str(value);
    }
    fn read(r: &mut Reader<'_>) -> Result<String> {
        r.str().map(String::from)
    }
}

impl Codec<Uuid> for Uuid {
    fn write(value: &Uuid, w: &mut Writer) {
        w.bytes(&value.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Uuid> {
        <[u8; 16]>::try_from(r.bytes()?)
            .map(Uuid)
            .map_err(|_| Error::InvalidValue {
                context: r.context(),
                element: "UUID",
                reason: "must be 16 bytes",
            })
    }
}

/// `C`'s encoding, or null for `None`.
pub struct Opt<C>(PhantomData<C>);

impl<T, C: Codec<T>> Codec<Option<T>> for Opt<C> {
    fn write(value: &Option<T>, w: &mut Writer) {
        match value {
            Some(v) => C::write(v, w),
            None => {
                w.null();
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Option<T>> {
        if r.is(minicbor::data::Type::Null) {
            r.null()?;
            Ok(None)
        } else {
            C::read(r).map(Some)
        }
    }
}

/// An array of `C`'s encodings.
pub struct List<C>(PhantomData<C>);

impl<T, C: Codec<T>> Codec<Vec<T>> for List<C> {
    fn write(value: &Vec<T>, w: &mut Writer) {
        w.array(value.len());
        for v in value {
            C::write(v, w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Vec<T>> {
        let n = r.array()?;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(C::read(r)?);
        }
        Ok(v)
    }
}

/// A pair as the array `[A, B]`.
pub struct Pair<A, B>(PhantomData<(A, B)>);

impl<T, U, A: Codec<T>, B: Codec<U>> Codec<(T, U)> for Pair<A, B> {
    fn write(value: &(T, U), w: &mut Writer) {
        w.array(2);
        A::write(&value.0, w);
        B::write(&value.1, w);
    }
    fn read(r: &mut Reader<'_>) -> Result<(T, U)> {
        r.array_of(2, "pair")?;
        Ok((A::read(r)?, B::read(r)?))
    }
}

/// A struct's fields spread over the enclosing array instead of a nested one (PROVISION's
/// arguments).
pub trait Flat: Sized {
    /// How many items.
    const ITEMS: usize;
    /// Appends the fields.
    fn write_flat(&self, w: &mut Writer);
    /// Reads the fields.
    fn read_flat(r: &mut Reader<'_>) -> Result<Self>;
}

/// The [`Codec`] of a [`Flat`] group.
pub struct Spread;

impl<T: Flat> Codec<T> for Spread {
    const ITEMS: usize = T::ITEMS;
    fn write(value: &T, w: &mut Writer) {
        value.write_flat(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<T> {
        T::read_flat(r)
    }
}

//! Strict CBOR reading on top of minicbor.
//!
//! SUIT structures are read with definite lengths only, without duplicate map keys, without
//! trailing bytes and with bounded nesting. Every failure becomes a typed [`Error`] naming the
//! structure being read and the byte offset inside it. Nothing here allocates in proportion to
//! a length announced by the input: collections grow only as their elements are actually read.

pub mod cose;
#[cfg(test)]
mod tests;
mod writer;

use alloc::string::ToString;
use alloc::vec::Vec;
use minicbor::data::Type;
use minicbor::Decoder;

pub use cose::{check_cose, MAX_FOREIGN_DEPTH, MAX_FOREIGN_ITEMS};
pub use writer::Writer;

use crate::error::{Error, MapKey, Result};

/// Deepest nesting of arrays/maps/tags that [`Reader::skip`] walks through.
pub const MAX_SKIP_DEPTH: usize = 16;

/// Most entries a map may have. SUIT and COSE maps hold a handful; the bound keeps the
/// duplicate-key check (each key against those before it) cheap on hostile input.
pub const MAX_MAP_ENTRIES: usize = 256;

/// A strict reader over one CBOR structure.
pub struct Reader<'b> {
    dec: Decoder<'b>,
    context: &'static str,
}

impl<'b> Reader<'b> {
    /// Reads `bytes`, naming the structure `context` in errors.
    pub fn new(bytes: &'b [u8], context: &'static str) -> Self {
        Self {
            dec: Decoder::new(bytes),
            context,
        }
    }

    /// Runs `f` over `bytes` and requires it to consume them completely.
    pub fn decode_exact<T>(
        bytes: &'b [u8],
        context: &'static str,
        f: impl FnOnce(&mut Reader<'b>) -> Result<T>,
    ) -> Result<T> {
        let mut r = Reader::new(bytes, context);
        let value = f(&mut r)?;
        r.finish()?;
        Ok(value)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        let rest = self.dec.input().len() - self.dec.position();
        if rest == 0 {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                context: self.context,
                count: rest,
            })
        }
    }

    /// The structure being read (for error messages built by callers).
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// Current byte offset.
    pub fn position(&self) -> usize {
        self.dec.position()
    }

    fn err(&self, offset: usize, expected: &'static str) -> Error {
        Error::Cbor {
            context: self.context,
            offset,
            expected,
        }
    }

    /// The type of the next item, or an error at the end of input.
    pub fn datatype(&self) -> Result<Type> {
        self.dec
            .datatype()
            .map_err(|_| self.err(self.position(), "another item"))
    }

    /// Whether the next item has the given type (false at end of input).
    pub fn is(&self, ty: Type) -> bool {
        self.dec.datatype().map(|t| t == ty).unwrap_or(false)
    }

    /// Whether the next item is an integer (of any width and sign).
    pub fn is_int(&self) -> bool {
        matches!(
            self.dec.datatype(),
            Ok(Type::U8
                | Type::U16
                | Type::U32
                | Type::U64
                | Type::I8
                | Type::I16
                | Type::I32
                | Type::I64
                | Type::Int)
        )
    }

    fn check_definite(&self) -> Result<()> {
        let at = self.position();
        match self.datatype()? {
            Type::BytesIndef | Type::StringIndef | Type::ArrayIndef | Type::MapIndef => {
                Err(Error::IndefiniteLength {
                    context: self.context,
                    offset: at,
                })
            }
            _ => Ok(()),
        }
    }

    /// An unsigned integer.
    pub fn u64(&mut self) -> Result<u64> {
        let at = self.position();
        self.dec
            .u64()
            .map_err(|_| self.err(at, "an unsigned integer"))
    }

    /// A signed or unsigned integer that fits in i64.
    pub fn i64(&mut self) -> Result<i64> {
        let at = self.position();
        self.dec.i64().map_err(|_| self.err(at, "an integer"))
    }

    /// A boolean.
    pub fn bool(&mut self) -> Result<bool> {
        let at = self.position();
        self.dec.bool().map_err(|_| self.err(at, "a boolean"))
    }

    /// CBOR null.
    pub fn null(&mut self) -> Result<()> {
        let at = self.position();
        self.dec.null().map_err(|_| self.err(at, "null"))
    }

    /// A definite-length byte string.
    pub fn bytes(&mut self) -> Result<&'b [u8]> {
        self.check_definite()?;
        let at = self.position();
        self.dec.bytes().map_err(|_| self.err(at, "a byte string"))
    }

    /// A definite-length byte string together with its complete encoding (header included),
    /// as needed for digests over "bstr-wrapped" elements.
    pub fn bytes_with_encoding(&mut self) -> Result<(&'b [u8], &'b [u8])> {
        let start = self.position();
        let content = self.bytes()?;
        let end = self.position();
        Ok((content, &self.dec.input()[start..end]))
    }

    /// A definite-length UTF-8 text string.
    pub fn str(&mut self) -> Result<&'b str> {
        self.check_definite()?;
        let at = self.position();
        self.dec
            .str()
            .map_err(|_| self.err(at, "a UTF-8 text string"))
    }

    /// A tag number.
    pub fn tag(&mut self) -> Result<u64> {
        let at = self.position();
        self.dec
            .tag()
            .map(|t| t.as_u64())
            .map_err(|_| self.err(at, "a tag"))
    }

    /// The header of a definite-length array; returns its length.
    pub fn array(&mut self) -> Result<u64> {
        self.check_definite()?;
        let at = self.position();
        match self.dec.array() {
            Ok(Some(n)) => Ok(n),
            _ => Err(self.err(at, "an array")),
        }
    }

    /// The header of an array of exactly `n` elements.
    pub fn array_of(&mut self, n: u64, expected: &'static str) -> Result<()> {
        let at = self.position();
        if self.array()? == n {
            Ok(())
        } else {
            Err(self.err(at, expected))
        }
    }

    /// The header of a definite-length map; returns a tracker that rejects duplicate keys.
    pub fn map(&mut self) -> Result<MapEntries> {
        self.check_definite()?;
        let at = self.position();
        match self.dec.map() {
            Ok(Some(n)) if n <= MAX_MAP_ENTRIES as u64 => Ok(MapEntries {
                remaining: n,
                seen: Vec::new(),
            }),
            Ok(Some(_)) => Err(Error::LimitExceeded {
                what: "CBOR map entries",
                limit: MAX_MAP_ENTRIES,
            }),
            _ => Err(self.err(at, "a map")),
        }
    }

    /// Reads the next map key and rejects it if the map already had it.
    pub fn map_key(&mut self, entries: &mut MapEntries) -> Result<Key<'b>> {
        let key = if self.is_int() {
            Key::Int(self.i64()?)
        } else if self.is(Type::String) {
            Key::Text(self.str()?)
        } else {
            Key::Other(self.raw_item()?)
        };
        entries.insert(self.context, key.to_owned())?;
        Ok(key)
    }

    /// Skips one complete item, rejecting indefinite lengths and deep nesting.
    pub fn skip(&mut self) -> Result<()> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Error::LimitExceeded {
                what: "CBOR nesting depth",
                limit: MAX_SKIP_DEPTH,
            });
        }
        self.check_definite()?;
        let at = self.position();
        match self.datatype()? {
            Type::Array => {
                let n = self.array()?;
                for _ in 0..n {
                    self.skip_depth(depth + 1)?;
                }
            }
            Type::Map => {
                let n = self.map()?.remaining;
                for _ in 0..n {
                    self.skip_depth(depth + 1)?;
                    self.skip_depth(depth + 1)?;
                }
            }
            Type::Tag => {
                self.tag()?;
                self.skip_depth(depth + 1)?;
            }
            Type::Break | Type::Unknown(_) => return Err(self.err(at, "a well-formed item")),
            _ => self.skip_scalar(at)?,
        }
        Ok(())
    }

    /// Skips the definite-length item at `at` that is no array, map or tag: its head (RFC 8949
    /// 3.1), and the content of a byte or text string.
    fn skip_scalar(&mut self, at: usize) -> Result<()> {
        let input = self.dec.input();
        let malformed = || self.err(at, "a well-formed item");
        let initial = *input.get(at).ok_or_else(malformed)?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let (head, argument) = match info {
            0..=23 => (1, u64::from(info)),
            24..=27 => {
                let len = 1usize << (info - 24);
                let bytes = input.get(at + 1..at + 1 + len).ok_or_else(malformed)?;
                let value = bytes.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
                (1 + len, value)
            }
            _ => return Err(malformed()),
        };
        // A simple value below 32 in two bytes is not well-formed (RFC 8949 3.3).
        if major == 7 && info == 24 && argument < 32 {
            return Err(malformed());
        }
        let content = match major {
            2 | 3 => usize::try_from(argument).map_err(|_| malformed())?,
            _ => 0,
        };
        let end = (at + head)
            .checked_add(content)
            .filter(|end| *end <= input.len())
            .ok_or_else(malformed)?;
        self.dec.set_position(end);
        Ok(())
    }

    /// Skips one item and returns its complete encoding.
    pub fn raw_item(&mut self) -> Result<&'b [u8]> {
        let start = self.position();
        self.skip()?;
        Ok(&self.dec.input()[start..self.position()])
    }
}

/// A map key borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'b> {
    /// Integer key.
    Int(i64),
    /// Text key.
    Text(&'b str),
    /// Any other key, as its encoding.
    Other(&'b [u8]),
}

impl Key<'_> {
    /// An owned copy for messages and duplicate tracking.
    pub fn to_owned(&self) -> MapKey {
        match *self {
            Key::Int(i) => MapKey::Int(i),
            Key::Text(t) => MapKey::Text(t.to_string()),
            Key::Other(b) => MapKey::Other(b.to_vec()),
        }
    }
}

/// Tracks the keys of one map being read: how many entries remain and which keys were seen.
pub struct MapEntries {
    remaining: u64,
    seen: Vec<MapKey>,
}

impl MapEntries {
    /// Counts down the entries; true while one remains to be read.
    pub fn next_entry(&mut self) -> bool {
        if self.remaining == 0 {
            false
        } else {
            self.remaining -= 1;
            true
        }
    }

    fn insert(&mut self, context: &'static str, key: MapKey) -> Result<()> {
        if self.seen.contains(&key) {
            Err(Error::DuplicateKey { context, key })
        } else {
            self.seen.push(key);
            Ok(())
        }
    }
}

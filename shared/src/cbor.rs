//! Strict CBOR reading on top of minicbor.
//!
//! SUIT structures are read with definite lengths only, without duplicate map keys, without
//! trailing bytes and with bounded nesting. Every failure becomes a typed [`Error`] naming the
//! structure being read and the byte offset inside it. Nothing here allocates in proportion to
//! a length announced by the input: collections grow only as their elements are actually read.

use alloc::collections::BTreeSet;
use alloc::string::ToString;
use alloc::vec::Vec;
use minicbor::data::Type;
use minicbor::Decoder;

use crate::error::{Error, MapKey, Result};

/// Deepest nesting of arrays/maps/tags that [`Reader::skip`] walks through.
pub const MAX_SKIP_DEPTH: usize = 16;

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
            Ok(Some(n)) => Ok(MapEntries {
                remaining: n,
                seen: BTreeSet::new(),
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
            _ => self
                .dec
                .skip()
                .map_err(|_| self.err(at, "a well-formed item"))?,
        }
        Ok(())
    }

    /// Skips one item and returns its complete encoding.
    pub fn raw_item(&mut self) -> Result<&'b [u8]> {
        let start = self.position();
        self.skip()?;
        Ok(&self.dec.input()[start..self.position()])
    }
}

/// Deepest nesting of arrays, maps and tags a third-party decoder (coset/ciborium) is given.
///
/// ciborium recurses once per level; at about 75 levels it exhausts the TA's 48 KiB stack. No
/// COSE structure we read needs more than a handful of levels.
pub const MAX_FOREIGN_DEPTH: usize = MAX_SKIP_DEPTH;

/// Most CBOR items (counting those inside protected headers) in one structure given to a
/// third-party decoder: it allocates a value per item, the TA's heap is small.
pub const MAX_FOREIGN_ITEMS: usize = 512;

/// Walks one complete item without recursion and checks it against the
/// [`MAX_FOREIGN_DEPTH`]/[`MAX_FOREIGN_ITEMS`] bounds; `items` counts down the item budget.
fn check_item(r: &mut Reader<'_>, items: &mut usize) -> Result<()> {
    // Elements still to read in each open array, map or tag.
    let mut open = [0u64; MAX_FOREIGN_DEPTH];
    let mut depth = 0;
    loop {
        if *items == 0 {
            return Err(Error::LimitExceeded {
                what: "CBOR items in a COSE structure",
                limit: MAX_FOREIGN_ITEMS,
            });
        }
        *items -= 1;
        let at = r.position();
        let elements = match r.datatype()? {
            Type::Array => r.array()?,
            Type::Map => r.map()?.remaining.saturating_mul(2),
            Type::Tag => {
                r.tag()?;
                1
            }
            Type::Break | Type::Unknown(_) => return Err(r.err(at, "a well-formed item")),
            // A scalar, byte or text string: skip() rejects indefinite lengths.
            _ => {
                r.skip()?;
                0
            }
        };
        if elements > 0 {
            let Some(slot) = open.get_mut(depth) else {
                return Err(Error::LimitExceeded {
                    what: "CBOR nesting depth",
                    limit: MAX_FOREIGN_DEPTH,
                });
            };
            *slot = elements;
            depth += 1;
            continue;
        }
        // The item is complete: so is every container it was the last element of.
        loop {
            let Some(last) = depth.checked_sub(1) else {
                return Ok(());
            };
            open[last] -= 1;
            if open[last] > 0 {
                break;
            }
            depth = last;
        }
    }
}

/// Checks, before coset/ciborium see them, that `bytes` hold exactly one tagged or untagged
/// COSE structure (Sign1, Sign, Mac0, Mac, Encrypt0, Encrypt) that those recursive decoders
/// can take on the TA's stack and heap: nesting of at most [`MAX_FOREIGN_DEPTH`] levels, at
/// most [`MAX_FOREIGN_ITEMS`] items, the same bounds inside every protected header (which
/// coset decodes from its bstr), definite lengths and no counter signatures (whose protected
/// headers would be decoded recursively). Shape errors are left to the decoder.
pub fn check_cose(bytes: &[u8], context: &'static str) -> Result<()> {
    let mut items = MAX_FOREIGN_ITEMS;
    Reader::decode_exact(bytes, context, |r| check_item(r, &mut items))?;
    let mut r = Reader::new(bytes, context);
    if r.is(Type::Tag) {
        r.tag()?;
    }
    check_cose_layer(&mut r, &mut items)
}

/// One COSE layer `[protected, unprotected, ...]`; later elements that are arrays are lists
/// of nested layers (signatures, recipients). Depth is bounded by [`check_item`] already.
fn check_cose_layer(r: &mut Reader<'_>, items: &mut usize) -> Result<()> {
    if !r.is(Type::Array) {
        return r.skip();
    }
    let n = r.array()?;
    for i in 0..n {
        match i {
            0 if r.is(Type::Bytes) => {
                let protected = r.bytes()?;
                if !protected.is_empty() {
                    Reader::decode_exact(protected, "COSE protected header", |h| {
                        check_item(h, items)
                    })?;
                    Reader::decode_exact(protected, "COSE protected header", check_cose_header)?;
                }
            }
            1 if r.is(Type::Map) => check_cose_header(r)?,
            i if i >= 2 && r.is(Type::Array) => {
                let layers = r.array()?;
                for _ in 0..layers {
                    check_cose_layer(r, items)?;
                }
            }
            _ => r.skip()?,
        }
    }
    Ok(())
}

/// COSE header label of a counter signature (RFC 9338 §3.1, and RFC 8152's label 7).
const COSE_COUNTER_SIGNATURE: i64 = 7;

fn check_cose_header(r: &mut Reader<'_>) -> Result<()> {
    if !r.is(Type::Map) {
        return r.skip();
    }
    let mut entries = r.map()?;
    while entries.next_entry() {
        if r.map_key(&mut entries)? == Key::Int(COSE_COUNTER_SIGNATURE) {
            return Err(Error::Unsupported(
                "COSE counter signatures (header parameter 7)".into(),
            ));
        }
        r.skip()?;
    }
    Ok(())
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
    seen: BTreeSet<MapKey>,
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
        if self.seen.insert(key.clone()) {
            Ok(())
        } else {
            Err(Error::DuplicateKey { context, key })
        }
    }
}

/// A minimal deterministic CBOR writer (definite lengths, shortest heads).
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn head(&mut self, major: u8, arg: u64) -> &mut Self {
        let m = major << 5;
        match arg {
            0..=23 => self.buf.push(m | arg as u8),
            24..=0xff => self.buf.extend_from_slice(&[m | 24, arg as u8]),
            0x100..=0xffff => {
                self.buf.push(m | 25);
                self.buf.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(m | 26);
                self.buf.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(m | 27);
                self.buf.extend_from_slice(&arg.to_be_bytes());
            }
        }
        self
    }

    /// An unsigned integer.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.head(0, v)
    }

    /// A signed integer.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        if v >= 0 {
            self.head(0, v as u64)
        } else {
            self.head(1, !(v as u64))
        }
    }

    /// A byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.head(2, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// A text string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.head(3, v.len() as u64);
        self.buf.extend_from_slice(v.as_bytes());
        self
    }

    /// An array header.
    pub fn array(&mut self, len: usize) -> &mut Self {
        self.head(4, len as u64)
    }

    /// A map header.
    pub fn map(&mut self, len: usize) -> &mut Self {
        self.head(5, len as u64)
    }

    /// A tag.
    pub fn tag(&mut self, tag: u64) -> &mut Self {
        self.head(6, tag)
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(if v { 0xf5 } else { 0xf4 });
        self
    }

    /// Null.
    pub fn null(&mut self) -> &mut Self {
        self.buf.push(0xf6);
        self
    }

    /// Already-encoded CBOR, copied verbatim.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_round_trips_integers() {
        for v in [
            0i64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -24,
            -25,
            -257,
            i64::MIN,
        ] {
            let mut w = Writer::new();
            w.i64(v);
            let bytes = w.into_bytes();
            assert_eq!(Reader::decode_exact(&bytes, "t", |r| r.i64()).unwrap(), v);
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        let err = Reader::decode_exact(&[0x01, 0x02], "test", |r| r.u64()).unwrap_err();
        assert_eq!(
            err,
            Error::TrailingBytes {
                context: "test",
                count: 1
            }
        );
    }

    #[test]
    fn rejects_indefinite_items() {
        for bytes in [
            &[0x9f, 0xff][..],
            &[0xbf, 0xff],
            &[0x5f, 0xff],
            &[0x7f, 0xff],
        ] {
            let err = Reader::decode_exact(bytes, "test", |r| r.skip()).unwrap_err();
            assert!(
                matches!(err, Error::IndefiniteLength { offset: 0, .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn rejects_duplicate_keys() {
        // {1: 0, 1: 0}
        let err = Reader::decode_exact(&[0xa2, 0x01, 0x00, 0x01, 0x00], "test", |r| {
            let mut m = r.map()?;
            while m.next_entry() {
                r.map_key(&mut m)?;
                r.skip()?;
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            err,
            Error::DuplicateKey {
                context: "test",
                key: MapKey::Int(1)
            }
        );
    }

    #[test]
    fn bounds_nesting() {
        let mut deep = alloc::vec![0x81u8; 40];
        deep.push(0x00);
        let err = Reader::decode_exact(&deep, "test", |r| r.skip()).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }));
    }

    /// A COSE_Sign1 whose protected header maps label 100 to `value`.
    fn sign1_with_protected(value: &[u8]) -> alloc::vec::Vec<u8> {
        let mut protected = Writer::new();
        protected.map(1).u64(100).raw(value);
        let mut w = Writer::new();
        w.tag(18)
            .array(4)
            .bytes(&protected.into_bytes())
            .map(0)
            .null()
            .bytes(&[0; 64]);
        w.into_bytes()
    }

    fn nested(depth: usize) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0x81u8; depth];
        v.push(0);
        v
    }

    #[test]
    fn cose_precheck_bounds_nesting_inside_protected_headers() {
        // The protected header map is one level: 15 arrays inside it are the most accepted.
        check_cose(&sign1_with_protected(&nested(MAX_FOREIGN_DEPTH - 1)), "t").unwrap();
        let err = check_cose(&sign1_with_protected(&nested(MAX_FOREIGN_DEPTH)), "t").unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    what: "CBOR nesting depth",
                    ..
                }
            ),
            "{err:?}"
        );
        // Deep nesting in the unprotected header or anywhere else in the structure, too.
        let mut w = Writer::new();
        w.tag(18)
            .array(4)
            .bytes(&[])
            .map(1)
            .u64(100)
            .raw(&nested(40));
        w.null().bytes(&[]);
        assert!(matches!(
            check_cose(&w.into_bytes(), "t"),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn cose_precheck_bounds_items_and_refuses_counter_signatures() {
        // 600 empty arrays: shallow, but one decoder value each.
        let mut many = Writer::new();
        many.array(600);
        for _ in 0..600 {
            many.array(0);
        }
        let err = check_cose(&sign1_with_protected(&many.into_bytes()), "t").unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    what: "CBOR items in a COSE structure",
                    ..
                }
            ),
            "{err:?}"
        );
        // A counter signature carries a protected header of its own, decoded recursively.
        let mut w = Writer::new();
        w.tag(18).array(4).bytes(&[]).map(1).u64(7);
        w.array(3).bytes(&[]).map(0).bytes(&[0; 8]);
        w.null().bytes(&[]);
        assert!(matches!(
            check_cose(&w.into_bytes(), "t"),
            Err(Error::Unsupported(_))
        ));
        // Indefinite lengths and trailing bytes are refused as everywhere else.
        assert!(check_cose(&[0xd2, 0x9f, 0xff], "t").is_err());
        assert!(check_cose(&[0xd2, 0x80, 0x00], "t").is_err());
    }

    #[test]
    fn huge_announced_lengths_do_not_allocate() {
        // An array announcing 2^63 elements with none present.
        let bytes = [0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(Reader::decode_exact(&bytes, "test", |r| r.skip()).is_err());
        // A byte string announcing 4 GiB.
        let bytes = [0x5a, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::decode_exact(&bytes, "test", |r| r.bytes().map(|_| ())).is_err());
    }
}

//! The pre-check of COSE structures before coset/ciborium decode them: bounded nesting and
//! item count, definite lengths, no counter signatures.

use minicbor::data::Type;

use super::{Key, Reader, MAX_SKIP_DEPTH};
use crate::error::{Error, Result};

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

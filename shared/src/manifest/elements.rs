//! The manifest's elements as read before anything is interpreted (`RawElements`), and the
//! resolution of a severable element against the envelope (inline, or a digest and the
//! matching envelope member).

use alloc::vec::Vec;

use minicbor::data::Type;

use super::Severable;
use crate::cbor::{Key, Reader};
use crate::digest::SuitDigest;
use crate::envelope::{Envelope, Wrapped};
use crate::error::{Error, Result};

/// The manifest's elements by key, undecoded, in the order read (the reader refuses duplicate
/// keys). A few known keys are looked up, so a list does (and keeps a B-tree out of the TA).
pub(super) struct RawElements<'a>(Vec<(i64, &'a [u8])>);

impl<'a> RawElements<'a> {
    pub(super) fn decode(content: &'a [u8]) -> Result<Self> {
        Reader::decode_exact(content, "manifest", |r| {
            let mut entries = r.map()?;
            let mut raw = Vec::new();
            while entries.next_entry() {
                match r.map_key(&mut entries)? {
                    Key::Int(k) => raw.push((k, r.raw_item()?)),
                    _ => {
                        return Err(Error::Unsupported(
                            "manifest elements with non-integer keys".into(),
                        ))
                    }
                }
            }
            Ok(RawElements(raw))
        })
    }

    pub(super) fn get(&self, key: i64) -> Option<&'a [u8]> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, item)| *item)
    }

    pub(super) fn contains_key(&self, key: i64) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().map(|(k, _)| *k)
    }
}

/// Resolves a severable manifest element: inline bstr, or digest + matching envelope member.
pub(super) fn resolve_severable<'a>(
    raw: Option<&'a [u8]>,
    envelope: &Envelope<'a>,
    k: i64,
    name: &'static str,
) -> Result<Severable<'a, &'a [u8]>> {
    let Some(raw) = raw else {
        return Ok(Severable::Absent);
    };
    let member = envelope.severed(k);
    let r = Reader::new(raw, name);
    if r.is(Type::Array) {
        let digest = SuitDigest::decode_exact(raw, name)?;
        match member {
            None => Ok(Severable::Severed(digest)),
            Some(Wrapped { content, encoding }) => {
                if digest.matches_data(encoding) {
                    Ok(Severable::Present {
                        value: content,
                        severed: true,
                    })
                } else {
                    Err(Error::SeveredDigestMismatch(name))
                }
            }
        }
    } else {
        if member.is_some() {
            return Err(Error::UnexpectedSeveredElement(name));
        }
        let content = Reader::decode_exact(raw, name, |r| r.bytes())?;
        Ok(Severable::Present {
            value: content,
            severed: false,
        })
    }
}

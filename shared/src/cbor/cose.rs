//! COSE signing and MAC structures (RFC 9052) on the core's CBOR reader: a pre-check that
//! bounds nesting and item count and refuses counter signatures, the decoder of COSE_Sign1,
//! COSE_Sign, COSE_Mac0 and COSE_Mac, their to-be-signed structures, and the COSE_Sign1
//! encoder the tool and the TA sign with. (COSE_Encrypt lives in `encryption::cose`.)

use alloc::vec::Vec;

use minicbor::data::Type;

use super::{Key, Reader, Writer, MAX_SKIP_DEPTH};
use crate::error::{Error, Result};

/// Deepest nesting of arrays, maps and tags in a COSE signing structure given to
/// [`CoseBlock::decode_tagged`] (whose COSE_Mac recipients recurse once per level). No COSE
/// structure we read needs more than a handful of levels.
pub const MAX_FOREIGN_DEPTH: usize = MAX_SKIP_DEPTH;

/// Most CBOR items (counting those inside protected headers) in one COSE signing structure:
/// the TA's time and heap are small.
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

/// Checks, before [`CoseBlock::decode_tagged`] sees them, that `bytes` hold exactly one tagged
/// or untagged COSE structure (Sign1, Sign, Mac0, Mac, Encrypt0, Encrypt) within the TA's
/// means: nesting of at most [`MAX_FOREIGN_DEPTH`] levels, at
/// most [`MAX_FOREIGN_ITEMS`] items, the same bounds inside every protected header (decoded
/// from its bstr), definite lengths and no counter signatures (whose protected
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

/// COSE tags of the signing and MAC structures (RFC 9052 §2).
pub mod tag {
    /// COSE_Sign1.
    pub const SIGN1: u64 = 18;
    /// COSE_Sign.
    pub const SIGN: u64 = 98;
    /// COSE_Mac0.
    pub const MAC0: u64 = 17;
    /// COSE_Mac.
    pub const MAC: u64 = 97;
}

/// COSE header labels of the signing structures (RFC 9052 §3.1).
mod label {
    pub const ALG: i64 = 1;
    pub const CRIT: i64 = 2;
    pub const CONTENT_TYPE: i64 = 3;
    pub const KID: i64 = 4;
    pub const IV: i64 = 5;
    pub const PARTIAL_IV: i64 = 6;
    pub const EPHEMERAL_KEY: i64 = -1;
}

/// A content type header parameter (RFC 9052 §3.1, label 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType<'a> {
    /// A CoAP content format number.
    Format(u64),
    /// A media type `type/subtype`.
    Text(&'a str),
}

/// The parameters of one COSE header map that the signing and encryption structures use;
/// every other label is checked for its key type and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header<'a> {
    /// Whether the header has an `alg` parameter at all (integer or text).
    pub has_alg: bool,
    /// The algorithm when it is an integer.
    pub alg: Option<i64>,
    /// Whether the header has a `crit` parameter.
    pub crit: bool,
    /// The content type.
    pub content_type: Option<ContentType<'a>>,
    /// The key id, empty when absent.
    pub kid: &'a [u8],
    /// The IV.
    pub iv: Option<&'a [u8]>,
    /// Whether the header has a partial IV.
    pub partial_iv: bool,
    /// The encoding of the ephemeral key (label -1, a COSE_Key), decoded by its user.
    pub ephemeral_key: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// Decodes a header map: labels are integers or text and unique; `kid`, IV and partial
    /// IV non-empty byte strings (not both IVs); a text content type of the form
    /// `type/subtype`; `crit` is noted, not read (every user refuses it).
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let mut h = Header::default();
        let mut entries = r.map()?;
        let mut ivs = 0;
        while entries.next_entry() {
            let at = r.position();
            match r.map_key(&mut entries)? {
                Key::Int(label::ALG) => {
                    h.has_alg = true;
                    if r.is(Type::String) {
                        r.str()?;
                    } else {
                        h.alg = Some(r.i64()?);
                    }
                }
                // Its users refuse critical parameters whatever the value says.
                Key::Int(label::CRIT) => {
                    h.crit = true;
                    r.skip()?;
                }
                Key::Int(label::CONTENT_TYPE) => {
                    h.content_type = Some(if r.is(Type::String) {
                        let text = r.str()?;
                        if text.is_empty() || text.trim() != text || text.matches('/').count() != 1
                        {
                            return Err(r.err(at, "a content type of the form type/subtype"));
                        }
                        ContentType::Text(text)
                    } else {
                        ContentType::Format(r.u64()?)
                    });
                }
                Key::Int(label @ (label::KID | label::IV | label::PARTIAL_IV)) => {
                    let value = r.bytes()?;
                    if value.is_empty() {
                        return Err(r.err(at, "a non-empty byte string"));
                    }
                    match label {
                        label::KID => h.kid = value,
                        label::IV => h.iv = Some(value),
                        _ => h.partial_iv = true,
                    }
                    if label != label::KID {
                        ivs += 1;
                        if ivs > 1 {
                            return Err(r.err(at, "only one of IV and partial IV"));
                        }
                    }
                }
                Key::Int(label::EPHEMERAL_KEY) => h.ephemeral_key = Some(r.raw_item()?),
                Key::Int(_) | Key::Text(_) => r.skip()?,
                Key::Other(_) => return Err(r.err(at, "an integer or text header label")),
            }
        }
        Ok(h)
    }

    /// Decodes a protected header from the content of its bstr (empty: no parameters),
    /// naming it `context` in errors.
    pub fn decode_protected(bytes: &'a [u8], context: &'static str) -> Result<Self> {
        if bytes.is_empty() {
            Ok(Header::default())
        } else {
            Reader::decode_exact(bytes, context, Header::decode)
        }
    }
}

/// One COSE layer's headers: the protected header as encoded (the content of its bstr, which
/// the signature covers) and both headers decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers<'a> {
    /// The serialized protected header.
    pub protected_raw: &'a [u8],
    /// The protected header.
    pub protected: Header<'a>,
    /// The unprotected header.
    pub unprotected: Header<'a>,
}

impl<'a> Headers<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let protected_raw = r.bytes()?;
        Ok(Headers {
            protected_raw,
            protected: Header::decode_protected(protected_raw, "COSE protected header")?,
            unprotected: Header::decode(r)?,
        })
    }
}

/// One signer of a COSE_Sign (a COSE_Signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature<'a> {
    /// Its headers.
    pub headers: Headers<'a>,
    /// The signature.
    pub signature: &'a [u8],
}

/// A decoded COSE signing or MAC structure (RFC 9052 §4, §6); byte strings borrow the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseBlock<'a> {
    /// COSE_Sign1 `[protected, unprotected, payload / nil, signature]`.
    Sign1 {
        /// Its headers.
        headers: Headers<'a>,
        /// The attached payload, if any.
        payload: Option<&'a [u8]>,
        /// The signature.
        signature: &'a [u8],
    },
    /// COSE_Sign `[protected, unprotected, payload / nil, [* COSE_Signature]]`.
    Sign {
        /// The body's headers.
        headers: Headers<'a>,
        /// The attached payload, if any.
        payload: Option<&'a [u8]>,
        /// The signers.
        signatures: Vec<Signature<'a>>,
    },
    /// COSE_Mac0 `[protected, unprotected, payload / nil, tag]`.
    Mac0 {
        /// Its headers.
        headers: Headers<'a>,
        /// The attached payload, if any.
        payload: Option<&'a [u8]>,
        /// The MAC tag.
        tag: &'a [u8],
    },
    /// COSE_Mac `[protected, unprotected, payload / nil, tag, [+ COSE_recipient]]`: its
    /// shape is checked, nothing of it is used.
    Mac,
}

impl<'a> CoseBlock<'a> {
    /// Decodes exactly one COSE structure tagged `tag` (see [`tag`]) from `bytes`. Run
    /// [`check_cose`] first: it bounds nesting and item count.
    pub fn decode_tagged(bytes: &'a [u8], tag: u64, context: &'static str) -> Result<Self> {
        Reader::decode_exact(bytes, context, |r| {
            let at = r.position();
            if r.tag()? != tag {
                return Err(r.err(at, "another COSE tag"));
            }
            let at = r.position();
            let n = r.array()?;
            let expected = match tag {
                tag::SIGN1 | tag::SIGN | tag::MAC0 => 4,
                tag::MAC => 5,
                _ => return Err(r.err(at, "a COSE signing or MAC structure")),
            };
            if n != expected {
                return Err(r.err(at, "a COSE structure with the right number of elements"));
            }
            let headers = Headers::decode(r)?;
            let payload = if r.is(Type::Null) {
                r.null()?;
                None
            } else {
                Some(r.bytes()?)
            };
            Ok(match tag {
                tag::SIGN1 => CoseBlock::Sign1 {
                    headers,
                    payload,
                    signature: r.bytes()?,
                },
                tag::MAC0 => CoseBlock::Mac0 {
                    headers,
                    payload,
                    tag: r.bytes()?,
                },
                tag::SIGN => {
                    let n = r.array()?;
                    let mut signatures = Vec::new();
                    for _ in 0..n {
                        r.array_of(3, "COSE_Signature [protected, unprotected, signature]")?;
                        signatures.push(Signature {
                            headers: Headers::decode(r)?,
                            signature: r.bytes()?,
                        });
                    }
                    CoseBlock::Sign {
                        headers,
                        payload,
                        signatures,
                    }
                }
                _ => {
                    r.bytes()?;
                    let n = r.array()?;
                    if n == 0 {
                        return Err(r.err(at, "at least one COSE recipient"));
                    }
                    for _ in 0..n {
                        recipient_shape(r)?;
                    }
                    CoseBlock::Mac
                }
            })
        })
    }
}

/// Checks a COSE_recipient `[protected, unprotected, ciphertext / nil, ? [+ recipient]]`;
/// nesting is bounded by [`check_cose`].
fn recipient_shape(r: &mut Reader<'_>) -> Result<()> {
    let at = r.position();
    let n = r.array()?;
    if !(3..=4).contains(&n) {
        return Err(r.err(at, "COSE_recipient [protected, unprotected, ciphertext]"));
    }
    Headers::decode(r)?;
    if r.is(Type::Null) {
        r.null()?;
    } else {
        r.bytes()?;
    }
    if n == 4 {
        for _ in 0..r.array()? {
            recipient_shape(r)?;
        }
    }
    Ok(())
}

/// The data a COSE signature or MAC is computed over, with an empty external AAD
/// (RFC 9052 §4.4, §6.3): `[context, body_protected, ? sign_protected, h'', payload]`, where
/// the context is "Signature1", "Signature" (with the signer's protected header) or "MAC0".
pub fn to_be_signed(
    context: &str,
    body_protected: &[u8],
    sign_protected: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4 + usize::from(sign_protected.is_some()))
        .str(context)
        .bytes(body_protected);
    if let Some(p) = sign_protected {
        w.bytes(p);
    }
    w.bytes(&[]).bytes(payload);
    w.into_bytes()
}

/// The protected header `{1: alg, ? 3: content type}` as the encoders here write it.
pub fn protected_header(alg: i64, content_type: Option<&str>) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(1 + usize::from(content_type.is_some()))
        .u64(label::ALG as u64)
        .i64(alg);
    if let Some(ct) = content_type {
        w.u64(label::CONTENT_TYPE as u64).str(ct);
    }
    w.into_bytes()
}

/// A tagged COSE_Sign1 with the given serialized protected header, an unprotected header
/// `{4: kid}` (or `{}` when `kid` is empty), the payload attached or not, and the signature.
pub fn encode_sign1(
    protected: &[u8],
    kid: &[u8],
    payload: Option<&[u8]>,
    signature: &[u8],
) -> Vec<u8> {
    let mut w = Writer::new();
    w.tag(tag::SIGN1).array(4).bytes(protected);
    if kid.is_empty() {
        w.map(0);
    } else {
        w.map(1).u64(label::KID as u64).bytes(kid);
    }
    match payload {
        Some(p) => w.bytes(p),
        None => w.null(),
    };
    w.bytes(signature);
    w.into_bytes()
}

//! SUIT_Encryption_Info: a tagged COSE_Encrypt (96) or COSE_Encrypt0 (16) with detached
//! ciphertext (RFC 9052 §5), decoded into typed algorithms, IV and recipients.

use alloc::vec::Vec;

use minicbor::data::Type;

use super::{AesKwAlg, ContentAlg};
use crate::cbor::{cose, Key, Reader, Writer};
use crate::crypto::Curve;
use crate::error::{Error, Result};

/// CBOR tag of COSE_Encrypt.
pub const TAG_ENCRYPT: u64 = 96;
/// CBOR tag of COSE_Encrypt0.
pub const TAG_ENCRYPT0: u64 = 16;
/// Most recipients one encryption info may list.
pub const MAX_RECIPIENTS: usize = 16;

/// COSE_Key labels of EC2 and OKP keys (RFC 9053 §7.1, §7.2).
mod key_label {
    pub const KTY: i64 = 1;
    pub const CRV: i64 = -1;
    pub const X: i64 = -2;
    pub const Y: i64 = -3;
    pub const KTY_OKP: i64 = 1;
    pub const KTY_EC2: i64 = 2;
    pub const CRV_P256: i64 = 1;
    pub const CRV_P384: i64 = 2;
    pub const CRV_X25519: i64 = 4;
}

/// A decoded SUIT_Encryption_Info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionInfo<'a> {
    /// How the payload is encrypted.
    pub content_alg: ContentAlg,
    /// The IV: 12 bytes for AES-GCM, the 16-byte initial counter block for AES-CTR.
    pub iv: &'a [u8],
    /// The serialized protected header (content of its bstr); AES-GCM authenticates it.
    pub protected: &'a [u8],
    /// Who can obtain the content key.
    pub recipients: Recipients<'a>,
}

/// Where the content key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// COSE_Encrypt: the content key wrapped for each recipient. Recipients with algorithms
    /// this device does not implement are left out; at least one remains.
    Wrapped(Vec<Recipient<'a>>),
    /// COSE_Encrypt0: a content key the device holds already, optionally named by a kid.
    Direct {
        /// Key id from the unprotected header.
        kid: Option<&'a [u8]>,
    },
}

/// One COSE_recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// How the content key is wrapped.
    pub distribution: KeyDistribution,
    /// Key id naming the device key, if any.
    pub kid: Option<&'a [u8]>,
    /// The serialized protected header; ECDH-ES binds it into the KDF context.
    pub protected: &'a [u8],
    /// The wrapped content key (content key length + 8 bytes).
    pub wrapped_cek: &'a [u8],
}

/// A key-distribution method of the draft (§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDistribution {
    /// AES key wrap with a KEK the device holds (A128KW -3, A256KW -5).
    AesKw(AesKwAlg),
    /// Ephemeral-static ECDH, HKDF-SHA-256, then AES key wrap (ECDH-ES+A128KW -29,
    /// ECDH-ES+A256KW -31).
    EcdhEs {
        /// The key wrap after key agreement.
        wrap: AesKwAlg,
        /// The sender's ephemeral public key.
        ephemeral: EphemeralKey,
    },
    /// The same with X25519 (an OKP ephemeral key, crv 4): draft-ietf-suit-mti's EdDSA
    /// profile.
    EcdhEsX25519 {
        /// The key wrap after key agreement.
        wrap: AesKwAlg,
        /// The sender's ephemeral public key (RFC 7748 u-coordinate).
        ephemeral: [u8; 32],
    },
}

impl KeyDistribution {
    const SUPPORTED: &'static str = "-3 A128KW, -5 A256KW, -29 ECDH-ES+A128KW, -31 ECDH-ES+A256KW";

    /// The COSE algorithm identifier.
    pub fn cose_id(&self) -> i64 {
        match self {
            KeyDistribution::AesKw(wrap) => wrap.cose_id(),
            KeyDistribution::EcdhEs { wrap, .. } | KeyDistribution::EcdhEsX25519 { wrap, .. } => {
                wrap.ecdh_es_cose_id()
            }
        }
    }
}

/// An ephemeral ECDH public key (COSE_Key, EC2), validated as a point on its curve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralKey {
    /// The curve (crv 1: P-256, crv 2: P-384).
    pub curve: Curve,
    /// The point, SEC1 uncompressed (decompressed when the key gave only y's sign).
    pub point: Vec<u8>,
}

/// The header parameters encryption reads, from the core's COSE header decoder
/// ([`cose::Header`]); `crit` and a partial IV are refused.
#[derive(Default)]
struct Headers<'a> {
    alg: Option<i64>,
    kid: Option<&'a [u8]>,
    iv: Option<&'a [u8]>,
    ephemeral: Option<Ephemeral>,
}

/// An ephemeral key of either key type.
enum Ephemeral {
    Ec2(EphemeralKey),
    X25519([u8; 32]),
}

impl<'a> Headers<'a> {
    fn from_header(h: cose::Header<'a>, context: &'static str) -> Result<Self> {
        if h.crit {
            return Err(Error::Unsupported(
                "critical COSE header parameters (crit) in encryption info".into(),
            ));
        }
        if h.partial_iv {
            return Err(Error::Unsupported(
                "a partial IV in encryption info (give the full IV)".into(),
            ));
        }
        if h.has_alg && h.alg.is_none() {
            return Err(Error::InvalidValue {
                context,
                element: "alg",
                reason: "must be an integer",
            });
        }
        Ok(Headers {
            alg: h.alg,
            kid: (!h.kid.is_empty()).then_some(h.kid),
            iv: h.iv,
            ephemeral: h
                .ephemeral_key
                .map(|raw| Reader::decode_exact(raw, "ephemeral key", ephemeral_key))
                .transpose()?,
        })
    }

    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let context = r.context();
        Self::from_header(cose::Header::decode(r)?, context)
    }

    /// Decodes a protected header from the content of its bstr (empty means no parameters).
    fn decode_protected(bytes: &'a [u8], context: &'static str) -> Result<Self> {
        Self::from_header(cose::Header::decode_protected(bytes, context)?, context)
    }

    /// Protected and unprotected parameters together; a label may not be in both (RFC 9052 §3).
    fn merge(self, other: Headers<'a>, context: &'static str) -> Result<Self> {
        fn one<T>(
            a: Option<T>,
            b: Option<T>,
            context: &'static str,
            element: &'static str,
        ) -> Result<Option<T>> {
            match (a, b) {
                (Some(_), Some(_)) => Err(Error::InvalidValue {
                    context,
                    element,
                    reason: "appears in both the protected and the unprotected header",
                }),
                (a, b) => Ok(a.or(b)),
            }
        }
        Ok(Headers {
            alg: one(self.alg, other.alg, context, "alg")?,
            kid: one(self.kid, other.kid, context, "kid")?,
            iv: one(self.iv, other.iv, context, "IV")?,
            ephemeral: one(self.ephemeral, other.ephemeral, context, "ephemeral key")?,
        })
    }
}

fn ephemeral_key(r: &mut Reader<'_>) -> Result<Ephemeral> {
    const CONTEXT: &str = "ephemeral key";
    let mut entries = r.map()?;
    let (mut kty, mut crv, mut x, mut y) = (None, None, None, None);
    while entries.next_entry() {
        match r.map_key(&mut entries)? {
            Key::Int(key_label::KTY) => kty = Some(r.i64()?),
            Key::Int(key_label::CRV) => crv = Some(r.i64()?),
            Key::Int(key_label::X) => x = Some(r.bytes()?),
            Key::Int(key_label::Y) => {
                y = Some(if r.is(Type::Bool) {
                    // Point compression: the sign bit of y (RFC 9053 §7.1.1).
                    YCoordinate::SignBit(r.bool()?)
                } else {
                    YCoordinate::Bytes(r.bytes()?)
                })
            }
            _ => r.skip()?,
        }
    }
    let missing = |element| Error::MissingElement {
        context: CONTEXT,
        element,
    };
    let kty = kty.ok_or_else(|| missing("kty"))?;
    if kty == key_label::KTY_OKP {
        let crv = crv.ok_or_else(|| missing("crv"))?;
        if crv != key_label::CRV_X25519 {
            return Err(Error::UnsupportedEncryptionAlgorithm {
                role: "ephemeral key curve",
                id: crv,
                supported: "4 X25519",
            });
        }
        if y.is_some() {
            return Err(Error::InvalidEncryptionInfo(
                "an X25519 ephemeral key has no y coordinate",
            ));
        }
        let x = x.ok_or_else(|| missing("x"))?;
        return x
            .try_into()
            .map(Ephemeral::X25519)
            .map_err(|_| Error::InvalidEncryptionInfo("an X25519 ephemeral key is not 32 bytes"));
    }
    if kty != key_label::KTY_EC2 {
        return Err(Error::UnsupportedEncryptionAlgorithm {
            role: "ephemeral key type",
            id: kty,
            supported: "1 OKP, 2 EC2",
        });
    }
    let crv = crv.ok_or_else(|| missing("crv"))?;
    let field_len = match crv {
        key_label::CRV_P256 => 32,
        key_label::CRV_P384 => 48,
        id => {
            return Err(Error::UnsupportedEncryptionAlgorithm {
                role: "ephemeral key curve",
                id,
                supported: "1 P-256, 2 P-384",
            })
        }
    };
    let x = x.ok_or_else(|| missing("x"))?;
    let y = y.ok_or_else(|| missing("y"))?;
    let wrong_length = || {
        Error::InvalidEncryptionInfo(
            "an ephemeral key coordinate has the wrong length for its curve",
        )
    };
    if x.len() != field_len {
        return Err(wrong_length());
    }
    // SEC1 encoding: 04 || x || y, or 02/03 || x with point compression.
    let mut sec1 = [0u8; 1 + 2 * 48];
    sec1[1..1 + field_len].copy_from_slice(x);
    let len = match y {
        YCoordinate::Bytes(y) if y.len() == field_len => {
            sec1[0] = 0x04;
            sec1[1 + field_len..1 + 2 * field_len].copy_from_slice(y);
            1 + 2 * field_len
        }
        YCoordinate::Bytes(_) => return Err(wrong_length()),
        YCoordinate::SignBit(odd) => {
            sec1[0] = if odd { 0x03 } else { 0x02 };
            1 + field_len
        }
    };
    let curve = if crv == key_label::CRV_P256 {
        Curve::P256
    } else {
        Curve::P384
    };
    let point = crate::crypto::point::uncompressed(curve, &sec1[..len]).ok_or(
        Error::InvalidEncryptionInfo("the ephemeral key is not a point on its curve"),
    )?;
    Ok(Ephemeral::Ec2(EphemeralKey { curve, point }))
}

enum YCoordinate<'a> {
    Bytes(&'a [u8]),
    SignBit(bool),
}

impl<'a> EncryptionInfo<'a> {
    /// Decodes the encoding held by `suit-parameter-encryption-info` (detached ciphertext).
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        Self::decode_with(bytes, false).map(|(info, _)| info)
    }

    /// Decodes a COSE_Encrypt or COSE_Encrypt0 that carries its ciphertext (attached), and
    /// returns the ciphertext with it (for a key sealed to the device, e.g. PROVISION's KEK).
    pub fn decode_attached(bytes: &'a [u8]) -> Result<(Self, &'a [u8])> {
        let (info, ciphertext) = Self::decode_with(bytes, true)?;
        let ciphertext = ciphertext.ok_or(Error::MissingElement {
            context: "encryption info",
            element: "ciphertext",
        })?;
        Ok((info, ciphertext))
    }

    fn decode_with(bytes: &'a [u8], attached: bool) -> Result<(Self, Option<&'a [u8]>)> {
        Reader::decode_exact(bytes, "encryption info", |r| {
            let at = r.position();
            let tag = if r.is(Type::Tag) {
                Some(r.tag()?)
            } else {
                None
            };
            let with_recipients = match tag {
                Some(TAG_ENCRYPT) => true,
                Some(TAG_ENCRYPT0) => false,
                _ => {
                    return Err(Error::Cbor {
                        context: "encryption info",
                        offset: at,
                        expected: "a tagged COSE_Encrypt (96) or COSE_Encrypt0 (16)",
                    })
                }
            };
            if with_recipients {
                r.array_of(
                    4,
                    "COSE_Encrypt [protected, unprotected, ciphertext, recipients]",
                )?;
            } else {
                r.array_of(3, "COSE_Encrypt0 [protected, unprotected, ciphertext]")?;
            }
            let protected = r.bytes()?;
            let headers = Headers::decode_protected(protected, "encryption info protected header")?
                .merge(Headers::decode(r)?, "encryption info")?;
            let ciphertext = if attached {
                if !r.is(Type::Bytes) {
                    return Err(Error::InvalidValue {
                        context: "encryption info",
                        element: "ciphertext",
                        reason: "must be attached here (a byte string)",
                    });
                }
                Some(r.bytes()?)
            } else {
                if !r.is(Type::Null) {
                    return Err(Error::InvalidValue {
                        context: "encryption info",
                        element: "ciphertext",
                        reason: "must be nil: SUIT carries the ciphertext detached",
                    });
                }
                r.null()?;
                None
            };
            let content_alg = ContentAlg::from_cose(headers.alg.ok_or(Error::MissingElement {
                context: "encryption info",
                element: "alg",
            })?)?;
            let iv = headers.iv.ok_or(Error::MissingElement {
                context: "encryption info",
                element: "IV",
            })?;
            if iv.len() != content_alg.iv_len() {
                return Err(Error::InvalidEncryptionInfo(if content_alg.is_aead() {
                    "the IV of AES-GCM must be 12 bytes"
                } else {
                    "the IV of AES-CTR must be the 16-byte initial counter block"
                }));
            }
            if !content_alg.is_aead() && !protected.is_empty() {
                return Err(Error::InvalidEncryptionInfo(
                    "AES-CTR needs an empty protected header (RFC 9459): nothing would authenticate it",
                ));
            }
            let recipients = if with_recipients {
                Recipients::Wrapped(recipients(r, content_alg)?)
            } else {
                Recipients::Direct { kid: headers.kid }
            };
            Ok((
                EncryptionInfo {
                    content_alg,
                    iv,
                    protected,
                    recipients,
                },
                ciphertext,
            ))
        })
    }

    /// The AAD of AES-GCM: the Enc_structure `[context, protected, external_aad = h'']`
    /// (RFC 9052 §5.3), where the context is "Encrypt" or "Encrypt0".
    pub fn enc_structure(&self) -> Vec<u8> {
        let context = match self.recipients {
            Recipients::Wrapped(_) => "Encrypt",
            Recipients::Direct { .. } => "Encrypt0",
        };
        enc_structure(context, self.protected)
    }
}

/// The Enc_structure `[context, protected, external_aad = h'']` (RFC 9052 §5.3).
pub(crate) fn enc_structure(context: &str, protected: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(3).str(context).bytes(protected).bytes(&[]);
    w.into_bytes()
}

fn recipients<'a>(r: &mut Reader<'a>, content_alg: ContentAlg) -> Result<Vec<Recipient<'a>>> {
    let at = r.position();
    let n = r.array()?;
    if n == 0 {
        return Err(Error::Cbor {
            context: "encryption info",
            offset: at,
            expected: "at least one recipient",
        });
    }
    if n > MAX_RECIPIENTS as u64 {
        return Err(Error::LimitExceeded {
            what: "recipients in encryption info",
            limit: MAX_RECIPIENTS,
        });
    }
    let mut usable = Vec::new();
    let mut first_unsupported = None;
    for _ in 0..n {
        // Each recipient is decoded from its own complete encoding, so an unsupported one
        // leaves the reader at the next.
        let encoding = r.raw_item()?;
        match Reader::decode_exact(encoding, "encryption info recipient", |r| {
            recipient(r, content_alg)
        }) {
            Ok(rec) => usable.push(rec),
            // A recipient for another kind of device does not make the others unusable.
            Err(e @ Error::UnsupportedEncryptionAlgorithm { .. }) => {
                first_unsupported.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match first_unsupported {
        Some(e) if usable.is_empty() => Err(e),
        _ => Ok(usable),
    }
}

/// One COSE_recipient.
fn recipient<'a>(r: &mut Reader<'a>, content_alg: ContentAlg) -> Result<Recipient<'a>> {
    const CONTEXT: &str = "encryption info recipient";
    let at = r.position();
    match r.array()? {
        3 => {}
        4 => {
            return Err(Error::Unsupported(
                "nested COSE recipients in encryption info".into(),
            ))
        }
        _ => {
            return Err(Error::Cbor {
                context: CONTEXT,
                offset: at,
                expected: "COSE_recipient [protected, unprotected, ciphertext]",
            })
        }
    }
    let protected = r.bytes()?;
    let headers = Headers::decode_protected(protected, "recipient protected header")?
        .merge(Headers::decode(r)?, CONTEXT)?;
    let wrapped_cek = r.bytes()?;
    let alg = headers.alg.ok_or(Error::MissingElement {
        context: CONTEXT,
        element: "alg",
    })?;
    let unsupported = || Error::UnsupportedEncryptionAlgorithm {
        role: "key distribution",
        id: alg,
        supported: KeyDistribution::SUPPORTED,
    };
    let distribution = match alg {
        -3 => KeyDistribution::AesKw(AesKwAlg::A128Kw),
        -5 => KeyDistribution::AesKw(AesKwAlg::A256Kw),
        -29 | -31 => {
            let wrap = if alg == -29 {
                AesKwAlg::A128Kw
            } else {
                AesKwAlg::A256Kw
            };
            match headers.ephemeral.ok_or(Error::MissingElement {
                context: CONTEXT,
                element: "ephemeral key (-1)",
            })? {
                Ephemeral::Ec2(ephemeral) => KeyDistribution::EcdhEs { wrap, ephemeral },
                Ephemeral::X25519(ephemeral) => KeyDistribution::EcdhEsX25519 { wrap, ephemeral },
            }
        }
        _ => return Err(unsupported()),
    };
    if wrapped_cek.len() != content_alg.key_len() + 8 {
        return Err(Error::InvalidEncryptionInfo(
            "the wrapped content key does not have the length its content algorithm needs",
        ));
    }
    Ok(Recipient {
        distribution,
        kid: headers.kid,
        protected,
        wrapped_cek,
    })
}

//! Approval tokens: the TA's signed statement that one component's bytes are authentic,
//! applicable and fresh (DESIGN.md §4).
//!
//! # Format
//!
//! A tagged COSE_Sign1 (tag 18) with an attached payload, protected header `{1: -35}` (ES384),
//! unprotected header `{4: kid}` where kid is the SHA-256 of the device public key (SEC1
//! uncompressed), signed with the device's P-384 key. The payload is a CBOR map with integer
//! keys, in this order (deterministic encoding):
//!
//! | key | claim | type |
//! |---|---|---|
//! | 1 | token format version (1) | uint |
//! | 2 | manifest digest (of the bstr-wrapped manifest, as authenticated) | `[alg, bstr]` |
//! | 3 | manifest sequence number | uint |
//! | 4 | component id | `[* bstr]` |
//! | 5 | target slot | uint |
//! | 6 | image digest (plaintext, computed by the TA) | `[alg, bstr]` |
//! | 7 | image size (plaintext) | uint |
//! | 8 | session nonce (16 random bytes, one per TA session) | bstr |
//! | 9 | verifier nonce (optional: given to LOAD_MANIFEST, at most 64 bytes) | bstr |
//!
//! Anyone with the device public key can verify a token ([`Token::verify`]); the TA itself
//! verifies the tokens it is given back at DECRYPT_FOR_INSTALL and COMMIT and additionally
//! requires the nonce of the same session.

use alloc::vec::Vec;

use crate::abi::{read_component_id, read_digest, write_component_id, write_digest};
use crate::cbor::cose::{self, ContentType, CoseBlock};
use crate::cbor::{Reader, Writer};
use crate::component::ComponentId;
use crate::crypto::{self, Curve, PrivateKey, SigAlg};
use crate::digest::{DigestAlg, DigestValue};
use crate::error::{Error, Result};

/// The token format version.
pub const TOKEN_VERSION: u64 = 1;
/// Length of the session nonce.
pub const NONCE_LEN: usize = 16;

/// What a token states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Digest of the manifest.
    pub manifest_digest: DigestValue,
    /// Its sequence number.
    pub sequence_number: u64,
    /// The component.
    pub component_id: ComponentId,
    /// The slot it is approved for.
    pub slot: u64,
    /// Plaintext digest.
    pub image_digest: DigestValue,
    /// Plaintext size.
    pub image_size: u64,
    /// The TA session's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The verifier's nonce given to LOAD_MANIFEST, if any (freshness for a server).
    pub verifier_nonce: Option<Vec<u8>>,
}

impl Claims {
    /// The payload encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.map(8 + usize::from(self.verifier_nonce.is_some()))
            .u64(1)
            .u64(TOKEN_VERSION)
            .u64(2);
        write_digest(&mut w, &self.manifest_digest);
        w.u64(3).u64(self.sequence_number).u64(4);
        write_component_id(&mut w, &self.component_id);
        w.u64(5).u64(self.slot).u64(6);
        write_digest(&mut w, &self.image_digest);
        w.u64(7).u64(self.image_size).u64(8).bytes(&self.nonce);
        if let Some(n) = &self.verifier_nonce {
            w.u64(9).bytes(n);
        }
        w.into_bytes()
    }

    /// Decodes a payload; every claim must be present, in order, and nothing else.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "approval token claims", |r| {
            let mut entries = r.map()?;
            let mut expect = |r: &mut Reader<'_>, key: i64| -> Result<()> {
                if !entries.next_entry() {
                    return Err(Error::MissingElement {
                        context: "approval token claims",
                        element: "claim",
                    });
                }
                match r.map_key(&mut entries)? {
                    crate::cbor::Key::Int(k) if k == key => Ok(()),
                    _ => Err(Error::InvalidValue {
                        context: "approval token claims",
                        element: "claim key",
                        reason: "claims must be keys 1 to 8 (and optionally 9) in order",
                    }),
                }
            };
            expect(r, 1)?;
            if r.u64()? != TOKEN_VERSION {
                return Err(Error::Unsupported(alloc::format!(
                    "approval token format other than version {TOKEN_VERSION}"
                )));
            }
            expect(r, 2)?;
            let manifest_digest = read_digest(r)?;
            expect(r, 3)?;
            let sequence_number = r.u64()?;
            expect(r, 4)?;
            let component_id = read_component_id(r)?;
            expect(r, 5)?;
            let slot = r.u64()?;
            expect(r, 6)?;
            let image_digest = read_digest(r)?;
            expect(r, 7)?;
            let image_size = r.u64()?;
            expect(r, 8)?;
            let nonce =
                <[u8; NONCE_LEN]>::try_from(r.bytes()?).map_err(|_| Error::InvalidValue {
                    context: "approval token claims",
                    element: "nonce",
                    reason: "must be 16 bytes",
                })?;
            let verifier_nonce = if entries.next_entry() {
                if !matches!(r.map_key(&mut entries)?, crate::cbor::Key::Int(9)) {
                    return Err(Error::InvalidValue {
                        context: "approval token claims",
                        element: "claim key",
                        reason: "only key 9 (verifier nonce) may follow key 8",
                    });
                }
                let n = r.bytes()?;
                if n.len() > crate::abi::MAX_NONCE {
                    return Err(Error::InvalidValue {
                        context: "approval token claims",
                        element: "verifier nonce",
                        reason: "at most 64 bytes",
                    });
                }
                Some(n.to_vec())
            } else {
                None
            };
            if entries.next_entry() {
                return Err(Error::InvalidValue {
                    context: "approval token claims",
                    element: "map",
                    reason: "has claims beyond key 9",
                });
            }
            Ok(Claims {
                manifest_digest,
                sequence_number,
                component_id,
                slot,
                image_digest,
                image_size,
                nonce,
                verifier_nonce,
            })
        })
    }

    /// Signs the claims into a token.
    pub fn sign(&self, key: &dyn PrivateKey) -> Result<Vec<u8>> {
        sign_with_device_key(self.encode(), key, None)
    }
}

/// A COSE_Sign1 (ES384, attached payload, kid = [`key_id`]) made with the device key;
/// `content_type` goes into the protected header when given (reports carry one, tokens not).
pub(crate) fn sign_with_device_key(
    payload: Vec<u8>,
    key: &dyn PrivateKey,
    content_type: Option<&str>,
) -> Result<Vec<u8>> {
    if key.curve() != Curve::P384 {
        return Err(Error::InvalidValue {
            context: "device key",
            element: "curve",
            reason: "device-signed objects are ES384: the key must be on P-384",
        });
    }
    let protected = cose::protected_header(crate::auth::alg::ES384, content_type);
    let tbs = cose::to_be_signed("Signature1", &protected, None, &payload);
    let signature = key.sign(&tbs)?;
    Ok(cose::encode_sign1(
        &protected,
        &key_id(&key.public_sec1()),
        Some(&payload),
        &signature,
    ))
}

/// Verifies a [`sign_with_device_key`] object against the device public key and returns its
/// payload: deterministic encoding, ES384, the key's kid, the given content type (or none).
pub(crate) fn open_device_signed(
    bytes: &[u8],
    key: &[u8],
    content_type: Option<&str>,
) -> Result<Vec<u8>> {
    let invalid = |reason| Error::InvalidAuthenticationBlock { index: 1, reason };
    let tag = Reader::new(bytes, "device-signed object")
        .tag()
        .map_err(|_| invalid("not a tagged COSE_Sign1"))?;
    if tag != cose::tag::SIGN1 {
        return Err(invalid("not a tagged COSE_Sign1"));
    }
    // Bound the input before it is decoded.
    crate::cbor::check_cose(bytes, "device-signed object")?;
    let CoseBlock::Sign1 {
        headers,
        payload,
        signature,
    } = CoseBlock::decode_tagged(bytes, tag, "device-signed object")
        .map_err(|_| invalid("a malformed COSE_Sign1"))?
    else {
        return Err(invalid("a malformed COSE_Sign1"));
    };
    let (protected, unprotected) = (&headers.protected, &headers.unprotected);
    let found = match protected.content_type {
        Some(ContentType::Text(t)) => Some(t),
        Some(ContentType::Format(_)) => return Err(invalid("unexpected content type")),
        None => None,
    };
    // The only encoding: what sign_with_device_key makes of the same header parameters
    // (no other parameters, deterministic CBOR).
    let canonical = protected.alg.map(|alg| {
        cose::encode_sign1(
            &cose::protected_header(alg, found),
            unprotected.kid,
            payload,
            signature,
        )
    });
    if canonical.as_deref() != Some(bytes) {
        return Err(invalid("not deterministically encoded"));
    }
    if protected.alg != Some(crate::auth::alg::ES384) {
        return Err(invalid("not signed with ES384"));
    }
    if found != content_type {
        return Err(invalid("unexpected content type"));
    }
    if unprotected.kid != key_id(key) {
        return Err(Error::NotAuthenticated(alloc::string::String::from(
            "it names another device key (kid)",
        )));
    }
    if Some(signature.len()) != SigAlg::EcdsaP384Sha384.signature_len() {
        return Err(invalid("malformed signature"));
    }
    let payload = payload.ok_or(invalid("no payload"))?;
    let tbs = cose::to_be_signed("Signature1", headers.protected_raw, None, payload);
    if !crypto::provider().verify(SigAlg::EcdsaP384Sha384, key, &tbs, signature) {
        return Err(Error::NotAuthenticated(alloc::string::String::from(
            "the signature does not verify with the device key",
        )));
    }
    Ok(payload.to_vec())
}

/// Key id of a device key: SHA-256 of its SEC1 uncompressed encoding (`public_sec1`).
pub fn key_id(public_sec1: &[u8]) -> Vec<u8> {
    DigestAlg::Sha256.digest(public_sec1).as_bytes().to_vec()
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it states.
    pub claims: Claims,
}

impl Token {
    /// Verifies `bytes` against the device public key (P-384, SEC1 uncompressed) and decodes
    /// its claims.
    ///
    /// Fails with an authentication error when the structure, algorithm or signature is
    /// wrong, and with a malformed-input error when the signed claims do not decode.
    pub fn verify(bytes: &[u8], key: &[u8]) -> Result<Token> {
        let payload = open_device_signed(bytes, key, None)?;
        Ok(Token {
            claims: Claims::decode(&payload)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn claims() -> Claims {
        Claims {
            manifest_digest: DigestAlg::Sha256.digest(b"manifest"),
            sequence_number: 7,
            component_id: ComponentId::new([b"rootfs"]),
            slot: 1,
            image_digest: DigestAlg::Sha256.digest(b"image"),
            image_size: 5,
            nonce: [9; NONCE_LEN],
            verifier_nonce: None,
        }
    }

    fn key(seed: u8) -> alloc::boxed::Box<dyn PrivateKey> {
        crate::crypto::provider()
            .private_key(crate::crypto::Curve::P384, &[seed; 48], None)
            .unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let k = key(1);
        let token = claims().sign(&*k).unwrap();
        let verified = Token::verify(&token, &k.public_sec1()).unwrap();
        assert_eq!(verified.claims, claims());
    }

    #[test]
    fn verifier_nonce_round_trips() {
        let k = key(1);
        let mut c = claims();
        c.verifier_nonce = Some(vec![0xab; 12]);
        let token = c.sign(&*k).unwrap();
        assert_eq!(Token::verify(&token, &k.public_sec1()).unwrap().claims, c);
    }

    #[test]
    fn the_largest_token_fits_its_request_cap() {
        use crate::abi::{MAX_COMPONENT_ID, MAX_NONCE, MAX_TOKEN};
        let k = key(1);
        let mut c = claims();
        // 4 parts whose encoding ([* bstr]) is exactly MAX_COMPONENT_ID bytes.
        let part = (MAX_COMPONENT_ID - 1) / 4 - 3;
        c.component_id = ComponentId::from(vec![vec![1; part]; 4]);
        let mut w = Writer::new();
        write_component_id(&mut w, &c.component_id);
        assert!(w.into_bytes().len() <= MAX_COMPONENT_ID);
        c.manifest_digest = DigestAlg::Sha512.digest(b"m");
        c.image_digest = DigestAlg::Sha512.digest(b"i");
        c.sequence_number = u64::MAX;
        c.slot = u64::MAX;
        c.image_size = u64::MAX;
        c.verifier_nonce = Some(vec![0xee; MAX_NONCE]);
        let token = c.sign(&*k).unwrap();
        assert!(token.len() <= MAX_TOKEN, "{} bytes", token.len());
    }

    #[test]
    fn other_key_and_alterations_are_refused() {
        let k = key(1);
        let token = claims().sign(&*k).unwrap();
        assert!(Token::verify(&token, &key(2).public_sec1()).is_err());
        for i in 0..token.len() {
            let mut t = token.clone();
            t[i] ^= 0x01;
            assert!(Token::verify(&t, &k.public_sec1()).is_err(), "byte {i}");
        }
        assert!(Token::verify(&token[..token.len() - 1], &k.public_sec1()).is_err());
    }
}

//! SUIT_Digest: algorithm identifiers, decoding, streaming hashing and constant-time comparison.

use core::fmt;

use alloc::boxed::Box;

use subtle::ConstantTimeEq;

use crate::cbor::Reader;
use crate::crypto::{self, HashState};
use crate::error::{Error, Result};

/// Digest algorithms of the COSE registry that this processor implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DigestAlg {
    /// SHA-256 (-16), the one SUIT requires.
    Sha256,
    /// SHA-384 (-43).
    Sha384,
    /// SHA-512 (-44).
    Sha512,
}

impl DigestAlg {
    /// From a COSE algorithm identifier.
    pub fn from_cose(id: i64) -> Result<Self> {
        match id {
            -16 => Ok(DigestAlg::Sha256),
            -43 => Ok(DigestAlg::Sha384),
            -44 => Ok(DigestAlg::Sha512),
            other => Err(Error::UnsupportedDigestAlgorithm(other)),
        }
    }

    /// The COSE algorithm identifier.
    pub const fn cose_id(self) -> i64 {
        match self {
            DigestAlg::Sha256 => -16,
            DigestAlg::Sha384 => -43,
            DigestAlg::Sha512 => -44,
        }
    }

    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha384 => 48,
            DigestAlg::Sha512 => 64,
        }
    }

    /// Conventional name.
    pub const fn name(self) -> &'static str {
        match self {
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha384 => "sha-384",
            DigestAlg::Sha512 => "sha-512",
        }
    }

    /// Digest of `data` in one call.
    pub fn digest(self, data: &[u8]) -> DigestValue {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finalize()
    }
}

/// A SUIT_Digest as it appears in a manifest: `[algorithm-id, digest-bytes, *extensions]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuitDigest<'a> {
    /// The algorithm.
    pub alg: DigestAlg,
    /// The expected digest (length checked against the algorithm).
    pub bytes: &'a [u8],
}

impl<'a> SuitDigest<'a> {
    /// Decodes a SUIT_Digest from the reader.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let n = r.array()?;
        if n < 2 {
            return Err(Error::InvalidValue {
                context: r.context(),
                element: "SUIT_Digest",
                reason: "must be an array of algorithm id and digest bytes",
            });
        }
        let alg = DigestAlg::from_cose(r.i64()?)?;
        let bytes = r.bytes()?;
        if bytes.len() != alg.output_len() {
            return Err(Error::InvalidValue {
                context: r.context(),
                element: "SUIT_Digest",
                reason: "digest length does not match its algorithm",
            });
        }
        // Extensions (reserved for future use) are skipped.
        for _ in 2..n {
            r.skip()?;
        }
        Ok(SuitDigest { alg, bytes })
    }

    /// Decodes a SUIT_Digest that must fill `bytes` exactly.
    pub fn decode_exact(bytes: &'a [u8], context: &'static str) -> Result<Self> {
        Reader::decode_exact(bytes, context, SuitDigest::decode)
    }

    /// Constant-time check that `value` is this digest.
    pub fn matches(&self, value: &DigestValue) -> bool {
        value.alg == self.alg && bool::from(value.as_bytes().ct_eq(self.bytes))
    }

    /// Digest of `data` with this digest's algorithm compared to it in constant time.
    pub fn matches_data(&self, data: &[u8]) -> bool {
        self.matches(&self.alg.digest(data))
    }
}

/// A computed digest value.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestValue {
    alg: DigestAlg,
    bytes: [u8; 64],
}

impl DigestValue {
    /// Builds a value from raw bytes of the right length.
    pub fn new(alg: DigestAlg, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != alg.output_len() {
            return None;
        }
        let mut buf = [0u8; 64];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Self { alg, bytes: buf })
    }

    /// The algorithm.
    pub fn alg(&self) -> DigestAlg {
        self.alg
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.output_len()]
    }

    /// This value as a SUIT_Digest borrowing it.
    pub fn as_suit_digest(&self) -> SuitDigest<'_> {
        SuitDigest {
            alg: self.alg,
            bytes: self.as_bytes(),
        }
    }
}

impl From<[u8; 32]> for DigestValue {
    /// A SHA-256 output.
    fn from(out: [u8; 32]) -> Self {
        value(DigestAlg::Sha256, &out)
    }
}

impl From<[u8; 48]> for DigestValue {
    /// A SHA-384 output.
    fn from(out: [u8; 48]) -> Self {
        value(DigestAlg::Sha384, &out)
    }
}

impl From<[u8; 64]> for DigestValue {
    /// A SHA-512 output.
    fn from(out: [u8; 64]) -> Self {
        value(DigestAlg::Sha512, &out)
    }
}

impl fmt::Debug for DigestValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.alg.name())?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Incremental hashing with any supported algorithm, by the process's crypto provider.
pub struct Hasher(Box<dyn HashState>);

impl Clone for Hasher {
    fn clone(&self) -> Self {
        Hasher(self.0.fork())
    }
}

impl Hasher {
    /// A fresh state for `alg`.
    pub fn new(alg: DigestAlg) -> Self {
        Hasher(crypto::provider().hash(alg))
    }

    /// The algorithm.
    pub fn alg(&self) -> DigestAlg {
        self.0.alg()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Finishes and returns the digest.
    pub fn finalize(self) -> DigestValue {
        self.0.finish()
    }
}

/// A digest value from a hash output of the algorithm's length.
pub(crate) fn value(alg: DigestAlg, out: &[u8]) -> DigestValue {
    let mut bytes = [0u8; 64];
    bytes[..out.len()].copy_from_slice(out);
    DigestValue { alg, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        let v = DigestAlg::Sha256.digest(b"abc");
        assert_eq!(
            v.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "FIPS 180-2 'abc' vector starts ba7816bf"
        );
    }

    #[test]
    fn decode_rejects_wrong_length_and_algorithm() {
        // [-16, h'00'] : wrong length
        assert!(SuitDigest::decode_exact(&[0x82, 0x2f, 0x41, 0x00], "t").is_err());
        // [-17, h''] : unknown algorithm
        assert_eq!(
            SuitDigest::decode_exact(&[0x82, 0x30, 0x40], "t").unwrap_err(),
            Error::UnsupportedDigestAlgorithm(-17)
        );
    }

    #[test]
    fn matches_is_exact() {
        let v = DigestAlg::Sha384.digest(b"x");
        let d = v.as_suit_digest();
        assert!(d.matches_data(b"x"));
        assert!(!d.matches_data(b"y"));
        assert!(!d.matches(&DigestAlg::Sha256.digest(b"x")));
    }
}

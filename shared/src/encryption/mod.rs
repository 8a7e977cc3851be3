//! Payload encryption (draft-ietf-suit-firmware-encryption; RFC 9124 REQ.SEC.IMG.CONFIDENTIALITY).
//!
//! `suit-parameter-encryption-info` (19) holds a tagged COSE_Encrypt (96) whose ciphertext is
//! detached: the payload travels elsewhere (fetched, or in parameter-content) and directive-write
//! or directive-copy decrypts it into the component. The pieces, in the order a device uses them:
//!
//! 1. [`EncryptionInfo::decode`] parses the COSE structure into typed algorithms, IV and
//!    recipients. COSE_Encrypt0 (16) is accepted for a content key provisioned in advance
//!    ([`RecipientKey::Direct`]).
//! 2. [`unwrap_cek`] finds a recipient that one of the device's [`RecipientKey`]s can open and
//!    unwraps the content-encryption key: A128KW (-3) / A256KW (-5) with a KEK, or
//!    ECDH-ES+A128KW (-29) / ECDH-ES+A256KW (-31) with a P-256, P-384 or X25519 static key
//!    (X25519: an OKP ephemeral key, crv 4, for draft-ietf-suit-mti's EdDSA profile), the KEK then
//!    coming from HKDF-SHA-256 over the COSE_KDF_Context of the draft (§5.2):
//!    `[wrap-alg, [nil,nil,nil], [nil,nil,nil], [key-bits, recipient-protected, "SUIT Payload Encryption"]]`.
//! 3. [`Decryptor`] decrypts the payload in chunks of any size with constant memory:
//!    A128GCM (1) / A256GCM (3) with AAD = `["Encrypt", protected, h'']`, or A128CTR (-65534) /
//!    A256CTR (-65532) for interoperability.
//!
//! # Decisions
//!
//! * **Streaming AES-GCM comes from the crypto provider** ([`crate::crypto`]): SUIT puts a
//!   single tag over the whole payload, so bounded memory means releasing plaintext before the
//!   tag is checked (RustCrypto refuses to offer that, so its provider composes it from `aes`,
//!   `ctr` and `ghash`; OpenSSL's EVP and GP's `TEE_AEUpdate` stream natively). That
//!   plaintext is **unverified** until [`Decryptor::finalize`] returns `Ok`; whoever consumes it
//!   must be able to discard it (the simulated device writes to a scratch file and only then
//!   replaces the component; the TA approves nothing before FINAL).
//! * **AES-CTR has no integrity.** It is accepted only because the draft's MTI profiles use it,
//!   and only together with an image digest that the plaintext is checked against before it is
//!   used ([`Decryptor::authenticates`] tells the caller; the simulated device refuses CTR
//!   without image-digest with [`Error::UnauthenticatedEncryptionWithoutDigest`]). This crate
//!   never produces CTR.
//! * **Categories**: an algorithm, curve or COSE feature we do not implement is `policy`
//!   ([`Error::UnsupportedEncryptionAlgorithm`]): the manifest asks for something this device
//!   does not do, and the TA can say so when planning, before any payload arrives. Everything
//!   that goes wrong with the keys or the bytes — no fitting key, failed unwrap, a wrong IV
//!   length, a truncated payload, a tag mismatch — is `decryption`. CBOR that is not a COSE
//!   structure at all is `malformed`, like everywhere else.
//! * **Key ids**: a recipient and a device key match unless both carry a kid and the kids
//!   differ; every matching key is tried (AES-KW's integrity check tells the right one), so a
//!   device without kids still works with the draft's vectors, and a kid never selects a key of
//!   the wrong kind.
//! * **Secrets** (content keys, KEKs, private keys, ECDH secrets, derived KEKs, the GCM tag
//!   mask) are zeroized on drop and never appear in errors or `Debug` output.

mod cose;
mod recipient;
mod sealed;
mod stream;

#[cfg(feature = "author")]
mod seal;

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

pub use cose::{EncryptionInfo, EphemeralKey, KeyDistribution, Recipient, Recipients};
pub use recipient::{unwrap_cek, RecipientKey};
#[cfg(feature = "author")]
pub use seal::{Encryptor, RecipientPublicKey};
pub use sealed::open_sealed;
pub use stream::Decryptor;

use crate::error::{Error, Result};

/// The `other` element of the COSE_KDF_Context's SuppPubInfo that the draft fixes for SUIT.
pub const KDF_CONTEXT_OTHER: &[u8] = b"SUIT Payload Encryption";

/// Length of the AES-GCM authentication tag that ends every GCM-encrypted payload.
pub const GCM_TAG_LEN: usize = 16;

/// Content-encryption algorithms this device decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentAlg {
    /// AES-GCM with a 128-bit key (1).
    A128Gcm,
    /// AES-GCM with a 256-bit key (3), the project's profile.
    A256Gcm,
    /// AES-CTR with a 128-bit key (-65534, RFC 9459): no integrity, interoperability only.
    A128Ctr,
    /// AES-CTR with a 256-bit key (-65532, RFC 9459): no integrity, interoperability only.
    A256Ctr,
}

impl ContentAlg {
    const SUPPORTED: &'static str = "1 A128GCM, 3 A256GCM, -65534 A128CTR, -65532 A256CTR";

    /// From a COSE algorithm identifier.
    pub fn from_cose(id: i64) -> Result<Self> {
        match id {
            1 => Ok(ContentAlg::A128Gcm),
            3 => Ok(ContentAlg::A256Gcm),
            -65534 => Ok(ContentAlg::A128Ctr),
            -65532 => Ok(ContentAlg::A256Ctr),
            id => Err(Error::UnsupportedEncryptionAlgorithm {
                role: "content encryption",
                id,
                supported: Self::SUPPORTED,
            }),
        }
    }

    /// The COSE algorithm identifier.
    pub const fn cose_id(self) -> i64 {
        match self {
            ContentAlg::A128Gcm => 1,
            ContentAlg::A256Gcm => 3,
            ContentAlg::A128Ctr => -65534,
            ContentAlg::A256Ctr => -65532,
        }
    }

    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            ContentAlg::A128Gcm | ContentAlg::A128Ctr => 16,
            ContentAlg::A256Gcm | ContentAlg::A256Ctr => 32,
        }
    }

    /// IV length in bytes: the 96-bit GCM nonce, or the full initial CTR counter block.
    pub const fn iv_len(self) -> usize {
        match self {
            ContentAlg::A128Gcm | ContentAlg::A256Gcm => 12,
            ContentAlg::A128Ctr | ContentAlg::A256Ctr => 16,
        }
    }

    /// Whether the algorithm authenticates the payload (AEAD).
    pub const fn is_aead(self) -> bool {
        matches!(self, ContentAlg::A128Gcm | ContentAlg::A256Gcm)
    }

    /// The COSE name.
    pub const fn name(self) -> &'static str {
        match self {
            ContentAlg::A128Gcm => "A128GCM",
            ContentAlg::A256Gcm => "A256GCM",
            ContentAlg::A128Ctr => "A128CTR",
            ContentAlg::A256Ctr => "A256CTR",
        }
    }
}

/// AES key wrap (RFC 3394) strength, on its own or after ECDH-ES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKwAlg {
    /// 128-bit KEK (A128KW, -3).
    A128Kw,
    /// 256-bit KEK (A256KW, -5).
    A256Kw,
}

impl AesKwAlg {
    /// The COSE identifier of plain AES key wrap with this KEK size (also the AlgorithmID of
    /// the COSE_KDF_Context for ECDH-ES).
    pub const fn cose_id(self) -> i64 {
        match self {
            AesKwAlg::A128Kw => -3,
            AesKwAlg::A256Kw => -5,
        }
    }

    /// The COSE identifier of ECDH-ES followed by this key wrap.
    pub const fn ecdh_es_cose_id(self) -> i64 {
        match self {
            AesKwAlg::A128Kw => -29,
            AesKwAlg::A256Kw => -31,
        }
    }

    /// KEK length in bytes.
    pub const fn kek_len(self) -> usize {
        match self {
            AesKwAlg::A128Kw => 16,
            AesKwAlg::A256Kw => 32,
        }
    }

    /// The key wrap that a KEK of `len` bytes performs.
    pub fn for_kek_len(len: usize) -> Option<Self> {
        match len {
            16 => Some(AesKwAlg::A128Kw),
            32 => Some(AesKwAlg::A256Kw),
            _ => None,
        }
    }
}

/// An AES-128 or AES-256 key: a content-encryption key or a key-encryption key.
///
/// Zeroized on drop; `Debug` shows only its length.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AesKey {
    bytes: [u8; 32],
    len: usize,
}

impl AesKey {
    /// A key from 16 or 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        if AesKwAlg::for_kek_len(bytes.len()).is_none() {
            return Err(Error::Unsupported(alloc::format!(
                "an AES key of {} bytes (supported: 16 or 32 bytes)",
                bytes.len()
            )));
        }
        let mut key = AesKey {
            bytes: [0; 32],
            len: bytes.len(),
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    /// The key bytes (16 or 32), for crypto providers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AesKey(<{} bytes, redacted>)", self.len)
    }
}

impl PartialEq for AesKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.len == other.len && bool::from(self.as_bytes().ct_eq(other.as_bytes()))
    }
}

impl Eq for AesKey {}

#[cfg(test)]
mod tests;

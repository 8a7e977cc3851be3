//! The crypto provider: the operations the SUIT core needs, named by what they do and not by
//! the library that does them (the pattern of rustls' `CryptoProvider`).
//!
//! | operation | method | what a GP provider in the TA would call |
//! |---|---|---|
//! | digest (SHA-256/384/512) | [`CryptoProvider::hash`] → [`HashState`] | `TEE_DigestUpdate` / `TEE_DigestDoFinal` |
//! | AEAD stream (AES-GCM, one tag at the end) | [`CryptoProvider::aes_gcm_decrypt`] → [`AeadDecrypt`] | `TEE_AEInit`, `TEE_AEUpdateAAD`, `TEE_AEUpdate`, `TEE_AEDecryptFinal` |
//! | AES-CTR keystream (interoperability) | [`CryptoProvider::aes_ctr`] → [`KeystreamCipher`] | `TEE_CipherInit` / `TEE_CipherUpdate` |
//! | AES key wrap (RFC 3394) | [`CryptoProvider::aes_key_unwrap`], [`CryptoProvider::aes_key_wrap`] | (no GP key wrap: `TEE_CipherUpdate` in ECB, or the portable code) |
//! | X25519 key agreement | [`CryptoProvider::x25519`], [`CryptoProvider::x25519_public`] | (portable: [`x25519`]; GP has `TEE_ALG_X25519`) |
//! | ECDH, ECDSA sign with a private key | [`CryptoProvider::private_key`], [`CryptoProvider::generate_private_key`] → [`PrivateKey`] | `TEE_DeriveKey`, `TEE_AsymmetricSignDigest` on a key **object handle**, `TEE_GenerateKey` |
//! | public key check | [`CryptoProvider::check_public_key`] | (portable: [`SigAlg::key_fits`], [`point`]) |
//! | signature verify (ES256 / ES384, Ed25519, ML-DSA-65, HSS-LMS) | [`CryptoProvider::verify`] | `TEE_AsymmetricVerifyDigest` for ECDSA; the portable verifiers of [`ed25519`], [`mldsa`], [`hsslms`] otherwise |
//! | HMAC-SHA-256, HKDF-SHA-256 | [`mac`], on [`CryptoProvider::hash`] | (the provider's digest) |
//!
//! Every stream is an object the provider hands out, so a provider may keep a backend context
//! (an OpenSSL `EVP_CIPHER_CTX`, a GP operation handle) inside it. Private keys are objects too:
//! the core asks them to sign or agree and never reads the scalar back, so a GP provider can
//! keep the device key as a persistent object that never leaves the TEE.
//!
//! # Unverified plaintext
//!
//! [`AeadDecrypt::update`] releases plaintext before the tag has been checked (GCM puts one tag
//! after the whole payload; GP's `TEE_AEUpdate` does the same). Nothing may be approved before
//! [`AeadDecrypt::verify`] has returned `Ok`: [`crate::encryption::Decryptor`] enforces that.
//!
//! # Which provider
//!
//! [`provider`] returns the one installed with [`install_default`] (once per process, like
//! rustls' `CryptoProvider::install_default`), or else `RUST_CRYPTO`, the portable no_std
//! provider built on RustCrypto (cargo feature `rustcrypto`, a default). The host programs
//! install a faster one at start; the TA installs OP-TEE's GP provider (ta/src/gp_crypto.rs)
//! unless built with `TA_CRYPTO=rustcrypto`, and then links no RustCrypto curve or AES code:
//! without the feature and before a provider is installed, [`provider`] refuses every
//! operation.

use alloc::boxed::Box;
use alloc::vec::Vec;

use once_cell::race::OnceBox;
use zeroize::Zeroizing;

use crate::digest::{DigestAlg, DigestValue};
use crate::encryption::AesKey;
use crate::error::Result;

pub mod ed25519;
pub mod hsslms;
pub mod keywrap;
pub mod mac;
pub mod mldsa;
pub mod point;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;
pub mod x25519;

#[cfg(feature = "rustcrypto")]
pub use rustcrypto::{RustCrypto, RUST_CRYPTO};

/// Length of the AES-GCM nonce COSE uses.
pub const GCM_IV_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const GCM_TAG_LEN: usize = 16;

/// An elliptic curve of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1), the project's profile.
    P384,
}

impl Curve {
    /// Length of a scalar or field element in bytes.
    pub const fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The ECDSA algorithm of this curve with its matching hash.
    pub const fn ecdsa(self) -> SigAlg {
        match self {
            Curve::P256 => SigAlg::EcdsaP256Sha256,
            Curve::P384 => SigAlg::EcdsaP384Sha384,
        }
    }
}

/// A signature algorithm. ECDSA signatures are `r || s`, each left-padded to the field
/// length (the COSE form); the others are the byte strings their standards define.
///
/// Verifiers beyond ECDSA are portable no_std code in their own modules, each behind a cargo
/// feature of `suit-shared` (`ed25519`, `ml-dsa-65`, `hss-lms`) so that the TA links only what
/// its anchors need; without its feature an algorithm verifies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ES256 / ESP256: ECDSA P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ES384 / ESP384: ECDSA P-384 with SHA-384.
    EcdsaP384Sha384,
    /// Ed25519 (COSE -19, and EdDSA -8 with an Ed25519 key): raw 32-byte public keys.
    Ed25519,
    /// ML-DSA-65 (COSE -49, RFC 9964), pure with an empty context: raw 1952-byte public keys.
    MlDsa65,
    /// HSS/LMS with SHA-256 (COSE -46, RFC 8778): RFC 8554 public keys and signatures.
    HssLms,
}

impl SigAlg {
    /// The COSE algorithms that name this signature algorithm (ES256/ESP256, ES384/ESP384,
    /// Ed25519/EdDSA, ML-DSA-65, HSS-LMS).
    pub const fn cose_ids(self) -> &'static [i64] {
        match self {
            SigAlg::EcdsaP256Sha256 => &[-7, -9],
            SigAlg::EcdsaP384Sha384 => &[-35, -51],
            SigAlg::Ed25519 => &[-19, -8],
            SigAlg::MlDsa65 => &[-49],
            SigAlg::HssLms => &[-46],
        }
    }

    /// The algorithm a COSE algorithm id names, if it is one we know.
    pub fn from_cose(id: i64) -> Option<SigAlg> {
        [
            SigAlg::EcdsaP256Sha256,
            SigAlg::EcdsaP384Sha384,
            SigAlg::Ed25519,
            SigAlg::MlDsa65,
            SigAlg::HssLms,
        ]
        .into_iter()
        .find(|a| a.cose_ids().contains(&id))
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256Sha256 => "ECDSA P-256",
            SigAlg::EcdsaP384Sha384 => "ECDSA P-384",
            SigAlg::Ed25519 => "Ed25519",
            SigAlg::MlDsa65 => "ML-DSA-65",
            SigAlg::HssLms => "HSS-LMS",
        }
    }

    /// Whether this build can verify the algorithm (its feature is on).
    pub const fn enabled(self) -> bool {
        match self {
            SigAlg::EcdsaP256Sha256 | SigAlg::EcdsaP384Sha384 => true,
            SigAlg::Ed25519 => cfg!(feature = "ed25519"),
            SigAlg::MlDsa65 => cfg!(feature = "ml-dsa-65"),
            SigAlg::HssLms => cfg!(feature = "hss-lms"),
        }
    }

    /// The curve of an ECDSA algorithm.
    pub const fn curve(self) -> Option<Curve> {
        match self {
            SigAlg::EcdsaP256Sha256 => Some(Curve::P256),
            SigAlg::EcdsaP384Sha384 => Some(Curve::P384),
            _ => None,
        }
    }

    /// Whether this build links a verifier of the algorithm: ECDSA always (every provider
    /// verifies it), the others with their crate feature (`ed25519`, `ml-dsa-65`, `hss-lms`).
    pub const fn is_linked(self) -> bool {
        match self {
            SigAlg::EcdsaP256Sha256 | SigAlg::EcdsaP384Sha384 => true,
            SigAlg::Ed25519 => cfg!(feature = "ed25519"),
            SigAlg::MlDsa65 => cfg!(feature = "ml-dsa-65"),
            SigAlg::HssLms => cfg!(feature = "hss-lms"),
        }
    }

    /// Whether `public_key` has the form of a public key of this algorithm (SEC1 points for
    /// ECDSA, the raw key otherwise); checked when an anchor is made, so that a key of one
    /// algorithm is never used for another.
    pub fn key_fits(self, public_key: &[u8]) -> bool {
        match self {
            SigAlg::EcdsaP256Sha256 => matches!(public_key.len(), 33 | 65),
            SigAlg::EcdsaP384Sha384 => matches!(public_key.len(), 49 | 97),
            SigAlg::Ed25519 => public_key.len() == ed25519::PUBLIC_KEY_LEN,
            SigAlg::MlDsa65 => public_key.len() == mldsa::PUBLIC_KEY_LEN,
            // u32 L, u32 LMS type, u32 LM-OTS type, 16-byte I, 32-byte root (RFC 8554 §6.1).
            SigAlg::HssLms => public_key.len() == 60,
        }
    }

    /// Length of a signature, where the algorithm fixes it (HSS/LMS does not).
    pub const fn signature_len(self) -> Option<usize> {
        match self {
            SigAlg::EcdsaP256Sha256 => Some(64),
            SigAlg::EcdsaP384Sha384 => Some(96),
            SigAlg::Ed25519 => Some(ed25519::SIGNATURE_LEN),
            SigAlg::MlDsa65 => Some(mldsa::SIGNATURE_LEN),
            SigAlg::HssLms => None,
        }
    }

    /// The hash ECDSA applies to the message.
    pub const fn digest(self) -> Option<DigestAlg> {
        match self {
            SigAlg::EcdsaP256Sha256 => Some(DigestAlg::Sha256),
            SigAlg::EcdsaP384Sha384 => Some(DigestAlg::Sha384),
            _ => None,
        }
    }
}

/// The operations of one crypto backend.
pub trait CryptoProvider: Send + Sync {
    /// A short name for messages and benchmarks.
    fn name(&self) -> &'static str;

    /// A fresh incremental hash.
    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState>;

    /// Starts an AES-GCM decryption (16- or 32-byte key, 96-bit IV, the whole AAD now).
    fn aes_gcm_decrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadDecrypt>>;

    /// Starts an AES-GCM encryption (the vendor tool's side).
    fn aes_gcm_encrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadEncrypt>>;

    /// An AES-CTR keystream whose initial 128-bit counter block is `iv` (RFC 9459).
    fn aes_ctr(&self, key: &AesKey, iv: &[u8; 16]) -> Result<Box<dyn KeystreamCipher>>;

    /// AES key wrap (RFC 3394) of `key` under `kek`.
    fn aes_key_wrap(&self, kek: &AesKey, key: &AesKey) -> Result<Vec<u8>>;

    /// AES key unwrap (RFC 3394): `Ok(None)` when the integrity check fails (another KEK, or
    /// altered input), an error when `wrapped` does not have the length of a wrapped 16- or
    /// 32-byte key.
    fn aes_key_unwrap(&self, kek: &AesKey, wrapped: &[u8]) -> Result<Option<AesKey>>;

    /// A private key on `curve` from its big-endian scalar and, when the caller stored it,
    /// its public key (SEC1 uncompressed). A provider that cannot compute a public key from
    /// a scalar (GP) needs it; one that can checks that it belongs to the scalar.
    fn private_key(
        &self,
        curve: Curve,
        scalar: &[u8],
        public_sec1: Option<&[u8]>,
    ) -> Result<Box<dyn PrivateKey>>;

    /// A new private key on `curve`: a random scalar from `rng` (a provider with its own key
    /// generator, GP's `TEE_GenerateKey`, may use that instead), validated by the provider.
    fn generate_private_key(&self, curve: Curve, rng: Rng<'_>) -> Result<GeneratedKey>;

    /// Checks that `public_key` is an `alg` public key (for ECDSA: a SEC1 point on the
    /// curve), so that a key is refused when it is configured rather than at each use.
    fn check_public_key(&self, alg: SigAlg, public_key: &[u8]) -> Result<()> {
        let on_curve = match alg.curve() {
            Some(curve) => point::affine_xy(curve, public_key).is_some(),
            None => true,
        };
        if alg.key_fits(public_key) && on_curve {
            Ok(())
        } else {
            Err(bad_public_key(alg))
        }
    }

    /// X25519 (RFC 7748): the public key of a private key. The default is the portable
    /// [`x25519`] (feature `x25519`); a provider with its own (GP's `TEE_ALG_X25519`) may
    /// override it.
    fn x25519_public(&self, private: &[u8; x25519::KEY_LEN]) -> Result<[u8; x25519::KEY_LEN]> {
        x25519::public_key(private)
    }

    /// X25519 (RFC 7748): the shared secret of a private key and a peer's public key; a
    /// peer of small order (an all-zero secret) is refused.
    fn x25519(
        &self,
        private: &[u8; x25519::KEY_LEN],
        peer: &[u8; x25519::KEY_LEN],
    ) -> Result<Zeroizing<[u8; x25519::KEY_LEN]>> {
        x25519::agree(private, peer)
    }

    /// Whether `signature` is a valid `alg` signature of `message` by `public_key` (SEC1,
    /// compressed or not, for ECDSA with `r || s` signatures; the raw key of the others).
    /// Malformed keys or signatures, and algorithms this build lacks, are `false`.
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

/// A source of random bytes.
pub type Rng<'a> = &'a mut dyn FnMut(&mut [u8]);

/// A freshly generated private key and what to store to make it again
/// ([`CryptoProvider::private_key`]).
pub struct GeneratedKey {
    /// The key.
    pub key: Box<dyn PrivateKey>,
    /// Its big-endian scalar.
    pub scalar: Zeroizing<Vec<u8>>,
}

/// The error of a public key that is not one of its algorithm.
pub fn bad_public_key(alg: SigAlg) -> crate::Error {
    crate::Error::InvalidValue {
        context: "public key",
        element: alg.name(),
        reason: match alg.curve() {
            Some(_) => "not a SEC1 point on its curve",
            None => "not a public key of its algorithm",
        },
    }
}

/// An incremental hash.
pub trait HashState: Send {
    /// The algorithm.
    fn alg(&self) -> DigestAlg;
    /// Feeds bytes.
    fn update(&mut self, data: &[u8]);
    /// Finishes and returns the digest.
    fn finish(self: Box<Self>) -> DigestValue;
    /// A copy of the state so far.
    fn fork(&self) -> Box<dyn HashState>;
}

/// One AES-GCM decryption in progress.
pub trait AeadDecrypt: Send {
    /// Decrypts `input` into `output[..input.len()]` (`output` at least as long). The output is
    /// **unverified** until [`verify`](Self::verify) succeeds.
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()>;
    /// Checks the tag over everything decrypted, in constant time: `Err(TagMismatch)` when it
    /// does not match.
    fn verify(self: Box<Self>, tag: &[u8; GCM_TAG_LEN]) -> Result<()>;
}

/// One AES-GCM encryption in progress.
pub trait AeadEncrypt: Send {
    /// Encrypts `input` into `output[..input.len()]` (`output` at least as long).
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()>;
    /// The tag over everything encrypted.
    fn tag(self: Box<Self>) -> [u8; GCM_TAG_LEN];
}

/// A keystream cipher (AES-CTR).
pub trait KeystreamCipher: Send {
    /// Writes `input` XOR the next keystream bytes to `output[..input.len()]`.
    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()>;
}

/// A private key held by the provider (in a GP provider: a key object handle). It signs and
/// agrees; its scalar is never handed back.
pub trait PrivateKey: Send + Sync {
    /// The curve.
    fn curve(&self) -> Curve;
    /// The public key, SEC1 uncompressed.
    fn public_sec1(&self) -> Vec<u8>;
    /// An ECDSA signature (`r || s`) of `message` with the curve's hash.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// The ECDH shared secret (the x-coordinate) with the peer's public key (SEC1).
    fn agree(&self, peer_sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

static DEFAULT: OnceBox<&'static dyn CryptoProvider> = OnceBox::new();

/// Makes `provider` the one [`provider`] returns for the rest of the process. Only the first
/// call has an effect: it returns `false` when a provider was already installed.
pub fn install_default(provider: &'static dyn CryptoProvider) -> bool {
    DEFAULT.set(Box::new(provider)).is_ok()
}

/// The process's provider: the installed one, or else `RUST_CRYPTO` (feature `rustcrypto`)
/// or a provider that refuses everything (without it).
pub fn provider() -> &'static dyn CryptoProvider {
    #[cfg(feature = "rustcrypto")]
    let fallback = &RUST_CRYPTO;
    #[cfg(not(feature = "rustcrypto"))]
    let fallback = &unavailable::UNAVAILABLE;
    DEFAULT.get().map_or(fallback, |p| *p)
}

#[cfg(not(feature = "rustcrypto"))]
mod unavailable;

/// Constant-time equality of two tags.
#[cfg(feature = "rustcrypto")]
pub(crate) fn tags_equal(a: &[u8; GCM_TAG_LEN], b: &[u8; GCM_TAG_LEN]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// The error of an output buffer shorter than its input.
pub fn short_output() -> crate::Error {
    crate::Error::InvalidValue {
        context: "cipher",
        element: "output buffer",
        reason: "must be at least as long as the input",
    }
}

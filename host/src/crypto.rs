//! The host's fast crypto provider: the system's OpenSSL (libcrypto 3) through `rust-openssl`.
//!
//! # Why OpenSSL, and not aws-lc-rs or ring
//!
//! The figures to match are OpenSSL's own (`openssl speed`), and the payload decryptor must
//! stream AES-GCM with one tag at the end. Measured on this machine: ring exposes neither
//! streaming AES-GCM nor AES-CTR (by policy) and its P-384 is generic code; aws-lc-rs verifies
//! P-256/P-384 as fast as OpenSSL and streams AES-CTR, but not AES-GCM, so GHASH would stay
//! RustCrypto's: two passes over every byte (AES-CTR, then GHASH, each measured in the same
//! range here) instead of OpenSSL's one-pass stitched AES-NI GCM, so roughly half its
//! throughput (and it compiles AWS-LC from C: almost 4 minutes here). OpenSSL's EVP interface streams
//! AES-GCM natively (`EVP_DecryptUpdate`, then the tag and `EVP_DecryptFinal`), with AES-NI,
//! VAES and carry-less multiplication, and its ECDSA verify *is* the baseline. Debian ships it
//! everywhere: building needs `libssl-dev` and `pkg-config` (`.ci/run` installs them).
//!
//! What stays RustCrypto here, on purpose: ECDSA **signing** (deterministic RFC 6979 signatures,
//! which OpenSSL 3.0 does not make, so envelopes and tokens stay reproducible), the private
//! key's ECDH (one per payload, not worth a second key representation), and AES-GCM
//! **encryption** (the vendor side, `suit-tool encrypt`/`create`).
//!
//! Installed by `suit-tool` and `suit-agent` at start ([`install`]); the TA and the fuzzers
//! keep the portable provider.

use std::sync::{Mutex, OnceLock};

use openssl::bn::{BigNum, BigNumContext};
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Public;
use suit_shared::crypto::{
    self, AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, GeneratedKey, HashState,
    KeystreamCipher, PrivateKey, Rng, SigAlg, GCM_IV_LEN, GCM_TAG_LEN, RUST_CRYPTO,
};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::encryption::AesKey;
use suit_shared::{Error, Result};

/// The OpenSSL provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenSsl;

/// The OpenSSL provider, as a static to install.
pub static OPENSSL: OpenSsl = OpenSsl;

/// Makes [`OPENSSL`] the process's provider (first call wins; later calls change nothing).
pub fn install() {
    crypto::install_default(&OPENSSL);
}

fn backend(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> Error {
    move |e| Error::Decryption(format!("{what}: {e}"))
}

fn bad_key() -> Error {
    Error::InvalidEncryptionInfo("the content key does not fit the content algorithm")
}

fn gcm_cipher(key: &AesKey) -> Result<&'static CipherRef> {
    match key.as_bytes().len() {
        16 => Ok(Cipher::aes_128_gcm()),
        32 => Ok(Cipher::aes_256_gcm()),
        _ => Err(bad_key()),
    }
}

/// A cipher context initialised for `cipher` with `key` and `iv` in one direction.
fn context(cipher: &CipherRef, key: &AesKey, iv: &[u8], encrypt: bool) -> Result<CipherCtx> {
    let fail = backend("cannot start the cipher");
    let mut ctx = CipherCtx::new().map_err(&fail)?;
    if encrypt {
        ctx.encrypt_init(Some(cipher), Some(key.as_bytes()), Some(iv))
    } else {
        ctx.decrypt_init(Some(cipher), Some(key.as_bytes()), Some(iv))
    }
    .map_err(fail)?;
    Ok(ctx)
}

/// Runs `input` through `ctx` into `output[..input.len()]` (stream modes: as many bytes out
/// as in).
fn stream(ctx: &mut CipherCtx, input: &[u8], output: &mut [u8]) -> Result<()> {
    let out = output
        .get_mut(..input.len())
        .ok_or_else(crypto::short_output)?;
    let n = ctx
        .cipher_update(input, Some(out))
        .map_err(backend("decryption failed"))?;
    if n == input.len() {
        Ok(())
    } else {
        Err(Error::Decryption(
            "the cipher held back bytes of a stream".into(),
        ))
    }
}

fn group(curve: Curve) -> Option<&'static EcGroup> {
    static P256: OnceLock<Option<EcGroup>> = OnceLock::new();
    static P384: OnceLock<Option<EcGroup>> = OnceLock::new();
    let (cell, nid) = match curve {
        Curve::P256 => (&P256, Nid::X9_62_PRIME256V1),
        Curve::P384 => (&P384, Nid::SECP384R1),
    };
    cell.get_or_init(|| EcGroup::from_curve_name(nid).ok())
        .as_ref()
}

/// Public keys parsed before: a device verifies with a handful of keys (its trust anchors, its
/// own device key), so each is decoded and checked once, not at every signature.
type KeyCache = Vec<(Curve, Vec<u8>, EcKey<Public>)>;

/// Keys kept at most; further keys are parsed at every use.
const KEY_CACHE_LEN: usize = 16;

fn public_key(curve: Curve, sec1: &[u8]) -> Option<EcKey<Public>> {
    static CACHE: Mutex<KeyCache> = Mutex::new(Vec::new());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, key)) = cache.iter().find(|(c, s, _)| *c == curve && s == sec1) {
        return Some(key.clone());
    }
    let group = group(curve)?;
    let mut ctx = BigNumContext::new().ok()?;
    // oct2point checks that the point is on the curve (cofactor 1: nothing more to check).
    let point = EcPoint::from_bytes(group, sec1, &mut ctx).ok()?;
    let key = EcKey::from_public_key(group, &point).ok()?;
    if cache.len() < KEY_CACHE_LEN {
        cache.push((curve, sec1.to_vec(), key.clone()));
    }
    Some(key)
}

fn ecdsa_verify(alg: SigAlg, public_sec1: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
    let curve = alg.curve()?;
    let n = curve.field_len();
    if signature.len() != 2 * n {
        return Some(false);
    }
    let key = public_key(curve, public_sec1)?;
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(&signature[..n]).ok()?,
        BigNum::from_slice(&signature[n..]).ok()?,
    )
    .ok()?;
    let digest = match alg.digest()? {
        DigestAlg::Sha256 => openssl::sha::sha256(message).to_vec(),
        DigestAlg::Sha384 => openssl::sha::sha384(message).to_vec(),
        DigestAlg::Sha512 => openssl::sha::sha512(message).to_vec(),
    };
    sig.verify(&digest, &key).ok()
}

impl CryptoProvider for OpenSsl {
    fn name(&self) -> &'static str {
        "OpenSSL"
    }

    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState> {
        match alg {
            DigestAlg::Sha256 => Box::new(Sha::Sha256(openssl::sha::Sha256::new())),
            DigestAlg::Sha384 => Box::new(Sha::Sha384(openssl::sha::Sha384::new())),
            DigestAlg::Sha512 => Box::new(Sha::Sha512(openssl::sha::Sha512::new())),
        }
    }

    fn aes_gcm_decrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadDecrypt>> {
        let mut ctx = context(gcm_cipher(key)?, key, iv, false)?;
        ctx.cipher_update(aad, None)
            .map_err(backend("cannot start the cipher"))?;
        Ok(Box::new(GcmDecrypt(ctx)))
    }

    fn aes_gcm_encrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadEncrypt>> {
        RUST_CRYPTO.aes_gcm_encrypt(key, iv, aad)
    }

    fn aes_ctr(&self, key: &AesKey, iv: &[u8; 16]) -> Result<Box<dyn KeystreamCipher>> {
        let cipher = match key.as_bytes().len() {
            16 => Cipher::aes_128_ctr(),
            32 => Cipher::aes_256_ctr(),
            _ => return Err(bad_key()),
        };
        Ok(Box::new(Ctr(context(cipher, key, iv, false)?)))
    }

    fn aes_key_wrap(&self, kek: &AesKey, key: &AesKey) -> Result<Vec<u8>> {
        let aes = openssl::aes::AesKey::new_encrypt(kek.as_bytes())
            .map_err(|_| Error::InvalidEncryptionInfo("bad KEK"))?;
        let mut out = [0u8; 40];
        let n = openssl::aes::wrap_key(
            &aes,
            None,
            &mut out[..key.as_bytes().len() + 8],
            key.as_bytes(),
        )
        .map_err(|_| Error::InvalidEncryptionInfo("AES key wrap failed"))?;
        Ok(out[..n].to_vec())
    }

    fn aes_key_unwrap(&self, kek: &AesKey, wrapped: &[u8]) -> Result<Option<AesKey>> {
        if !matches!(wrapped.len(), 24 | 40) {
            return Err(Error::InvalidEncryptionInfo(
                "the wrapped content key does not have a key-wrap length",
            ));
        }
        let aes = openssl::aes::AesKey::new_decrypt(kek.as_bytes())
            .map_err(|_| Error::KeyUnwrapFailed)?;
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        let len = wrapped.len() - 8;
        // The only failure left once the lengths are right is the integrity check.
        match openssl::aes::unwrap_key(&aes, None, &mut out[..len], wrapped) {
            Ok(n) => AesKey::from_slice(&out[..n]).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn private_key(
        &self,
        curve: Curve,
        scalar: &[u8],
        public_sec1: Option<&[u8]>,
    ) -> Result<Box<dyn PrivateKey>> {
        RUST_CRYPTO.private_key(curve, scalar, public_sec1)
    }

    fn generate_private_key(&self, curve: Curve, rng: Rng<'_>) -> Result<GeneratedKey> {
        RUST_CRYPTO.generate_private_key(curve, rng)
    }

    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        match alg.curve() {
            Some(_) => ecdsa_verify(alg, public_key, message, signature).unwrap_or(false),
            // Ed25519, ML-DSA and HSS/LMS: the portable verifiers (the system's OpenSSL may
            // predate ML-DSA and has no HSS/LMS); their cost is per manifest, not per byte.
            None => RUST_CRYPTO.verify(alg, public_key, message, signature),
        }
    }
}

#[derive(Clone)]
enum Sha {
    Sha256(openssl::sha::Sha256),
    Sha384(openssl::sha::Sha384),
    Sha512(openssl::sha::Sha512),
}

impl HashState for Sha {
    fn alg(&self) -> DigestAlg {
        match self {
            Sha::Sha256(_) => DigestAlg::Sha256,
            Sha::Sha384(_) => DigestAlg::Sha384,
            Sha::Sha512(_) => DigestAlg::Sha512,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Sha::Sha256(h) => h.update(data),
            Sha::Sha384(h) => h.update(data),
            Sha::Sha512(h) => h.update(data),
        }
    }

    fn finish(self: Box<Self>) -> DigestValue {
        match *self {
            Sha::Sha256(h) => h.finish().into(),
            Sha::Sha384(h) => h.finish().into(),
            Sha::Sha512(h) => h.finish().into(),
        }
    }

    fn fork(&self) -> Box<dyn HashState> {
        Box::new(self.clone())
    }
}

struct GcmDecrypt(CipherCtx);

impl AeadDecrypt for GcmDecrypt {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        stream(&mut self.0, input, output)
    }

    fn verify(mut self: Box<Self>, tag: &[u8; GCM_TAG_LEN]) -> Result<()> {
        self.0.set_tag(tag).map_err(backend("cannot set the tag"))?;
        // EVP_DecryptFinal compares the tag (CRYPTO_memcmp: constant time).
        match self.0.cipher_final(&mut []) {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::TagMismatch),
        }
    }
}

struct Ctr(CipherCtx);

impl KeystreamCipher for Ctr {
    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        stream(&mut self.0, input, output)
    }
}

//! The portable provider: RustCrypto's no_std crates. AES-GCM streams by composing its
//! primitives (NIST SP 800-38D), since RustCrypto offers no streaming AEAD by policy: the AES
//! block cipher derives the hash key H = E(K, 0¹²⁸) and the tag mask E(K, J0), `ctr` produces
//! the keystream with a 32-bit big-endian counter starting at J0+1, and `ghash` absorbs the
//! AAD, the ciphertext and the length block. Only 96-bit IVs (J0 = IV || 0³¹1), as COSE
//! requires. ECDSA signatures are deterministic (RFC 6979).

use alloc::boxed::Box;
use alloc::vec::Vec;

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::{
    short_output, tags_equal, AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, GeneratedKey,
    HashState, KeystreamCipher, PrivateKey, Rng, SigAlg, GCM_IV_LEN, GCM_TAG_LEN,
};
use crate::digest::{DigestAlg, DigestValue};
use crate::encryption::AesKey;
use crate::error::{Error, Result};

/// The RustCrypto provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

/// The RustCrypto provider, as a static to install or compare against.
pub static RUST_CRYPTO: RustCrypto = RustCrypto;

fn bad_key() -> Error {
    Error::InvalidEncryptionInfo("the content key does not fit the content algorithm")
}

fn counter_exhausted() -> Error {
    Error::Decryption("the payload is longer than the counter space of its cipher".into())
}

impl CryptoProvider for RustCrypto {
    fn name(&self) -> &'static str {
        "RustCrypto"
    }

    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState> {
        match alg {
            DigestAlg::Sha256 => Box::new(Sha(sha2::Sha256::new(), alg)),
            DigestAlg::Sha384 => Box::new(Sha(sha2::Sha384::new(), alg)),
            DigestAlg::Sha512 => Box::new(Sha(sha2::Sha512::new(), alg)),
        }
    }

    fn aes_gcm_decrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadDecrypt>> {
        Ok(Box::new(Gcm::new(key, iv, aad)?))
    }

    fn aes_gcm_encrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadEncrypt>> {
        Ok(Box::new(Gcm::new(key, iv, aad)?))
    }

    fn aes_ctr(&self, key: &AesKey, iv: &[u8; 16]) -> Result<Box<dyn KeystreamCipher>> {
        Ok(match key.as_bytes().len() {
            16 => Box::new(Ctr::Aes128(
                ctr::Ctr128BE::<Aes128>::new_from_slices(key.as_bytes(), iv)
                    .map_err(|_| bad_key())?,
            )),
            _ => Box::new(Ctr::Aes256(
                ctr::Ctr128BE::<Aes256>::new_from_slices(key.as_bytes(), iv)
                    .map_err(|_| bad_key())?,
            )),
        })
    }

    fn aes_key_wrap(&self, kek: &AesKey, key: &AesKey) -> Result<Vec<u8>> {
        use aes_kw::{KeyInit, KwAes128, KwAes256};
        let mut buf = [0u8; 40];
        let fail = |_| Error::InvalidEncryptionInfo("AES key wrap failed");
        let bad_kek = |_| Error::InvalidEncryptionInfo("bad KEK");
        let wrapped = match kek.as_bytes().len() {
            16 => KwAes128::new_from_slice(kek.as_bytes())
                .map_err(bad_kek)?
                .wrap_key(key.as_bytes(), &mut buf)
                .map_err(fail)?
                .to_vec(),
            _ => KwAes256::new_from_slice(kek.as_bytes())
                .map_err(bad_kek)?
                .wrap_key(key.as_bytes(), &mut buf)
                .map_err(fail)?
                .to_vec(),
        };
        Ok(wrapped)
    }

    fn aes_key_unwrap(&self, kek: &AesKey, wrapped: &[u8]) -> Result<Option<AesKey>> {
        use aes_kw::{KeyInit, KwAes128, KwAes256};
        check_wrapped_len(wrapped)?;
        let mut buf = Zeroizing::new([0u8; 32]);
        let unwrapped = match kek.as_bytes().len() {
            16 => KwAes128::new_from_slice(kek.as_bytes())
                .map_err(|_| Error::KeyUnwrapFailed)?
                .unwrap_key(wrapped, &mut buf[..]),
            _ => KwAes256::new_from_slice(kek.as_bytes())
                .map_err(|_| Error::KeyUnwrapFailed)?
                .unwrap_key(wrapped, &mut buf[..]),
        };
        match unwrapped {
            Ok(key) => AesKey::from_slice(key).map(Some),
            Err(aes_kw::Error::IntegrityCheckFailed) => Ok(None),
            Err(_) => Err(wrong_wrapped_len()),
        }
    }

    fn private_key(
        &self,
        curve: Curve,
        scalar: &[u8],
        public_sec1: Option<&[u8]>,
    ) -> Result<Box<dyn PrivateKey>> {
        let key = EcKey::from_scalar(curve, scalar)?;
        if public_sec1.is_some_and(|p| p != key.public_sec1().as_slice()) {
            return Err(Error::InvalidValue {
                context: "private key",
                element: "public key",
                reason: "is not the public key of the scalar",
            });
        }
        Ok(Box::new(key))
    }

    fn generate_private_key(&self, curve: Curve, rng: Rng<'_>) -> Result<GeneratedKey> {
        let mut scalar = Zeroizing::new(alloc::vec![0u8; curve.field_len()]);
        // A random string is a valid scalar except with negligible probability; a broken RNG
        // that never gives one is refused after a few tries rather than looping forever.
        for _ in 0..16 {
            rng(&mut scalar);
            if let Ok(key) = EcKey::from_scalar(curve, &scalar) {
                return Ok(GeneratedKey {
                    key: Box::new(key),
                    scalar,
                });
            }
        }
        Err(Error::InvalidValue {
            context: "private key",
            element: "random scalar",
            reason: "the random source gave no valid scalar in 16 tries",
        })
    }

    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        let public_sec1 = public_key;
        match alg {
            SigAlg::EcdsaP256Sha256 => {
                let (Ok(key), Ok(sig)) = (
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(public_sec1),
                    p256::ecdsa::Signature::from_slice(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            SigAlg::EcdsaP384Sha384 => {
                let (Ok(key), Ok(sig)) = (
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(public_sec1),
                    p384::ecdsa::Signature::from_slice(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            SigAlg::Ed25519 => super::ed25519::verify(public_key, message, signature),
            SigAlg::MlDsa65 => super::mldsa::verify(public_key, message, signature),
            SigAlg::HssLms => super::hsslms::verify(public_key, message, signature),
        }
    }
}

/// A wrapped 16- or 32-byte key is 24 or 40 bytes.
pub(crate) fn check_wrapped_len(wrapped: &[u8]) -> Result<()> {
    match wrapped.len() {
        24 | 40 => Ok(()),
        _ => Err(wrong_wrapped_len()),
    }
}

fn wrong_wrapped_len() -> Error {
    Error::InvalidEncryptionInfo("the wrapped content key does not have a key-wrap length")
}

#[derive(Clone)]
struct Sha<D>(D, DigestAlg);

impl<D> HashState for Sha<D>
where
    D: sha2::Digest + Clone + Send + 'static,
{
    fn alg(&self) -> DigestAlg {
        self.1
    }

    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }

    fn finish(self: Box<Self>) -> DigestValue {
        crate::digest::value(self.1, &self.0.finalize())
    }

    fn fork(&self) -> Box<dyn HashState> {
        Box::new(self.clone())
    }
}

enum Ctr {
    Aes128(ctr::Ctr128BE<Aes128>),
    Aes256(ctr::Ctr128BE<Aes256>),
}

impl KeystreamCipher for Ctr {
    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        let out = output.get_mut(..input.len()).ok_or_else(short_output)?;
        match self {
            Ctr::Aes128(c) => c.try_apply_keystream_b2b(input, out),
            Ctr::Aes256(c) => c.try_apply_keystream_b2b(input, out),
        }
        .map_err(|_| counter_exhausted())
    }
}

enum Ctr32 {
    Aes128(ctr::Ctr32BE<Aes128>),
    Aes256(ctr::Ctr32BE<Aes256>),
}

/// E(K, block) for one block.
fn encrypt_block<C>(cipher: &C, block: [u8; 16]) -> Zeroizing<[u8; 16]>
where
    C: BlockCipherEncrypt + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let mut b = aes::Block::from(block);
    cipher.encrypt_block(&mut b);
    Zeroizing::new(b.into())
}

/// The running state of one AES-GCM operation (either direction).
struct Gcm {
    keystream: Ctr32,
    ghash: GHash,
    tag_mask: Zeroizing<[u8; 16]>,
    /// Ciphertext bytes not yet forming a whole GHASH block.
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    text_len: u64,
}

impl Gcm {
    fn new(key: &AesKey, iv: &[u8; GCM_IV_LEN], aad: &[u8]) -> Result<Self> {
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        let mut first_counter = j0;
        first_counter[15] = 2;
        let (h, tag_mask, keystream) = match key.as_bytes().len() {
            16 => {
                let aes = Aes128::new_from_slice(key.as_bytes()).map_err(|_| bad_key())?;
                let ks = ctr::Ctr32BE::<Aes128>::new_from_slices(key.as_bytes(), &first_counter)
                    .map_err(|_| bad_key())?;
                (
                    encrypt_block(&aes, [0; 16]),
                    encrypt_block(&aes, j0),
                    Ctr32::Aes128(ks),
                )
            }
            _ => {
                let aes = Aes256::new_from_slice(key.as_bytes()).map_err(|_| bad_key())?;
                let ks = ctr::Ctr32BE::<Aes256>::new_from_slices(key.as_bytes(), &first_counter)
                    .map_err(|_| bad_key())?;
                (
                    encrypt_block(&aes, [0; 16]),
                    encrypt_block(&aes, j0),
                    Ctr32::Aes256(ks),
                )
            }
        };
        let mut ghash = GHash::new(&ghash::Key::from(*h));
        ghash.update_padded(aad);
        Ok(Gcm {
            keystream,
            ghash,
            tag_mask,
            partial: [0; 16],
            partial_len: 0,
            aad_len: aad.len() as u64,
            text_len: 0,
        })
    }

    /// Feeds ciphertext to GHASH, holding back a trailing partial block.
    fn absorb(&mut self, mut ciphertext: &[u8]) {
        self.text_len += ciphertext.len() as u64;
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(ciphertext.len());
            self.partial[self.partial_len..self.partial_len + take]
                .copy_from_slice(&ciphertext[..take]);
            self.partial_len += take;
            ciphertext = &ciphertext[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update_padded(&self.partial);
            self.partial_len = 0;
        }
        let whole = ciphertext.len() - ciphertext.len() % 16;
        self.ghash.update_padded(&ciphertext[..whole]);
        let rest = &ciphertext[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        let out = output.get_mut(..input.len()).ok_or_else(short_output)?;
        match &mut self.keystream {
            Ctr32::Aes128(c) => c.try_apply_keystream_b2b(input, out),
            Ctr32::Aes256(c) => c.try_apply_keystream_b2b(input, out),
        }
        .map_err(|_| counter_exhausted())
    }

    /// The authentication tag over everything absorbed.
    fn compute_tag(mut self) -> [u8; GCM_TAG_LEN] {
        if self.partial_len > 0 {
            self.ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.text_len * 8).to_be_bytes());
        self.ghash.update_padded(&lengths);
        let s = self.ghash.finalize();
        let mut tag = [0u8; GCM_TAG_LEN];
        for (t, (a, b)) in tag.iter_mut().zip(s.iter().zip(self.tag_mask.iter())) {
            *t = a ^ b;
        }
        tag
    }
}

impl AeadDecrypt for Gcm {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        // GHASH sees the ciphertext, the keystream turns it into plaintext on its way out.
        self.apply(input, output)?;
        self.absorb(input);
        Ok(())
    }

    fn verify(self: Box<Self>, tag: &[u8; GCM_TAG_LEN]) -> Result<()> {
        if tags_equal(&self.compute_tag(), tag) {
            Ok(())
        } else {
            Err(Error::TagMismatch)
        }
    }
}

impl AeadEncrypt for Gcm {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        self.apply(input, output)?;
        self.absorb(&output[..input.len()]);
        Ok(())
    }

    fn tag(self: Box<Self>) -> [u8; GCM_TAG_LEN] {
        self.compute_tag()
    }
}

/// A private key of either curve; signatures are deterministic (RFC 6979).
pub(crate) enum EcKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl EcKey {
    pub(crate) fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<Self> {
        let invalid = || Error::InvalidValue {
            context: "private key",
            element: "scalar",
            reason: "not a valid scalar of its curve",
        };
        if scalar.len() != curve.field_len() {
            return Err(invalid());
        }
        match curve {
            Curve::P256 => p256::ecdsa::SigningKey::from_slice(scalar)
                .map(EcKey::P256)
                .map_err(|_| invalid()),
            Curve::P384 => p384::ecdsa::SigningKey::from_slice(scalar)
                .map(EcKey::P384)
                .map_err(|_| invalid()),
        }
    }
}

fn bad_peer() -> Error {
    Error::InvalidEncryptionInfo("the ephemeral key is not a point on its curve")
}

impl PrivateKey for EcKey {
    fn curve(&self) -> Curve {
        match self {
            EcKey::P256(_) => Curve::P256,
            EcKey::P384(_) => Curve::P384,
        }
    }

    fn public_sec1(&self) -> Vec<u8> {
        match self {
            EcKey::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            EcKey::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        use p256::ecdsa::signature::Signer;
        Ok(match self {
            EcKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
            EcKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
        })
    }

    fn agree(&self, peer_sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(match self {
            EcKey::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(peer_sec1).map_err(|_| bad_peer())?;
                let shared = p256::ecdh::diffie_hellman(k.as_nonzero_scalar(), peer.as_affine());
                Zeroizing::new(shared.raw_secret_bytes().to_vec())
            }
            EcKey::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(peer_sec1).map_err(|_| bad_peer())?;
                let shared = p384::ecdh::diffie_hellman(k.as_nonzero_scalar(), peer.as_affine());
                Zeroizing::new(shared.raw_secret_bytes().to_vec())
            }
        })
    }
}

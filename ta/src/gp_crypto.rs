//! The TA's crypto provider on OP-TEE's GlobalPlatform Internal Core API (optee-utee's
//! `crypto_op`): every operation is a system call into the OP-TEE core, which runs its own
//! (on real boards: accelerated) implementations.
//!
//! | operation | GP call |
//! |---|---|
//! | SHA-256/384/512 | `TEE_DigestUpdate` / `TEE_DigestDoFinal` (fork: `TEE_CopyOperation`) |
//! | AES-GCM stream | `TEE_AEInit`, `TEE_AEUpdateAAD`, `TEE_AEUpdate`, `TEE_AEDecryptFinal` / `TEE_AEEncryptFinal` |
//! | AES-CTR | `TEE_CipherInit` / `TEE_CipherUpdate` |
//! | ECDSA verify / sign | `TEE_AsymmetricVerifyDigest` / `TEE_AsymmetricSignDigest` on key objects |
//! | ECDH | `TEE_DeriveKey` (`TEE_ALG_ECDH_DERIVE_SHARED_SECRET`) into a generic-secret object |
//! | AES key wrap | RustCrypto's `aes-kw` (GP has no key wrap; one 40-byte unwrap per payload) |
//!
//! `TEE_AEUpdate` releases plaintext before the tag is checked, as the trait's
//! [`AeadDecrypt::update`] says; [`suit_shared::encryption::Decryptor`] approves nothing before
//! [`AeadDecrypt::verify`] (`TEE_AEDecryptFinal`) succeeded.
//!
//! GP panics the TA on some misuse instead of returning an error (`TEE_DeriveKey` on a point
//! off the curve, a key attribute larger than its object); every public key from outside is
//! therefore parsed and checked on its curve before it reaches GP.
//!
//! Private keys: the core hands the scalar from the TA's state to [`GpProvider::private_key`],
//! which puts it into two transient key objects (ECDSA and ECDH) that live in OP-TEE's core for
//! the object's lifetime; signing and agreement never read the scalar back.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use optee_utee::{
    AlgorithmId, Asymmetric, Attribute, AttributeId, AttributeMemref, AttributeValue, Cipher,
    DeriveKey, Digest, ElementId, ErrorKind, GenericObject, OperationMode, TransientObject,
    TransientObjectType, AE,
};
use suit_shared::crypto::{
    short_output, AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, HashState, KeystreamCipher,
    PrivateKey, SigAlg, GCM_IV_LEN, GCM_TAG_LEN, RUST_CRYPTO,
};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::encryption::AesKey;
use suit_shared::{Error, Result};
use zeroize::Zeroizing;

/// The GP provider.
pub struct GpProvider {
    /// Fingerprint (SHA-256 of algorithm, key, signature and message digest) of the last
    /// signature that verified, and whether there is one. OP-TEE's ECC runs in software in the
    /// core (about a second per P-384 verification under QEMU), and the core checks the same
    /// approval token on every DECRYPT_FOR_INSTALL chunk; a repeated verification of the very
    /// same inputs is answered from here. Verification is a pure function of its inputs, so
    /// this changes no verdict. (Atomics only because the static must be `Sync`: a TA
    /// instance runs on one thread.)
    last_verified: [AtomicU64; 4],
    has_last: AtomicBool,
}

/// The GP provider, as a static to install.
pub static GP_CRYPTO: GpProvider = GpProvider {
    last_verified: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
    has_last: AtomicBool::new(false),
};

impl GpProvider {
    fn is_last_verified(&self, fingerprint: &[u64; 4]) -> bool {
        self.has_last.load(Ordering::Relaxed)
            && self
                .last_verified
                .iter()
                .zip(fingerprint)
                .all(|(a, b)| a.load(Ordering::Relaxed) == *b)
    }

    fn remember_verified(&self, fingerprint: &[u64; 4]) {
        for (a, b) in self.last_verified.iter().zip(fingerprint) {
            a.store(*b, Ordering::Relaxed);
        }
        self.has_last.store(true, Ordering::Relaxed);
    }
}

/// What identifies one verification: SHA-256 over the algorithm, the key, the signature and
/// the message's digest (lengths first, so no two input sets share an encoding).
fn fingerprint(alg: SigAlg, xy: &[u8], signature: &[u8], digest: &DigestValue) -> [u64; 4] {
    let mut h = GpHash::new(DigestAlg::Sha256);
    h.update(&[alg.curve().field_len() as u8]);
    for part in [xy, signature, digest.as_bytes()] {
        h.update(&(part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let value = Box::new(h).finish();
    let mut words = [0u64; 4];
    for (w, chunk) in words.iter_mut().zip(value.as_bytes().chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_be_bytes(b);
    }
    words
}

fn gp_error(what: &'static str) -> Error {
    Error::Decryption(alloc::format!("the TEE refused {what}"))
}

fn bad_key() -> Error {
    Error::InvalidEncryptionInfo("the content key does not fit the content algorithm")
}

fn bad_peer() -> Error {
    Error::InvalidEncryptionInfo("the ephemeral key is not a point on its curve")
}

/// An AES key object holding `key`.
fn aes_object(key: &AesKey) -> Result<TransientObject> {
    let bytes = key.as_bytes();
    let bits = bytes.len() * 8;
    let mut object =
        TransientObject::allocate(TransientObjectType::Aes, bits).map_err(|_| bad_key())?;
    let attr = AttributeMemref::from_ref(AttributeId::SecretValue, bytes);
    object.populate(&[attr.into()]).map_err(|_| bad_key())?;
    Ok(object)
}

fn curve_element(curve: Curve) -> ElementId {
    match curve {
        Curve::P256 => ElementId::EccCurveNistP256,
        Curve::P384 => ElementId::EccCurveNistP384,
    }
}

fn curve_bits(curve: Curve) -> usize {
    curve.field_len() * 8
}

/// The affine coordinates `x || y` of a SEC1 point (compressed or not), checked to be on the
/// curve: GP takes coordinates and would panic on a bad point in `TEE_DeriveKey`.
fn affine_xy(curve: Curve, sec1: &[u8]) -> Option<Vec<u8>> {
    let uncompressed = match curve {
        Curve::P256 => {
            use p256::elliptic_curve::sec1::ToSec1Point;
            p256::PublicKey::from_sec1_bytes(sec1)
                .ok()?
                .to_sec1_point(false)
                .as_bytes()
                .to_vec()
        }
        Curve::P384 => {
            use p384::elliptic_curve::sec1::ToSec1Point;
            p384::PublicKey::from_sec1_bytes(sec1)
                .ok()?
                .to_sec1_point(false)
                .as_bytes()
                .to_vec()
        }
    };
    // 0x04 || x || y
    uncompressed.get(1..).map(<[u8]>::to_vec)
}

/// The public-key attributes (x, y, curve) of a point given as `x || y`.
fn point_attributes(curve: Curve, xy: &[u8]) -> [Attribute; 3] {
    let (x, y) = xy.split_at(curve.field_len());
    [
        AttributeMemref::from_ref(AttributeId::EccPublicValueX, x).into(),
        AttributeMemref::from_ref(AttributeId::EccPublicValueY, y).into(),
        AttributeValue::from_value(AttributeId::EccCurve, curve_element(curve) as u32, 0).into(),
    ]
}

/// One-shot digest with GP.
fn digest_of(alg: DigestAlg, message: &[u8]) -> DigestValue {
    let mut state = GpHash::new(alg);
    state.update(message);
    Box::new(state).finish()
}

impl CryptoProvider for GpProvider {
    fn name(&self) -> &'static str {
        "OP-TEE GP"
    }

    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState> {
        Box::new(GpHash::new(alg))
    }

    fn aes_gcm_decrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadDecrypt>> {
        Ok(Box::new(GpGcm::new(key, iv, aad, OperationMode::Decrypt)?))
    }

    fn aes_gcm_encrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> Result<Box<dyn AeadEncrypt>> {
        Ok(Box::new(GpGcm::new(key, iv, aad, OperationMode::Encrypt)?))
    }

    fn aes_ctr(&self, key: &AesKey, iv: &[u8; 16]) -> Result<Box<dyn KeystreamCipher>> {
        let object = aes_object(key)?;
        let bits = key.as_bytes().len() * 8;
        let cipher = Cipher::allocate(AlgorithmId::AesCtr, OperationMode::Decrypt, bits)
            .map_err(|_| gp_error("an AES-CTR operation"))?;
        cipher.set_key(&object).map_err(|_| bad_key())?;
        cipher.init(iv);
        Ok(Box::new(GpCtr {
            cipher,
            remaining: ctr_limit(iv),
        }))
    }

    fn aes_key_wrap(&self, kek: &AesKey, key: &AesKey) -> Result<Vec<u8>> {
        RUST_CRYPTO.aes_key_wrap(kek, key)
    }

    fn aes_key_unwrap(&self, kek: &AesKey, wrapped: &[u8]) -> Result<Option<AesKey>> {
        RUST_CRYPTO.aes_key_unwrap(kek, wrapped)
    }

    fn private_key(&self, curve: Curve, scalar: &[u8]) -> Result<Box<dyn PrivateKey>> {
        Ok(Box::new(GpKey::new(curve, scalar)?))
    }

    fn verify(&self, alg: SigAlg, public_sec1: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let curve = alg.curve();
        if signature.len() != alg.signature_len() {
            return false;
        }
        let Some(xy) = affine_xy(curve, public_sec1) else {
            return false;
        };
        let digest = digest_of(alg.digest(), message);
        let print = fingerprint(alg, &xy, signature, &digest);
        if self.is_last_verified(&print) {
            return true;
        }
        let verified = || -> optee_utee::Result<()> {
            let mut key =
                TransientObject::allocate(TransientObjectType::EcdsaPublicKey, curve_bits(curve))?;
            key.populate(&point_attributes(curve, &xy))?;
            let mut op =
                Asymmetric::allocate(ecdsa_alg(alg), OperationMode::Verify, curve_bits(curve))?;
            op.set_key(&key)?;
            op.verify_digest(&[], digest.as_bytes(), signature)
        };
        let ok = verified().is_ok();
        if ok {
            self.remember_verified(&print);
        }
        ok
    }
}

fn ecdsa_alg(alg: SigAlg) -> AlgorithmId {
    match alg {
        SigAlg::EcdsaP256Sha256 => AlgorithmId::EcDsaSha256,
        SigAlg::EcdsaP384Sha384 => AlgorithmId::EcDsaSha384,
    }
}

/// Bytes left before a 128-bit big-endian counter starting at `iv` would wrap (saturated).
fn ctr_limit(iv: &[u8; 16]) -> u64 {
    let counter = u128::from_be_bytes(*iv);
    let blocks = (u128::MAX - counter).saturating_add(1);
    u64::try_from(blocks.saturating_mul(16)).unwrap_or(u64::MAX)
}

/// A GP digest operation; `None` when OP-TEE had no memory for one (then the digest is a
/// value that matches nothing, so whatever it was to approve is refused).
struct GpHash {
    op: Option<Digest>,
    alg: DigestAlg,
}

// SAFETY: a GP operation handle is an opaque pointer into the TA's own heap, used only through
// `&self`/`&mut self`; OP-TEE runs a TA instance on one thread, so the handle is never touched
// from two threads (the `Send` bound exists for the host's providers).
unsafe impl Send for GpHash {}

impl GpHash {
    fn new(alg: DigestAlg) -> Self {
        let id = match alg {
            DigestAlg::Sha256 => AlgorithmId::Sha256,
            DigestAlg::Sha384 => AlgorithmId::Sha384,
            DigestAlg::Sha512 => AlgorithmId::Sha512,
        };
        GpHash {
            op: Digest::allocate(id).ok(),
            alg,
        }
    }
}

impl HashState for GpHash {
    fn alg(&self) -> DigestAlg {
        self.alg
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(op) = &self.op {
            op.update(data);
        }
    }

    fn finish(self: Box<Self>) -> DigestValue {
        let mut out = [0u8; 64];
        let len = self.alg.output_len();
        // `out` holds every digest, so TEE_DigestDoFinal cannot answer SHORT_BUFFER; a failure
        // (or no operation) leaves zeros, which match no expected digest.
        let done = self
            .op
            .as_ref()
            .is_some_and(|op| matches!(op.do_final(&[], &mut out[..len]), Ok(n) if n == len));
        if !done {
            out = [0; 64];
        }
        // `len` is the algorithm's own length, which `new` always accepts; the fallback is a
        // SHA-256 value, which matches nothing of another algorithm.
        DigestValue::new(self.alg, &out[..len]).unwrap_or_else(|| DigestValue::from([0u8; 32]))
    }

    fn fork(&self) -> Box<dyn HashState> {
        let mut copy = GpHash::new(self.alg);
        match (&mut copy.op, &self.op) {
            (Some(to), Some(from)) => to.copy(from),
            _ => copy.op = None,
        }
        Box::new(copy)
    }
}

/// One AES-GCM operation (either direction) on a GP AE handle.
struct GpGcm {
    op: AE,
}

// SAFETY: as for `GpHash`: the handle is used from the TA's one thread only.
unsafe impl Send for GpGcm {}

impl GpGcm {
    fn new(key: &AesKey, iv: &[u8; GCM_IV_LEN], aad: &[u8], mode: OperationMode) -> Result<Self> {
        let object = aes_object(key)?;
        let op = AE::allocate(AlgorithmId::AesGcm, mode, key.as_bytes().len() * 8)
            .map_err(|_| gp_error("an AES-GCM operation"))?;
        op.set_key(&object).map_err(|_| bad_key())?;
        // GCM ignores the announced AAD and payload lengths (they are for CCM).
        op.init(iv, GCM_TAG_LEN * 8, 0, 0)
            .map_err(|_| gp_error("the AES-GCM nonce"))?;
        if !aad.is_empty() {
            op.update_aad(aad);
        }
        Ok(GpGcm { op })
    }

    /// `TEE_AEUpdate`: OP-TEE streams GCM byte-exact (no block buffering in libutee for GCM),
    /// so every input byte has its output byte on return.
    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        let out = output.get_mut(..input.len()).ok_or_else(short_output)?;
        match self.op.update(input, out) {
            Ok(n) if n == input.len() => Ok(()),
            _ => Err(gp_error("a part of the AES-GCM stream")),
        }
    }
}

impl AeadDecrypt for GpGcm {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        self.apply(input, output)
    }

    fn verify(self: Box<Self>, tag: &[u8; GCM_TAG_LEN]) -> Result<()> {
        match self.op.decrypt_final(&[], &mut [], tag) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::MacInvalid => Err(Error::TagMismatch),
            Err(_) => Err(gp_error("the AES-GCM tag check")),
        }
    }
}

impl AeadEncrypt for GpGcm {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        self.apply(input, output)
    }

    fn tag(self: Box<Self>) -> [u8; GCM_TAG_LEN] {
        let mut tag = [0u8; GCM_TAG_LEN];
        // A tag left at zeros (only if the TEE failed) fails every later check.
        let _ = self.op.encrypt_final(&[], &mut [], &mut tag);
        tag
    }
}

/// AES-CTR on a GP cipher handle, refusing to run past the end of the counter space.
struct GpCtr {
    cipher: Cipher,
    remaining: u64,
}

// SAFETY: as for `GpHash`: the handle is used from the TA's one thread only.
unsafe impl Send for GpCtr {}

impl KeystreamCipher for GpCtr {
    fn apply(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        let out = output.get_mut(..input.len()).ok_or_else(short_output)?;
        let len = input.len() as u64;
        if len > self.remaining {
            return Err(Error::Decryption(
                "the payload is longer than the counter space of its cipher".into(),
            ));
        }
        match self.cipher.update(input, out) {
            Ok(n) if n == input.len() => {
                self.remaining -= len;
                Ok(())
            }
            _ => Err(gp_error("a part of the AES-CTR stream")),
        }
    }
}

/// A private key as two GP key objects: ECDSA (sign) and ECDH (derive).
struct GpKey {
    curve: Curve,
    /// SEC1 uncompressed.
    public: Vec<u8>,
    ecdsa: TransientObject,
    ecdh: TransientObject,
}

// SAFETY: the object handles are used from the TA's one thread only (see `GpHash`); `Sync`
// holds for the same reason: no two threads exist to share a reference.
unsafe impl Send for GpKey {}
// SAFETY: see `Send` above.
unsafe impl Sync for GpKey {}

fn invalid_scalar() -> Error {
    Error::InvalidValue {
        context: "private key",
        element: "scalar",
        reason: "not a valid scalar of its curve",
    }
}

impl GpKey {
    fn new(curve: Curve, scalar: &[u8]) -> Result<Self> {
        if scalar.len() != curve.field_len() {
            return Err(invalid_scalar());
        }
        // GP wants the public point beside the scalar; computing it once here also checks the
        // scalar (non-zero, below the order).
        let public = match curve {
            Curve::P256 => {
                use p256::elliptic_curve::sec1::ToSec1Point;
                p256::SecretKey::from_slice(scalar)
                    .map_err(|_| invalid_scalar())?
                    .public_key()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec()
            }
            Curve::P384 => {
                use p384::elliptic_curve::sec1::ToSec1Point;
                p384::SecretKey::from_slice(scalar)
                    .map_err(|_| invalid_scalar())?
                    .public_key()
                    .to_sec1_point(false)
                    .as_bytes()
                    .to_vec()
            }
        };
        let xy = public.get(1..).ok_or_else(invalid_scalar)?;
        let object = |kind| -> optee_utee::Result<TransientObject> {
            let mut o = TransientObject::allocate(kind, curve_bits(curve))?;
            let [x, y, c] = point_attributes(curve, xy);
            let d = AttributeMemref::from_ref(AttributeId::EccPrivateValue, scalar).into();
            o.populate(&[d, x, y, c])?;
            Ok(o)
        };
        let no_object = |_| gp_error("a key object");
        Ok(GpKey {
            curve,
            ecdsa: object(TransientObjectType::EcdsaKeypair).map_err(no_object)?,
            ecdh: object(TransientObjectType::EcdhKeypair).map_err(no_object)?,
            public,
        })
    }
}

impl PrivateKey for GpKey {
    fn curve(&self) -> Curve {
        self.curve
    }

    fn public_sec1(&self) -> Vec<u8> {
        self.public.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let alg = self.curve.ecdsa();
        let digest = digest_of(alg.digest(), message);
        let mut signature = vec![0u8; alg.signature_len()];
        let bits = curve_bits(self.curve);
        let mut signed = || -> optee_utee::Result<usize> {
            let mut op = Asymmetric::allocate(ecdsa_alg(alg), OperationMode::Sign, bits)?;
            op.set_key(&self.ecdsa)?;
            op.sign_digest(&[], digest.as_bytes(), &mut signature)
        };
        match signed() {
            Ok(n) if n == alg.signature_len() => Ok(signature),
            _ => Err(Error::InvalidValue {
                context: "device key",
                element: "signature",
                reason: "the TEE could not sign",
            }),
        }
    }

    fn agree(&self, peer_sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        // Checked on the curve first: TEE_DeriveKey panics the TA on a bad point.
        let xy = affine_xy(self.curve, peer_sec1).ok_or_else(bad_peer)?;
        let bits = curve_bits(self.curve);
        let mut shared = Zeroizing::new(vec![0u8; self.curve.field_len()]);
        let mut derived = || -> optee_utee::Result<usize> {
            let mut op = DeriveKey::allocate(AlgorithmId::EcDhDeriveSharedSecret, bits)?;
            op.set_key(&self.ecdh)?;
            let mut secret = TransientObject::allocate(TransientObjectType::GenericSecret, bits)?;
            let [x, y, _] = point_attributes(self.curve, &xy);
            op.derive(&[x, y], &mut secret);
            secret.ref_attribute(AttributeId::SecretValue, &mut shared)
        };
        match derived() {
            Ok(n) if n == shared.len() => Ok(shared),
            _ => Err(Error::InvalidEncryptionInfo(
                "the TEE could not agree a key with the ephemeral key",
            )),
        }
    }
}

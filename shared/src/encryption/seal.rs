//! Payload encryption for the vendor tool (feature `author`): a fresh random content key and IV
//! for every payload, wrapped for one recipient, and a streaming AES-GCM encryptor. The key and
//! IV never leave the [`Encryptor`], so a content key/IV pair cannot be used twice. AES-GCM is
//! the project's choice; AES-CTR (RFC 9459) is made for the draft's profiles that name it, and
//! then only the signed image digest protects the payload's integrity.

use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;

use alloc::boxed::Box;

use super::cose::{enc_structure, TAG_ENCRYPT};
use super::recipient::kdf;
use super::stream::count_gcm_text;
use super::{AesKey, AesKwAlg, ContentAlg, GCM_TAG_LEN};
use crate::cbor::Writer;
use crate::crypto::{self, AeadEncrypt, Curve, KeystreamCipher};
use crate::error::{Error, Result};

/// Whom a payload is encrypted for.
#[derive(Debug, Clone, Copy)]
pub enum RecipientPublicKey<'k> {
    /// AES key wrap under a shared KEK: A128KW for 16 bytes, A256KW for 32 bytes.
    Kek(&'k AesKey),
    /// ECDH-ES with a P-256 static public key, then AES key wrap of strength `wrap`.
    P256 {
        /// The recipient's public key.
        key: &'k p256::PublicKey,
        /// Key wrap after the key agreement.
        wrap: AesKwAlg,
    },
    /// ECDH-ES with a P-384 static public key (the project's device key), then AES key wrap.
    P384 {
        /// The recipient's public key.
        key: &'k p384::PublicKey,
        /// Key wrap after the key agreement.
        wrap: AesKwAlg,
    },
    /// ECDH-ES with an X25519 static public key (draft-ietf-suit-mti's EdDSA profile), then
    /// AES key wrap.
    X25519 {
        /// The recipient's public key (RFC 7748 u-coordinate).
        key: &'k [u8; crypto::x25519::KEY_LEN],
        /// Key wrap after the key agreement.
        wrap: AesKwAlg,
    },
}

/// Encrypts one payload with AES-GCM or AES-CTR, in chunks of any size; the ciphertext is
/// everything [`update`](Self::update) writes followed by what [`finalize`](Self::finalize)
/// returns (the GCM tag; nothing for CTR).
#[must_use = "the ciphertext is incomplete without the tag from finalize()"]
pub struct Encryptor {
    cipher: SealCipher,
}

enum SealCipher {
    Gcm {
        gcm: Box<dyn AeadEncrypt>,
        text_len: u64,
    },
    Ctr(Box<dyn KeystreamCipher>),
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.cipher {
            SealCipher::Gcm { .. } => "Encryptor(AES-GCM, <key state redacted>)",
            SealCipher::Ctr(_) => "Encryptor(AES-CTR, <key state redacted>)",
        })
    }
}

fn random<R: TryCryptoRng + ?Sized>(rng: &mut R, out: &mut [u8]) -> Result<()> {
    rng.try_fill_bytes(out)
        .map_err(|_| Error::RandomnessUnavailable)
}

impl Encryptor {
    /// Starts encrypting a payload for `recipient` with a fresh content key and IV drawn from
    /// `rng`; returns the encryptor and the SUIT_Encryption_Info (tagged COSE_Encrypt with
    /// detached ciphertext) that lets the recipient decrypt it. `kid` names the recipient's key.
    pub fn for_recipient<R: TryCryptoRng + ?Sized>(
        content_alg: ContentAlg,
        recipient: &RecipientPublicKey<'_>,
        kid: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>)> {
        let (encryptor, head, recipients) = Self::start(content_alg, recipient, kid, rng)?;
        // nil: the ciphertext travels detached.
        let mut w = Writer::new();
        w.raw(&head).null().raw(&recipients);
        Ok((encryptor, w.into_bytes()))
    }

    /// Seals a small secret (e.g. a fleet KEK) for `recipient`: a tagged COSE_Encrypt with
    /// the ciphertext and its tag attached, opened by [`super::open_sealed`]. Only AES-GCM:
    /// a sealed secret has no image digest, the tag is its only integrity.
    pub fn seal<R: TryCryptoRng + ?Sized>(
        content_alg: ContentAlg,
        recipient: &RecipientPublicKey<'_>,
        kid: Option<&[u8]>,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        if !content_alg.is_aead() {
            return Err(Error::Unsupported(alloc::format!(
                "sealing with {}: a sealed secret needs AES-GCM",
                content_alg.name()
            )));
        }
        let (mut encryptor, head, recipients) = Self::start(content_alg, recipient, kid, rng)?;
        let mut ciphertext = alloc::vec![0u8; plaintext.len()];
        encryptor.update(plaintext, &mut ciphertext)?;
        ciphertext.extend_from_slice(&encryptor.finalize());
        let mut w = Writer::new();
        w.raw(&head).bytes(&ciphertext).raw(&recipients);
        Ok(w.into_bytes())
    }

    /// The encryptor, the COSE_Encrypt up to its ciphertext (tag, array head, headers), and
    /// its recipients array.
    fn start<R: TryCryptoRng + ?Sized>(
        content_alg: ContentAlg,
        recipient: &RecipientPublicKey<'_>,
        kid: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>, Vec<u8>)> {
        let mut cek_bytes = zeroize::Zeroizing::new([0u8; 32]);
        random(rng, &mut cek_bytes[..content_alg.key_len()])?;
        let cek = AesKey::from_slice(&cek_bytes[..content_alg.key_len()])?;
        let mut iv = [0u8; 16];
        let iv = &mut iv[..content_alg.iv_len()];
        random(rng, iv)?;

        // AES-GCM: alg protected (the AAD authenticates it). AES-CTR: an empty protected
        // header, alg and IV unprotected (RFC 9459 §4), canonical order.
        let mut w = Writer::new();
        w.tag(TAG_ENCRYPT).array(4);
        let protected = if content_alg.is_aead() {
            let mut protected = Writer::new();
            protected.map(1).i64(1).i64(content_alg.cose_id());
            let protected = protected.into_bytes();
            w.bytes(&protected);
            w.map(1).i64(5).bytes(iv);
            protected
        } else {
            w.bytes(&[]);
            w.map(2).i64(1).i64(content_alg.cose_id()).i64(5).bytes(iv);
            Vec::new()
        };
        let mut recipients = Writer::new();
        recipients.array(1);
        recipient_structure(&mut recipients, recipient, kid, &cek, rng)?;

        let provider = crypto::provider();
        let cipher = if content_alg.is_aead() {
            let iv: &[u8; 12] = (&*iv).try_into().map_err(|_| Error::InvalidValue {
                context: "encryptor",
                element: "IV",
                reason: "AES-GCM takes 12 bytes",
            })?;
            SealCipher::Gcm {
                gcm: provider.aes_gcm_encrypt(&cek, iv, &enc_structure("Encrypt", &protected))?,
                text_len: 0,
            }
        } else {
            let iv: &[u8; 16] = (&*iv).try_into().map_err(|_| Error::InvalidValue {
                context: "encryptor",
                element: "IV",
                reason: "AES-CTR takes the 16-byte initial counter block",
            })?;
            SealCipher::Ctr(provider.aes_ctr(&cek, iv)?)
        };
        Ok((
            Encryptor { cipher },
            w.into_bytes(),
            recipients.into_bytes(),
        ))
    }

    /// Encrypts the next chunk of plaintext into `output` (at least as long as `input`) and
    /// returns the number of bytes written (always `input.len()`).
    pub fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<usize> {
        let out = output.get_mut(..input.len()).ok_or(Error::InvalidValue {
            context: "encryptor",
            element: "output buffer",
            reason: "must be at least as long as the input",
        })?;
        match &mut self.cipher {
            SealCipher::Gcm { gcm, text_len } => {
                count_gcm_text(text_len, input.len())?;
                gcm.update(input, out)?;
            }
            SealCipher::Ctr(keystream) => keystream.apply(input, out)?,
        }
        Ok(input.len())
    }

    /// Ends the payload and returns what to append to the ciphertext: the AES-GCM
    /// authentication tag, nothing for AES-CTR.
    pub fn finalize(self) -> Vec<u8> {
        match self.cipher {
            SealCipher::Gcm { gcm, .. } => {
                let tag: [u8; GCM_TAG_LEN] = gcm.tag();
                tag.to_vec()
            }
            SealCipher::Ctr(_) => Vec::new(),
        }
    }
}

/// Writes one COSE_recipient wrapping `cek` for `recipient`.
fn recipient_structure<R: TryCryptoRng + ?Sized>(
    w: &mut Writer,
    recipient: &RecipientPublicKey<'_>,
    kid: Option<&[u8]>,
    cek: &AesKey,
    rng: &mut R,
) -> Result<()> {
    use p256::elliptic_curve::sec1::ToSec1Point;

    let provider = crypto::provider();
    let (wrap, ephemeral_key, kek) = match recipient {
        RecipientPublicKey::Kek(kek) => {
            let wrap = AesKwAlg::for_kek_len(kek.as_bytes().len()).ok_or_else(|| {
                Error::Unsupported("a KEK that is neither 16 nor 32 bytes".into())
            })?;
            // AES-KW: empty protected header, alg and kid unprotected (draft §5.1).
            w.array(3).bytes(&[]);
            w.map(1 + usize::from(kid.is_some()))
                .i64(1)
                .i64(wrap.cose_id());
            if let Some(kid) = kid {
                w.i64(4).bytes(kid);
            }
            w.bytes(&provider.aes_key_wrap(kek, cek)?);
            return Ok(());
        }
        RecipientPublicKey::P256 { key, wrap } => {
            let ephemeral = ephemeral_key(Curve::P256, rng)?;
            let shared = ephemeral.agree(key.to_sec1_point(false).as_bytes())?;
            let kek = kdf(&shared, *wrap, &ecdh_protected(*wrap))?;
            (*wrap, ec2_key(1, &ephemeral.public_sec1()), kek)
        }
        RecipientPublicKey::P384 { key, wrap } => {
            let ephemeral = ephemeral_key(Curve::P384, rng)?;
            let shared = ephemeral.agree(key.to_sec1_point(false).as_bytes())?;
            let kek = kdf(&shared, *wrap, &ecdh_protected(*wrap))?;
            (*wrap, ec2_key(2, &ephemeral.public_sec1()), kek)
        }
        RecipientPublicKey::X25519 { key, wrap } => {
            let mut private = zeroize::Zeroizing::new([0u8; crypto::x25519::KEY_LEN]);
            random(rng, &mut private[..])?;
            let shared = provider.x25519(&private, key)?;
            let kek = kdf(&*shared, *wrap, &ecdh_protected(*wrap))?;
            // OKP (1), crv X25519 (4), x.
            let mut w = Writer::new();
            w.map(3).i64(1).i64(1).i64(-1).i64(4);
            w.i64(-2).bytes(&provider.x25519_public(&private)?);
            (*wrap, w.into_bytes(), kek)
        }
    };
    // ECDH-ES: alg protected (it enters the KDF context), ephemeral key and kid unprotected
    // (draft §5.2), keys in canonical order (4 before -1).
    w.array(3).bytes(&ecdh_protected(wrap));
    w.map(1 + usize::from(kid.is_some()));
    if let Some(kid) = kid {
        w.i64(4).bytes(kid);
    }
    w.i64(-1).raw(&ephemeral_key);
    w.bytes(&provider.aes_key_wrap(&kek, cek)?);
    Ok(())
}

/// The COSE_Key of an EC2 ephemeral key on curve `crv` from its SEC1 uncompressed point.
fn ec2_key(crv: i64, sec1: &[u8]) -> Vec<u8> {
    let field_len = (sec1.len() - 1) / 2;
    let mut w = Writer::new();
    w.map(4);
    w.i64(1).i64(2); // kty: EC2
    w.i64(-1).i64(crv);
    w.i64(-2).bytes(&sec1[1..1 + field_len]);
    w.i64(-3).bytes(&sec1[1 + field_len..]);
    w.into_bytes()
}

/// A fresh ephemeral key on `curve`: a random scalar, drawn again in the rare case that it is
/// not below the group order.
fn ephemeral_key<R: TryCryptoRng + ?Sized>(
    curve: Curve,
    rng: &mut R,
) -> Result<Box<dyn crypto::PrivateKey>> {
    let mut scalar = zeroize::Zeroizing::new([0u8; 48]);
    let scalar = &mut scalar[..curve.field_len()];
    for _ in 0..64 {
        random(rng, scalar)?;
        if let Ok(key) = crypto::provider().private_key(curve, scalar, None) {
            return Ok(key);
        }
    }
    Err(Error::RandomnessUnavailable)
}

/// The protected header of an ECDH-ES recipient: `{1: alg}`.
fn ecdh_protected(wrap: AesKwAlg) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(1).i64(1).i64(wrap.ecdh_es_cose_id());
    w.into_bytes()
}

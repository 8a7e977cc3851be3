//! The device's keys and content-key recovery: AES key unwrap (RFC 3394) with a KEK, or
//! ephemeral-static ECDH on P-256/P-384 or X25519, HKDF-SHA-256 over the COSE_KDF_Context (RFC 9053
//! §5.2, draft-ietf-suit-firmware-encryption §5.2), then AES key unwrap.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use alloc::boxed::Box;
use zeroize::Zeroizing;

use super::cose::{EncryptionInfo, KeyDistribution, Recipient, Recipients};
use super::{AesKey, AesKwAlg, KDF_CONTEXT_OTHER};
use crate::cbor::Writer;
use crate::crypto::{self, Curve, PrivateKey};
use crate::error::{Error, Result};

/// A key the device holds to obtain content keys. Private material is zeroized on drop and
/// never printed.
pub enum RecipientKey {
    /// An AES key-wrap KEK: 16 bytes for A128KW, 32 bytes for A256KW.
    Kek {
        /// Key id that recipients may name.
        kid: Option<Vec<u8>>,
        /// The KEK.
        key: AesKey,
    },
    /// A static P-256 or P-384 key for ECDH-ES+A128KW / ECDH-ES+A256KW (P-384 is the
    /// project's profile), held by the crypto provider.
    Ecdh {
        /// Key id that recipients may name.
        kid: Option<Vec<u8>>,
        /// The private key.
        key: Box<dyn PrivateKey>,
    },
    /// A static X25519 key for ECDH-ES+A128KW / ECDH-ES+A256KW with X25519 ephemeral keys
    /// (draft-ietf-suit-mti's EdDSA profile); the provider agrees with it.
    X25519 {
        /// Key id that recipients may name.
        kid: Option<Vec<u8>>,
        /// The private key (RFC 7748).
        key: Zeroizing<[u8; crypto::x25519::KEY_LEN]>,
    },
    /// A content key provisioned in advance, for COSE_Encrypt0 (no recipient structure).
    Direct {
        /// Key id that the COSE_Encrypt0 may name.
        kid: Option<Vec<u8>>,
        /// The content key.
        key: AesKey,
    },
}

impl RecipientKey {
    /// An ECDH key from its big-endian scalar, made by the crypto provider.
    pub fn ecdh(curve: Curve, scalar: &[u8], kid: Option<Vec<u8>>) -> Result<Self> {
        Ok(RecipientKey::Ecdh {
            kid,
            key: crypto::provider().private_key(curve, scalar, None)?,
        })
    }

    /// An X25519 key from its 32 private bytes.
    pub fn x25519(private: &[u8], kid: Option<Vec<u8>>) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; crypto::x25519::KEY_LEN]);
        if private.len() != key.len() {
            return Err(Error::InvalidValue {
                context: "private key",
                element: "X25519 key",
                reason: "must be 32 bytes",
            });
        }
        key.copy_from_slice(private);
        Ok(RecipientKey::X25519 { kid, key })
    }

    fn kid(&self) -> Option<&[u8]> {
        match self {
            RecipientKey::Kek { kid, .. }
            | RecipientKey::Ecdh { kid, .. }
            | RecipientKey::X25519 { kid, .. }
            | RecipientKey::Direct { kid, .. } => kid.as_deref(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            RecipientKey::Kek { key, .. } if key.as_bytes().len() == 16 => "A128KW KEK",
            RecipientKey::Kek { .. } => "A256KW KEK",
            RecipientKey::Ecdh { key, .. } => match key.curve() {
                Curve::P256 => "P-256 ECDH key",
                Curve::P384 => "P-384 ECDH key",
            },
            RecipientKey::X25519 { .. } => "X25519 ECDH key",
            RecipientKey::Direct { .. } => "pre-shared content key",
        }
    }

    /// A recipient and a key match unless both name a kid and the kids differ.
    fn kid_matches(&self, kid: Option<&[u8]>) -> bool {
        match (self.kid(), kid) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        }
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientKey({}", self.kind())?;
        if let Some(kid) = self.kid() {
            write!(f, ", kid {}", Kid(kid))?;
        }
        f.write_str(", <redacted>)")
    }
}

/// A key id for messages: text when it is printable, hex otherwise.
struct Kid<'a>(&'a [u8]);

impl fmt::Display for Kid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(text) if text.chars().all(|c| c.is_ascii_graphic() || c == ' ') => {
                write!(f, "'{text}'")
            }
            _ => {
                f.write_str("h'")?;
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// What kind of device key a recipient needs, for messages.
fn needed_kind(d: &KeyDistribution) -> &'static str {
    match d {
        KeyDistribution::AesKw(AesKwAlg::A128Kw) => "an A128KW KEK (16 bytes)",
        KeyDistribution::AesKw(AesKwAlg::A256Kw) => "an A256KW KEK (32 bytes)",
        KeyDistribution::EcdhEs { ephemeral, .. } => match ephemeral.curve {
            Curve::P256 => "a P-256 ECDH key",
            Curve::P384 => "a P-384 ECDH key",
        },
        KeyDistribution::EcdhEsX25519 { .. } => "an X25519 ECDH key",
    }
}

/// Recovers the content-encryption key of `info` with one of `keys`.
///
/// Every (recipient, key) pair whose kinds fit and whose kids do not contradict each other is
/// tried in order; the first successful unwrap wins (AES-KW's integrity check rejects a wrong
/// KEK). Errors (category `decryption`): [`Error::NoDecryptionKey`] when no pair fits,
/// [`Error::KeyUnwrapFailed`] when every fitting pair fails.
pub fn unwrap_cek(info: &EncryptionInfo<'_>, keys: &[RecipientKey]) -> Result<AesKey> {
    let key_len = info.content_alg.key_len();
    let recipients = match &info.recipients {
        Recipients::Direct { kid } => {
            return keys
                .iter()
                .find_map(|k| match k {
                    RecipientKey::Direct { key, .. }
                        if k.kid_matches(*kid) && key.as_bytes().len() == key_len =>
                    {
                        Some(key.clone())
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::NoDecryptionKey(format!(
                        "COSE_Encrypt0{} needs a pre-shared {}-byte content key",
                        kid.map(|k| format!(" with kid {}", Kid(k)))
                            .unwrap_or_default(),
                        key_len
                    ))
                })
        }
        Recipients::Wrapped(recipients) => recipients,
    };
    let mut tried = false;
    for recipient in recipients {
        for key in keys.iter().filter(|k| k.kid_matches(recipient.kid)) {
            let Some(kek) = derive_kek(recipient, key)? else {
                continue;
            };
            tried = true;
            if let Some(cek) = crypto::provider().aes_key_unwrap(&kek, recipient.wrapped_cek)? {
                if cek.as_bytes().len() != key_len {
                    return Err(Error::InvalidEncryptionInfo(
                        "the content key does not fit the content algorithm",
                    ));
                }
                return Ok(cek);
            }
        }
    }
    if tried {
        return Err(Error::KeyUnwrapFailed);
    }
    Err(Error::NoDecryptionKey(no_key_reason(recipients, keys)))
}

fn no_key_reason(recipients: &[Recipient<'_>], keys: &[RecipientKey]) -> String {
    let mut reason = String::new();
    for (i, r) in recipients.iter().enumerate() {
        if i > 0 {
            reason.push_str("; ");
        }
        reason.push_str(&format!(
            "recipient {} ({}) needs {}",
            i + 1,
            algorithm_name(&r.distribution),
            needed_kind(&r.distribution)
        ));
        if let Some(kid) = r.kid {
            reason.push_str(&format!(" with kid {}", Kid(kid)));
        }
    }
    if keys.is_empty() {
        reason.push_str("; the device has no decryption keys");
    } else {
        reason.push_str("; the device has ");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                reason.push_str(", ");
            }
            reason.push_str(k.kind());
            if let Some(kid) = k.kid() {
                reason.push_str(&format!(" (kid {})", Kid(kid)));
            }
        }
    }
    reason
}

fn algorithm_name(d: &KeyDistribution) -> &'static str {
    match d {
        KeyDistribution::AesKw(AesKwAlg::A128Kw) => "A128KW",
        KeyDistribution::AesKw(AesKwAlg::A256Kw) => "A256KW",
        KeyDistribution::EcdhEs {
            wrap: AesKwAlg::A128Kw,
            ..
        }
        | KeyDistribution::EcdhEsX25519 {
            wrap: AesKwAlg::A128Kw,
            ..
        } => "ECDH-ES+A128KW",
        KeyDistribution::EcdhEs {
            wrap: AesKwAlg::A256Kw,
            ..
        }
        | KeyDistribution::EcdhEsX25519 {
            wrap: AesKwAlg::A256Kw,
            ..
        } => "ECDH-ES+A256KW",
    }
}

/// The KEK that `key` gives for `recipient`, or `None` if the key does not fit it.
fn derive_kek(recipient: &Recipient<'_>, key: &RecipientKey) -> Result<Option<AesKey>> {
    match (&recipient.distribution, key) {
        (KeyDistribution::AesKw(wrap), RecipientKey::Kek { key, .. })
            if key.as_bytes().len() == wrap.kek_len() =>
        {
            Ok(Some(key.clone()))
        }
        (KeyDistribution::EcdhEs { wrap, ephemeral }, RecipientKey::Ecdh { key, .. })
            if key.curve() == ephemeral.curve =>
        {
            let shared = key.agree(&ephemeral.point)?;
            kdf(&shared, *wrap, recipient.protected).map(Some)
        }
        (KeyDistribution::EcdhEsX25519 { wrap, ephemeral }, RecipientKey::X25519 { key, .. }) => {
            let shared = crypto::provider().x25519(key, ephemeral)?;
            kdf(&*shared, *wrap, recipient.protected).map(Some)
        }
        _ => Ok(None),
    }
}

/// The COSE_KDF_Context of the draft (§5.2): `[AlgorithmID, PartyUInfo, PartyVInfo,
/// SuppPubInfo]` with empty party information and "SUIT Payload Encryption" as `other`.
pub(crate) fn kdf_context(wrap: AesKwAlg, recipient_protected: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4).i64(wrap.cose_id());
    for _party in 0..2 {
        w.array(3).null().null().null();
    }
    w.array(3)
        .u64(wrap.kek_len() as u64 * 8)
        .bytes(recipient_protected)
        .bytes(KDF_CONTEXT_OTHER);
    w.into_bytes()
}

/// HKDF-SHA-256 (no salt) from the ECDH shared secret to the KEK.
pub(crate) fn kdf(
    shared_secret: &[u8],
    wrap: AesKwAlg,
    recipient_protected: &[u8],
) -> Result<AesKey> {
    let mut okm = Zeroizing::new([0u8; 32]);
    let okm = &mut okm[..wrap.kek_len()];
    crypto::mac::hkdf_sha256(shared_secret, &kdf_context(wrap, recipient_protected), okm).ok_or(
        Error::InvalidEncryptionInfo("HKDF cannot produce a key of this length"),
    )?;
    AesKey::from_slice(okm)
}

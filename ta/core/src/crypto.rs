//! Payload decryption with the device's keys (draft-ietf-suit-firmware-encryption): the
//! key-agreement key (P-384, or X25519 for the EdDSA profile) is the ECDH-ES recipient of
//! per-device payloads, the provisioned fleet KEK the AES-KW recipient of fleet-wide ones.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::encryption::{
    open_sealed, unwrap_cek, AesKey, Decryptor, EncryptionInfo, RecipientKey,
};
use suit_shared::{Error, Result};
use zeroize::Zeroizing;

use crate::state::State;
use crate::stream::Decrypt;

/// Content-encryption algorithms the TA decrypts (COSE ids).
pub const CONTENT_ALGS: [i64; 4] = [1, 3, -65534, -65532];
/// Key-distribution algorithms the TA unwraps with (COSE ids).
pub const KEY_DISTRIBUTION_ALGS: [i64; 4] = [-3, -5, -29, -31];

fn recipient_keys(state: &State) -> Result<Vec<RecipientKey>> {
    let mut keys = vec![state.agreement_key.recipient_key()?];
    if let Some(kek) = &state.kek {
        keys.push(RecipientKey::Kek {
            kid: (!kek.kid.is_empty()).then(|| kek.kid.clone()),
            key: AesKey::from_slice(&kek.key)?,
        });
    }
    Ok(keys)
}

/// The fleet KEK that PROVISION carries sealed to the device (docs/keys.md): opened with the
/// key-agreement key alone (a KEK already held never opens another), AES-GCM only, and it must
/// be 16 (A128KW) or 32 (A256KW) bytes.
pub fn open_sealed_kek(sealed: &[u8], state: &State) -> Result<Zeroizing<Vec<u8>>> {
    let keys = [state.agreement_key.recipient_key()?];
    let kek = open_sealed(sealed, &keys, 32)?;
    if kek.len() != 16 && kek.len() != 32 {
        return Err(Error::InvalidValue {
            context: "PROVISION",
            element: "KEK",
            reason: "must be 16 (A128KW) or 32 (A256KW) bytes",
        });
    }
    Ok(kek)
}

/// A decryptor for the payload `info` describes, with the content key unwrapped by one of the
/// device's keys.
pub fn decryptor(info: &[u8], state: &State) -> Result<Box<dyn Decrypt>> {
    let info = EncryptionInfo::decode(info)?;
    let cek = unwrap_cek(&info, &recipient_keys(state)?)?;
    Ok(Box::new(Stream(Some(Decryptor::new(&info, cek)?))))
}

/// Whether the device can decrypt the payload `info` describes. (Integrity does not rest on
/// the algorithm: every planned item has a plaintext image digest, see [`crate::plan`].)
pub fn check_recipient(info: &[u8], state: &State) -> Result<()> {
    let d = EncryptionInfo::decode(info)?;
    let cek = unwrap_cek(&d, &recipient_keys(state)?)?;
    Decryptor::new(&d, cek).map(drop)
}

/// How a one-pass stream (docs/streaming.md) decrypts the payload `info` describes from byte
/// `offset` (a multiple of 16) of its plaintext.
pub enum StreamCipher {
    /// AES-GCM from the first byte: the tag is checked at the end by the caller.
    Gcm(Box<dyn suit_shared::crypto::AeadDecrypt>),
    /// A keystream positioned at the offset: AES-CTR, or AES-GCM resumed in the middle,
    /// whose tag over the whole ciphertext cannot be checked (the dm-verity tree authenticates
    /// what it decrypts).
    Keystream(Box<dyn suit_shared::crypto::KeystreamCipher>),
}

/// The cipher for a one-pass stream of the payload `info` describes, from plaintext byte
/// `offset`, and whether the payload carries a 16-byte AEAD tag after the ciphertext.
pub fn stream_cipher(info: &[u8], state: &State, offset: u64) -> Result<(StreamCipher, bool)> {
    let d = EncryptionInfo::decode(info)?;
    let cek = unwrap_cek(&d, &recipient_keys(state)?)?;
    let provider = suit_shared::crypto::provider();
    let blocks = offset / 16;
    let aead = d.content_alg.is_aead();
    let mut counter = [0u8; 16];
    if aead {
        let iv: &[u8; suit_shared::crypto::GCM_IV_LEN] =
            d.iv.try_into()
                .map_err(|_| Error::InvalidEncryptionInfo("the IV of AES-GCM must be 12 bytes"))?;
        if offset == 0 {
            let gcm = provider.aes_gcm_decrypt(&cek, iv, &d.enc_structure())?;
            return Ok((StreamCipher::Gcm(gcm), true));
        }
        // GCM's keystream for the plaintext starts at counter block IV ‖ 2 (SP 800-38D).
        let at = u32::try_from(blocks.saturating_add(2))
            .map_err(|_| Error::Decryption("resume offset beyond the AES-GCM limit".into()))?;
        counter[..12].copy_from_slice(iv);
        counter[12..].copy_from_slice(&at.to_be_bytes());
    } else {
        // CTR: the IV is the initial counter block, a 128-bit big-endian counter.
        let iv: [u8; 16] = d.iv.try_into().map_err(|_| {
            Error::InvalidEncryptionInfo(
                "the IV of AES-CTR must be the 16-byte initial counter block",
            )
        })?;
        counter = u128::from_be_bytes(iv)
            .wrapping_add(u128::from(blocks))
            .to_be_bytes();
    }
    Ok((
        StreamCipher::Keystream(provider.aes_ctr(&cek, &counter)?),
        aead,
    ))
}

struct Stream(Option<Decryptor>);

impl Decrypt for Stream {
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<usize> {
        match self.0.as_mut() {
            Some(d) => d.update(input, output),
            None => Err(suit_shared::Error::Decryption(
                "the payload already ended".into(),
            )),
        }
    }

    fn finish(&mut self, _output: &mut [u8]) -> Result<usize> {
        match self.0.take() {
            Some(d) => d.finalize().map(|()| 0),
            None => Err(suit_shared::Error::Decryption(
                "the payload already ended".into(),
            )),
        }
    }
}

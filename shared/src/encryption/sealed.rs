//! Small secrets sealed to a device key: a tagged COSE_Encrypt whose ciphertext is attached,
//! made by `Encryptor::seal` (feature `author`). PROVISION carries the fleet KEK this way,
//! wrapped to the device's key-agreement key, so that it never crosses Linux in clear
//! (docs/keys.md).

use alloc::vec;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{unwrap_cek, Decryptor, EncryptionInfo, RecipientKey, GCM_TAG_LEN};
use crate::error::{Error, Result};

/// Opens a sealed secret of at most `max_len` bytes with one of `keys`. Only AES-GCM is
/// accepted (a sealed secret has no image digest: the tag is its only integrity); the
/// plaintext is returned only after the tag has been checked.
///
/// Errors: `malformed` for what is not such a COSE_Encrypt, `decryption` for a key that does
/// not fit (sealed to another device), a failed unwrap or tag (altered), AES-CTR, or a secret
/// longer than `max_len`.
pub fn open_sealed(
    bytes: &[u8],
    keys: &[RecipientKey],
    max_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let (info, ciphertext) = EncryptionInfo::decode_attached(bytes)?;
    if !info.content_alg.is_aead() {
        return Err(Error::InvalidEncryptionInfo(
            "a sealed secret needs AES-GCM: AES-CTR has no integrity",
        ));
    }
    if ciphertext.len() > max_len.saturating_add(GCM_TAG_LEN) {
        return Err(Error::InvalidEncryptionInfo(
            "the sealed secret is longer than this use allows",
        ));
    }
    let cek = unwrap_cek(&info, keys)?;
    let mut decryptor = Decryptor::new(&info, cek)?;
    let mut plaintext = Zeroizing::new(vec![0u8; ciphertext.len()]);
    let n = decryptor.update(ciphertext, &mut plaintext)?;
    decryptor.finalize()?;
    plaintext.truncate(n);
    Ok(plaintext)
}

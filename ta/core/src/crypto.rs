//! Payload decryption with the device's keys (draft-ietf-suit-firmware-encryption): the
//! device key (P-384) is the ECDH-ES recipient of per-device payloads, the provisioned fleet
//! KEK the AES-KW recipient of fleet-wide ones.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::encryption::{unwrap_cek, AesKey, Decryptor, EncryptionInfo, RecipientKey};
use suit_shared::Result;

use crate::state::State;
use crate::stream::Decrypt;

/// Content-encryption algorithms the TA decrypts (COSE ids).
pub const CONTENT_ALGS: [i64; 4] = [1, 3, -65534, -65532];
/// Key-distribution algorithms the TA unwraps with (COSE ids).
pub const KEY_DISTRIBUTION_ALGS: [i64; 4] = [-3, -5, -29, -31];

fn recipient_keys(state: &State) -> Result<Vec<RecipientKey>> {
    let mut keys = vec![RecipientKey::Ecdh {
        kid: None,
        key: state.device_key.private_key()?,
    }];
    if let Some(kek) = &state.kek {
        keys.push(RecipientKey::Kek {
            kid: (!kek.kid.is_empty()).then(|| kek.kid.clone()),
            key: AesKey::from_slice(&kek.key)?,
        });
    }
    Ok(keys)
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

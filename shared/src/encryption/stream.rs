//! Streaming payload decryption with constant memory.

use core::borrow::Borrow;
use core::fmt;

use alloc::boxed::Box;

use super::cose::EncryptionInfo;
use super::{AesKey, GCM_TAG_LEN};
use crate::crypto::{self, AeadDecrypt, KeystreamCipher, GCM_IV_LEN};
use crate::error::{Error, Result};

/// Longest AES-GCM plaintext: 2³² − 2 blocks (SP 800-38D §5.2.1.1); the 32-bit counter that
/// starts at 2 never wraps below it.
pub(crate) const MAX_GCM_TEXT_LEN: u64 = ((1 << 32) - 2) * 16;

/// Counts `n` more bytes of a GCM text against its limit.
pub(crate) fn count_gcm_text(total: &mut u64, n: usize) -> Result<()> {
    let next = total.saturating_add(n as u64);
    if next > MAX_GCM_TEXT_LEN {
        return Err(Error::Decryption(
            "the payload exceeds the AES-GCM limit of 2^36 - 32 bytes".into(),
        ));
    }
    *total = next;
    Ok(())
}

enum Cipher {
    /// AES-GCM; the last 16 bytes seen so far may be the tag and are held back.
    Gcm {
        gcm: Box<dyn AeadDecrypt>,
        held: [u8; GCM_TAG_LEN],
        held_len: usize,
        text_len: u64,
    },
    /// AES-CTR: no integrity.
    Ctr(Box<dyn KeystreamCipher>),
}

/// Decrypts one payload, fed in chunks of any size, with memory independent of its size.
///
/// # Unverified output
///
/// For AES-GCM, everything [`update`](Self::update) writes is **unverified plaintext** until
/// [`finalize`](Self::finalize) returns `Ok(())`: the single tag covers the whole payload and
/// sits at its end. A caller must keep that output where it can be discarded (a scratch file,
/// a slot that is not yet marked bootable, a digest that approves nothing before the end) and
/// must discard it when `finalize` fails. For AES-CTR there is no tag at all
/// ([`authenticates`](Self::authenticates) is false): the plaintext must be checked against an
/// image digest before it is used.
#[must_use = "decrypted output is unverified until finalize() succeeds"]
pub struct Decryptor {
    cipher: Cipher,
    /// An update failed; the stream cannot be verified any more.
    failed: bool,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.cipher {
            Cipher::Gcm { .. } => "AES-GCM",
            Cipher::Ctr(_) => "AES-CTR",
        };
        write!(f, "Decryptor({mode}, <key state redacted>)")
    }
}

impl Decryptor {
    /// Starts decrypting the payload described by `info` with the content key `cek`
    /// (from [`unwrap_cek`](super::unwrap_cek)); `cek` may be given by value or by reference.
    pub fn new(info: &EncryptionInfo<'_>, cek: impl Borrow<AesKey>) -> Result<Self> {
        let cek = cek.borrow();
        if cek.as_bytes().len() != info.content_alg.key_len() {
            return Err(Error::InvalidEncryptionInfo(
                "the content key does not fit the content algorithm",
            ));
        }
        let provider = crypto::provider();
        let cipher = if info.content_alg.is_aead() {
            let iv: &[u8; GCM_IV_LEN] = info
                .iv
                .try_into()
                .map_err(|_| Error::InvalidEncryptionInfo("the IV of AES-GCM must be 12 bytes"))?;
            Cipher::Gcm {
                gcm: provider.aes_gcm_decrypt(cek, iv, &info.enc_structure())?,
                held: [0; GCM_TAG_LEN],
                held_len: 0,
                text_len: 0,
            }
        } else {
            let iv: &[u8; 16] = info.iv.try_into().map_err(|_| {
                Error::InvalidEncryptionInfo(
                    "the IV of AES-CTR must be the 16-byte initial counter block",
                )
            })?;
            Cipher::Ctr(provider.aes_ctr(cek, iv)?)
        };
        Ok(Decryptor {
            cipher,
            failed: false,
        })
    }

    /// Whether [`finalize`](Self::finalize) verifies the payload's integrity (AES-GCM). When
    /// false (AES-CTR) the caller must check the plaintext against an image digest.
    pub fn authenticates(&self) -> bool {
        matches!(self.cipher, Cipher::Gcm { .. })
    }

    /// Decrypts the next chunk of ciphertext into `output` and returns how many bytes it wrote
    /// (fewer than `input.len()` for AES-GCM, which holds back the last 16 bytes seen as the
    /// possible tag). `output.len() >= input.len()` always suffices. The output is unverified
    /// until [`finalize`](Self::finalize) succeeds.
    pub fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<usize> {
        if self.failed {
            return Err(Error::Decryption(
                "an earlier part of the payload failed to decrypt".into(),
            ));
        }
        let result = match &mut self.cipher {
            Cipher::Gcm {
                gcm,
                held,
                held_len,
                text_len,
            } => gcm_update(gcm.as_mut(), held, held_len, text_len, input, output),
            Cipher::Ctr(keystream) => keystream.apply(input, output).map(|()| input.len()),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends the payload. For AES-GCM this checks the tag in constant time: `Err` means the
    /// payload is not authentic (altered, truncated, extended, or another key) and everything
    /// decrypted from it must be discarded. For AES-CTR it only reports an earlier failure.
    pub fn finalize(self) -> Result<()> {
        if self.failed {
            return Err(Error::Decryption(
                "an earlier part of the payload failed to decrypt".into(),
            ));
        }
        match self.cipher {
            Cipher::Gcm {
                gcm,
                held,
                held_len,
                ..
            } => {
                if held_len < GCM_TAG_LEN {
                    return Err(Error::CiphertextTruncated);
                }
                gcm.verify(&held)
            }
            Cipher::Ctr(_) => Ok(()),
        }
    }
}

/// Releases everything but the last 16 bytes seen (held + input), decrypting it into `output`.
fn gcm_update(
    gcm: &mut dyn AeadDecrypt,
    held: &mut [u8; GCM_TAG_LEN],
    held_len: &mut usize,
    text_len: &mut u64,
    input: &[u8],
    output: &mut [u8],
) -> Result<usize> {
    let total = *held_len + input.len();
    if total <= GCM_TAG_LEN {
        held[*held_len..total].copy_from_slice(input);
        *held_len = total;
        return Ok(0);
    }
    let release = total - GCM_TAG_LEN;
    let out = output
        .get_mut(..release)
        .ok_or_else(crate::crypto::short_output)?;
    count_gcm_text(text_len, release)?;
    // The oldest bytes go first: held bytes, then the front of the input.
    let from_held = (*held_len).min(release);
    let from_input = release - from_held;
    let (out_held, out_input) = out.split_at_mut(from_held);
    if from_held > 0 {
        gcm.update(&held[..from_held], out_held)?;
    }
    if from_input > 0 {
        gcm.update(&input[..from_input], out_input)?;
    }
    let kept = *held_len - from_held;
    held.copy_within(from_held..*held_len, 0);
    held[kept..].copy_from_slice(&input[from_input..]);
    *held_len = GCM_TAG_LEN;
    Ok(release)
}

//! AES-GCM (NIST SP 800-38D) composed from its primitives so that it can stream: the AES block
//! cipher derives the hash key H = E(K, 0¹²⁸) and the tag mask E(K, J0), `ctr` produces the
//! keystream with a 32-bit big-endian counter starting at J0+1, and `ghash` absorbs the AAD, the
//! ciphertext and the length block. Only 96-bit IVs are used (J0 = IV || 0³¹1), as COSE
//! requires. Also the plain AES-CTR keystream of RFC 9459 (128-bit counter from the IV).

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use zeroize::Zeroizing;

use super::{AesKey, ContentAlg, GCM_TAG_LEN};
use crate::error::{Error, Result};

/// Longest AES-GCM plaintext: 2³² − 2 blocks (SP 800-38D §5.2.1.1); the 32-bit counter that
/// starts at 2 never wraps below it.
pub(crate) const MAX_GCM_TEXT_LEN: u64 = ((1 << 32) - 2) * 16;

/// An AES counter-mode keystream.
pub(crate) enum Keystream {
    Ctr32Aes128(ctr::Ctr32BE<Aes128>),
    Ctr32Aes256(ctr::Ctr32BE<Aes256>),
    Ctr128Aes128(ctr::Ctr128BE<Aes128>),
    Ctr128Aes256(ctr::Ctr128BE<Aes256>),
}

impl Keystream {
    /// The RFC 9459 AES-CTR keystream: the IV is the initial 128-bit counter block.
    pub(crate) fn ctr(alg: ContentAlg, key: &AesKey, iv: &[u8]) -> Result<Self> {
        let bad_iv = || {
            Error::InvalidEncryptionInfo(
                "the IV of AES-CTR must be the 16-byte initial counter block",
            )
        };
        let bad_key =
            || Error::InvalidEncryptionInfo("the content key does not fit the content algorithm");
        match alg {
            ContentAlg::A128Ctr => ctr::Ctr128BE::<Aes128>::new_from_slices(key.as_bytes(), iv)
                .map(Keystream::Ctr128Aes128),
            ContentAlg::A256Ctr => ctr::Ctr128BE::<Aes256>::new_from_slices(key.as_bytes(), iv)
                .map(Keystream::Ctr128Aes256),
            ContentAlg::A128Gcm | ContentAlg::A256Gcm => return Err(bad_key()),
        }
        .map_err(|_| if iv.len() != 16 { bad_iv() } else { bad_key() })
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`.
    pub(crate) fn apply(&mut self, buf: &mut [u8]) -> Result<()> {
        match self {
            Keystream::Ctr32Aes128(c) => c.try_apply_keystream(buf),
            Keystream::Ctr32Aes256(c) => c.try_apply_keystream(buf),
            Keystream::Ctr128Aes128(c) => c.try_apply_keystream(buf),
            Keystream::Ctr128Aes256(c) => c.try_apply_keystream(buf),
        }
        .map_err(|_| counter_exhausted())
    }

    /// Writes `input` XOR the next keystream bytes to `output` (of the same length).
    pub(crate) fn apply_b2b(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        match self {
            Keystream::Ctr32Aes128(c) => c.try_apply_keystream_b2b(input, output),
            Keystream::Ctr32Aes256(c) => c.try_apply_keystream_b2b(input, output),
            Keystream::Ctr128Aes128(c) => c.try_apply_keystream_b2b(input, output),
            Keystream::Ctr128Aes256(c) => c.try_apply_keystream_b2b(input, output),
        }
        .map_err(|_| counter_exhausted())
    }
}

fn counter_exhausted() -> Error {
    Error::Decryption("the payload is longer than the counter space of its cipher".into())
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
pub(crate) struct Gcm {
    keystream: Keystream,
    ghash: GHash,
    tag_mask: Zeroizing<[u8; 16]>,
    /// Ciphertext bytes not yet forming a whole GHASH block.
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    text_len: u64,
}

impl Gcm {
    /// Starts AES-GCM with `key` (16 or 32 bytes), a 12-byte `iv` and `aad`.
    pub(crate) fn new(key: &AesKey, iv: &[u8], aad: &[u8]) -> Result<Self> {
        let iv: [u8; 12] = iv
            .try_into()
            .map_err(|_| Error::InvalidEncryptionInfo("the IV of AES-GCM must be 12 bytes"))?;
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(&iv);
        j0[15] = 1;
        let mut first_counter = j0;
        first_counter[15] = 2;
        let bad_key =
            |_| Error::InvalidEncryptionInfo("the content key does not fit the content algorithm");
        let (h, tag_mask, keystream) = match key.as_bytes().len() {
            16 => {
                let aes = Aes128::new_from_slice(key.as_bytes()).map_err(bad_key)?;
                let ks = ctr::Ctr32BE::<Aes128>::new_from_slices(key.as_bytes(), &first_counter)
                    .map_err(bad_key)?;
                (
                    encrypt_block(&aes, [0; 16]),
                    encrypt_block(&aes, j0),
                    Keystream::Ctr32Aes128(ks),
                )
            }
            _ => {
                let aes = Aes256::new_from_slice(key.as_bytes()).map_err(bad_key)?;
                let ks = ctr::Ctr32BE::<Aes256>::new_from_slices(key.as_bytes(), &first_counter)
                    .map_err(bad_key)?;
                (
                    encrypt_block(&aes, [0; 16]),
                    encrypt_block(&aes, j0),
                    Keystream::Ctr32Aes256(ks),
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

    /// Counts `n` more text bytes against the GCM limit.
    pub(crate) fn count(&mut self, n: usize) -> Result<()> {
        let total = self.text_len.saturating_add(n as u64);
        if total > MAX_GCM_TEXT_LEN {
            return Err(Error::Decryption(
                "the payload exceeds the AES-GCM limit of 2^36 - 32 bytes".into(),
            ));
        }
        self.text_len = total;
        Ok(())
    }

    /// Feeds ciphertext to GHASH, holding back a trailing partial block.
    pub(crate) fn absorb(&mut self, mut ciphertext: &[u8]) {
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

    /// XORs the keystream into `buf`.
    pub(crate) fn apply_keystream(&mut self, buf: &mut [u8]) -> Result<()> {
        self.keystream.apply(buf)
    }

    /// Writes `input` XOR the keystream to `output` (of the same length).
    pub(crate) fn apply_keystream_b2b(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        self.keystream.apply_b2b(input, output)
    }

    /// The authentication tag over everything absorbed.
    pub(crate) fn tag(mut self) -> [u8; GCM_TAG_LEN] {
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

//! AES key wrap (RFC 3394) over any AES block function, for providers whose backend has AES
//! but no key wrap (GP: `TEE_CipherUpdate` in ECB mode). Keys of 16 or 32 bytes.

use alloc::vec::Vec;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::encryption::AesKey;
use crate::error::{Error, Result};

/// One AES block operation in place (encryption to wrap, decryption to unwrap).
pub type BlockFn<'a> = &'a mut dyn FnMut(&mut [u8; 16]) -> Result<()>;

const IV: [u8; 8] = [0xa6; 8];

fn wrong_length() -> Error {
    Error::InvalidEncryptionInfo("the wrapped content key does not have a key-wrap length")
}

/// Wraps `key` with the KEK behind `encrypt`.
pub fn wrap(key: &AesKey, encrypt: BlockFn<'_>) -> Result<Vec<u8>> {
    let plain = key.as_bytes();
    let n = plain.len() / 8;
    let mut a = IV;
    let mut r = Zeroizing::new(plain.to_vec());
    let mut b = Zeroizing::new([0u8; 16]);
    for j in 0..6 {
        for i in 0..n {
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            encrypt(&mut b)?;
            let t = (n * j + i + 1) as u64;
            for (x, (y, z)) in a.iter_mut().zip(b[..8].iter().zip(t.to_be_bytes())) {
                *x = y ^ z;
            }
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    let mut out = a.to_vec();
    out.extend_from_slice(&r);
    Ok(out)
}

/// Unwraps `wrapped` (24 or 40 bytes) with the KEK behind `decrypt`: `Ok(None)` when the
/// integrity check fails (another KEK, or altered input).
pub fn unwrap(wrapped: &[u8], decrypt: BlockFn<'_>) -> Result<Option<AesKey>> {
    if wrapped.len() != 24 && wrapped.len() != 40 {
        return Err(wrong_length());
    }
    let n = wrapped.len() / 8 - 1;
    let mut a = [0u8; 8];
    a.copy_from_slice(&wrapped[..8]);
    let mut r = Zeroizing::new(wrapped[8..].to_vec());
    let mut b = Zeroizing::new([0u8; 16]);
    for j in (0..6).rev() {
        for i in (0..n).rev() {
            let t = (n * j + i + 1) as u64;
            for (x, (y, z)) in b[..8].iter_mut().zip(a.iter().zip(t.to_be_bytes())) {
                *x = y ^ z;
            }
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            decrypt(&mut b)?;
            a.copy_from_slice(&b[..8]);
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    if bool::from(a.ct_eq(&IV)) {
        AesKey::from_slice(&r).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(all(test, feature = "rustcrypto"))]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn check(kek: &str, key: &str, wrapped: &str) {
        let (kek, key, wrapped) = (hex(kek), hex(key), hex(wrapped));
        let key = AesKey::from_slice(&key).unwrap();
        type Block = alloc::boxed::Box<dyn FnMut(&mut [u8; 16]) -> Result<()>>;
        let (mut enc, mut dec): (Block, Block) = if kek.len() == 16 {
            let c = aes::Aes128::new_from_slice(&kek).unwrap();
            let d = c.clone();
            (
                alloc::boxed::Box::new(move |b: &mut [u8; 16]| {
                    c.encrypt_block(b.into());
                    Ok(())
                }),
                alloc::boxed::Box::new(move |b: &mut [u8; 16]| {
                    d.decrypt_block(b.into());
                    Ok(())
                }),
            )
        } else {
            let c = aes::Aes256::new_from_slice(&kek).unwrap();
            let d = c.clone();
            (
                alloc::boxed::Box::new(move |b: &mut [u8; 16]| {
                    c.encrypt_block(b.into());
                    Ok(())
                }),
                alloc::boxed::Box::new(move |b: &mut [u8; 16]| {
                    d.decrypt_block(b.into());
                    Ok(())
                }),
            )
        };
        assert_eq!(wrap(&key, &mut *enc).unwrap(), wrapped);
        assert_eq!(unwrap(&wrapped, &mut *dec).unwrap(), Some(key));
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert_eq!(unwrap(&bad, &mut *dec).unwrap(), None, "byte {i}");
        }
        assert!(unwrap(&wrapped[..wrapped.len() - 8], &mut *dec).is_err());
        assert!(unwrap(&wrapped[1..], &mut *dec).is_err());
    }

    /// RFC 3394 §4.1 (128-bit KEK and key) and §4.6 (256-bit KEK and key).
    #[test]
    fn rfc3394_known_answers() {
        check(
            "000102030405060708090A0B0C0D0E0F",
            "00112233445566778899AABBCCDDEEFF",
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        );
        check(
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        );
    }
}

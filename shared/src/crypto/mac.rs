//! HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869) on the provider's hash, so every
//! provider gets them without a MAC of its own.

use zeroize::Zeroizing;

use super::provider;
use crate::digest::DigestAlg;

const BLOCK: usize = 64;
/// Length of an HMAC-SHA-256 tag and of HKDF-SHA-256's pseudorandom key.
pub const HMAC_SHA256_LEN: usize = 32;

/// HMAC-SHA-256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; HMAC_SHA256_LEN]> {
    let hash = provider();
    let mut block = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        let mut h = hash.hash(DigestAlg::Sha256);
        h.update(key);
        block[..HMAC_SHA256_LEN].copy_from_slice(h.finish().as_bytes());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut pad = Zeroizing::new([0u8; BLOCK]);
    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x36;
    }
    let mut inner = hash.hash(DigestAlg::Sha256);
    inner.update(&pad[..]);
    for part in parts {
        inner.update(part);
    }
    let inner = inner.finish();
    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x5c;
    }
    let mut outer = hash.hash(DigestAlg::Sha256);
    outer.update(&pad[..]);
    outer.update(inner.as_bytes());
    let mut tag = Zeroizing::new([0u8; HMAC_SHA256_LEN]);
    tag.copy_from_slice(outer.finish().as_bytes());
    tag
}

/// HKDF-SHA-256 without salt: extract from `ikm`, then expand `info` into `okm`. `None` when
/// `okm` is longer than HKDF allows (255 blocks).
pub fn hkdf_sha256(ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Option<()> {
    if okm.len() > 255 * HMAC_SHA256_LEN {
        return None;
    }
    // RFC 5869 §2.2: no salt is a string of HashLen zeros.
    let prk = hmac_sha256(&[0u8; HMAC_SHA256_LEN], &[ikm]);
    let mut previous = Zeroizing::new([0u8; HMAC_SHA256_LEN]);
    let mut previous_len = 0;
    for (i, chunk) in okm.chunks_mut(HMAC_SHA256_LEN).enumerate() {
        let counter = [i as u8 + 1];
        previous = hmac_sha256(&prk[..], &[&previous[..previous_len], info, &counter]);
        previous_len = HMAC_SHA256_LEN;
        chunk.copy_from_slice(&previous[..chunk.len()]);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> alloc::vec::Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 test cases 2 (short key) and 6 (key longer than a block).
    #[test]
    fn hmac_known_answers() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            tag[..],
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")[..]
        );
        let key = [0xaa; 131];
        let tag = hmac_sha256(
            &key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            tag[..],
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")[..]
        );
    }

    /// RFC 5869 test case 3 (no salt, no info) and a length HKDF refuses.
    #[test]
    fn hkdf_known_answer() {
        let mut okm = [0u8; 42];
        hkdf_sha256(&[0x0b; 22], b"", &mut okm).unwrap();
        assert_eq!(
            okm[..],
            hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")[..]
        );
        let mut too_long = alloc::vec![0u8; 255 * 32 + 1];
        assert_eq!(hkdf_sha256(b"k", b"", &mut too_long), None);
    }
}

//! ML-DSA-65 verification (FIPS 204; COSE -49, RFC 9964: pure ML-DSA, empty context),
//! feature `ml-dsa-65`.
//!
//! Crate: `fips204` 0.5 — safe Rust, no_std **without alloc** (every buffer on the stack,
//! which suits the TA's small heap), constant-time signing, and the FIPS 204 final
//! algorithm (context string, domain separation). RustCrypto's `ml-dsa` was the other
//! candidate; it is pre-1.0 with a larger generic-array surface and no audit either, and
//! fips204 needs nothing the tree does not have (`sha3`, `rand_core` for signing only).

/// Length of a public key.
pub const PUBLIC_KEY_LEN: usize = 1952;
/// Length of a signature.
pub const SIGNATURE_LEN: usize = 3309;

/// Whether `signature` is a valid ML-DSA-65 signature of `message` (empty context) under the
/// raw 1952-byte `public_key`; malformed input is `false`.
#[cfg(feature = "ml-dsa-65")]
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use fips204::ml_dsa_65;
    use fips204::traits::{SerDes, Verifier};
    let (Ok(key), Ok(sig)) = (
        <[u8; PUBLIC_KEY_LEN]>::try_from(public_key),
        <&[u8; SIGNATURE_LEN]>::try_from(signature),
    ) else {
        return false;
    };
    match ml_dsa_65::PublicKey::try_from_bytes(key) {
        Ok(key) => key.verify(message, sig, b""),
        Err(_) => false,
    }
}

/// Without the `ml-dsa-65` feature no ML-DSA-65 signature verifies.
#[cfg(not(feature = "ml-dsa-65"))]
pub fn verify(_public_key: &[u8], _message: &[u8], _signature: &[u8]) -> bool {
    false
}

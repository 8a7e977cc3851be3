//! Ed25519 verification (COSE `Ed25519` -19 and the polymorphic `EdDSA` -8 with an Ed25519
//! key; RFC 8032 PureEdDSA over the whole Sig_structure), feature `ed25519`.
//!
//! Crate: `ed25519-dalek` 3 — no_std, no alloc, the RustCrypto `signature` 3 traits the rest
//! of the provider already uses, and `verify_strict`, which refuses small-order keys and
//! non-canonical encodings (the signer cannot make one signature verify for two messages).

/// Length of a public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// Whether `signature` is a valid Ed25519 signature of `message` under the raw 32-byte
/// `public_key`; malformed input is `false`.
#[cfg(feature = "ed25519")]
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (
        <&[u8; PUBLIC_KEY_LEN]>::try_from(public_key),
        ed25519_dalek::Signature::from_slice(signature),
    ) else {
        return false;
    };
    match ed25519_dalek::VerifyingKey::from_bytes(key) {
        Ok(key) => key.verify_strict(message, &sig).is_ok(),
        Err(_) => false,
    }
}

/// Without the `ed25519` feature no Ed25519 signature verifies.
#[cfg(not(feature = "ed25519"))]
pub fn verify(_public_key: &[u8], _message: &[u8], _signature: &[u8]) -> bool {
    false
}

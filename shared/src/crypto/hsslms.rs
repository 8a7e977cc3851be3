//! HSS/LMS verification (RFC 8554, COSE -46 per RFC 8778), feature `hss-lms`.
//!
//! Crate: `hbs-lms` 0.1 (Fraunhofer AISEC) — `forbid(unsafe_code)`, no_std without alloc, the
//! RFC 8554 encodings of public keys and signatures, and a signer that hands the updated
//! private state to the caller before it releases a signature (what SP 800-208 asks of a
//! stateful signer; `suit-tool` persists it first). Only the SHA-256/M32 parameter sets
//! (`LMS_SHA256_M32_H*`, `LMOTS_SHA256_N32_W*`), which draft-ietf-suit-mti names.

/// Whether `signature` is a valid HSS signature (RFC 8554 §6.2 encoding) of `message` under
/// the HSS public key `public_key` (`u32 L || LMS public key`); malformed input is `false`.
#[cfg(feature = "hss-lms")]
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    hbs_lms::verify::<hbs_lms::Sha256_256>(message, signature, public_key).is_ok()
}

/// Without the `hss-lms` feature no HSS/LMS signature verifies.
#[cfg(not(feature = "hss-lms"))]
pub fn verify(_public_key: &[u8], _message: &[u8], _signature: &[u8]) -> bool {
    false
}

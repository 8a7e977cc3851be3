//! X25519 (RFC 7748), the key agreement of draft-ietf-suit-mti's EdDSA profile (ECDH-ES +
//! AES key wrap to an X25519 recipient key): portable no_std code on curve25519-dalek, the
//! crate the Ed25519 verifier already links, behind the feature `x25519`. Without the feature
//! every operation is refused. Keys are RFC 7748's 32-byte strings: a private key is clamped
//! when used, a public key is the u-coordinate.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of X25519 private keys, public keys and shared secrets.
pub const KEY_LEN: usize = 32;

/// The public key of `private` (its product with the base point).
#[cfg(feature = "x25519")]
pub fn public_key(private: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN]> {
    Ok(curve25519_dalek::MontgomeryPoint::mul_base_clamped(*private).to_bytes())
}

/// The shared secret of `private` and the peer's public key `peer` (RFC 7748 §5). An
/// all-zero secret (the peer sent a point of small order) is refused, as §6.1 asks.
#[cfg(feature = "x25519")]
pub fn agree(private: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    use subtle::ConstantTimeEq;
    let shared = Zeroizing::new(
        curve25519_dalek::MontgomeryPoint(*peer)
            .mul_clamped(*private)
            .to_bytes(),
    );
    if bool::from(shared.ct_eq(&[0u8; KEY_LEN])) {
        return Err(Error::InvalidEncryptionInfo(
            "the ephemeral X25519 key is a point of small order",
        ));
    }
    Ok(shared)
}

#[cfg(not(feature = "x25519"))]
fn unavailable() -> Error {
    Error::Unsupported(alloc::string::String::from(
        "X25519 key agreement (this build lacks the feature x25519)",
    ))
}

/// The public key of `private` (refused: this build has no X25519).
#[cfg(not(feature = "x25519"))]
pub fn public_key(_private: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN]> {
    Err(unavailable())
}

/// The shared secret of `private` and `peer` (refused: this build has no X25519).
#[cfg(not(feature = "x25519"))]
pub fn agree(_private: &[u8; KEY_LEN], _peer: &[u8; KEY_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    Err(unavailable())
}

#[cfg(all(test, feature = "x25519"))]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 7748 §6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn rfc7748_diffie_hellman() {
        let a = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let a_pub = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let b_pub = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let k = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(public_key(&a).unwrap(), a_pub);
        assert_eq!(public_key(&b).unwrap(), b_pub);
        assert_eq!(*agree(&a, &b_pub).unwrap(), k);
        assert_eq!(*agree(&b, &a_pub).unwrap(), k);
    }

    #[test]
    fn small_order_peers_are_refused() {
        let a = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let mut one = [0u8; 32];
        one[0] = 1;
        for peer in [[0u8; 32], one] {
            assert!(agree(&a, &peer).is_err());
        }
    }
}

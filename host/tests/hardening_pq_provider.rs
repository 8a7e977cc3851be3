//! The crypto provider's public-key check after the merge of the provider API (issue 12) with
//! the post-quantum algorithms (issue 14): every algorithm's key is checked by its own form
//! (`SigAlg::key_fits`) and ECDSA keys also by the point check, so a key of one algorithm is
//! refused for another and an off-curve point is refused when the anchor is made.

use suit_shared::auth::TrustAnchor;
use suit_shared::crypto::{provider, SigAlg};

#[test]
fn check_public_key_takes_every_algorithm_by_its_form() {
    let p = provider();
    for (alg, len) in [
        (SigAlg::Ed25519, 32),
        (SigAlg::MlDsa65, 1952),
        (SigAlg::HssLms, 60),
    ] {
        assert!(p.check_public_key(alg, &vec![7; len]).is_ok(), "{alg:?}");
        let err = p.check_public_key(alg, &vec![7; len + 1]).unwrap_err();
        assert!(err.to_string().contains(alg.name()), "{alg:?}: {err}");
        assert!(
            TrustAnchor::signature(alg, &vec![7; len - 1], None).is_err(),
            "{alg:?}"
        );
    }
    // An Ed25519-sized key is not an ML-DSA-65 key, nor the reverse.
    assert!(p.check_public_key(SigAlg::MlDsa65, &[7; 32]).is_err());
    assert!(p.check_public_key(SigAlg::Ed25519, &[7; 1952]).is_err());
}

#[test]
fn ecdsa_keys_must_be_points_of_their_curve() {
    let p = provider();
    // Right length and prefix, but (0, 0) is on neither curve.
    let mut off_curve = vec![0u8; 97];
    off_curve[0] = 4;
    assert!(p
        .check_public_key(SigAlg::EcdsaP384Sha384, &off_curve)
        .is_err());
    assert!(TrustAnchor::from_sec1(&off_curve, None).is_err());
    let mut off_curve = vec![0u8; 65];
    off_curve[0] = 4;
    assert!(p
        .check_public_key(SigAlg::EcdsaP256Sha256, &off_curve)
        .is_err());
    // A P-256 length is not a P-384 key.
    assert!(p
        .check_public_key(SigAlg::EcdsaP384Sha384, &off_curve)
        .is_err());
}

//! Key generation (`suit-tool keygen`) and the DER encoding of the keys it writes: SPKI
//! public keys and PKCS#8 private keys built by hand where the RustCrypto encoders do not
//! cover the algorithm (Ed25519, X25519, ML-DSA-65, HSS/LMS).

use std::path::Path;

use p256::pkcs8::der::pem;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding, ObjectIdentifier};
use zeroize::Zeroizing;

use super::{
    format_error, mldsa_public, write_private, KeyAlg, KeyError, HSS_LABEL, OID_ED25519,
    OID_HSS_LMS, OID_ML_DSA_65, OID_X25519,
};

/// Generates a key pair and writes `PREFIX.priv.pem` (PKCS#8, mode 0600) and `PREFIX.pub.pem`.
/// `lms_height` is the height of the HSS-LMS tree (5, 10, 15, 20 or 25: 2^height
/// signatures); other algorithms ignore it.
pub fn generate(alg: KeyAlg, prefix: &str, lms_height: u8) -> Result<(String, String), KeyError> {
    let priv_path = format!("{prefix}.priv.pem");
    let pub_path = format!("{prefix}.pub.pem");
    let encode_err = |p: &str| format_error(Path::new(p), "cannot encode the key");
    let pem_pair = |private_label: &str, private_der: &[u8], public_der: &[u8]| {
        Ok::<_, KeyError>((
            Zeroizing::new(
                pem::encode_string(private_label, LineEnding::LF, private_der)
                    .map_err(|_| encode_err(&priv_path))?,
            ),
            pem::encode_string("PUBLIC KEY", LineEnding::LF, public_der)
                .map_err(|_| encode_err(&pub_path))?,
        ))
    };
    let (private, public) = match alg {
        KeyAlg::Ed25519 => {
            let seed = random_seed().map_err(|_| encode_err(&priv_path))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let private = Zeroizing::new(pkcs8(&OID_ED25519, &tlv(0x04, &seed[..])));
            let public = spki(&OID_ED25519, &key.verifying_key().to_bytes());
            pem_pair("PRIVATE KEY", &private, &public)?
        }
        KeyAlg::X25519 => {
            let private = random_seed().map_err(|_| encode_err(&priv_path))?;
            let public = suit_shared::crypto::provider()
                .x25519_public(&private)
                .map_err(|_| encode_err(&pub_path))?;
            let private_der = Zeroizing::new(pkcs8(&OID_X25519, &tlv(0x04, &private[..])));
            pem_pair("PRIVATE KEY", &private_der, &spki(&OID_X25519, &public))?
        }
        KeyAlg::MlDsa65 => {
            let seed = random_seed().map_err(|_| encode_err(&priv_path))?;
            let private = Zeroizing::new(pkcs8(&OID_ML_DSA_65, &tlv(0x80, &seed[..])));
            let public = spki(&OID_ML_DSA_65, &mldsa_public(&seed));
            pem_pair("PRIVATE KEY", &private, &public)?
        }
        KeyAlg::HssLms => {
            let (state, public) = hss_generate(lms_height)
                .map_err(|reason| format_error(Path::new(&priv_path), &reason))?;
            let mut file = Zeroizing::new(state.to_vec());
            file.extend_from_slice(&public);
            pem_pair(HSS_LABEL, &file, &spki(&OID_HSS_LMS, &public))?
        }
        KeyAlg::Es384 => {
            let k = p384_generate().map_err(|_| encode_err(&priv_path))?;
            (
                k.to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| encode_err(&priv_path))?,
                k.verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| encode_err(&pub_path))?,
            )
        }
        KeyAlg::Es256 => {
            let k = p256_generate().map_err(|_| encode_err(&priv_path))?;
            (
                k.to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| encode_err(&priv_path))?,
                k.verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| encode_err(&pub_path))?,
            )
        }
    };
    write_private(Path::new(&priv_path), private.as_bytes())?;
    std::fs::write(&pub_path, public).map_err(|source| KeyError::Io {
        path: pub_path.clone(),
        source,
    })?;
    Ok((priv_path, pub_path))
}

fn random_seed() -> Result<Zeroizing<[u8; 32]>, getrandom::Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..])?;
    Ok(seed)
}

/// A one-level SHA-256/M32 HSS key with LM-OTS W4: its private state and public key.
fn hss_generate(height: u8) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), String> {
    use hbs_lms::{HssParameter, LmotsAlgorithm, LmsAlgorithm, Seed, Sha256_256};
    let lms = match height {
        5 => LmsAlgorithm::LmsH5,
        10 => LmsAlgorithm::LmsH10,
        15 => LmsAlgorithm::LmsH15,
        20 => LmsAlgorithm::LmsH20,
        25 => LmsAlgorithm::LmsH25,
        _ => {
            return Err(format!(
                "LMS tree height {height} is not one of 5, 10, 15, 20, 25"
            ))
        }
    };
    let mut seed = Seed::<Sha256_256>::default();
    getrandom::fill(seed.as_mut_slice()).map_err(|e| format!("no randomness: {e}"))?;
    let parameters = [HssParameter::<Sha256_256>::new(
        LmotsAlgorithm::LmotsW4,
        lms,
    )];
    let (private, public) = hbs_lms::keygen::<Sha256_256>(&parameters, &seed, None)
        .map_err(|_| "HSS-LMS key generation failed".to_string())?;
    Ok((
        Zeroizing::new(private.as_slice().to_vec()),
        public.as_slice().to_vec(),
    ))
}

/// A DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// AlgorithmIdentifier with no parameters.
fn algorithm_id(oid: &ObjectIdentifier) -> Vec<u8> {
    tlv(0x30, &tlv(0x06, oid.as_bytes()))
}

/// SubjectPublicKeyInfo with `key` as the whole BIT STRING (no unused bits).
pub(super) fn spki(oid: &ObjectIdentifier, key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut body = algorithm_id(oid);
    body.extend_from_slice(&tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// OneAsymmetricKey v1 (PKCS#8) whose privateKey OCTET STRING holds `inner`.
fn pkcs8(oid: &ObjectIdentifier, inner: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&algorithm_id(oid));
    body.extend_from_slice(&tlv(0x04, inner));
    let out = tlv(0x30, &body);
    body.iter_mut().for_each(|b| *b = 0);
    out
}

fn p384_generate() -> Result<p384::ecdsa::SigningKey, p384::elliptic_curve::Error> {
    use p384::elliptic_curve::Generate;
    p384::ecdsa::SigningKey::try_generate().map_err(|_| p384::elliptic_curve::Error)
}

fn p256_generate() -> Result<p256::ecdsa::SigningKey, p256::elliptic_curve::Error> {
    use p256::elliptic_curve::Generate;
    p256::ecdsa::SigningKey::try_generate().map_err(|_| p256::elliptic_curve::Error)
}

//! Key files: PEM (PKCS#8 private keys, SPKI public keys) and raw symmetric keys.

use std::path::Path;

use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use suit_shared::auth::TrustAnchor;
use suit_shared::author::SigningKey;
use suit_shared::crypto::SigAlg;
use zeroize::Zeroizing;

/// Errors reading or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a key of a supported kind.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Curves the tool generates and loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlg {
    /// ECDSA P-384 (the project's profile).
    #[value(name = "ES384")]
    Es384,
    /// ECDSA P-256 (interoperability).
    #[value(name = "ES256")]
    Es256,
}

fn read(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
}

fn format_error(path: &Path, reason: &str) -> KeyError {
    KeyError::Format {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Loads a PKCS#8 PEM private key (P-256 or P-384).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = read(path)?;
    if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(&pem) {
        return Ok(SigningKey::P384(k));
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem) {
        return Ok(SigningKey::P256(k));
    }
    Err(format_error(
        path,
        "not a PKCS#8 PEM private key on P-256 or P-384",
    ))
}

/// Loads an SPKI PEM public key (P-256 or P-384) as a trust anchor.
pub fn load_trust_anchor(path: &Path) -> Result<TrustAnchor, KeyError> {
    let pem = read(path)?;
    let (alg, point) = if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
        (
            SigAlg::EcdsaP384Sha384,
            key.to_sec1_point(false).as_bytes().to_vec(),
        )
    } else if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
        (
            SigAlg::EcdsaP256Sha256,
            key.to_sec1_point(false).as_bytes().to_vec(),
        )
    } else {
        // A private key file also carries the public key; accept it for convenience.
        match load_signing_key(path) {
            Ok(SigningKey::P384(k)) => (
                SigAlg::EcdsaP384Sha384,
                k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            ),
            Ok(SigningKey::P256(k)) => (
                SigAlg::EcdsaP256Sha256,
                k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            ),
            Err(_) => {
                return Err(format_error(
                    path,
                    "not an SPKI PEM public key on P-256 or P-384",
                ))
            }
        }
    };
    TrustAnchor::signature(alg, &point, None)
        .map_err(|_| format_error(path, "not a public key the crypto provider accepts"))
}

/// Loads a raw symmetric key (HMAC or KEK) from a binary file.
pub fn load_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// Generates a key pair and writes `PREFIX.priv.pem` (PKCS#8, mode 0600) and `PREFIX.pub.pem`.
pub fn generate(alg: KeyAlg, prefix: &str) -> Result<(String, String), KeyError> {
    let priv_path = format!("{prefix}.priv.pem");
    let pub_path = format!("{prefix}.pub.pem");
    let encode_err = |p: &str| format_error(Path::new(p), "cannot encode the key");
    let (private, public) = match alg {
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

fn p384_generate() -> Result<p384::ecdsa::SigningKey, p384::elliptic_curve::Error> {
    use p384::elliptic_curve::Generate;
    p384::ecdsa::SigningKey::try_generate().map_err(|_| p384::elliptic_curve::Error)
}

fn p256_generate() -> Result<p256::ecdsa::SigningKey, p256::elliptic_curve::Error> {
    use p256::elliptic_curve::Generate;
    p256::ecdsa::SigningKey::try_generate().map_err(|_| p256::elliptic_curve::Error)
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

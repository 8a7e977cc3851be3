//! Key files: PEM (PKCS#8 private keys, SPKI public keys), the HSS/LMS private state, and
//! raw symmetric keys.
//!
//! Public keys are SPKI PEM in the IETF's form for each algorithm: ECDSA (RFC 5480), Ed25519
//! (RFC 8410: OID 1.3.101.112, the raw 32-byte key), ML-DSA-65 (RFC 9881: OID
//! 2.16.840.1.101.3.4.3.18, no parameters, the raw 1952-byte key) and HSS/LMS (RFC 9708: OID
//! 1.2.840.113549.1.9.16.3.17, the raw HSS public key; the OCTET STRING-wrapped form of RFC
//! 8708 is read too). Private keys are PKCS#8 PEM (Ed25519: RFC 8410 `CurvePrivateKey`;
//! ML-DSA-65: the 32-byte seed form `[0] IMPLICIT OCTET STRING` of RFC 9881), except HSS/LMS.
//!
//! # The HSS/LMS private state file
//!
//! HSS/LMS is stateful: each one-time key may sign once. `suit-tool keygen --alg HSS-LMS`
//! writes `PREFIX.priv.pem` as a PEM block labelled `SUIT HSS LMS PRIVATE STATE` holding 108
//! bytes: the number of one-time keys used so far (u64, big-endian), the parameter set (one
//! byte per HSS level: LMS type << 4 | LM-OTS type, 0 for unused levels, 8 bytes), the
//! 32-byte secret seed (these 48 bytes are the reference implementation's private key as the
//! `hbs-lms` crate reads it), then the 60-byte HSS public key. `suit-tool sign` writes the advanced state to a temporary
//! file, syncs it and renames it over the old one **before** the signature is released; if
//! that fails there is no signature. After the last one-time key the signer wipes the state
//! (zero counter and seed, parameters 0xff) and signs no more. Never copy or restore this
//! file: an old copy signs with one-time keys already used.

use std::path::{Path, PathBuf};

use p256::pkcs8::der::{pem, Decode};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, LineEnding, ObjectIdentifier, PrivateKeyInfoRef,
    SubjectPublicKeyInfoRef,
};
use suit_shared::auth::{alg, TrustAnchor};
use suit_shared::author::SigningKey;
use suit_shared::crypto::SigAlg;
use zeroize::Zeroizing;

mod keygen;

pub use keygen::generate;
use keygen::spki;

/// id-Ed25519 (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-X25519 (RFC 8410).
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
/// id-ml-dsa-65 (FIPS 204, RFC 9881).
const OID_ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
/// id-alg-hss-lms-hashsig (RFC 8708 / RFC 9708).
const OID_HSS_LMS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.3.17");
/// id-ecPublicKey (RFC 5480).
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The PEM label of the HSS/LMS private state.
const HSS_LABEL: &str = "SUIT HSS LMS PRIVATE STATE";
/// Length of the HSS/LMS private state.
const HSS_STATE_LEN: usize = 48;
/// Length of a one-level SHA-256/M32 HSS public key.
const HSS_PUBLIC_LEN: usize = 60;

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

/// Key algorithms the tool generates and loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlg {
    /// ECDSA P-384 (the project's profile).
    #[value(name = "ES384")]
    Es384,
    /// ECDSA P-256 (interoperability).
    #[value(name = "ES256")]
    Es256,
    /// Ed25519 (EdDSA, the MTI profile with X25519).
    #[value(name = "Ed25519")]
    Ed25519,
    /// ML-DSA-65 (post-quantum, RFC 9964).
    #[value(name = "ML-DSA-65")]
    MlDsa65,
    /// HSS/LMS, one level, SHA-256/M32, LM-OTS W4 (stateful; RFC 8554).
    #[value(name = "HSS-LMS")]
    HssLms,
    /// X25519 key agreement (RFC 8410 files), not a signing key: the recipient key of the
    /// EdDSA profile (`encrypt --recipient`, `decrypt --recipient-key`).
    #[value(name = "X25519")]
    X25519,
}

/// The 32-byte X25519 public key of an SPKI PEM (RFC 8410, id-X25519 without parameters);
/// `None` for anything else.
pub fn x25519_public_from_pem(pem_text: &str) -> Option<[u8; 32]> {
    let (label, der) = pem::decode_vec(pem_text.as_bytes()).ok()?;
    let spki = SubjectPublicKeyInfoRef::from_der(&der).ok()?;
    if label != "PUBLIC KEY"
        || spki.algorithm.oid != OID_X25519
        || spki.algorithm.parameters.is_some()
    {
        return None;
    }
    spki.subject_public_key.as_bytes()?.try_into().ok()
}

/// The SPKI PEM (RFC 8410) of an X25519 public key.
pub fn x25519_public_pem(key: &[u8; 32]) -> Option<String> {
    pem::encode_string("PUBLIC KEY", LineEnding::LF, &spki(&OID_X25519, key)).ok()
}

/// The 32-byte X25519 private key of a PKCS#8 PEM (RFC 8410 `CurvePrivateKey`); `None` for
/// anything else.
pub fn x25519_private_from_pem(pem_text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let (label, der) = pem::decode_vec(pem_text.as_bytes()).ok()?;
    let der = Zeroizing::new(der);
    let info = PrivateKeyInfoRef::from_der(&der).ok()?;
    if label != "PRIVATE KEY" || info.algorithm.oid != OID_X25519 {
        return None;
    }
    match info.private_key.as_bytes() {
        [0x04, 0x20, key @ ..] if key.len() == 32 => {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(key);
            Some(out)
        }
        _ => None,
    }
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

/// Loads an SPKI PEM public key (ECDSA P-256/P-384, Ed25519, ML-DSA-65 or HSS/LMS) as a
/// trust anchor for the algorithm its OID names; a private key file gives its public key.
pub fn load_trust_anchor(path: &Path) -> Result<TrustAnchor, KeyError> {
    let pem_text = read(path)?;
    let not_public = || {
        format_error(
            path,
            "not an SPKI PEM public key (ECDSA P-256/P-384, Ed25519, ML-DSA-65, HSS-LMS)",
        )
    };
    let Ok((label, der)) = pem::decode_vec(pem_text.as_bytes()) else {
        return Err(not_public());
    };
    if label != "PUBLIC KEY" {
        // A private key file also carries the public key; accept it for convenience.
        return load_signer(path)
            .map_err(|_| not_public())?
            .trust_anchor()
            .map_err(|e| format_error(path, &e.to_string()));
    }
    let spki = SubjectPublicKeyInfoRef::from_der(&der).map_err(|_| not_public())?;
    let oid = spki.algorithm.oid;
    if oid == OID_EC {
        let anchor = if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_pem(&pem_text) {
            TrustAnchor::from_sec1(key.to_sec1_point(false).as_bytes(), None)
        } else if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem_text) {
            TrustAnchor::from_sec1(key.to_sec1_point(false).as_bytes(), None)
        } else {
            return Err(format_error(path, "an EC public key not on P-256 or P-384"));
        };
        return anchor.map_err(|e| format_error(path, &e.to_string()));
    }
    let alg = match oid {
        OID_ED25519 => SigAlg::Ed25519,
        OID_ML_DSA_65 => SigAlg::MlDsa65,
        OID_HSS_LMS => SigAlg::HssLms,
        _ => return Err(not_public()),
    };
    if spki.algorithm.parameters.is_some() {
        return Err(format_error(
            path,
            "the key's algorithm identifier must have no parameters",
        ));
    }
    let mut key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(not_public)?
        .to_vec();
    if alg == SigAlg::HssLms && key.len() == 62 && key[..2] == [0x04, 60] {
        // RFC 8708 wrapped the HSS public key in an OCTET STRING.
        key.drain(..2);
    }
    TrustAnchor::signature(alg, &key, None).map_err(|_| {
        format_error(
            path,
            &format!("not a valid {} public key (wrong length)", alg.name()),
        )
    })
}

/// A private key of any algorithm `sign` supports.
pub enum Signer {
    /// ECDSA P-256 or P-384.
    Ecdsa(SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ML-DSA-65, kept as its 32-byte seed.
    MlDsa65(Zeroizing<[u8; 32]>),
    /// HSS/LMS: the private state and the file it is kept in.
    HssLms {
        /// The state file, rewritten before every signature is released.
        path: PathBuf,
        /// The current state.
        state: Zeroizing<Vec<u8>>,
    },
}

impl Signer {
    /// The COSE algorithm used when none is asked for.
    pub fn default_alg(&self) -> i64 {
        match self {
            Signer::Ecdsa(k) => k.default_alg(),
            Signer::Ed25519(_) => alg::ED25519,
            Signer::MlDsa65(_) => alg::ML_DSA_65,
            Signer::HssLms { .. } => alg::HSS_LMS,
        }
    }

    /// The signature algorithm of the key.
    pub fn sig_alg(&self) -> SigAlg {
        match self {
            Signer::Ecdsa(SigningKey::P256(_)) => SigAlg::EcdsaP256Sha256,
            Signer::Ecdsa(SigningKey::P384(_)) => SigAlg::EcdsaP384Sha384,
            Signer::Ed25519(_) => SigAlg::Ed25519,
            Signer::MlDsa65(_) => SigAlg::MlDsa65,
            Signer::HssLms { .. } => SigAlg::HssLms,
        }
    }

    /// The public key as a trust anchor.
    pub fn trust_anchor(&self) -> suit_shared::Result<TrustAnchor> {
        let public = match self {
            Signer::Ecdsa(SigningKey::P256(k)) => {
                k.verifying_key().to_sec1_point(false).as_bytes().to_vec()
            }
            Signer::Ecdsa(SigningKey::P384(k)) => {
                k.verifying_key().to_sec1_point(false).as_bytes().to_vec()
            }
            Signer::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
            Signer::MlDsa65(seed) => mldsa_public(seed),
            Signer::HssLms { state, .. } => hss_public(state)?,
        };
        TrustAnchor::signature(self.sig_alg(), &public, None)
    }

    /// Adds a COSE_Sign1 block of `alg_id` made with this key to `envelope`. An HSS/LMS key
    /// writes its advanced state to its file before the signature exists outside this call.
    pub fn sign_envelope(
        &mut self,
        envelope: &[u8],
        alg_id: i64,
        kid: Option<&[u8]>,
    ) -> suit_shared::Result<Vec<u8>> {
        if SigAlg::from_cose(alg_id) != Some(self.sig_alg()) {
            return Err(suit_shared::Error::Unsupported(format!(
                "signing with algorithm {} and a {} key",
                suit_shared::auth::alg_name(alg_id),
                self.sig_alg().name()
            )));
        }
        match self {
            Signer::Ecdsa(k) => suit_shared::author::sign_envelope(envelope, k, alg_id, kid),
            Signer::Ed25519(k) => {
                suit_shared::author::sign_envelope_with(envelope, alg_id, kid, |tbs| {
                    use ed25519_dalek::Signer as _;
                    Ok(k.sign(tbs).to_bytes().to_vec())
                })
            }
            Signer::MlDsa65(seed) => {
                suit_shared::author::sign_envelope_with(envelope, alg_id, kid, |tbs| {
                    mldsa_sign(seed, tbs)
                })
            }
            Signer::HssLms { path, state } => {
                suit_shared::author::sign_envelope_with(envelope, alg_id, kid, |tbs| {
                    hss_sign(path, state, tbs)
                })
            }
        }
    }
}

fn mldsa_public(seed: &[u8; 32]) -> Vec<u8> {
    use fips204::traits::{KeyGen, SerDes};
    let (public, _) = fips204::ml_dsa_65::KG::keygen_from_seed(seed);
    public.into_bytes().to_vec()
}

fn mldsa_sign(seed: &[u8; 32], tbs: &[u8]) -> suit_shared::Result<Vec<u8>> {
    use fips204::traits::{KeyGen, Signer as _};
    let (_, private) = fips204::ml_dsa_65::KG::keygen_from_seed(seed);
    // Hedged signing (FIPS 204 §3.4): fresh randomness, empty context (RFC 9964).
    let mut rnd = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut rnd[..])
        .map_err(|e| suit_shared::Error::Io(format!("no randomness for ML-DSA: {e}")))?;
    private
        .try_sign_with_seed(&rnd, tbs, b"")
        .map(|sig| sig.to_vec())
        .map_err(|e| suit_shared::Error::Io(format!("ML-DSA signing failed: {e}")))
}

/// The HSS public key kept after the private state in the state file.
fn hss_public(state: &[u8]) -> suit_shared::Result<Vec<u8>> {
    state
        .get(HSS_STATE_LEN..)
        .filter(|public| public.len() == HSS_PUBLIC_LEN)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| suit_shared::Error::Io("invalid HSS-LMS private state".into()))
}

fn hss_sign(
    path: &Path,
    state: &mut Zeroizing<Vec<u8>>,
    tbs: &[u8],
) -> suit_shared::Result<Vec<u8>> {
    let (private, public) = state.split_at(HSS_STATE_LEN.min(state.len()));
    let public = public.to_vec();
    // None: the signer never handed over a next state (it refused to sign).
    let mut saved: Option<Result<Zeroizing<Vec<u8>>, String>> = None;
    let signature = hbs_lms::sign::<hbs_lms::Sha256_256>(
        tbs,
        private,
        &mut |next: &[u8]| {
            let mut file = Zeroizing::new(next.to_vec());
            file.extend_from_slice(&public);
            let written = write_hss_state(path, &file).map(|()| file);
            let status = written.as_ref().map(|_| ()).map_err(|_| ());
            saved = Some(written.map_err(|e| e.to_string()));
            status
        },
        None,
    );
    match (signature, saved) {
        (Ok(sig), Some(Ok(next))) => {
            *state = next;
            Ok(sig.as_ref().to_vec())
        }
        (_, Some(Err(e))) => Err(suit_shared::Error::Io(format!(
            "HSS-LMS state not saved, no signature released: {e}"
        ))),
        (_, None) | (Err(_), Some(Ok(_))) => Err(suit_shared::Error::Io(
            "HSS-LMS signing refused: every one-time key of this key is used (its state is \
             wiped after the last one) or the state is invalid"
                .into(),
        )),
    }
}

/// Writes the HSS/LMS state file: a temporary file beside it, synced, renamed over it.
fn write_hss_state(path: &Path, content: &[u8]) -> Result<(), KeyError> {
    let text = pem::encode_string(HSS_LABEL, LineEnding::LF, content)
        .map_err(|_| format_error(path, "cannot encode the HSS-LMS state"))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Loads a private key of any algorithm `sign` supports (PKCS#8 PEM, or the HSS/LMS state).
pub fn load_signer(path: &Path) -> Result<Signer, KeyError> {
    let pem_text = read(path)?;
    let not_private = || {
        format_error(
            path,
            "not a PKCS#8 PEM private key (P-256/P-384, Ed25519, ML-DSA-65) or an HSS-LMS state",
        )
    };
    let Ok((label, der)) = pem::decode_vec(pem_text.as_bytes()) else {
        return Err(not_private());
    };
    let der = Zeroizing::new(der);
    if label == HSS_LABEL {
        if der.len() != HSS_STATE_LEN + HSS_PUBLIC_LEN {
            return Err(format_error(path, "an HSS-LMS state of the wrong length"));
        }
        return Ok(Signer::HssLms {
            path: path.to_path_buf(),
            state: Zeroizing::new(der.to_vec()),
        });
    }
    let info = PrivateKeyInfoRef::from_der(&der).map_err(|_| not_private())?;
    let inner = info.private_key.as_bytes();
    match info.algorithm.oid {
        OID_ED25519 => match inner {
            // CurvePrivateKey ::= OCTET STRING (32 bytes).
            [0x04, 0x20, seed @ ..] if seed.len() == 32 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(seed);
                Ok(Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                    &bytes,
                )))
            }
            _ => Err(format_error(
                path,
                "an Ed25519 private key of the wrong form",
            )),
        },
        OID_ML_DSA_65 => match inner {
            // seed [0] IMPLICIT OCTET STRING (SIZE (32)).
            [0x80, 0x20, seed @ ..] if seed.len() == 32 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(seed);
                Ok(Signer::MlDsa65(bytes))
            }
            _ => Err(format_error(
                path,
                "an ML-DSA-65 private key not in the seed form (RFC 9881)",
            )),
        },
        _ => load_signing_key(path).map(Signer::Ecdsa),
    }
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

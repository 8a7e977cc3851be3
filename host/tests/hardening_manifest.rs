//! Issue 9 items 18, 19 and 20 in the library, on the public vectors: severed members,
//! stripped members, and manifests with dependencies.

use suit_host::keys;
use suit_shared::envelope::Envelope;
use suit_shared::manifest::{Manifest, Severable, SeveredMember};
use suit_shared::{Category, Error};

/// The public SUIT test vectors (`../shared/suit-vectors`, or `SUIT_VECTORS`).
mod vectors {
    use std::path::{Path, PathBuf};

    pub fn path(rel: &str) -> PathBuf {
        std::env::var_os("SUIT_VECTORS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/suit-vectors")
            })
            .join(rel)
    }

    pub fn read(rel: &str) -> Vec<u8> {
        std::fs::read(path(rel)).unwrap()
    }
}

/// Items 18 and 20: stripped members are legitimate and reported as such; a procedure that
/// needs one fails as "absent", not as malformed input.
#[test]
fn stripped_members_are_absent_not_malformed() {
    let bytes = vectors::read("manifest-draft37/example2.severed-signed.suit");
    let env = Envelope::decode(&bytes).unwrap();
    assert_eq!(
        Manifest::check_severed_members(&env).unwrap(),
        [
            ("install", SeveredMember::Stripped),
            ("text", SeveredMember::Stripped)
        ]
    );
    let err = Error::SeveredElementAbsent("install");
    assert_ne!(err.category(), Category::Malformed);
    assert!(err.to_string().contains("absent"), "{err}");
}

/// Item 18: a severed member that does not match its digest is refused.
#[test]
fn replaced_severed_member_is_refused() {
    let bytes = vectors::read("manifest-draft37/example2.severed-signed.suit");
    let env = Envelope::decode(&bytes).unwrap();
    let mut forged = env.clone();
    let encoding = [0x41, 0x80];
    forged.severed.push((
        suit_shared::envelope::key::TEXT,
        suit_shared::envelope::Wrapped {
            content: &encoding[1..],
            encoding: &encoding,
        },
    ));
    assert_eq!(
        Manifest::check_severed_members(&forged).unwrap_err(),
        Error::SeveredDigestMismatch("text")
    );
}

/// Item 19: inspection decodes a manifest with dependencies; processing still refuses it.
#[test]
fn dependencies_decode_for_inspection_only() {
    let bytes = vectors::read("trust-domains/example1_process.suit");
    let env = Envelope::decode(&bytes).unwrap();
    let (manifest, deps) = Manifest::decode_for_inspection(&env).unwrap();
    assert_eq!(manifest.components.len(), 1);
    assert_eq!(deps.components.len(), 1);
    assert_eq!(deps.components[0].0, 1);
    assert!(matches!(deps.resolution, Severable::Present { .. }));
    assert!(matches!(
        Manifest::decode_unauthenticated(&env),
        Err(Error::DependenciesNotSupported(_))
    ));
    let anchor = keys::load_trust_anchor(&vectors::path("keys/draft-es256-p256.pub.pem")).unwrap();
    assert!(matches!(
        Manifest::authenticate(&bytes, &[anchor]),
        Err(Error::DependenciesNotSupported(_))
    ));
}

/// Found by the CBOR-aware fuzzer: a COSE_Sign1 whose attached payload equals the manifest
/// digest (a form some tools produce) reached coset's detached-only Sig_structure builder,
/// which asserts: a panic on unauthenticated input. It must be an ordinary verdict.
#[test]
fn attached_payload_equal_to_the_digest_is_a_verdict_not_a_panic() {
    let bytes = include_bytes!("data/attached-payload.suit");
    let anchor = keys::load_trust_anchor(&vectors::path("keys/draft-es256-p256.pub.pem")).unwrap();
    let verdict = std::panic::catch_unwind(|| Manifest::authenticate(bytes, &[anchor]).map(|_| ()));
    let verdict = verdict.expect("authentication panicked on an attached payload");
    assert!(
        matches!(verdict, Err(Error::NotAuthenticated(_))),
        "the fuzzer's signature is not valid: {verdict:?}"
    );
}

//! Conformance: every envelope of `../shared/suit-vectors/index.json` gets the authentication
//! verdict its independent check records, and the processing verdict where the vector defines
//! one. Also: no input panics, whatever we do with it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use suit_shared::auth::TrustAnchor;
use suit_shared::envelope::Envelope;
use suit_shared::error::Uuid;
use suit_shared::manifest::{Authentic, Manifest};
use suit_shared::processor::{DeviceIdentity, Processor, Section};
use suit_shared::{Category, Error};
use suit_tests::vectors::{self, anchors, expected_verifier};

fn envelopes() -> Vec<Value> {
    let all: Vec<Value> = vectors::index()
        .into_iter()
        .filter(|e| e["kind"] == "envelope")
        .collect();
    assert!(
        all.len() >= 80,
        "expected the full corpus, found {} envelopes",
        all.len()
    );
    all
}

#[test]
fn authentication_verdicts_match_the_independent_check() {
    let anchors = anchors();
    let all: Vec<TrustAnchor> = anchors.values().cloned().collect();
    let mut accepted = 0;
    for e in envelopes() {
        let file = e["file"].as_str().unwrap();
        let bytes = vectors::read(file);
        let expected = expected_verifier(&e);
        let text = e["expected"].as_str().unwrap_or_default();
        if text.starts_with("REJECT at authentication") {
            assert!(expected.is_none(), "{file}: index disagrees with itself");
        }
        if text.starts_with("ACCEPT authentication") {
            assert!(
                expected.is_some(),
                "{file}: index says accept but its check found no verifier"
            );
        }
        let verdict = Envelope::decode(&bytes).and_then(|env| {
            let auth = env.auth.as_ref().ok_or(Error::BareManifest)?;
            auth.authenticate(env.manifest.encoding, &all)
                .map(|a| a.anchor)
        });
        match (&expected, &verdict) {
            (Some(key), Ok(_)) => {
                // The expected key alone must be enough.
                let only = [anchors[key.as_str()].clone()];
                let env = Envelope::decode(&bytes).unwrap();
                env.auth
                    .as_ref()
                    .unwrap()
                    .authenticate(env.manifest.encoding, &only)
                    .unwrap_or_else(|err| {
                        panic!("{file}: does not verify with {key} alone: {err}")
                    });
                accepted += 1;
            }
            (None, Err(err)) => {
                assert!(
                    matches!(
                        err.category(),
                        Category::Authentication | Category::Malformed
                    ),
                    "{file}: rejected for the wrong reason: {err}"
                );
            }
            (Some(key), Err(err)) => panic!("{file}: should verify with {key}, got: {err}"),
            (None, Ok(_)) => panic!("{file}: accepted, but the independent check rejects it"),
        }
    }
    assert!(accepted >= 40, "only {accepted} envelopes authenticated");
}

fn draft_identity() -> DeviceIdentity {
    let parse = |s: &str| {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        Uuid(b)
    };
    DeviceIdentity {
        vendor_id: parse("fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"),
        class_id: parse("1492af14-2569-5e48-bf42-9b2d51f2ab45"),
        device_id: None,
    }
}

fn authentic<'a>(bytes: &'a [u8], key: &str) -> Result<Authentic<'a>, Error> {
    let anchors = anchors();
    Manifest::authenticate(bytes, &[anchors[key].clone()])
}

/// A scratch file of `len` zero bytes: the draft examples' digests are dummies, so any real
/// content fails image-match.
fn zero_image(len: usize) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("suit-conformance-{}-{len}.bin", std::process::id()));
    std::fs::write(&path, vec![0u8; len]).unwrap();
    path
}

fn run_update(
    a: &Authentic<'_>,
    identity: DeviceIdentity,
    images: &[(usize, usize)],
    slot: u64,
) -> Result<(), Error> {
    let images = images
        .iter()
        .map(|(i, len)| (*i, zero_image(*len)))
        .collect();
    let mut device = suit_host::tool::SimulatedDevice::new(identity, slot, images);
    Processor::new(a, &mut device).run(&Section::UPDATE)
}

#[test]
fn draft_examples_reach_the_dummy_digest_and_no_further() {
    // On a device with the examples' identity and images of the stated size, every example runs
    // its conditions up to image-match, which fails on the dummy digest.
    let cases: [(&str, &[(usize, usize)]); 5] = [
        ("manifest-draft37/example0.signed.suit", &[(0, 34768)]),
        ("manifest-draft37/example1.signed.suit", &[(0, 34768)]),
        ("manifest-draft37/example2.signed.suit", &[(0, 34768)]),
        ("manifest-draft37/example3.signed.suit", &[(0, 34768)]),
        (
            "manifest-draft37/example5.signed.suit",
            &[(0, 34768), (1, 76834)],
        ),
    ];
    for (file, images) in cases {
        let bytes = vectors::read(file);
        let a = authentic(&bytes, "draft-es256-p256.pub.pem").unwrap();
        let err = run_update(&a, draft_identity(), images, 0).unwrap_err();
        assert_eq!(err, Error::ImageDigestMismatch { component: 0 }, "{file}");
        // A wrong-sized image is caught by size before digest.
        let err = run_update(&a, draft_identity(), &[(0, 1000), (1, 1000)], 0).unwrap_err();
        assert_eq!(err.category(), Category::Size, "{file}: {err}");
        // Another vendor's device rejects it as not applicable, before touching any image.
        let mut other = draft_identity();
        other.vendor_id.0[0] ^= 1;
        let err = run_update(&a, other, images, 0).unwrap_err();
        assert_eq!(err.category(), Category::Applicability, "{file}: {err}");
        let mut other = draft_identity();
        other.class_id.0[15] ^= 1;
        let err = run_update(&a, other, images, 0).unwrap_err();
        assert!(matches!(err, Error::ClassMismatch { .. }), "{file}: {err}");
    }
}

#[test]
fn example3_picks_the_image_for_the_device_slot() {
    let bytes = vectors::read("manifest-draft37/example3.signed.suit");
    let a = authentic(&bytes, "draft-es256-p256.pub.pem").unwrap();
    // Slot 1 expects 76834 bytes: the right size reaches the digest check.
    let err = run_update(&a, draft_identity(), &[(0, 76834)], 1).unwrap_err();
    assert_eq!(err, Error::ImageDigestMismatch { component: 0 });
    let err = run_update(&a, draft_identity(), &[(0, 34768)], 1).unwrap_err();
    assert_eq!(err.category(), Category::Size);
    // No alternative for slot 2.
    let err = run_update(&a, draft_identity(), &[(0, 34768)], 2).unwrap_err();
    assert_eq!(err.category(), Category::Applicability, "{err}");
    assert!(err.to_string().contains("try-each"), "{err}");
}

#[test]
fn example4_fetches_into_the_cache_then_copies() {
    let bytes = vectors::read("manifest-draft37/example4.signed.suit");
    let a = authentic(&bytes, "draft-es256-p256.pub.pem").unwrap();
    let err = run_update(&a, draft_identity(), &[(1, 34768)], 0).unwrap_err();
    assert_eq!(err.category(), Category::Digest, "{err}");
}

#[test]
fn severed_install_cannot_run_but_invocation_can() {
    let bytes = vectors::read("manifest-draft37/example2.severed-signed.suit");
    let a = authentic(&bytes, "draft-es256-p256.pub.pem").unwrap();
    let err = run_update(&a, draft_identity(), &[(0, 34768)], 0).unwrap_err();
    assert_eq!(err, Error::SeveredElementAbsent("install"));
    let mut device = suit_host::tool::SimulatedDevice::new(
        draft_identity(),
        0,
        [(0, zero_image(34768))].into_iter().collect(),
    );
    let err = Processor::new(&a, &mut device)
        .run(&Section::INVOCATION)
        .unwrap_err();
    assert_eq!(err, Error::ImageDigestMismatch { component: 0 });
}

#[test]
fn pre_draft_29_manifests_are_refused_with_an_explanation() {
    for e in envelopes() {
        let file = e["file"].as_str().unwrap();
        if !file.starts_with("manifest-legacy-install17/") || !file.contains(".signed") {
            continue;
        }
        let uses_17 = e["check"]["manifest_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == 17);
        let bytes = vectors::read(file);
        let result = authentic(&bytes, "draft-es256-p256.pub.pem");
        if uses_17 {
            let err = result.unwrap_err();
            assert_eq!(err, Error::LegacyInstallKey("manifest"), "{file}");
            assert!(err.to_string().contains("-29"), "{err}");
        } else {
            assert!(result.is_ok(), "{file}: {:?}", result.err());
        }
    }
}

#[test]
fn dependency_manifests_are_refused_as_unsupported() {
    for e in envelopes() {
        let file = e["file"].as_str().unwrap();
        if !file.starts_with("trust-domains/") {
            continue;
        }
        let bytes = vectors::read(file);
        let result = authentic(&bytes, "draft-es256-p256.pub.pem");
        if e["check"]["dependencies"].is_array() {
            let err = result.unwrap_err();
            assert!(
                matches!(err, Error::DependenciesNotSupported(_)),
                "{file}: {err}"
            );
            assert_eq!(err.category(), Category::Policy);
            assert!(
                err.to_string().starts_with("dependencies not supported"),
                "{err}"
            );
        } else {
            // The dependency itself declares none: an ordinary manifest (install writes content).
            let a = result.unwrap_or_else(|err| panic!("{file}: {err}"));
            run_update(&a, draft_identity(), &[], 0).unwrap_or_else(|err| panic!("{file}: {err}"));
        }
    }
}

#[test]
fn no_envelope_panics_in_any_procedure() {
    let all: Vec<TrustAnchor> = anchors().into_values().collect();
    for e in envelopes() {
        let file = e["file"].as_str().unwrap();
        let bytes = vectors::read(file);
        if let Ok(env) = Envelope::decode(&bytes) {
            let _ = Manifest::decode_unauthenticated(&env);
        }
        if let Ok(a) = Manifest::authenticate(&bytes, &all) {
            for procedure in [&Section::UPDATE[..], &Section::INVOCATION[..]] {
                let mut device =
                    suit_host::tool::SimulatedDevice::new(draft_identity(), 0, BTreeMap::new());
                let _ = Processor::new(&a, &mut device).run(procedure);
            }
        }
    }
}

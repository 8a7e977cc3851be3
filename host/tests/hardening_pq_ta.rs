//! The hybrid anchor set in the TA core (issue 14), through the simulator backend: "ECDSA
//! P-384 and ML-DSA-65 must both verify" is a property of the built-in set, and the REE cannot
//! relax it.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use sim::{class, expect_rejection, image, manifest, repo, vendor, vendor_key, Device};
use suit_host::keys::{generate, load_signer, load_trust_anchor, KeyAlg};
use suit_host::tee::Tee;
use suit_shared::auth::{alg, AnchorPolicy};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
use suit_shared::command::{Command, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue, SuitDigest};
use suit_shared::manifest::Manifest;
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Category;

/// An unsigned envelope installing `fw` as component "rootfs".
fn unsigned_envelope(seq: u64, fw: &[u8]) -> Vec<u8> {
    let digest = DigestAlg::Sha256.digest(fw);
    let m = rootfs_manifest(seq, fw.len(), &digest);
    let encoded = encode_manifest(&m, DigestAlg::Sha256);
    build_envelope(&encoded, &[], DigestAlg::Sha256)
}

/// An ES384-signed envelope installing `fw` as component "rootfs".
fn es384_envelope(seq: u64, fw: &[u8]) -> Vec<u8> {
    sign_envelope(&unsigned_envelope(seq, fw), &vendor_key(), alg::ES384, None).unwrap()
}

/// The manifest of [`unsigned_envelope`].
fn rootfs_manifest(seq: u64, len: usize, digest: &DigestValue) -> Manifest<'_> {
    let rp = || ReportingPolicy(15);
    let shared = vec![
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, rp()),
        Command::Condition(Condition::ClassId, rp()),
    ];
    let install = vec![
        Command::OverrideParameters(vec![
            Parameter::Uri("http://example.com/fw"),
            Parameter::ImageDigest(SuitDigest {
                alg: DigestAlg::Sha256,
                bytes: digest.as_bytes(),
            }),
            Parameter::ImageSize(len as u64),
        ]),
        Command::Directive(Directive::Fetch, rp()),
        Command::Condition(Condition::ImageMatch, rp()),
    ];
    manifest(seq, vec![ComponentId::new([b"rootfs"])], shared, install)
}

/// `envelope` with an ML-DSA-65 signature by the development hybrid key added.
fn add_mldsa(envelope: &[u8]) -> Vec<u8> {
    let mut signer = load_signer(&repo().join("keys/dev-vendor-mldsa65.priv.pem")).unwrap();
    signer
        .sign_envelope(envelope, alg::ML_DSA_65, None)
        .unwrap()
}

/// A device whose built-in set is the development hybrid pair under `policy`.
fn hybrid_device(policy: AnchorPolicy) -> Device {
    Device::with(|c| {
        c.trust_anchors = vec![
            load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem")).unwrap(),
            load_trust_anchor(&repo().join("keys/dev-vendor-mldsa65.pub.pem")).unwrap(),
        ];
        c.anchor_policy = policy;
    })
}

#[test]
fn hybrid_anchor_set_needs_both_signatures() {
    let fw = image(300, 3);
    let es_only = es384_envelope(2, &fw);
    let hybrid = add_mldsa(&es_only);

    let dev = hybrid_device(AnchorPolicy::All);
    let mut s = dev.session();
    let info = s.get_info().unwrap();
    assert!(info.algorithms.signature.contains(&alg::ML_DSA_65));
    assert!(info.algorithms.signature.contains(&alg::ES384));

    // The classical signature alone: rejected, and nothing changed.
    expect_rejection(
        s.load_manifest(&es_only, 1),
        Category::Authentication,
        "ML-DSA-65 key",
    );
    // Both present but the ML-DSA-65 one broken (last byte of its block).
    let mut broken = hybrid.clone();
    let env = suit_shared::envelope::Envelope::decode(&hybrid).unwrap();
    let block = env.auth.as_ref().unwrap().raw_blocks()[1];
    let end = block.as_ptr() as usize - hybrid.as_ptr() as usize + block.len();
    broken[end - 1] ^= 1;
    expect_rejection(
        s.load_manifest(&broken, 1),
        Category::Authentication,
        "does not verify",
    );
    // Both valid: accepted.
    let plan = s.load_manifest(&hybrid, 1).unwrap();
    assert_eq!(plan.items.len(), 1);
}

#[test]
fn without_the_all_policy_one_signature_of_the_set_suffices() {
    let fw = image(300, 4);
    let es_only = es384_envelope(2, &fw);
    let dev = hybrid_device(AnchorPolicy::AnyOne);
    let mut s = dev.session();
    s.load_manifest(&es_only, 1).unwrap();
}

/// Each signature algorithm of the profiles, as the TA core verifies it: a device whose only
/// anchor is a key of that algorithm installs an envelope signed with it, and refuses the same
/// envelope signed by another key of the same algorithm.
#[test]
fn the_ta_core_installs_under_every_signature_algorithm() {
    let keys = tempfile::tempdir().unwrap();
    for (n, alg) in [
        KeyAlg::Es256,
        KeyAlg::Es384,
        KeyAlg::Ed25519,
        KeyAlg::MlDsa65,
        KeyAlg::HssLms,
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = |who: &str| keys.path().join(format!("{n}-{who}")).display().to_string();
        let (private, public) = generate(alg, &prefix("vendor"), 5).unwrap();
        let (other, _) = generate(alg, &prefix("other"), 5).unwrap();
        let anchor = load_trust_anchor(std::path::Path::new(&public)).unwrap();
        let dev = Device::with(|c| c.trust_anchors = vec![anchor]);
        let mut s = dev.session();
        let fw = image(500, n as u8);
        let unsigned = unsigned_envelope(2, &fw);
        let mut intruder = load_signer(std::path::Path::new(&other)).unwrap();
        let forged = intruder
            .sign_envelope(&unsigned, intruder.default_alg(), None)
            .unwrap();
        expect_rejection(
            s.load_manifest(&forged, 1),
            Category::Authentication,
            "does not verify",
        );
        let mut signer = load_signer(std::path::Path::new(&private)).unwrap();
        let signed = signer
            .sign_envelope(&unsigned, signer.default_alg(), None)
            .unwrap();
        let plan = s.load_manifest(&signed, 1).unwrap();
        let approval = sim::approve(&mut s, plan.items[0].index, &fw, 128);
        s.commit(std::slice::from_ref(&approval.token)).unwrap();
    }
}

//! The hybrid anchor set in the TA core (issue 14), through the simulator backend: "ECDSA
//! P-384 and ML-DSA-65 must both verify" is a property of the built-in set, and the REE cannot
//! relax it.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use sim::{class, expect_rejection, image, manifest, repo, sign, vendor, vendor_key, Device};
use suit_host::keys::{load_signer, load_trust_anchor};
use suit_host::tee::Tee;
use suit_shared::auth::{alg, AnchorPolicy};
use suit_shared::command::{Command, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Category;

/// An ES384-signed envelope installing `fw` as component "rootfs".
fn es384_envelope(seq: u64, fw: &[u8]) -> Vec<u8> {
    let rp = || ReportingPolicy(15);
    let digest = DigestAlg::Sha256.digest(fw);
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
            Parameter::ImageSize(fw.len() as u64),
        ]),
        Command::Directive(Directive::Fetch, rp()),
        Command::Condition(Condition::ImageMatch, rp()),
    ];
    sign(
        &manifest(seq, vec![ComponentId::new([b"rootfs"])], shared, install),
        &vendor_key(),
    )
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

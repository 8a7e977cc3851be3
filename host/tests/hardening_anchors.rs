//! Trust-anchor rotation (issue 14) in the TA core, through the simulator backend: a signed
//! anchor update (UPDATE_ANCHORS, docs/anchors.md) adds, replaces and retires anchors under
//! the set in force, with its own anti-rollback sequence kept in the TA state; every refusal
//! leaves the state object as it was.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use sim::{class, expect_rejection, image, manifest, repo, vendor, Device};
use suit_host::keys::{generate, load_signer, load_trust_anchor, KeyAlg};
use suit_host::tee::Tee;
use suit_shared::anchors::{key_id, AnchorUpdate, Op};
use suit_shared::auth::{alg, AnchorPolicy, TrustAnchor};
use suit_shared::author::{build_envelope, encode_manifest};
use suit_shared::command::{Command, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::crypto::SigAlg;
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Category;

/// The built-in development key.
fn dev_key() -> (PathBuf, PathBuf) {
    (
        repo().join("keys/dev-vendor-es384.priv.pem"),
        repo().join("keys/dev-vendor-es384.pub.pem"),
    )
}

/// A new key pair of `alg` in `dir`.
fn new_key(dir: &Path, name: &str, alg: KeyAlg) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let (private, public) = generate(alg, prefix.to_str().unwrap(), 5).unwrap();
    (PathBuf::from(private), PathBuf::from(public))
}

/// `envelope` signed by each key in `keys`.
fn signed(envelope: Vec<u8>, keys: &[&Path]) -> Vec<u8> {
    keys.iter().fold(envelope, |env, k| {
        let mut signer = load_signer(k).unwrap();
        let alg = signer.default_alg();
        signer.sign_envelope(&env, alg, None).unwrap()
    })
}

fn rp() -> ReportingPolicy {
    ReportingPolicy(15)
}

fn identity_checks<'a>() -> Vec<Command<'a>> {
    vec![
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, rp()),
        Command::Condition(Condition::ClassId, rp()),
    ]
}

/// An unsigned anchor update with sequence `seq` carrying `payload` as `#anchors`, whose
/// manifest binds `bound` (the payload itself unless a test substitutes it).
fn anchor_envelope(seq: u64, payload: &[u8], bound: &[u8]) -> Vec<u8> {
    let digest = DigestAlg::Sha256.digest(bound);
    let install = vec![
        Command::OverrideParameters(vec![
            Parameter::Uri("#anchors"),
            Parameter::ImageDigest(SuitDigest {
                alg: DigestAlg::Sha256,
                bytes: digest.as_bytes(),
            }),
            Parameter::ImageSize(bound.len() as u64),
        ]),
        Command::Directive(Directive::Fetch, rp()),
        Command::Condition(Condition::ImageMatch, rp()),
    ];
    let m = manifest(
        seq,
        vec![ComponentId::new([suit_shared::anchors::COMPONENT])],
        identity_checks(),
        install,
    );
    let encoded = encode_manifest(&m, DigestAlg::Sha256);
    build_envelope(
        &encoded,
        &[("#anchors".to_string(), payload.to_vec())],
        DigestAlg::Sha256,
    )
}

/// The payload of `ops` under `policy`.
fn payload(policy: AnchorPolicy, ops: Vec<Op>) -> Vec<u8> {
    AnchorUpdate { policy, ops }.encode().unwrap()
}

fn anchor(public: &Path) -> TrustAnchor {
    load_trust_anchor(public).unwrap()
}

/// A firmware envelope for component "rootfs", signed by `keys`.
fn firmware(seq: u64, keys: &[&Path]) -> Vec<u8> {
    let fw = image(200, seq as u8);
    let digest = DigestAlg::Sha256.digest(&fw);
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
    let m = manifest(
        seq,
        vec![ComponentId::new([b"rootfs"])],
        identity_checks(),
        install,
    );
    let encoded = encode_manifest(&m, DigestAlg::Sha256);
    signed(build_envelope(&encoded, &[], DigestAlg::Sha256), keys)
}

/// Asserts that `dev`'s state object is `before`, byte for byte.
fn unchanged(dev: &Device, before: &[u8]) {
    assert_eq!(std::fs::read(dev.state_file()).unwrap(), before);
}

/// A device that has applied sequence 1: the built-in key retired, `new` added.
fn rotated(new_public: &Path) -> Device {
    let dev = Device::new();
    let (old_priv, old_pub) = dev_key();
    let p = payload(
        AnchorPolicy::AnyOne,
        vec![
            Op::Retire(key_id(&anchor(&old_pub))),
            Op::Add(anchor(new_public)),
        ],
    );
    let update = anchor_envelope(1, &p, &p);
    dev.session()
        .update_anchors(&signed(update, &[&old_priv]))
        .unwrap();
    dev
}

#[test]
fn a_rotated_key_signs_firmware_and_the_retired_one_no_longer_does() {
    let dir = tempfile::tempdir().unwrap();
    let (new_priv, new_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (old_priv, _) = dev_key();
    let mut dev = rotated(&new_pub);
    for restart in [false, true] {
        if restart {
            dev.restart();
        }
        let mut s = dev.session();
        expect_rejection(
            s.load_manifest(&firmware(3, &[&old_priv]), 1),
            Category::Authentication,
            "",
        );
        s.load_manifest(&firmware(3, &[&new_priv]), 1).unwrap();
        s.abort().unwrap();
    }
}

#[test]
fn an_update_signed_by_a_retired_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, new_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (_, third_pub) = new_key(dir.path(), "k3", KeyAlg::Es384);
    let (old_priv, _) = dev_key();
    let dev = rotated(&new_pub);
    let before = std::fs::read(dev.state_file()).unwrap();
    let p = payload(AnchorPolicy::AnyOne, vec![Op::Add(anchor(&third_pub))]);
    expect_rejection(
        dev.session()
            .update_anchors(&signed(anchor_envelope(2, &p, &p), &[&old_priv])),
        Category::Authentication,
        "",
    );
    unchanged(&dev, &before);
}

#[test]
fn anchor_set_rollback_is_refused_for_lower_and_equal_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (new_priv, new_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (_, third_pub) = new_key(dir.path(), "k3", KeyAlg::Es384);
    let mut dev = rotated(&new_pub);
    dev.restart();
    let before = std::fs::read(dev.state_file()).unwrap();
    let p = payload(AnchorPolicy::AnyOne, vec![Op::Add(anchor(&third_pub))]);
    for seq in [0, 1] {
        expect_rejection(
            dev.session()
                .update_anchors(&signed(anchor_envelope(seq, &p, &p), &[&new_priv])),
            Category::Rollback,
            "below the device's floor 2",
        );
        unchanged(&dev, &before);
    }
    dev.session()
        .update_anchors(&signed(anchor_envelope(2, &p, &p), &[&new_priv]))
        .unwrap();
}

/// Each refused payload, with the category and words of its refusal; the state is untouched.
#[test]
fn bad_anchor_sets_and_payloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (old_priv, old_pub) = dev_key();
    let (_, ed_pub) = new_key(dir.path(), "ed", KeyAlg::Ed25519);
    let (_, k2_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let TrustAnchor::Signature { public_key: ed, .. } = anchor(&ed_pub) else {
        unreachable!()
    };
    let wrong_type = TrustAnchor::Signature {
        alg: SigAlg::EcdsaP384Sha384,
        public_key: ed,
        kid: None,
    };
    let old_id = key_id(&anchor(&old_pub));
    let cases: Vec<(&str, Vec<u8>, Category, &str)> = vec![
        (
            "an Ed25519 key given as ES384",
            payload(AnchorPolicy::AnyOne, vec![Op::Add(wrong_type)]),
            Category::Policy,
            "not a key of that algorithm",
        ),
        (
            "the only anchor retired",
            payload(AnchorPolicy::AnyOne, vec![Op::Retire(old_id.clone())]),
            Category::Policy,
            "no trust anchor",
        ),
        (
            "the only anchor retired under the all policy",
            payload(AnchorPolicy::All, vec![Op::Retire(old_id.clone())]),
            Category::Policy,
            "no trust anchor",
        ),
        (
            "a key added twice",
            payload(
                AnchorPolicy::All,
                vec![Op::Add(anchor(&k2_pub)), Op::Add(anchor(&k2_pub))],
            ),
            Category::Policy,
            "would name two anchors",
        ),
        (
            "a key id the set does not hold",
            payload(AnchorPolicy::AnyOne, vec![Op::Retire(b"nobody".to_vec())]),
            Category::Policy,
            "no anchor has key id",
        ),
        (
            "not CBOR",
            b"\xff\x00garbage".to_vec(),
            Category::Malformed,
            "",
        ),
        (
            "an unknown operation",
            {
                let mut w = suit_shared::cbor::Writer::new();
                w.array(2).u64(0).array(1).array(2).u64(7).bytes(b"x");
                w.into_bytes()
            },
            Category::Malformed,
            "operation",
        ),
    ];
    let dev = Device::new();
    dev.session().get_info().unwrap();
    let before = std::fs::read(dev.state_file()).unwrap();
    for (what, p, category, words) in cases {
        let r = dev
            .session()
            .update_anchors(&signed(anchor_envelope(1, &p, &p), &[&old_priv]));
        let (c, m) = sim::rejected(r.unwrap_err());
        assert_eq!((c, m.contains(words)), (category, true), "{what}: {m}");
    }
    unchanged(&dev, &before);
    // The built-in key still signs firmware.
    dev.session()
        .load_manifest(&firmware(1, &[&old_priv]), 1)
        .unwrap();
}

#[test]
fn a_payload_the_manifest_does_not_bind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, k2_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (old_priv, _) = dev_key();
    let good = payload(AnchorPolicy::AnyOne, vec![Op::Add(anchor(&k2_pub))]);
    let mut other = good.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    let dev = Device::new();
    expect_rejection(
        dev.session()
            .update_anchors(&signed(anchor_envelope(1, &other, &good), &[&old_priv])),
        Category::Digest,
        "digest",
    );
}

#[test]
fn load_manifest_refuses_an_anchor_update() {
    let dir = tempfile::tempdir().unwrap();
    let (_, k2_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (old_priv, _) = dev_key();
    let p = payload(AnchorPolicy::AnyOne, vec![Op::Add(anchor(&k2_pub))]);
    let dev = Device::new();
    expect_rejection(
        dev.session()
            .load_manifest(&signed(anchor_envelope(1, &p, &p), &[&old_priv]), 1),
        Category::Policy,
        "UPDATE_ANCHORS",
    );
}

/// The hybrid policy comes with the update: afterwards both signatures are needed.
#[test]
fn an_update_sets_the_all_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (k2_priv, k2_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (old_priv, _) = dev_key();
    let p = payload(AnchorPolicy::All, vec![Op::Add(anchor(&k2_pub))]);
    let dev = Device::new();
    dev.session()
        .update_anchors(&signed(anchor_envelope(1, &p, &p), &[&old_priv]))
        .unwrap();
    let mut s = dev.session();
    expect_rejection(
        s.load_manifest(&firmware(2, &[&old_priv]), 1),
        Category::Authentication,
        "",
    );
    s.load_manifest(&firmware(2, &[&old_priv, &k2_priv]), 1)
        .unwrap();
    assert!(s
        .get_info()
        .unwrap()
        .algorithms
        .signature
        .contains(&alg::ES384));
}

/// `suit-tool anchors` + `sign` make an update the TA applies.
#[test]
fn suit_tool_anchors_makes_an_update_the_ta_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (k2_priv, k2_pub) = new_key(dir.path(), "k2", KeyAlg::Es384);
    let (old_priv, old_pub) = dev_key();
    let unsigned = dir.path().join("anchors.suit");
    let out = dir.path().join("anchors.signed.suit");
    let tool = env!("CARGO_BIN_EXE_suit-tool");
    let status = Process::new(tool)
        .arg("anchors")
        .arg("--add")
        .arg(&k2_pub)
        .arg("--retire")
        .arg(&old_pub)
        .args([
            "--sequence",
            "5",
            "--vendor",
            "example.com",
            "--class",
            "qemu-armv8a",
        ])
        .arg("--out")
        .arg(&unsigned)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Process::new(tool)
        .arg("sign")
        .arg("--key")
        .arg(&old_priv)
        .arg(&unsigned)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let dev = Device::new();
    dev.session()
        .update_anchors(&std::fs::read(&out).unwrap())
        .unwrap();
    let mut s = dev.session();
    s.load_manifest(&firmware(6, &[&k2_priv]), 1).unwrap();
    s.abort().unwrap();
    expect_rejection(
        s.load_manifest(&firmware(6, &[&old_priv]), 1),
        Category::Authentication,
        "",
    );
    // Without any operation the tool refuses (usage error, exit 2).
    let status = Process::new(tool)
        .args(["anchors", "--sequence", "6", "--out"])
        .arg(dir.path().join("none.suit"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

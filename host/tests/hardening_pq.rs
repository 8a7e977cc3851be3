//! Crypto agility (issue 14) through `suit-tool`: keys of every algorithm in the IETF's forms,
//! signatures added block by block, the `--trust-anchor ... --require-all` contract (hybrid
//! ECDSA P-384 + ML-DSA-65), wrong key types, unknown algorithms, the HSS/LMS state.

use std::path::{Path, PathBuf};
use std::process::Output;

use p256::pkcs8::der::pem;
use suit_shared::auth::{alg, TrustAnchor};
use suit_shared::author::sign_envelope_with;
use suit_shared::crypto::SigAlg;
use suit_shared::envelope::Envelope;
use suit_shared::manifest::Manifest;
use suit_shared::Error;

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, Scratch};

const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn tool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    cli::tool(args)
}

fn vendor_id() -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, VENDOR.as_bytes()).to_string()
}

fn class_id() -> String {
    let vendor = uuid::Uuid::parse_str(&vendor_id()).unwrap();
    uuid::Uuid::new_v5(&vendor, CLASS.as_bytes()).to_string()
}

fn repo_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../keys")
        .join(name)
}

/// `keygen --alg ALG` into the scratch dir (HSS-LMS with a 32-signature tree): the key files.
fn keygen(dir: &Scratch, alg: &str, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.path(name);
    ok(tool(&[
        &"keygen",
        &"--alg",
        &alg,
        &"--lms-height",
        &"5",
        &"--out",
        &prefix,
    ]));
    (
        dir.path(&format!("{name}.priv.pem")),
        dir.path(&format!("{name}.pub.pem")),
    )
}

/// An unsigned envelope of one component for the development device.
fn unsigned(dir: &Scratch) -> PathBuf {
    let image: Vec<u8> = (0..50_000u32).map(|i| (i * 11 % 253) as u8).collect();
    dir.write("firmware.bin", &image);
    let spec = format!(
        "sequence-number = 4\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\n\
         id = [\"fw\"]\nimage = \"firmware.bin\"\nuri = \"https://updates.example.com/fw.bin\"\n"
    );
    let spec = dir.write("spec.toml", spec.as_bytes());
    let out = dir.path("unsigned.suit");
    ok(tool(&[&"create", &"--spec", &spec, &"--out", &out]));
    out
}

/// `sign --key KEY IN --out OUT`.
fn sign(key: &Path, input: &Path, out: &Path) {
    ok(tool(&[&"sign", &"--key", &key, &input, &"--out", &out]));
}

/// `verify` with every anchor, `--require-all` if asked.
fn verify(anchors: &[&Path], require_all: bool, envelope: &Path) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"verify"];
    for a in anchors {
        args.push(&"--trust-anchor");
        args.push(a);
    }
    if require_all {
        args.push(&"--require-all");
    }
    args.push(&envelope);
    tool(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn der_of(path: &Path) -> (String, Vec<u8>) {
    let text = std::fs::read_to_string(path).unwrap();
    let (label, der) = pem::decode_vec(text.as_bytes()).unwrap();
    (label.to_string(), der)
}

/// The envelope with the last byte of COSE block `block` (its signature's last byte) flipped.
fn flip_signature(envelope: &Path, block: usize, out: &Path) {
    let mut bytes = std::fs::read(envelope).unwrap();
    let (start, len) = {
        let env = Envelope::decode(&bytes).unwrap();
        let raw = env.auth.as_ref().unwrap().raw_blocks()[block];
        (raw.as_ptr() as usize - bytes.as_ptr() as usize, raw.len())
    };
    bytes[start + len - 1] ^= 1;
    std::fs::write(out, bytes).unwrap();
}

/// The envelope with every protected header `{1: from}` of its blocks rewritten to `{1: to}`
/// (both one-byte-argument negative integers: the encoding keeps its length).
fn rename_alg(envelope: &Path, from: i64, to: i64, out: &Path) {
    let arg = |a: i64| u8::try_from(-1 - a).unwrap();
    let (old, new) = ([0xa1, 0x01, 0x38, arg(from)], [0xa1, 0x01, 0x38, arg(to)]);
    let mut bytes = std::fs::read(envelope).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == old)
        .expect("protected header");
    bytes[at..at + 4].copy_from_slice(&new);
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn keygen_writes_the_ietf_public_and_private_key_forms() {
    let dir = Scratch::new("pq-forms");
    let (private, public) = keygen(&dir, "ML-DSA-65", "mldsa");
    let (label, spki) = der_of(&public);
    assert_eq!(label, "PUBLIC KEY");
    // SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.3.18 } (no parameters), BIT STRING { 0 unused
    // bits, the raw 1952-byte key } }.
    let head = [
        0x30, 0x82, 0x07, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x03, 0x12, 0x03, 0x82, 0x07, 0xa1, 0x00,
    ];
    assert_eq!(spki[..head.len()], head);
    assert_eq!(spki.len(), head.len() + 1952);
    let (label, pkcs8) = der_of(&private);
    assert_eq!(label, "PRIVATE KEY");
    // OneAsymmetricKey v0 with the 32-byte seed form `[0] IMPLICIT OCTET STRING`.
    let head = [
        0x30, 0x34, 0x02, 0x01, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
        0x04, 0x03, 0x12, 0x04, 0x22, 0x80, 0x20,
    ];
    assert_eq!(pkcs8[..head.len()], head);
    assert_eq!(pkcs8.len(), head.len() + 32);

    let (private, public) = keygen(&dir, "Ed25519", "ed");
    let (_, spki) = der_of(&public);
    let head = hex("302a300506032b6570032100");
    assert_eq!(spki[..head.len()], head[..]);
    assert_eq!(spki.len(), 44);
    let (_, pkcs8) = der_of(&private);
    let head = hex("302e020100300506032b657004220420");
    assert_eq!(pkcs8[..head.len()], head[..]);
    assert_eq!(pkcs8.len(), 48);

    // HSS/LMS: id-alg-hss-lms-hashsig, the 60-byte HSS public key of one level (L = 1).
    let (_, public) = keygen(&dir, "HSS-LMS", "hss");
    let (_, spki) = der_of(&public);
    let head = hex("304e300d060b2a864886f70d0109100311033d00");
    assert_eq!(spki[..head.len()], head[..]);
    assert_eq!(spki[head.len()..head.len() + 4], [0, 0, 0, 1]);
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_algorithm_signs_verifies_and_refuses_a_flipped_signature() {
    let dir = Scratch::new("pq-algs");
    let env = unsigned(&dir);
    for alg in ["ES384", "ES256", "Ed25519", "ML-DSA-65", "HSS-LMS"] {
        let (private, public) = keygen(&dir, alg, alg);
        let signed = dir.path(&format!("{alg}.suit"));
        sign(&private, &env, &signed);
        let out = ok(verify(&[&public], false, &signed));
        assert!(out.contains("authentic"), "{alg}: {out}");
        let bad = dir.path(&format!("{alg}-bad.suit"));
        flip_signature(&signed, 0, &bad);
        let out = verify(&[&public], false, &bad);
        assert_eq!(code(&out), 1, "{alg}: a flipped signature verified");
        assert!(
            stderr(&out).contains("does not verify"),
            "{alg}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn sign_adds_a_block_and_keeps_the_others() {
    let dir = Scratch::new("pq-add");
    let env = unsigned(&dir);
    let es = dir.path("es.suit");
    let both = dir.path("both.suit");
    sign(&repo_key("dev-vendor-es384.priv.pem"), &env, &es);
    sign(&repo_key("dev-vendor-mldsa65.priv.pem"), &es, &both);
    let bytes = std::fs::read(&both).unwrap();
    let decoded = Envelope::decode(&bytes).unwrap();
    let auth = decoded.auth.as_ref().unwrap();
    assert_eq!(auth.block_count(), 2);
    let algs: Vec<_> = auth
        .summaries()
        .unwrap()
        .iter()
        .map(|s| s.algs[0])
        .collect();
    assert_eq!(algs, [Some(alg::ES384), Some(alg::ML_DSA_65)]);
}

/// The hybrid policy: ECDSA P-384 and ML-DSA-65 over the same digest.
#[test]
fn require_all_needs_a_valid_signature_from_every_anchor() {
    let dir = Scratch::new("pq-hybrid");
    let env = unsigned(&dir);
    let (es_key, es_pub) = (
        repo_key("dev-vendor-es384.priv.pem"),
        repo_key("dev-vendor-es384.pub.pem"),
    );
    let (ml_key, ml_pub) = (
        repo_key("dev-vendor-mldsa65.priv.pem"),
        repo_key("dev-vendor-mldsa65.pub.pem"),
    );
    let es_only = dir.path("es.suit");
    let hybrid = dir.path("hybrid.suit");
    sign(&es_key, &env, &es_only);
    sign(&ml_key, &es_only, &hybrid);
    let anchors = [es_pub.as_path(), ml_pub.as_path()];

    ok(verify(&anchors, true, &hybrid));
    let out = ok(tool(&[
        &"process",
        &hybrid,
        &"--trust-anchor",
        &es_pub,
        &"--trust-anchor",
        &ml_pub,
        &"--require-all",
        &"--vendor-id",
        &vendor_id(),
        &"--class-id",
        &class_id(),
        &"--image",
        &format!("0={}", dir.path("firmware.bin").display()),
        &"--json",
    ]));
    assert!(out.contains("\"accepted\""), "{out}");

    // Only the classical signature: enough for "any one", not for "all".
    ok(verify(&anchors, false, &es_only));
    let out = verify(&anchors, true, &es_only);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("ML-DSA-65 key"), "{}", stderr(&out));
    let out = tool(&[
        &"process",
        &es_only,
        &"--trust-anchor",
        &es_pub,
        &"--trust-anchor",
        &ml_pub,
        &"--require-all",
        &"--json",
    ]);
    assert_eq!(code(&out), 1);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"authentication\""), "{json}");

    // Both blocks present, one of them invalid: rejected whichever it is.
    for (block, which) in [(1, "ML-DSA-65"), (0, "ECDSA P-384")] {
        let bad = dir.path(&format!("bad-{block}.suit"));
        flip_signature(&hybrid, block, &bad);
        let out = verify(&anchors, true, &bad);
        assert_eq!(
            code(&out),
            1,
            "a bad {which} signature passed --require-all"
        );
        assert!(stderr(&out).contains(which), "{}", stderr(&out));
        // Under "any one" the other, valid, signature still authenticates.
        ok(verify(&anchors, false, &bad));
    }
}

#[test]
fn a_key_is_never_used_with_another_algorithm() {
    let dir = Scratch::new("pq-wrong-type");
    let env = unsigned(&dir);
    let ml_key = repo_key("dev-vendor-mldsa65.priv.pem");
    let out_path = dir.path("x.suit");
    // Signing: an ML-DSA key asked for ES384.
    let out = tool(&[
        &"sign", &"--key", &ml_key, &"--alg", &"ES384", &env, &"--out", &out_path,
    ]);
    assert_ne!(code(&out), 0);
    assert!(!out_path.exists());

    // Anchors: a key of the wrong size for its algorithm is refused when it is made.
    assert!(TrustAnchor::signature(SigAlg::MlDsa65, &[1; 32], None).is_err());
    assert!(TrustAnchor::signature(SigAlg::Ed25519, &[1; 1952], None).is_err());
    // An SPKI whose OID says ML-DSA-65 around a 32-byte key.
    let mut spki = hex("3033300b0609608648016503040312032100");
    spki.extend_from_slice(&[7; 32]);
    let bogus = pem::encode_string("PUBLIC KEY", pem::LineEnding::LF, &spki).unwrap();
    let bogus = dir.write("bogus.pub.pem", bogus.as_bytes());
    let out = verify(&[&bogus], false, &env);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("ML-DSA-65"), "{}", stderr(&out));

    // Verification: a block that names ML-DSA-65 but carries a valid Ed25519 signature by the
    // anchor's key verifies with neither the Ed25519 nor an ML-DSA anchor.
    let ed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let bytes = std::fs::read(&env).unwrap();
    let mislabelled = sign_envelope_with(&bytes, alg::ML_DSA_65, None, |tbs| {
        use ed25519_dalek::Signer;
        Ok(ed.sign(tbs).to_bytes().to_vec())
    })
    .unwrap();
    let ed_anchor =
        TrustAnchor::signature(SigAlg::Ed25519, &ed.verifying_key().to_bytes(), None).unwrap();
    let err = Manifest::authenticate(&mislabelled, &[ed_anchor]).unwrap_err();
    assert!(
        matches!(&err, Error::NotAuthenticated(m) if m.contains("no matching trust anchor")),
        "{err}"
    );
    let ml_anchor =
        suit_host::keys::load_trust_anchor(&repo_key("dev-vendor-mldsa65.pub.pem")).unwrap();
    let err = Manifest::authenticate(&mislabelled, &[ml_anchor]).unwrap_err();
    assert!(
        matches!(&err, Error::NotAuthenticated(m) if m.contains("does not verify")),
        "{err}"
    );
}

#[test]
fn a_block_naming_an_algorithm_we_do_not_verify_authenticates_nothing() {
    let dir = Scratch::new("pq-unknown");
    let env = unsigned(&dir);
    let es_pub = repo_key("dev-vendor-es384.pub.pem");
    let ml_pub = repo_key("dev-vendor-mldsa65.pub.pem");
    let es = dir.path("es.suit");
    let hybrid = dir.path("hybrid.suit");
    sign(&repo_key("dev-vendor-es384.priv.pem"), &env, &es);
    sign(&repo_key("dev-vendor-mldsa65.priv.pem"), &es, &hybrid);

    // ES384 renamed ES512 (-36): no anchor of ours verifies ES512.
    let renamed = dir.path("es512.suit");
    rename_alg(&es, alg::ES384, -36, &renamed);
    let out = verify(&[&es_pub], false, &renamed);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("(-36)") && stderr(&out).contains("no matching trust anchor"),
        "{}",
        stderr(&out)
    );

    // In a hybrid envelope, ML-DSA-65 renamed ML-DSA-44 (-48), which we do not implement:
    // the ECDSA block alone still satisfies "any one", never "all".
    let renamed = dir.path("mldsa44.suit");
    rename_alg(&hybrid, alg::ML_DSA_65, -48, &renamed);
    ok(verify(&[&es_pub, &ml_pub], false, &renamed));
    let out = verify(&[&es_pub, &ml_pub], true, &renamed);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("ML-DSA-65 key"), "{}", stderr(&out));
}

/// The used-key counter at the start of the HSS/LMS state file, `None` once it is wiped.
fn hss_counter(state: &Path) -> Option<u64> {
    let (label, bytes) = der_of(state);
    assert_eq!(label, "SUIT HSS LMS PRIVATE STATE");
    assert_eq!(bytes.len(), 108);
    let seed_wiped = bytes[16..48].iter().all(|&b| b == 0);
    (!seed_wiped).then(|| u64::from_be_bytes(bytes[..8].try_into().unwrap()))
}

/// The LMS leaf (q) of the signature in the envelope's only block (L = 1: Nspk = 0, then q).
fn hss_leaf(envelope: &Path) -> u32 {
    let bytes = std::fs::read(envelope).unwrap();
    let env = Envelope::decode(&bytes).unwrap();
    let raw = env.auth.as_ref().unwrap().raw_blocks()[0];
    use coset::TaggedCborSerializable;
    let block = coset::CoseSign1::from_tagged_slice(raw).unwrap();
    assert_eq!(block.signature[..4], [0, 0, 0, 0]);
    u32::from_be_bytes(block.signature[4..8].try_into().unwrap())
}

#[test]
fn hss_lms_never_signs_twice_with_one_time_key() {
    let dir = Scratch::new("pq-hss");
    let env = unsigned(&dir);
    let (state, public) = keygen(&dir, "HSS-LMS", "hss");
    assert_eq!(hss_counter(&state), Some(0));
    let mut leaves = Vec::new();
    for n in 0..32u64 {
        let out = dir.path(&format!("s{n}.suit"));
        sign(&state, &env, &out);
        // The state on disk has moved on before the signature was written; after the last
        // one-time key it is wiped.
        let expected = (n < 31).then_some(n + 1);
        assert_eq!(hss_counter(&state), expected);
        leaves.push(hss_leaf(&out));
        if n < 2 {
            ok(verify(&[&public], false, &out));
        }
    }
    let mut distinct = leaves.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..32).collect::<Vec<u32>>(),
        "a leaf was used twice"
    );
    // 2^5 one-time keys: the 33rd signature is refused and nothing is written.
    let out_path = dir.path("s32.suit");
    let out = tool(&[&"sign", &"--key", &state, &env, &"--out", &out_path]);
    assert_ne!(code(&out), 0);
    assert!(!out_path.exists());
    assert!(
        stderr(&out).contains("every one-time key of this key is used"),
        "{}",
        stderr(&out)
    );
}

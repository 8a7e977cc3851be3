//! `make bench` for crypto agility (issue 14): the cost of the post-quantum and EdDSA
//! verifiers the TA links (the portable RustCrypto-provider code, as the TA runs it), and what
//! each signature profile adds to an envelope. Baseline in the same run: a portable ES384
//! verify of the same Sig_structure (`verify_<alg>_ratio_es384` = ours ÷ ES384).
//!
//! Figures (`build/bench/summary.json`):
//! * `verify_mldsa65_us`, `verify_hsslms_us`, `verify_ed25519_us`, `verify_es384_us`: median
//!   time of one verification of the COSE_Sign1 block of a real envelope (HSS-LMS: one level,
//!   H10, LM-OTS W4, as `suit-tool keygen` makes it);
//! * `envelope_bytes_<profile>`: the size of one and the same envelope (one component, its
//!   digest and URI) signed under each profile, and the hybrid ES384 + ML-DSA-65 one.

#[allow(dead_code)] // the tool benches' ids and memory helpers
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use coset::{CoseSign1, TaggedCborSerializable};
use suit_shared::auth::TrustAnchor;
use suit_shared::crypto::{CryptoProvider, RUST_CRYPTO};
use suit_shared::envelope::Envelope;
use support::{make_image, run, time_runs, tool, Summary, MIB};

/// A fresh `alg` key pair in `dir`: (private, public).
fn keygen(dir: &Path, alg: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(format!("pq-{alg}"));
    run(Command::new(tool())
        .args(["keygen", "--alg", alg, "--out"])
        .arg(&prefix));
    (
        dir.join(format!("pq-{alg}.priv.pem")),
        dir.join(format!("pq-{alg}.pub.pem")),
    )
}

/// `suit-tool sign --key KEY IN --out OUT`.
fn sign(key: &Path, input: &Path, out: &Path) {
    run(Command::new(tool())
        .args(["sign", "--key"])
        .arg(key)
        .arg(input)
        .arg("--out")
        .arg(out));
}

/// The unsigned envelope every profile signs.
fn unsigned(dir: &Path) -> PathBuf {
    let image = dir.join("fw.bin");
    make_image(&image, MIB);
    let spec = dir.join("pq.toml");
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 1\nvendor = \"example.com\"\nclass = \"bench\"\n[[component]]\nid = [\"fw\"]\nimage = {:?}\nuri = \"http://h/fw\"\n",
            image.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.join("unsigned.suit");
    run(Command::new(tool())
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out));
    out
}

/// The Sig_structure and signature of block `index` of an envelope.
fn block(bytes: &[u8], index: usize) -> (Vec<u8>, Vec<u8>) {
    let env = Envelope::decode(bytes).unwrap();
    let auth = env.auth.as_ref().unwrap();
    let mut s = CoseSign1::from_tagged_slice(auth.raw_blocks()[index]).unwrap();
    s.payload = None;
    (
        s.tbs_detached_data(auth.digest_encoding(), b""),
        s.signature,
    )
}

/// Median microseconds of one portable verification of block 0 of `envelope` by `anchor`.
fn verify_us(envelope: &Path, anchor: &Path) -> f64 {
    let bytes = std::fs::read(envelope).unwrap();
    let (tbs, sig) = block(&bytes, 0);
    let TrustAnchor::Signature {
        alg, public_key, ..
    } = suit_host::keys::load_trust_anchor(anchor).unwrap()
    else {
        panic!("a signature anchor")
    };
    assert!(RUST_CRYPTO.verify(alg, &public_key, &tbs, &sig));
    let n = 20;
    let t = time_runs(15, || {
        for _ in 0..n {
            assert!(RUST_CRYPTO.verify(alg, &public_key, &tbs, &sig));
        }
    });
    t.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let dir = std::env::temp_dir().join(format!("suit-bench-pq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut summary = Summary::new("pq");
    let env = unsigned(&dir);
    let mut es384 = None;
    for (alg, name) in [
        ("ES384", "es384"),
        ("ES256", "es256"),
        ("Ed25519", "ed25519"),
        ("ML-DSA-65", "mldsa65"),
        ("HSS-LMS", "hsslms"),
    ] {
        let (private, public) = keygen(&dir, alg);
        let signed = dir.join(format!("{name}.suit"));
        sign(&private, &env, &signed);
        let size = std::fs::metadata(&signed).unwrap().len();
        summary.record_count(&format!("envelope_bytes_{name}"), size);
        let us = verify_us(&signed, &public);
        summary.record(&format!("verify_{name}_us"), us);
        match es384 {
            None => es384 = Some((private.clone(), us)),
            Some((_, base)) => summary.record(&format!("verify_{name}_ratio_es384"), us / base),
        }
        if name == "mldsa65" {
            let (es_key, _) = es384.as_ref().unwrap();
            let classical = dir.join("hybrid-es.suit");
            let hybrid = dir.join("hybrid.suit");
            sign(es_key, &env, &classical);
            sign(&private, &classical, &hybrid);
            let size = std::fs::metadata(&hybrid).unwrap().len();
            summary.record_count("envelope_bytes_hybrid_es384_mldsa65", size);
        }
    }
    summary.record_count(
        "envelope_bytes_unsigned",
        std::fs::metadata(&env).unwrap().len(),
    );
    std::fs::remove_dir_all(&dir).ok();
    summary.write();
}

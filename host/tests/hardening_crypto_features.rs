//! The SUIT core names crypto operations, not RustCrypto types (issue 12): without its
//! `rustcrypto` feature (the TA built with `TA_CRYPTO=gp`) suit-shared depends on no
//! RustCrypto curve, AES, MAC or KDF crate; with it (the default: host, tool, fuzzers), the
//! portable provider brings them in. Checked on cargo's dependency graph.

use std::process::Command;

/// Crates of the portable provider that a GP build must not link.
const BACKEND_CRATES: [&str; 9] = [
    "sha2", "p256", "p384", "aes", "ctr", "ghash", "aes-kw", "hmac", "hkdf",
];

/// The names of suit-shared's normal dependencies with `args`.
fn dependencies(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "-p",
            "suit-shared",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--offline", "--locked"])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn without_rustcrypto_no_backend_crate_is_a_dependency() {
    let gp = dependencies(&["--no-default-features"]);
    assert!(
        gp.iter().any(|d| d == "minicbor"),
        "the graph was read: {gp:?}"
    );
    for c in BACKEND_CRATES {
        assert!(!gp.iter().any(|d| d == c), "{c} is a dependency: {gp:?}");
    }
    let portable = dependencies(&["--no-default-features", "--features", "rustcrypto"]);
    for c in ["p256", "p384", "aes", "ctr", "ghash", "aes-kw"] {
        assert!(portable.iter().any(|d| d == c), "{c} missing: {portable:?}");
    }
}

/// Issue 12, TA size: the core decodes and encodes COSE on its own CBOR reader and writer, so
/// no build of suit-shared (the TA's, the tool's) links coset, ciborium or serde's core.
#[test]
fn cose_is_decoded_without_coset_ciborium_or_serde() {
    for args in [
        &["--no-default-features"][..],
        &["--features", "author,std"][..],
    ] {
        let deps = dependencies(args);
        assert!(
            deps.iter().any(|d| d == "minicbor"),
            "the graph was read: {deps:?}"
        );
        for c in ["coset", "ciborium", "ciborium-ll", "serde_core"] {
            assert!(
                !deps.iter().any(|d| d == c),
                "{c} is a dependency ({args:?}): {deps:?}"
            );
        }
    }
}

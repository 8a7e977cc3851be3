//! Access to the public SUIT/COSE test vectors in `../shared/suit-vectors` (override the
//! location with `SUIT_VECTORS=`). Their absence is an error, never a silent skip.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use suit_host::keys;
use suit_shared::auth::TrustAnchor;

/// The vectors directory.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("SUIT_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/suit-vectors")
        });
    assert!(
        dir.join("index.json").is_file(),
        "SUIT test vectors not found at {} (set SUIT_VECTORS=/path/to/suit-vectors)",
        dir.display()
    );
    dir
}

/// The entries of `index.json`.
pub fn index() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("index.json")).expect("read index.json");
    let v: Value = serde_json::from_str(&text).expect("index.json is JSON");
    v.as_array().expect("index.json is an array").clone()
}

/// Bytes of a file under the vectors directory.
pub fn read(rel: &str) -> Vec<u8> {
    let path = dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Path of a file under the vectors directory.
pub fn path(rel: &str) -> PathBuf {
    dir().join(rel)
}

/// Every key in the corpus that can authenticate an envelope, by file name.
pub fn anchors() -> BTreeMap<&'static str, TrustAnchor> {
    let mut m = BTreeMap::new();
    for name in [
        "draft-es256-p256.pub.pem",
        "enc-dependency-es256-p256.pub.pem",
        "libcsuit-trust_anchor_secp256r1_pub.pem",
        "nordic-suit-generator-test.pub.pem",
    ] {
        let path = path(&format!("keys/{name}"));
        m.insert(
            name,
            keys::load_trust_anchor(&path).expect("trust anchor loads"),
        );
    }
    let hmac = keys::load_secret(&path("keys/hmac256-key-32xa.bin")).expect("hmac key");
    m.insert(
        "hmac256-key-32xa.bin",
        TrustAnchor::Hmac256 {
            key: hmac,
            kid: None,
        },
    );
    m
}

/// What the independent check of an index entry says: the key (file name under `keys/`) that
/// verifies one of its blocks, if its digest matches.
pub fn expected_verifier(e: &Value) -> Option<String> {
    let check = &e["check"];
    if check["digest_over_bstr_wrapped_manifest"] != true {
        return None;
    }
    check["auth_blocks"]
        .as_array()?
        .iter()
        .filter_map(|b| b["verified_with"].as_str())
        .find(|k| *k != "NOT VERIFIED")
        .map(|k| k.trim_start_matches("keys/").to_string())
}

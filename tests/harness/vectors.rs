//! Access to the public SUIT/COSE test vectors in `../shared/suit-vectors` (override the
//! location with `SUIT_VECTORS=`). Their absence is an error, never a silent skip.

use std::path::PathBuf;

use serde_json::Value;

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

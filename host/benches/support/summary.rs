//! The figures' files of `make bench`: each bench, and each QEMU scenario that measures, writes
//! `<name>.json` into one directory, and `summary.json` there merges them all. Shared by the
//! benches (`support/mod.rs`) and the QEMU test harness (`tests/harness/qemu.rs`, by path).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Writes `figures` as `<name>.json` in `dir`, merges every `*.json` there into
/// `summary.json` and returns the paths of both. A figure in two files is a bug: it panics.
pub fn write_and_merge(dir: &Path, name: &str, figures: &Map<String, Value>) -> (PathBuf, PathBuf) {
    let failed = |what: &str, path: &Path, e: &dyn std::fmt::Display| -> ! {
        panic!("cannot {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(dir).unwrap_or_else(|e| failed("create", dir, &e));
    let own = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(figures).unwrap_or_else(|e| failed("encode", &own, &e));
    std::fs::write(&own, text + "\n").unwrap_or_else(|e| failed("write", &own, &e));
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| failed("list", dir, &e))
        .map(|e| e.unwrap_or_else(|e| failed("list", dir, &e)).path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "summary.json")
        })
        .collect();
    parts.sort();
    let mut all = Map::new();
    for part in parts {
        let bytes = std::fs::read(&part).unwrap_or_else(|e| failed("read", &part, &e));
        let figures: Map<String, Value> =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| failed("parse", &part, &e));
        for (k, v) in figures {
            assert!(
                all.insert(k.clone(), v).is_none(),
                "figure {k} in two files"
            );
        }
    }
    let summary = dir.join("summary.json");
    let text =
        serde_json::to_string_pretty(&all).unwrap_or_else(|e| failed("encode", &summary, &e));
    std::fs::write(&summary, text + "\n").unwrap_or_else(|e| failed("write", &summary, &e));
    (own, summary)
}

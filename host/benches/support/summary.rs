//! The figures' files of `make bench`: each bench, and each QEMU scenario that measures, writes
//! `<name>.json` into one directory, and `summary.json` there merges them all. Shared by the
//! benches (`support/mod.rs`) and the QEMU test harness (`tests/harness/qemu.rs`, by path).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Writes `figures` as `<name>.json` in `dir`, merges every `*.json` there into
/// `summary.json` and returns the paths of both. A figure in two files is a bug: it panics.
pub fn write_and_merge(dir: &Path, name: &str, figures: &Map<String, Value>) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let own = dir.join(format!("{name}.json"));
    std::fs::write(&own, serde_json::to_string_pretty(figures).unwrap() + "\n").unwrap();
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "summary.json")
        })
        .collect();
    parts.sort();
    let mut all = Map::new();
    for part in parts {
        let figures: Map<String, Value> =
            serde_json::from_slice(&std::fs::read(&part).unwrap()).unwrap();
        for (k, v) in figures {
            assert!(
                all.insert(k.clone(), v).is_none(),
                "figure {k} in two files"
            );
        }
    }
    let summary = dir.join("summary.json");
    std::fs::write(&summary, serde_json::to_string_pretty(&all).unwrap() + "\n").unwrap();
    (own, summary)
}

//! `make bench` for the TA's footprint (issue 12): the signed size of the GP TA as
//! `ta/build-ta.sh` builds it (needs the TA dev kit, which the script fetches into QEMU_CACHE).
//!
//! Figures (`build/bench/summary.json`):
//! * `ta_signed_bytes_gp`: the default GP TA (verifiers following the default anchor set:
//!   ECDSA only) — `ta/build-ta.sh` refuses a default build over its limit;
//! * `ta_signed_bytes_gp_pq`: the GP TA with every verifier (ML-DSA-65, Ed25519, HSS-LMS);
//! * `ta_signed_bytes_gp_debian_devkit`: the default GP TA linked against Debian's
//!   optee-os-dev (OP-TEE 4.5, whole source files per section) instead of the dev kit of
//!   qemu/build-devkit.sh (per-function sections), same configuration otherwise;
//! * `ta_heap_bytes`: the heap the default TA is built with (`TA_HEAP_SIZE`'s default). The
//!   smallest heap that passes the QEMU flow needs QEMU runs, not a bench: ta/ta.mk says how
//!   it was measured and what passed.

#[allow(dead_code)] // the tool benches' helpers
mod support;

use std::path::Path;
use std::process::Command;

use support::{run, summary_dir, Summary};

/// Runs ta/build-ta.sh with `envs` into `out` and returns (signed size, heap size from its log).
fn build_ta(repo: &Path, out: &Path, envs: &[(&str, &str)]) -> (u64, u64) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("ta/build-ta.sh")).current_dir(repo);
    // Variables cargo sets for the bench would reach the nested cargo's build scripts and make
    // them rebuild; the TA's configuration variables come from `envs` only.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name.starts_with("TA_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("TA_OUT_DIR", out).envs(envs.iter().copied());
    let log = String::from_utf8_lossy(&run(&mut cmd).stderr).into_owned();
    let ta = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "ta"))
        .unwrap_or_else(|| panic!("ta/build-ta.sh wrote no .ta into {}", out.display()));
    let heap = log
        .split(", heap ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no heap size in ta/build-ta.sh's log:\n{log}"));
    (std::fs::metadata(&ta).unwrap().len(), heap)
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = summary_dir().join("ta-size");
    let mut summary = Summary::new("ta_size");
    let (default, heap) = build_ta(repo, &dir.join("gp"), &[("TA_CRYPTO", "gp")]);
    println!("default GP TA: {default} bytes signed, heap {heap} bytes");
    summary.record_count("ta_signed_bytes_gp", default);
    summary.record_count("ta_heap_bytes", heap);
    let (pq, _) = build_ta(
        repo,
        &dir.join("gp-pq"),
        &[
            ("TA_CRYPTO", "gp"),
            ("TA_FEATURES", "ml-dsa-65,ed25519,hss-lms"),
        ],
    );
    println!("GP TA with every verifier: {pq} bytes signed");
    summary.record_count("ta_signed_bytes_gp_pq", pq);
    // QEMU_RPMB=0 selects Debian's dev kit; the storage stays the default's.
    let (debian, _) = build_ta(
        repo,
        &dir.join("gp-debian-devkit"),
        &[
            ("TA_CRYPTO", "gp"),
            ("QEMU_RPMB", "0"),
            ("TA_STORAGE", "rpmb"),
        ],
    );
    println!("default GP TA against Debian's dev kit: {debian} bytes signed");
    summary.record_count("ta_signed_bytes_gp_debian_devkit", debian);
    std::fs::remove_dir_all(&dir).ok();
    summary.write();
}

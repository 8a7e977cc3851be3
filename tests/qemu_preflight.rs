//! The first step of `make qemu-test`: the TA built by `make ta` loads in OP-TEE and answers
//! GET_INFO through the real agent. And the check is not vacuous: a TA signed with another
//! key than the one OP-TEE trusts makes it fail, naming the TA.
//!   cargo test -p suit-tests --features qemu --test qemu_preflight -- --test-threads=1

use std::process::Command;

use suit_tests::debian::ensure_tool;
use suit_tests::device::{phase, preflight};
use suit_tests::qemu::{build_command, ensure_ta, repo_root};

#[test]
fn the_built_ta_loads_in_optee() {
    ensure_ta().unwrap();
    phase("preflight: the TA of build/ta loads and answers", || {
        preflight("preflight", &repo_root().join("build/ta")).unwrap()
    });
}

#[test]
fn a_ta_signed_with_another_key_fails_the_preflight() {
    ensure_ta().unwrap();
    // The same TA, signed by ta/build-ta.sh with a fresh RSA key instead of the dev kit's:
    // OP-TEE must refuse to load it.
    let dir = repo_root().join("build/qemu-tests/wrong-key-ta");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("wrong-key.pem");
    ensure_tool("openssl", "openssl");
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048"));
    let ta_dir = dir.join("ta");
    run(build_command("bash")
        .arg(repo_root().join("ta/build-ta.sh"))
        .env("TA_SIGN_KEY", &key)
        .env("TA_OUT_DIR", &ta_dir));

    let err = phase(
        "preflight: a TA signed with the wrong key is refused",
        || preflight("preflight-wrong-key", &ta_dir).unwrap_err(),
    );
    let message = err.to_string();
    let ta = std::fs::read_dir(&ta_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "ta"))
        .unwrap();
    assert!(
        message.starts_with(&format!("preflight: the TA {} does not load", ta.display())),
        "{message}"
    );
    // the agent could not open a session: OP-TEE refused the TA's signature
    assert!(message.contains("TEE error"), "{message}");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

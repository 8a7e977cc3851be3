//! Issue 9 item 1: an unsigned envelope whose COSE header nests arrays deeply must be refused
//! by LOAD_MANIFEST on the TA's 48 KiB stack, before any recursive decoder sees it.
//!
//! A stack overflow aborts the whole process, so `ta_stack_survives_deep_cose_headers` runs
//! the checks of `load_manifest_on_ta_stack` in a child process (this test binary again) on a
//! thread with the TA's stack and asserts on the child's exit; run in this process,
//! `load_manifest_on_ta_stack` makes the same checks on a generous stack.

use std::path::{Path, PathBuf};
use std::process::Command;

use suit_host::tee::simulator::{SimulatedTa, SimulatorConfig};
use suit_host::tee::Tee;
use suit_shared::abi::{self, CommandId, Request};
use suit_shared::cbor::{Writer, MAX_FOREIGN_DEPTH};
use suit_shared::Category;
use suit_ta_core::Param;

/// The TA's stack (ta/ta.mk: TA_STACK_SIZE) in an optimised build. Unoptimised frames are
/// several times larger (a minimal LOAD_MANIFEST needs about 64 KiB, ciborium about 3 KiB a
/// level instead of 0.6), so a debug build gets a proportionally larger stack that still
/// overflows at [`ATTACK_DEPTH`] without the bound. `cargo test --release` uses 48 KiB.
const TA_STACK: usize = if cfg!(debug_assertions) {
    160 * 1024
} else {
    48 * 1024
};
/// Set in the child process: the stack size to run LOAD_MANIFEST with.
const STACK_ENV: &str = "SUIT_TEST_TA_STACK";
/// Nesting that overflowed the TA's stack before the bound (about 75 levels did).
const ATTACK_DEPTH: usize = 100;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `depth` nested one-element arrays around 0.
fn nested(depth: usize) -> Vec<u8> {
    let mut w = Writer::new();
    for _ in 0..depth {
        w.array(1);
    }
    w.u64(0);
    w.into_bytes()
}

/// An unsigned envelope whose single COSE_Sign1 carries `value` in its protected header.
fn envelope_with_header_value(value: &[u8]) -> Vec<u8> {
    let mut protected = Writer::new();
    protected.map(2).u64(1).i64(-35).u64(100).raw(value);
    let mut cose = Writer::new();
    cose.tag(18)
        .array(4)
        .bytes(&protected.into_bytes())
        .map(0)
        .null()
        .bytes(&[0; 96]);
    let mut digest = Writer::new();
    digest.array(2).i64(-16).bytes(&[0; 32]);
    let mut auth = Writer::new();
    auth.array(2)
        .bytes(&digest.into_bytes())
        .bytes(&cose.into_bytes());
    let mut manifest = Writer::new();
    manifest.map(1).u64(1).u64(1);
    let mut env = Writer::new();
    env.tag(107)
        .map(2)
        .u64(2)
        .bytes(&auth.into_bytes())
        .u64(3)
        .bytes(&manifest.into_bytes());
    env.into_bytes()
}

/// LOAD_MANIFEST of `envelope` through the TA core on a thread with `stack` bytes; the
/// rejection's category and message.
fn load_manifest(stack: usize, envelope: Vec<u8>) -> (Category, String) {
    let dir = tempfile::tempdir().unwrap();
    let anchor =
        suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem")).unwrap();
    let mut config = SimulatorConfig::new(dir.path().join("state"), vec![anchor]);
    config.max_envelope = 64 * 1024;
    let mut session = SimulatedTa::new(config).unwrap().open_session();
    // First use (device key generation) on this thread: only LOAD_MANIFEST is under test.
    session.get_info().unwrap();
    let request = Request::LoadManifest {
        target_slot: 0,
        nonce: None,
        facts: None,
    }
    .encode();
    let params = [
        Param::MemrefInput(request),
        Param::MemrefOutput(CommandId::LoadManifest.response_capacity()),
        Param::MemrefInput(envelope),
        Param::None,
    ];
    let out = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            session
                .invoke_params(CommandId::LoadManifest as u32, &params)
                .map(|o| o.response)
        })
        .unwrap()
        .join()
        .unwrap()
        .expect("the TA answers");
    match abi::decode_response(CommandId::LoadManifest, &out).unwrap() {
        Err(rejection) => (rejection.category, rejection.message),
        Ok(reply) => panic!("an unsigned envelope was accepted: {reply:?}"),
    }
}

/// The checks, on the stack named by [`STACK_ENV`] (8 MiB when unset).
#[test]
fn load_manifest_on_ta_stack() {
    let stack = std::env::var(STACK_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8 << 20);
    // Deep nesting: refused before any decoder recursion, as a resource limit.
    let (category, message) =
        load_manifest(stack, envelope_with_header_value(&nested(ATTACK_DEPTH)));
    assert_eq!(category, Category::Resource, "{message}");
    assert!(message.contains("nesting"), "{message}");
    // The deepest nesting still accepted reaches signature verification (and fails there).
    let (category, message) = load_manifest(
        stack,
        envelope_with_header_value(&nested(MAX_FOREIGN_DEPTH - 1)),
    );
    assert_eq!(category, Category::Authentication, "{message}");
}

#[test]
fn ta_stack_survives_deep_cose_headers() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "load_manifest_on_ta_stack", "--test-threads=1"])
        .env(STACK_ENV, TA_STACK.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "LOAD_MANIFEST on a {TA_STACK}-byte stack: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The child really ran the checks (a filter matching nothing also exits 0).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

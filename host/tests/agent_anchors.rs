//! `suit-agent install` of a trust-anchor update (issue 14), simulator backend: the agent
//! hands it to UPDATE_ANCHORS (no slot is written); afterwards firmware signed by the new key
//! installs and firmware signed by the retired key is refused; a replay of the update is a
//! rollback.

#[path = "support/agent_config.rs"]
mod agent_config;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_config::{agent_ok, run_agent, AgentConfig};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "suit-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A signed envelope installing `len` bytes (integrated) as "rootfs", signed by `key`.
fn firmware(dir: &Path, name: &str, sequence: u64, key: &Path) -> PathBuf {
    let image: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7 + sequence as u32) as u8)
        .collect();
    std::fs::write(dir.join(format!("{name}.img")), image).unwrap();
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = {sequence}\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"{name}.img\"\nintegrated = true\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}.suit"));
    tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ]);
    out
}

fn failed(out: &Output, category: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("FAILED [{category}]")), "{stdout}");
}

#[test]
fn agent_applies_an_anchor_update_and_firmware_follows_the_new_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("slot-a.img"), vec![0u8; 8192]).unwrap();
    let config = AgentConfig::new(d).write();
    let prefix = d.join("k2");
    tool(&["keygen".as_ref(), "--out".as_ref(), prefix.as_os_str()]);
    let (k2_priv, k2_pub) = (d.join("k2.priv.pem"), d.join("k2.pub.pem"));
    let (dev_priv, dev_pub) = (
        repo().join("keys/dev-vendor-es384.priv.pem"),
        repo().join("keys/dev-vendor-es384.pub.pem"),
    );
    let unsigned = d.join("anchors.suit");
    let update = d.join("anchors.signed.suit");
    tool(&[
        "anchors".as_ref(),
        "--add".as_ref(),
        k2_pub.as_os_str(),
        "--retire".as_ref(),
        dev_pub.as_os_str(),
        "--sequence".as_ref(),
        "1".as_ref(),
        "--vendor".as_ref(),
        "example.com".as_ref(),
        "--class".as_ref(),
        "qemu-armv8a".as_ref(),
        "--out".as_ref(),
        unsigned.as_os_str(),
    ]);
    tool(&[
        "sign".as_ref(),
        "--key".as_ref(),
        dev_priv.as_os_str(),
        unsigned.as_os_str(),
        "--out".as_ref(),
        update.as_os_str(),
    ]);
    let out = agent_ok(&config, &["install", update.to_str().unwrap()]);
    assert!(out.contains("trust-anchor update 1 applied"), "{out}");
    assert!(!d.join("slot-b.img").exists(), "no slot is written");

    // Replayed: signed by the key it retired, it no longer authenticates; signed by the new
    // key, its sequence number is not above the one applied.
    failed(
        &run_agent(&config, &["install", update.to_str().unwrap()]),
        "authentication",
    );
    let resigned = d.join("anchors.k2.suit");
    tool(&[
        "sign".as_ref(),
        "--key".as_ref(),
        k2_priv.as_os_str(),
        unsigned.as_os_str(),
        "--out".as_ref(),
        resigned.as_os_str(),
    ]);
    failed(
        &run_agent(&config, &["install", resigned.to_str().unwrap()]),
        "rollback",
    );
    // The retired key no longer signs firmware; the new one does.
    let old = firmware(d, "old", 2, &dev_priv);
    failed(
        &run_agent(&config, &["install", old.to_str().unwrap()]),
        "authentication",
    );
    let new = firmware(d, "new", 2, &k2_priv);
    let out = agent_ok(&config, &["install", new.to_str().unwrap()]);
    assert!(out.contains("installed sequence 2 into slot B"), "{out}");
}

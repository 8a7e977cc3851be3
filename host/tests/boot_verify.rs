//! Verified boot through the TA, with the real `suit-agent` binary and the TA core in-process
//! (`--tee simulator`): what BOOT_VERIFY approves per slot across factory install, update,
//! trial, rollback and confirm, and that the dm-verity table it yields verifies the slot's
//! content with the real `veritysetup` (and refuses a tampered block).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[version as usize % 4] ^ version
        })
        .collect()
}

struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Device {
    /// Slot A holds `factory` as flashed at manufacturing; slot B is empty; A is booted.
    fn new(factory: &[u8]) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("slot-a.img"), factory).unwrap();
        std::fs::write(d.join("booted-slot"), "A\n").unwrap();
        let config = d.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"state-dir = "{d}/state"
staging-dir = "{d}/staging"
booted-slot-file = "{d}/booted-slot"
chunk-size = 65536
[boot]
backend = "file"
path = "{d}/bootstate"
[[component]]
id = ["rootfs"]
slot-a = {{ path = "{d}/slot-a.img", component-slot = 0 }}
slot-b = {{ path = "{d}/slot-b.img", component-slot = 1 }}
[health-check]
command = ["/bin/true"]
[simulator]
trust-anchors = ["{anchor}"]
vendor = "{VENDOR}"
class = "{CLASS}"
"#,
                d = d.display(),
                anchor = repo().join("keys/dev-vendor-es384.pub.pem").display(),
            ),
        )
        .unwrap();
        Device { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn agent(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
            .args(["--tee", "simulator", "--config"])
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(101),
            "suit-agent panicked: {}",
            text(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.agent(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// BOOT_VERIFY of `slot` as JSON, or the refusal's stdout line.
    fn boot_verify(&self, slot: &str) -> Result<Value, String> {
        let out = self.agent(&["boot-verify", "--slot", slot, "--json"]);
        match out.status.code() {
            Some(0) => Ok(serde_json::from_slice(&out.stdout).unwrap()),
            Some(1) => Err(text(&out.stdout)),
            other => panic!("boot-verify exit {other:?}: {}", text(&out.stderr)),
        }
    }

    /// Plays the file boot backend's boot: the booted slot becomes `slot`.
    fn boot_into(&self, slot: &str) {
        std::fs::write(self.path("booted-slot"), format!("{slot}\n")).unwrap();
    }
}

/// A signed envelope with `image` integrated, for slots 0 and 1.
fn envelope(dir: &Path, name: &str, sequence: u64, image: &[u8]) -> PathBuf {
    std::fs::write(dir.join(format!("{name}.img")), image).unwrap();
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = {sequence}\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"{name}.img\"\nintegrated = true\n[[component.slot]]\nslot = 0\n[[component.slot]]\nslot = 1\n"
        ),
    )
    .unwrap();
    let out_path = dir.join(format!("{name}.suit"));
    let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out_path)
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "suit-tool create: {}",
        text(&out.stderr)
    );
    out_path
}

/// `veritysetup verify` of `slot_file` with the table values the TA approved.
fn veritysetup_verify(slot_file: &Path, approved: &Value) -> bool {
    let c = &approved["components"][0];
    let out = Command::new("veritysetup")
        .arg("verify")
        .arg("--no-superblock")
        .arg(format!("--data-blocks={}", c["data-blocks"]))
        .arg(format!("--hash-offset={}", c["hash-offset"]))
        .arg(format!("--salt={}", c["salt"].as_str().unwrap()))
        .arg(slot_file)
        .arg(slot_file)
        .arg(c["root-hash"].as_str().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("veritysetup ({e}): install cryptsetup-bin"));
    out.status.success()
}

#[test]
fn boot_approval_follows_factory_install_trial_rollback_and_confirm() {
    let work = tempfile::tempdir().unwrap();
    let v1 = image(1, 100 * 1024 + 7);
    let v2 = image(2, 60 * 1024);
    let dev = Device::new(&v1);
    let env1 = envelope(work.path(), "v1", 1, &v1);
    let env2 = envelope(work.path(), "v2", 2, &v2);

    // No trust on first use: the flashed image is not approved before the factory install.
    let refused = dev.boot_verify("A").unwrap_err();
    assert!(
        refused.contains("FAILED [policy]") && refused.contains("not approved to boot"),
        "{refused}"
    );
    assert!(dev.boot_verify("B").is_err());

    let out = dev.ok(&["factory-install", env1.to_str().unwrap(), "--slot", "A"]);
    assert!(out.contains("confirmed slot A"), "{out}");
    let a = dev.boot_verify("A").unwrap();
    assert_eq!(
        (a["status"].as_str(), a["sequence-number"].as_u64()),
        (Some("good"), Some(1))
    );
    let c = &a["components"][0];
    assert_eq!(c["data-blocks"], 26);
    assert!(
        c["dm-table"].as_str().unwrap().contains(" verity 1 "),
        "{c}"
    );
    assert!(
        veritysetup_verify(&dev.path("slot-a.img"), &a),
        "slot A does not verify"
    );

    // Update to B: approved for its trial; A stays approved (the fallback).
    dev.ok(&["install", env2.to_str().unwrap()]);
    let b = dev.boot_verify("B").unwrap();
    assert_eq!(
        (b["status"].as_str(), b["sequence-number"].as_u64()),
        (Some("trial"), Some(2))
    );
    assert!(veritysetup_verify(&dev.path("slot-b.img"), &b));
    assert_eq!(dev.boot_verify("A").unwrap()["status"], "good");

    // A rolled-back trial is withdrawn.
    dev.ok(&["rollback"]);
    let refused = dev.boot_verify("B").unwrap_err();
    assert!(
        refused.contains("not approved to boot") && refused.contains("rolled back"),
        "{refused}"
    );
    assert!(dev.boot_verify("A").is_ok());

    // Install again, boot into B, confirm: B good; A is now below the floor.
    dev.ok(&["install", env2.to_str().unwrap()]);
    dev.boot_into("B");
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("confirmed slot B"), "{out}");
    let b = dev.boot_verify("B").unwrap();
    assert_eq!(
        (b["status"].as_str(), b["sequence-number"].as_u64()),
        (Some("good"), Some(2))
    );
    let refused = dev.boot_verify("A").unwrap_err();
    assert!(
        refused.contains("FAILED [rollback]")
            && refused.contains("below the anti-rollback floor 2"),
        "{refused}"
    );

    // The TA's approval binds the content: a changed block fails dm-verity.
    let mut slot = std::fs::read(dev.path("slot-b.img")).unwrap();
    assert!(veritysetup_verify(&dev.path("slot-b.img"), &b));
    slot[30 * 1024] ^= 0x01;
    std::fs::write(dev.path("slot-b.img"), &slot).unwrap();
    assert!(
        !veritysetup_verify(&dev.path("slot-b.img"), &b),
        "a tampered slot verified"
    );
}

#[test]
fn boot_verify_prints_the_dm_table_and_refuses_unknown_slots() {
    let work = tempfile::tempdir().unwrap();
    let v1 = image(3, 4096);
    let dev = Device::new(&v1);
    let env1 = envelope(work.path(), "v1", 1, &v1);
    dev.ok(&["factory-install", env1.to_str().unwrap()]);
    let table = dev.ok(&["boot-verify", "--slot", "A"]);
    let fields: Vec<&str> = table.split_whitespace().collect();
    let slot_a = dev.path("slot-a.img");
    let slot_a = slot_a.to_str().unwrap();
    assert_eq!(
        &fields[..11],
        &["0", "8", "verity", "1", slot_a, slot_a, "4096", "4096", "1", "1", "sha256"],
        "{table}"
    );
    // one block: no hash tree, the root is the block's salted digest
    assert_eq!(
        std::fs::metadata(dev.path("slot-a.img")).unwrap().len(),
        4096
    );
    let out = dev.agent(&["boot-verify", "--slot", "C"]);
    assert_eq!(out.status.code(), Some(2));
}

//! A simulated device (simulator TA, slots and boot state in files) whose `suit-agent daemon`
//! polls a hawkBit DDI server: the mock of `ddi_daemon.rs` or gooseBit (`ddi_goosebit.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::agent_config::{agent_ok, AgentConfig};

const VENDOR: &str = "example.com";
/// The simulated TA's class.
pub const CLASS: &str = "qemu-armv8a";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A simulated device whose daemon polls a DDI server.
pub struct Device {
    dir: tempfile::TempDir,
    /// Its agent configuration.
    pub config: PathBuf,
}

impl Device {
    /// A device with slot A booted, polling `server` as controller `dev-1` with a target
    /// token; `http` is extra configuration appended (e.g. an `[http]` table).
    pub fn new(server: &str, http: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("slot-a.img"), vec![1u8; 8192]).unwrap();
        let config = AgentConfig {
            quick_retry: true,
            ..AgentConfig::new(d)
        }
        .write();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = format!("reboot-command = [\"/bin/true\"]\n{text}");
        text.push_str(&format!(
            "[ddi]\nserver-url = \"{server}\"\ncontroller-id = \"dev-1\"\ntarget-token = \"secret-token\"\nboard-name = \"qemu-virt\"\nboard-revision = \"1\"\n{http}"
        ));
        std::fs::write(&config, text).unwrap();
        Device { dir, config }
    }

    /// A file of the device.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `suit-agent daemon`, its log in `daemon.log`.
    pub fn daemon(&self) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
            .args(["--tee", "simulator", "--config"])
            .arg(&self.config)
            .arg("daemon")
            .env("SUIT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        Daemon(child)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// The image's init at the trial boot: slot B booted.
    pub fn boot_slot_b(&self) {
        std::fs::write(self.path("booted-slot"), "B\n").unwrap();
    }
}

/// The running daemon, killed when dropped.
pub struct Daemon(Child);

impl Daemon {
    /// Stops the daemon; asserts it was still running (did not panic or exit).
    pub fn stop(mut self, dev: &Device) {
        assert!(
            self.0.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            dev.log()
        );
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A signed envelope of class `class` with an integrated image.
pub fn envelope(dir: &Path, sequence: u64, class: &str) -> Vec<u8> {
    make_envelope(dir, sequence, class, "integrated = true")
}

/// A signed envelope of the simulated class whose payload, `dir/fw.img`, is fetched from
/// `uri`.
#[allow(dead_code)] // used by ddi_daemon.rs only
pub fn envelope_with_uri(dir: &Path, sequence: u64, uri: &str) -> Vec<u8> {
    make_envelope(dir, sequence, CLASS, &format!("uri = \"{uri}\""))
}

fn make_envelope(dir: &Path, sequence: u64, class: &str, source: &str) -> Vec<u8> {
    std::fs::write(dir.join("fw.img"), vec![sequence as u8; 16 * 1024]).unwrap();
    let spec = dir.join("fw.toml");
    std::fs::write(
        &spec,
        format!("sequence-number = {sequence}\nvendor = \"{VENDOR}\"\nclass = \"{class}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"fw.img\"\n{source}\n"),
    )
    .unwrap();
    let out = dir.join("fw.suit");
    let status = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The SUIT report carried by feedback `details` lines (`suit-report i/n: HEX`), checked
/// with `suit-tool verify-report` against the device key; its JSON.
pub fn verified_report<'a>(dev: &Device, details: impl Iterator<Item = &'a str>) -> Value {
    let hex: String = details
        .filter_map(|d| d.trim().strip_prefix("suit-report "))
        .map(|d| d.split_once(": ").unwrap().1.to_string())
        .collect();
    assert!(!hex.is_empty(), "no SUIT report in the feedback");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    std::fs::write(dev.path("feedback.suit-report"), bytes).unwrap();
    let info: Value = serde_json::from_str(&agent_ok(&dev.config, &["info", "--json"])).unwrap();
    std::fs::write(
        dev.path("device.pub.pem"),
        info["signing-public-key-pem"].as_str().unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .arg("verify-report")
        .arg("--device-key")
        .arg(dev.path("device.pub.pem"))
        .arg(dev.path("feedback.suit-report"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

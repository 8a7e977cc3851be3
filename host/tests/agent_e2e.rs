//! Simulator end to end: the real `suit-agent` binary with the TA core in-process
//! (`--tee simulator`), a real nginx on loopback, slots and boot state in files. Reboots are
//! played here as the QEMU image's init plays them (RAUC semantics on the boot-state file).

#[path = "support/agent_config.rs"]
mod agent_config;
#[path = "support/debian.rs"]
mod debian;
#[allow(dead_code)] // HTTPS helpers of the shared test server are not used here
#[path = "support/nginx.rs"]
mod nginx;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agent_config::{agent_ok, run_agent, AgentConfig};
use nginx::Nginx;
use serde_json::Value;

const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dev_key() -> PathBuf {
    repo().join("keys/dev-vendor-es384.priv.pem")
}

/// A simulated device: slot files, boot state, agent config, TA state — all in a temp dir.
struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Device {
    fn new(health: bool) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("slot-a.img"), image(1, 64 * 1024)).unwrap();
        if health {
            std::fs::write(d.join("healthy"), "").unwrap();
        }
        let config = AgentConfig {
            quick_retry: true,
            health_check: Some(format!(
                r#"["/bin/sh", "-c", "test -f {}/healthy"]"#,
                d.display()
            )),
            ..AgentConfig::new(d)
        }
        .write();
        Device { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The image at the start of a slot file (the dm-verity tree follows it).
    fn slot_image(&self, name: &str, len: usize) -> Vec<u8> {
        let mut bytes = std::fs::read(self.path(name)).unwrap();
        bytes.truncate(len);
        bytes
    }

    /// Makes the agent post its reports to `url`.
    fn report_to(&self, url: &str) {
        let config = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, format!("report-url = \"{url}\"\n{config}")).unwrap();
    }

    /// The device public key as SPKI PEM, read with `suit-agent info`.
    fn public_key_pem(&self) -> String {
        self.info()["device-public-key-pem"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The reports kept so far, oldest first, as `suit-tool verify-report --json` reads them
    /// with the device's signing key.
    fn reports(&self) -> Vec<Value> {
        let key = self.path("device-signing.pub.pem");
        let pem = self.info()["signing-public-key-pem"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(&key, pem).unwrap();
        let mut files: Vec<PathBuf> = walk(&self.path("state/reports"));
        files.sort();
        files
            .iter()
            .map(|f| {
                let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
                    .arg("verify-report")
                    .arg("--device-key")
                    .arg(&key)
                    .arg(f)
                    .arg("--json")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: {}",
                    f.display(),
                    text(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            })
            .collect()
    }

    fn agent(&self, args: &[&str]) -> Output {
        run_agent(&self.config, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        agent_ok(&self.config, args)
    }

    fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["info", "--json"])).unwrap()
    }

    fn floor(&self) -> Option<u64> {
        self.info()["floors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["component"] == "['rootfs']")
            .and_then(|f| f["floor"].as_u64())
    }

    fn bootstate(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.path("bootstate"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect()
    }

    fn var(&self, key: &str) -> String {
        self.bootstate()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{key} not in bootstate"))
    }

    /// What the image's init does at boot: the first slot of BOOT_ORDER with tries left is
    /// booted and its counter decremented.
    fn reboot(&self) -> char {
        let state = self.bootstate();
        let get = |k: &str| {
            state
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let order = get("BOOT_ORDER").unwrap_or_else(|| "A B".into());
        let left = |s: &str| {
            get(&format!("BOOT_{s}_LEFT"))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(3)
        };
        let slot = order
            .split_whitespace()
            .find(|s| left(s) > 0)
            .expect("a bootable slot")
            .to_string();
        let mut lines: Vec<String> = Vec::new();
        for s in ["A", "B"] {
            let n = if s == slot { left(s) - 1 } else { left(s) };
            lines.push(format!("BOOT_{s}_LEFT={n}"));
        }
        lines.insert(0, format!("BOOT_ORDER={order}"));
        std::fs::write(self.path("bootstate"), lines.join("\n") + "\n").unwrap();
        std::fs::write(self.path("booted-slot"), format!("{slot}\n")).unwrap();
        slot.chars().next().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Deterministic image content distinct per version.
fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[version as usize % 4] ^ version
        })
        .collect()
}

/// Builds a signed envelope for `image` served at `url`; extra spec lines go after the component.
fn envelope(
    dir: &Path,
    name: &str,
    sequence: u64,
    class: &str,
    image_bytes: &[u8],
    url: &str,
    extra: &str,
) -> Vec<u8> {
    std::fs::write(dir.join(format!("{name}.img")), image_bytes).unwrap();
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = {sequence}\nvendor = \"{VENDOR}\"\nclass = \"{class}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"{name}.img\"\nuri = \"{url}\"\n{extra}"
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
        .arg(dev_key())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "suit-tool create: {}",
        text(&out.stderr)
    );
    std::fs::read(out_path).unwrap()
}

fn failed(out: &Output, category: &str) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("FAILED [{category}]")),
        "expected a {category} failure: {stdout}"
    );
    stdout
}

#[test]
fn update_reboot_confirm_and_replay() {
    let nginx = Nginx::start();
    let dev = Device::new(true);
    dev.report_to(&nginx.url("reports/"));
    let work = tempfile::tempdir().unwrap();
    let v2 = image(2, 300 * 1024);
    let env2 = envelope(work.path(), "v2", 2, CLASS, &v2, &nginx.url("v2.img"), "");
    nginx.put("v2.img", &v2);
    nginx.put("v2.suit", &env2);

    let out = dev.ok(&["install", &nginx.url("v2.suit")]);
    assert!(out.contains("installed sequence 2 into slot B"), "{out}");
    assert_eq!(dev.slot_image("slot-b.img", v2.len()), v2);
    assert_eq!(
        (
            dev.var("BOOT_ORDER").as_str(),
            dev.var("BOOT_B_LEFT").as_str()
        ),
        ("B A", "1")
    );
    assert_eq!(dev.floor(), None, "the floor rises only at CONFIRM");
    // While the trial is pending, another install is refused.
    let out = dev.agent(&["install", &nginx.url("v2.suit")]);
    assert_eq!(out.status.code(), Some(1));

    assert_eq!(dev.reboot(), 'B');
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("confirmed slot B"), "{out}");
    assert_eq!(dev.floor(), Some(2));
    assert_eq!(dev.var("BOOT_B_LEFT"), "3");
    let status: Value = serde_json::from_str(&dev.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["last-outcome"]["result"], "confirmed");
    // Nothing left to do at the next boot.
    assert!(dev.ok(&["boot-check"]).contains("nothing pending"));

    // Replay of an older manifest: rejected by the TA, nothing changes.
    let v1 = image(1, 64 * 1024);
    let env1 = envelope(work.path(), "v1", 1, CLASS, &v1, &nginx.url("v1.img"), "");
    nginx.put("v1.img", &v1);
    nginx.put("v1.suit", &env1);
    let before = (
        std::fs::read(dev.path("slot-a.img")).unwrap(),
        dev.bootstate(),
    );
    failed(&dev.agent(&["install", &nginx.url("v1.suit")]), "rollback");
    assert_eq!(
        (
            std::fs::read(dev.path("slot-a.img")).unwrap(),
            dev.bootstate()
        ),
        before
    );
    assert!(
        !nginx.requests().iter().any(|r| r.uri == "/v1.img"),
        "no payload is fetched for a rejected manifest"
    );
    assert_eq!(dev.floor(), Some(2));
    // `check` agrees: nothing newer.
    assert_eq!(
        dev.agent(&["check", &nginx.url("v1.suit")]).status.code(),
        Some(3)
    );
}

#[test]
fn ordinary_boots_keep_the_running_slot() {
    // The bootloader takes one attempt per boot; boot-check marks a slot with nothing pending
    // good again, so the device never falls back on its own.
    let dev = Device::new(true);
    for _ in 0..5 {
        assert_eq!(dev.reboot(), 'A');
        assert!(dev.ok(&["boot-check"]).contains("nothing pending"));
        assert_eq!(dev.var("BOOT_A_LEFT"), "3");
    }
}

#[test]
fn another_class_is_not_applicable() {
    let nginx = Nginx::start();
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    let v2 = image(2, 4096);
    nginx.put(
        "other.suit",
        &envelope(
            work.path(),
            "other",
            2,
            "another-board",
            &v2,
            &nginx.url("other.img"),
            "",
        ),
    );
    nginx.put("other.img", &v2);
    failed(
        &dev.agent(&["install", &nginx.url("other.suit")]),
        "applicability",
    );
    assert!(
        !dev.path("slot-b.img").exists(),
        "the inactive slot is untouched"
    );
}

#[test]
fn payload_tampered_on_the_server_is_rejected() {
    let nginx = Nginx::start();
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    let v2 = image(2, 100 * 1024);
    nginx.put(
        "v2.suit",
        &envelope(work.path(), "v2", 2, CLASS, &v2, &nginx.url("v2.img"), ""),
    );
    let mut evil = v2.clone();
    evil[5000] ^= 0x40;
    nginx.put("v2.img", &evil);
    std::fs::write(dev.path("slot-b.img"), b"previous content").unwrap();
    failed(&dev.agent(&["install", &nginx.url("v2.suit")]), "digest");
    assert_eq!(
        std::fs::read(dev.path("slot-b.img")).unwrap(),
        b"previous content"
    );
    assert_eq!(dev.var_or_default("BOOT_ORDER"), "A B");
    // Once the server is fixed, a retry downloads the payload again (the refused bytes were
    // not kept) and installs it.
    nginx.put("v2.img", &v2);
    dev.ok(&["install", &nginx.url("v2.suit")]);
    assert_eq!(dev.slot_image("slot-b.img", v2.len()), v2);
    let fetched = nginx
        .requests()
        .iter()
        .filter(|r| r.uri == "/v2.img")
        .count();
    assert_eq!(fetched, 2, "the payload is downloaded again");
}

impl Device {
    fn var_or_default(&self, key: &str) -> String {
        self.bootstate()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| "A B".into())
    }
}

#[test]
fn failed_health_check_falls_back_and_rolls_back() {
    let nginx = Nginx::start();
    let dev = Device::new(false);
    let work = tempfile::tempdir().unwrap();
    let v3 = image(3, 50 * 1024);
    nginx.put(
        "v3.suit",
        &envelope(work.path(), "v3", 3, CLASS, &v3, &nginx.url("v3.img"), ""),
    );
    nginx.put("v3.img", &v3);
    dev.ok(&["install", &nginx.url("v3.suit")]);
    assert_eq!(dev.reboot(), 'B');
    // The trial boot's health check fails: no confirm, the slot is marked bad.
    let out = dev.agent(&["boot-check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("health check failed"));
    assert_eq!(dev.floor(), None);
    // The bootloader falls back to A; its boot-check rolls back.
    assert_eq!(dev.reboot(), 'A');
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("rolled back"), "{out}");
    let info = dev.info();
    assert_eq!(info["install"], "idle");
    assert_eq!(info["last-outcome"], "rolled-back");
    assert_eq!(dev.floor(), None, "a rollback leaves the floor alone");
    assert_eq!(dev.reboot(), 'A');
    let last = dev.reports().pop().unwrap();
    assert_eq!(
        (last["result"].as_str(), last["result-code"].as_i64()),
        (Some("failure"), Some(100)),
        "trial failed"
    );
}

#[test]
fn encrypted_update_to_the_device_key() {
    let nginx = Nginx::start();
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    // The device's public key, as a vendor would read it from `suit-agent info`.
    std::fs::write(work.path().join("device.pub.pem"), dev.public_key_pem()).unwrap();
    let v2 = image(2, 200 * 1024 + 7);
    let env = envelope(
        work.path(),
        "v2",
        2,
        CLASS,
        &v2,
        &nginx.url("v2.img.enc"),
        "[component.encryption]\nrecipient = \"device.pub.pem\"\ncontent-alg = \"A256GCM\"\n",
    );
    nginx.put("v2.suit", &env);
    nginx.put(
        "v2.img.enc",
        &std::fs::read(work.path().join("v2.img.enc")).unwrap(),
    );
    dev.ok(&["install", &nginx.url("v2.suit")]);
    assert_eq!(
        dev.slot_image("slot-b.img", v2.len()),
        v2,
        "the slot holds the plaintext"
    );
    assert_eq!(dev.reboot(), 'B');
    assert!(dev.ok(&["boot-check"]).contains("confirmed"));
    assert_eq!(dev.floor(), Some(2));
}

#[test]
fn interrupted_download_resumes_with_range() {
    let nginx = Nginx::start();
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    // 1.5 MiB at 512 KiB/s: about three seconds of transfer.
    let v2 = image(2, 3 * 512 * 1024);
    nginx.put(
        "v2.suit",
        &envelope(
            work.path(),
            "v2",
            2,
            CLASS,
            &v2,
            &nginx.url("slow/v2.img"),
            "",
        ),
    );
    nginx.put("slow/v2.img", &v2);
    let mut child = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .args(["--tee", "simulator", "--config"])
        .arg(&dev.config)
        .args(["install", &nginx.url("v2.suit")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Power cut once part of the payload is staged.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partial = walk(&dev.path("staging"))
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".partial"))
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .max();
        if partial.is_some_and(|n| n > 256 * 1024) {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dev.path("slot-b.img").exists(),
        "nothing written before approval"
    );

    dev.ok(&["install", &nginx.url("v2.suit")]);
    assert_eq!(dev.slot_image("slot-b.img", v2.len()), v2);
    let payload: Vec<_> = nginx
        .requests()
        .into_iter()
        .filter(|r| r.uri == "/slow/v2.img")
        .collect();
    assert_eq!(payload.len(), 2, "{payload:?}");
    let resumed = &payload[1];
    assert_eq!(resumed.status, 206, "{payload:?}");
    assert!(
        resumed
            .range
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-")),
        "{payload:?}"
    );
    assert!(resumed.body_bytes < v2.len() as u64);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn offline_update_from_a_file() {
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    let v2 = image(2, 10_000);
    // A USB stick: envelope and payload side by side, the URI a file:// URL.
    let usb = work.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    std::fs::write(usb.join("v2.img"), &v2).unwrap();
    let url = format!("file://{}/v2.img", usb.display());
    let env = envelope(work.path(), "v2", 2, CLASS, &v2, &url, "");
    std::fs::write(usb.join("update.suit"), env).unwrap();
    dev.ok(&["install", usb.join("update.suit").to_str().unwrap()]);
    assert_eq!(dev.slot_image("slot-b.img", v2.len()), v2);
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let dev = Device::new(true);
    let out = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .args(["--config", "/nonexistent.toml", "info"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = dev.agent(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    // Without OP-TEE support in this build, --tee optee says so.
    let out = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .arg("--config")
        .arg(&dev.config)
        .args(["--tee", "optee", "info"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // The simulator announces itself loudly.
    let out = dev.agent(&["info"]);
    assert!(text(&out.stderr).contains("THIS IS NOT A TEE"));
    // Nothing to roll back, nothing to confirm: exit 3.
    assert_eq!(dev.agent(&["rollback"]).status.code(), Some(3));
    assert_eq!(dev.agent(&["confirm"]).status.code(), Some(3));
}

/// A TA session that, like an attacker in the normal world, rewrites the staged payload right
/// after the TA approved it (time of check → time of use).
struct SwapAfterApproval {
    inner: suit_host::tee::simulator::SimulatorSession,
    staging: PathBuf,
}

impl suit_host::tee::Tee for SwapAfterApproval {
    fn backend(&self) -> suit_host::tee::Backend {
        self.inner.backend()
    }

    fn invoke(
        &mut self,
        command: suit_shared::abi::CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<suit_host::tee::RawOutput, suit_host::tee::TeeError> {
        let out = self.inner.invoke(
            command,
            request,
            data_in,
            response_capacity,
            data_out_capacity,
        )?;
        if command == suit_shared::abi::CommandId::PayloadFinal {
            for staged in walk(&self.staging).into_iter().filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("component-"))
            }) {
                let mut bytes = std::fs::read(&staged).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x01;
                std::fs::write(&staged, bytes).unwrap();
            }
        }
        Ok(out)
    }
}

fn toctou(extra_spec: &str, encrypt: bool) -> (suit_host::agent::update::AgentError, Device) {
    use suit_host::agent::config::Config;
    use suit_host::tee::simulator::{SimulatorConfig, SimulatorSession};
    let nginx = Nginx::start();
    let dev = Device::new(true);
    let work = tempfile::tempdir().unwrap();
    let config = Config::load(&dev.config).unwrap();
    let anchor =
        suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem")).unwrap();
    let mut sim = SimulatorConfig::new(dev.path("state/simulated-ta"), vec![anchor]);
    sim.class_id = suit_host::tool::spec::class_uuid(sim.vendor_id, CLASS);
    let session = SimulatorSession::connect(sim).unwrap();
    if encrypt {
        std::fs::write(work.path().join("device.pub.pem"), dev.public_key_pem()).unwrap();
    }
    let v2 = image(2, 80 * 1024);
    let served = if encrypt { "v2.img.enc" } else { "v2.img" };
    let env = envelope(
        work.path(),
        "v2",
        2,
        CLASS,
        &v2,
        &nginx.url(served),
        extra_spec,
    );
    nginx.put("v2.suit", &env);
    nginx.put(served, &std::fs::read(work.path().join(served)).unwrap());
    let tee = SwapAfterApproval {
        inner: session,
        staging: dev.path("staging"),
    };
    let mut agent = suit_host::agent::update::Agent::new(
        config,
        Box::new(tee),
        Box::new(|| {
            Box::new(suit_host::agent::fetch::progress::NoProgress)
                as Box<dyn suit_host::agent::fetch::progress::Progress>
        }),
    )
    .unwrap();
    let err = agent.install(&nginx.url("v2.suit")).unwrap_err();
    drop(agent);
    (err, dev)
}

#[test]
fn staged_payload_changed_after_approval_is_not_activated() {
    let (err, dev) = toctou("", false);
    assert!(
        matches!(err, suit_host::agent::update::AgentError::ReadBack { .. }),
        "{err}"
    );
    assert_eq!(dev.var_or_default("BOOT_ORDER"), "A B", "no trial armed");
    assert_eq!(dev.info()["install"], "idle", "nothing committed");
}

#[test]
fn staged_ciphertext_changed_after_approval_is_not_activated() {
    let (err, dev) = toctou(
        "[component.encryption]\nrecipient = \"device.pub.pem\"\n",
        true,
    );
    assert_eq!(err.category(), suit_shared::Category::Decryption, "{err}");
    assert_eq!(dev.var_or_default("BOOT_ORDER"), "A B", "no trial armed");
    assert_eq!(dev.info()["install"], "idle", "nothing committed");
}

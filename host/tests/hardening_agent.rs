//! Hardening of the agent (issue 9): items 5 (boot-check alarm), 12 (no https → http
//! redirect), 15 (config file trust, systemd sandbox) and 16 (what a slot holds after an
//! install). The real `suit-agent` binary with the simulator TA, nginx on loopback, slots in
//! files and in loop devices (root only).

#[path = "support/agent_config.rs"]
mod agent_config;
#[path = "support/debian.rs"]
mod debian;
#[path = "support/nginx.rs"]
mod nginx;

use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use agent_config::{agent_ok, run_agent, AgentConfig};
use nginx::Nginx;
use serde_json::Value;
use suit_host::agent::config::{BootConfig, Config, HttpConfig, RetryPolicy};
use suit_host::agent::fetch::{progress::NoProgress, FetchError, Fetcher, Progress, Source};
use suit_host::agent::storage::{self, VerifyError};
use suit_host::agent::update::{Agent, AgentError};
use suit_host::agent::Slot;
use suit_host::tee::simulator::{SimulatorConfig, SimulatorSession};
use suit_host::tee::Tee;
use suit_shared::abi::CommandId;
use suit_shared::digest::{DigestAlg, Hasher};

const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

/// Deterministic image content distinct per version.
fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[version as usize % 4] ^ version
        })
        .collect()
}

/// A loop device over a file, detached at drop.
struct LoopDevice {
    dev: PathBuf,
}

impl LoopDevice {
    /// Attaches `file`; `None` (with a note) where loop devices cannot be used (not root).
    fn attach(file: &Path) -> Option<LoopDevice> {
        if !is_root() {
            eprintln!("not root: loop-device slot not tested here");
            return None;
        }
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {}", text(&out.stderr));
        Some(LoopDevice {
            dev: PathBuf::from(text(&out.stdout).trim()),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A simulated device: boot state, agent config, TA state in a temp dir; slot A a file, slot
/// B a file or the given path (a block device).
struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Device {
    fn new(slot_b: Option<&Path>) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("slot-a.img"), image(1, 64 * 1024)).unwrap();
        let config = AgentConfig {
            slot_b: slot_b.map(Path::to_path_buf),
            quick_retry: true,
            ..AgentConfig::new(d)
        }
        .write();
        Device { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn agent(&self, args: &[&str]) -> Output {
        run_agent(&self.config, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        agent_ok(&self.config, args)
    }

    fn var(&self, key: &str) -> String {
        std::fs::read_to_string(self.path("bootstate"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{key} not in bootstate"))
            .trim_matches('"')
            .to_string()
    }

    /// What the image's init does at boot (RAUC semantics on the boot-state file).
    fn reboot(&self) -> String {
        let order = self.var("BOOT_ORDER");
        let left = |s: &str| self.var(&format!("BOOT_{s}_LEFT")).parse::<u32>().unwrap();
        let slot = order
            .split_whitespace()
            .find(|s| left(s) > 0)
            .expect("a bootable slot")
            .to_string();
        let mut lines = vec![format!("BOOT_ORDER={order}")];
        for s in ["A", "B"] {
            let n = if s == slot { left(s) - 1 } else { left(s) };
            lines.push(format!("BOOT_{s}_LEFT={n}"));
        }
        std::fs::write(self.path("bootstate"), lines.join("\n") + "\n").unwrap();
        std::fs::write(self.path("booted-slot"), format!("{slot}\n")).unwrap();
        slot
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Installs sequence 2 (`v2`, served by `nginx`) into slot B and boots it.
    fn install_v2_and_reboot(&self, nginx: &Nginx, v2: &[u8]) {
        let work = self.path("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("v2.img"), v2).unwrap();
        std::fs::write(
            work.join("v2.toml"),
            format!(
                "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"v2.img\"\nuri = \"{}\"\n",
                nginx.url("v2.img")
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
            .arg("create")
            .arg("--spec")
            .arg(work.join("v2.toml"))
            .arg("--out")
            .arg(work.join("v2.suit"))
            .arg("--key")
            .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        nginx.put("v2.img", v2);
        nginx.put("v2.suit", &std::fs::read(work.join("v2.suit")).unwrap());
        let out = self.ok(&["install", &nginx.url("v2.suit")]);
        assert!(out.contains("installed sequence 2 into slot B"), "{out}");
        assert_eq!(self.reboot(), "B");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

// ---- item 5: boot-check raises an alarm when its committed install vanished ----

#[test]
fn boot_check_raises_an_alarm_when_the_committed_install_vanished() {
    let nginx = Nginx::start();
    let dev = Device::new(None);
    dev.ok(&["info"]);
    // Root in Linux keeps a copy of the TA's (REE-FS) storage from before the install and
    // puts it back during the trial: the TA then holds no pending install, as after a
    // ROLLBACK by another TEE client.
    let ta_state = dev.path("state/simulated-ta");
    copy_dir(&ta_state, &dev.path("ta-before"));
    dev.install_v2_and_reboot(&nginx, &image(2, 200 * 1024));
    copy_dir(&dev.path("ta-before"), &ta_state);

    let out = dev.agent(&["boot-check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("SUIT-AGENT: ALARM: the TA no longer holds the committed install of sequence 2 while its trial slot B runs"),
        "{stdout}"
    );
    // Nothing confirmed slot B: it is marked bad and the device falls back to A.
    assert_eq!(dev.var("BOOT_ORDER"), "A B");
    assert_eq!(dev.var("BOOT_B_LEFT"), "0");
    let status = dev.status();
    assert_eq!(status["last-outcome"]["result"], "vanished", "{status}");
    assert_eq!(status["update"], Value::Null);
    assert_eq!(dev.reboot(), "A");
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("slot A running, nothing pending"), "{out}");
}

#[test]
fn boot_check_after_an_interrupted_confirmation_raises_no_alarm() {
    let nginx = Nginx::start();
    let dev = Device::new(None);
    dev.install_v2_and_reboot(&nginx, &image(2, 100 * 1024));
    // A power cut right after CONFIRM: the TA confirmed, the journal still says committed.
    let journal = dev.path("state/journal.json");
    let before = std::fs::read(&journal).unwrap();
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("confirmed slot B"), "{out}");
    std::fs::write(&journal, before).unwrap();

    let out = dev.ok(&["boot-check"]);
    assert!(!out.contains("ALARM"), "{out}");
    assert_eq!(dev.var("BOOT_ORDER"), "B A");
    assert_eq!(dev.status()["last-outcome"]["result"], "confirmed");
}

/// A TA session in which the pending install is rolled back while the agent streams the
/// trial slot for CONFIRM (as another TEE client could do at that moment).
struct RollbackDuringConfirm {
    inner: SimulatorSession,
    rolled_back: bool,
}

impl Tee for RollbackDuringConfirm {
    fn backend(&self) -> suit_host::tee::Backend {
        self.inner.backend()
    }

    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<suit_host::tee::RawOutput, suit_host::tee::TeeError> {
        if command == CommandId::ConfirmUpdate && !self.rolled_back {
            self.rolled_back = true;
            Tee::rollback(&mut self.inner).unwrap();
        }
        self.inner.invoke(
            command,
            request,
            data_in,
            response_capacity,
            data_out_capacity,
        )
    }
}

#[test]
fn boot_check_raises_an_alarm_when_the_install_vanishes_during_confirmation() {
    let nginx = Nginx::start();
    let dev = Device::new(None);
    dev.install_v2_and_reboot(&nginx, &image(2, 150 * 1024));
    let anchor =
        suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem")).unwrap();
    let sim = SimulatorConfig::new(dev.path("state/simulated-ta"), vec![anchor]);
    let tee = RollbackDuringConfirm {
        inner: SimulatorSession::connect(sim).unwrap(),
        rolled_back: false,
    };
    let mut agent = Agent::new(
        Config::load(&dev.config).unwrap(),
        Box::new(tee),
        Box::new(|| Box::new(NoProgress) as Box<dyn Progress>),
    )
    .unwrap();
    let err = agent.boot_check().unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::InstallVanished {
                slot: Slot::B,
                sequence_number: 2
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), 4);
    drop(agent);
    assert_eq!(dev.var("BOOT_ORDER"), "A B");
    assert_eq!(dev.var("BOOT_B_LEFT"), "0");
    assert_eq!(dev.status()["last-outcome"]["result"], "vanished");
}

// ---- item 12: https → http redirects are refused ----

fn fetcher(ca: &Path) -> Fetcher {
    let http = HttpConfig {
        ca_files: vec![ca.to_path_buf()],
        system_roots: false,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
    };
    let retry = RetryPolicy {
        attempts: NonZeroU32::new(2).unwrap(),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(50),
    };
    Fetcher::new(&http, &retry).unwrap()
}

#[test]
fn https_redirect_to_http_is_refused() {
    let nginx = Nginx::start();
    let payload = image(7, 50_000);
    nginx.put("fw.bin", &payload);
    let client = fetcher(&nginx.ca_file());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fw.bin");
    let fetch = |url: String| {
        client.fetch(
            &Source::parse(&url).unwrap(),
            &dest,
            1 << 20,
            &mut NoProgress,
        )
    };

    let err = fetch(nginx.https_url("to-http/fw.bin")).unwrap_err();
    assert!(matches!(err, FetchError::Downgrade { .. }), "{err}");
    assert!(
        err.to_string().contains("downgrade from https to http"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(!dest.exists());
    assert!(
        nginx.requests().iter().all(|r| r.uri != "/fw.bin"),
        "the plain-HTTP target was requested: {:?}",
        nginx.requests()
    );

    // Upgrades and https → https are followed.
    fetch(nginx.url("to-https/fw.bin")).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    std::fs::remove_file(&dest).unwrap();
    fetch(nginx.https_url("to-https/fw.bin")).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);

    // Reports are not sent in the clear either.
    let url = url::Url::parse(&nginx.https_url("to-http/reports/r")).unwrap();
    let err = client
        .post(&url, "application/suit-report+cose", b"report")
        .unwrap_err();
    assert!(matches!(err, FetchError::Downgrade { .. }), "{err}");
    assert!(nginx.requests().iter().all(|r| r.uri != "/reports/r"));
}

// ---- item 15: config file trust; systemd sandbox ----

#[test]
fn group_or_world_writable_config_is_refused() {
    let dev = Device::new(None);
    let config = dev.config.clone();
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&config, 0o644);
    dev.ok(&["info"]);

    for (mode, who) in [
        (0o664, "writable by its group (mode 0664)"),
        (0o646, "writable by everyone (mode 0646)"),
        (0o666, "writable by its group and everyone (mode 0666)"),
    ] {
        chmod(&config, mode);
        let out = dev.agent(&["info"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode:o}: {stderr}");
        assert!(
            stderr.contains("refusing the config file") && stderr.contains(who),
            "{stderr}"
        );
        assert!(stderr.contains("commands run as root"), "{stderr}");
    }
    chmod(&config, 0o600);
    dev.ok(&["info"]);

    // A directory others may write to lets them replace the file.
    chmod(dev.dir.path(), 0o777);
    let out = dev.agent(&["info"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("its directory") && text(&out.stderr).contains("everyone"),
        "{}",
        text(&out.stderr)
    );
    chmod(dev.dir.path(), 0o700);

    // Through a symlink, the file it names counts.
    let link = dev.path("link.toml");
    std::os::unix::fs::symlink(&config, &link).unwrap();
    chmod(&config, 0o666);
    let out = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .args(["--tee", "simulator", "--config"])
        .arg(&link)
        .arg("info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    chmod(&config, 0o644);

    if is_root() {
        // Owned by neither root nor the running user.
        let status = Command::new("chown")
            .arg("12345")
            .arg(&config)
            .status()
            .unwrap();
        assert!(status.success());
        let out = dev.agent(&["info"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("owned by uid 12345"),
            "{}",
            text(&out.stderr)
        );
    }
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(repo().join("host/systemd").join(name)).unwrap()
}

/// The values of `key=` lines in a unit, split at white space.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

#[test]
fn units_fit_the_default_configuration() {
    let config = Config::parse(
        "[[component]]\nid = [\"rootfs\"]\nslot-a = { path = \"/dev/a\" }\nslot-b = { path = \"/dev/b\" }\n",
        Path::new("defaults.toml"),
    )
    .unwrap();
    let BootConfig::File(boot) = &config.boot else {
        panic!("the default boot backend is a file")
    };
    let needed = [
        config.state_dir.clone(),
        config.staging_dir.clone(),
        boot.path.clone(),
    ];
    let under = |path: &Path, dirs: &[String]| {
        dirs.iter()
            .any(|d| path.starts_with(d.trim_start_matches('-')))
    };
    let boot_check = unit("suit-agent-boot-check.service");
    let daemon = unit("suit-agent.service");
    // boot-check must wait for the file systems of its state and boot state (/data may be
    // mounted nofail, late).
    let mounts = values(&boot_check, "RequiresMountsFor");
    for path in &needed {
        assert!(under(path, &mounts), "RequiresMountsFor misses {path:?}");
    }
    // The read-only system must leave them writable.
    for unit in [&boot_check, &daemon] {
        let writable = values(unit, "ReadWritePaths");
        for path in &needed {
            assert!(under(path, &writable), "ReadWritePaths misses {path:?}");
        }
        assert_eq!(values(unit, "ProtectSystem"), ["strict"]);
        assert_eq!(values(unit, "CapabilityBoundingSet"), ["CAP_SYS_BOOT"]);
    }
    // A configuration error (exit 2) is not restarted every 30 s for ever.
    assert!(values(&daemon, "RestartPreventExitStatus").contains(&"2".to_string()));
}

#[test]
fn units_pass_systemd_analyze() {
    let out = Command::new("bash")
        .arg(repo().join("host/systemd/verify.sh"))
        .output()
        .unwrap();
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if out.status.code() == Some(77) {
        eprintln!("{report}");
        return;
    }
    assert!(out.status.success(), "{report}");
    assert!(report.contains("clean"), "{report}");
}

// ---- item 16: what a slot holds after an install ----

#[test]
fn block_device_slot_holds_the_image_then_zeros() {
    let backing = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(backing.path(), vec![0xa5; 1024 * 1024]).unwrap();
    let Some(slot_b) = LoopDevice::attach(backing.path()) else {
        return;
    };
    let nginx = Nginx::start();
    let dev = Device::new(Some(&slot_b.dev));
    // Not a multiple of the 512-byte block: the partial block is zeroed too.
    let v2 = image(2, 300 * 1024 + 123);
    dev.install_v2_and_reboot(&nginx, &v2);
    let content = std::fs::read(&slot_b.dev).unwrap();
    assert_eq!(content.len(), 1024 * 1024);
    // The image, zero padding and its dm-verity tree (verified boot), then zeros.
    let (_, slot_image) = suit_shared::verity::slot_image(&v2, sha256(&v2).as_bytes()).unwrap();
    assert_eq!(&content[..slot_image.len()], &slot_image[..]);
    let stale = content[slot_image.len()..].iter().position(|&b| b != 0);
    assert_eq!(
        stale.map(|i| i + slot_image.len()),
        None,
        "old bytes after the image and its hash tree"
    );
    let out = dev.ok(&["boot-check"]);
    assert!(out.contains("confirmed slot B"), "{out}");
}

fn sha256(data: &[u8]) -> suit_shared::digest::DigestValue {
    let mut h = Hasher::new(DigestAlg::Sha256);
    h.update(data);
    h.finalize()
}

#[test]
fn read_back_covers_the_whole_slot() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(3, 10_000);
    let digest = sha256(&img);

    // A file slot is exactly the image: finish truncates a longer one, verify checks it.
    let file = dir.path().join("slot.img");
    std::fs::write(&file, vec![0xff; 50_000]).unwrap();
    let out = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&out, &img, 0).unwrap();
    storage::finish(&out, img.len() as u64).unwrap();
    storage::verify(&file, img.len() as u64, &digest).unwrap();
    std::fs::write(&file, [&img[..], b"x"].concat()).unwrap();
    assert!(matches!(
        storage::verify(&file, img.len() as u64, &digest),
        Err(VerifyError::Length {
            expected: 10_000,
            actual: 10_001
        })
    ));

    // A device slot: image, then zeros to the end, and a stray byte in the tail is found.
    let backing = dir.path().join("dev.img");
    std::fs::write(&backing, vec![0x5a; 256 * 1024]).unwrap();
    let Some(loopdev) = LoopDevice::attach(&backing) else {
        return;
    };
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(&loopdev.dev)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&out, &img, 0).unwrap();
    storage::finish(&out, img.len() as u64).unwrap();
    storage::verify(&loopdev.dev, img.len() as u64, &digest).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&out, &[1], 200_000).unwrap();
    out.sync_all().unwrap();
    assert!(matches!(
        storage::verify(&loopdev.dev, img.len() as u64, &digest),
        Err(VerifyError::Tail { offset: 200_000 })
    ));
    assert!(matches!(
        storage::verify(&loopdev.dev, img.len() as u64, &sha256(b"other")),
        Err(VerifyError::Digest)
    ));
}

//! Fixtures of the QEMU end-to-end scenarios and of `make run`: a device (OP-TEE with the SUIT
//! TA, the aarch64 `suit-agent` started by /init's boot-check, A/B slot disks holding ext4
//! firmware images), the vendor side (firmware images, envelopes made with `suit-tool`), and
//! the guest-side helpers whose console lines carry every verdict.
//!
//! ```no_run
//! use suit_tests::device::{AgentRun, Device, Firmware};
//! let work = std::path::Path::new("build/my-work");
//! let v1 = Firmware::build(work, "v1", true, 4).unwrap();
//! let mut dev = Device::new("my_scenario", &v1).unwrap();
//! let run = dev.boot("info now").unwrap();            // guest script, with the helpers below
//! assert_eq!(run.app_version(), Some("v1"));
//! let key = run.info("now").unwrap()["device-public-key"].clone();
//! ```
//!
//! Guest helpers (busybox sh, defined before every scenario script):
//! * `agent LABEL ARGS...` runs `suit-agent ARGS` (its log as plain lines) and prints
//!   `SUIT-RESULT: LABEL exit=N secs=S | <the agent's last SUIT-AGENT line>` ([`AgentRun::step`]);
//! * `info LABEL` prints `SUIT-INFO: LABEL <suit-agent info --json on one line>`
//!   ([`AgentRun::info`]);
//! * `bootstate LABEL` prints `SUIT-STATE: LABEL <the boot state file on one line>`
//!   ([`AgentRun::bootstate`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use crate::qemu::{
    build_command, ensure_agent, ensure_ta, make_ext4, repo_root, Disk, Error, Machine, Outcome,
    Result, Run, Stop,
};

/// Vendor and class names compiled into the TA by default (ta/build.rs, ta/ta.mk).
pub const VENDOR: &str = "example.com";
/// See [`VENDOR`].
pub const CLASS: &str = "qemu-armv8a";
/// The development vendor key: its public half is the TA's default trust anchor.
pub const VENDOR_KEY: &str = "keys/dev-vendor-es384.priv.pem";
/// The guest agent's configuration, installed as /etc/suit-agent/config.toml.
pub const AGENT_CONFIG: &str = "qemu/agent-config.toml";

/// Shell helpers put before every scenario script (see the module documentation).
const GUEST_HELPERS: &str = r#"set -o pipefail
uptime_s() { cut -d' ' -f1 /proc/uptime; }
agent() {
    label=$1; shift
    t0=$(uptime_s)
    SUIT_LOG=info suit-agent "$@" 2>&1 | tee /tmp/agent.out
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }')
    echo "SUIT-RESULT: $label exit=$rc secs=$secs | $(grep '^SUIT-AGENT:' /tmp/agent.out | tail -n 1)"
}
info() { echo "SUIT-INFO: $1 $(suit-agent info --json 2>/dev/null | tr -d '\n')"; }
bootstate() { echo "SUIT-STATE: $1 $(tr '\n' ' ' < /data/boot/bootstate)"; }
"#;

/// Builds `suit-tool` (release, as `make host`) once per process and returns its path.
pub fn suit_tool() -> Result<PathBuf> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let built = ONCE.get_or_init(|| {
        // as `make host`: rustup's cargo from PATH (it honours rust-toolchain.toml; $CARGO
        // may name another toolchain's), both binaries, so that the two share their build
        let out = build_command("cargo")
            .args(["build", "--release", "-p", "suit-host"])
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build of suit-tool failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    built.clone().map_err(Error)?;
    Ok(repo_root().join("target/release/suit-tool"))
}

/// A fresh directory for a scenario's vendor-side files: `build/qemu-tests/<name>-vendor/`.
pub fn work_dir(name: &str) -> Result<PathBuf> {
    let dir = repo_root()
        .join("build/qemu-tests")
        .join(format!("{name}-vendor"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    Ok(dir)
}

/// Runs `suit-tool ARGS` in `dir`; its standard output when it exits 0.
pub fn tool(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(suit_tool()?)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error(format!("cannot run suit-tool: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error(format!(
            "suit-tool {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |e| Error(format!("cannot {what} {}: {e}", path.display()))
}

/// A firmware image: an ext4 file system whose `app/start` prints `APP-VERSION: <version>`
/// and whose `app/health` exits 0 (healthy) or 1. /init mounts the running slot at /slot and
/// runs `/slot/app/start`; the agent's health check is `/slot/app/health`.
#[derive(Debug, Clone)]
pub struct Firmware {
    /// E.g. `v2`.
    pub version: String,
    /// The ext4 image.
    pub image: PathBuf,
}

impl Firmware {
    /// Makes `<dir>/<version>.img` of `size_mib` MiB.
    pub fn build(dir: &Path, version: &str, healthy: bool, size_mib: u32) -> Result<Firmware> {
        let tree = dir.join(format!("{version}-tree"));
        let app = tree.join("app");
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(&app).map_err(io("create", &app))?;
        let health = if healthy {
            "#!/bin/sh\necho \"APP-HEALTH: ok\"\nexit 0\n".to_string()
        } else {
            format!("#!/bin/sh\necho \"APP-HEALTH: {version} is broken\"\nexit 1\n")
        };
        let start = format!("#!/bin/sh\necho \"APP-VERSION: {version}\"\n");
        for (name, text) in [("start", start), ("health", health)] {
            let path = app.join(name);
            fs::write(&path, text).map_err(io("write", &path))?;
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(io("chmod", &path))?;
        }
        let image = dir.join(format!("{version}.img"));
        make_ext4(&tree, &image, size_mib, version)?;
        Ok(Firmware {
            version: version.to_string(),
            image,
        })
    }

    /// The image's size in bytes.
    pub fn size(&self) -> Result<u64> {
        Ok(fs::metadata(&self.image)
            .map_err(io("stat", &self.image))?
            .len())
    }
}

/// What the vendor publishes for one firmware: a signed envelope and the payload the device
/// downloads (the image, or its ciphertext when encrypted).
#[derive(Debug, Clone)]
pub struct Release {
    /// The SUIT envelope.
    pub envelope: PathBuf,
    /// The file to serve at the manifest's payload URI.
    pub payload: PathBuf,
}

impl Release {
    /// `suit-tool create` with the development vendor key: `<dir>/<name>.suit` for `firmware`
    /// with `sequence`, vendor [`VENDOR`] and class `class`, payload fetched from `uri`; when
    /// `recipient` (a device public key, SPKI PEM) is given, the payload is encrypted to it
    /// (ECDH-ES+A256KW, A256GCM).
    pub fn create(
        dir: &Path,
        name: &str,
        sequence: u64,
        class: &str,
        firmware: &Firmware,
        uri: &str,
        recipient: Option<&Path>,
    ) -> Result<Release> {
        let image = firmware.image.display();
        let mut spec = format!(
            "sequence-number = {sequence}\nvendor = \"{VENDOR}\"\nclass = \"{class}\"\n\
             [text]\ndescription = \"firmware {version}\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"{image}\"\nuri = \"{uri}\"\n",
            version = firmware.version,
        );
        let ciphertext = dir.join(format!("{name}.enc"));
        if let Some(key) = recipient {
            spec += &format!(
                "[component.encryption]\nrecipient = \"{}\"\ncontent-alg = \"A256GCM\"\nciphertext = \"{}\"\n",
                key.display(),
                ciphertext.display()
            );
        }
        let spec_path = dir.join(format!("{name}.toml"));
        fs::write(&spec_path, spec).map_err(io("write", &spec_path))?;
        let envelope = dir.join(format!("{name}.suit"));
        let key = repo_root().join(VENDOR_KEY);
        tool(
            dir,
            &[
                "create",
                "--spec",
                &spec_path.to_string_lossy(),
                "--out",
                &envelope.to_string_lossy(),
                "--key",
                &key.to_string_lossy(),
            ],
        )?;
        let payload = if recipient.is_some() {
            ciphertext
        } else {
            firmware.image.clone()
        };
        Ok(Release { envelope, payload })
    }
}

/// Writes the device public key of a `suit-agent info --json` answer to `out` as SPKI PEM,
/// the form `suit-tool` encrypts to.
pub fn device_key_pem(info: &Value, out: &Path) -> Result<()> {
    let pem = info["device-public-key-pem"]
        .as_str()
        .ok_or_else(|| Error(format!("no device-public-key-pem in {info}")))?;
    fs::write(out, pem).map_err(io("write", out))
}

/// Writes the device signing key (tokens, reports) of a `suit-agent info --json` answer to
/// `out` as SPKI PEM, the form `suit-tool verify-token` / `verify-report` read.
pub fn signing_key_pem(info: &Value, out: &Path) -> Result<()> {
    let pem = info["signing-public-key-pem"]
        .as_str()
        .ok_or_else(|| Error(format!("no signing-public-key-pem in {info}")))?;
    fs::write(out, pem).map_err(io("write", out))
}

/// The anti-rollback floor of the component `rootfs` in a `suit-agent info --json` answer.
pub fn rootfs_floor(info: &Value) -> Option<u64> {
    info["floors"]
        .as_array()?
        .iter()
        .find(|f| f["component"] == "['rootfs']")
        .and_then(|f| f["floor"].as_u64())
}

/// A device under test: a [`Machine`] with the TA, the agent and its configuration, firmware
/// in slot A and an empty file system in slot B.
pub struct Device {
    /// The machine (disks, network, boots).
    pub vm: Machine,
}

impl Device {
    /// A device in `build/qemu-tests/<name>/` with `factory` in slot A.
    pub fn new(name: &str, factory: &Firmware) -> Result<Device> {
        Device::at(repo_root().join("build/qemu-tests").join(name), factory)
    }

    /// [`Device::new`] in the directory `dir`.
    ///
    /// Manufacturing is played too: `factory` is flashed into slot A, then a factory boot
    /// (`boot-1`, the device in recovery: nothing is approved yet) runs
    /// `suit-agent factory-install` of its signed envelope (sequence number 0, from a USB stick
    /// removed afterwards), so that the TA approves slot A for boot — no trust on first use.
    pub fn at(dir: PathBuf, factory: &Firmware) -> Result<Device> {
        ensure_ta()?;
        let agent = ensure_agent()?;
        let mut vm = Machine::at(dir)?;
        vm.agent(agent, Some(&repo_root().join(AGENT_CONFIG)));
        vm.set_slot(Disk::SlotA, &factory.image)?;
        let empty = vm.dir().join("empty-tree");
        fs::create_dir_all(&empty).map_err(io("create", &empty))?;
        let blank = vm.dir().join("blank.img");
        make_ext4(&empty, &blank, 4, "blank")?;
        vm.set_slot(Disk::SlotB, &blank)?;
        let mut dev = Device { vm };
        dev.factory_install(factory)?;
        Ok(dev)
    }

    /// The factory boot of [`Device::at`].
    fn factory_install(&mut self, factory: &Firmware) -> Result<()> {
        let stick = self.vm.dir().join("factory-usb");
        fs::create_dir_all(&stick).map_err(io("create", &stick))?;
        let image = stick.join("firmware.img");
        fs::copy(&factory.image, &image).map_err(io("copy", &image))?;
        let fw = Firmware {
            version: factory.version.clone(),
            image,
        };
        Release::create(
            &stick,
            "firmware",
            0,
            CLASS,
            &fw,
            "file:///media/usb/firmware.img",
            None,
        )?;
        let size_mib = u32::try_from(fw.size()? >> 20)
            .unwrap_or(u32::MAX)
            .saturating_add(8);
        self.vm.set_usb(&stick, size_mib)?;
        let run = self.boot("agent factory factory-install /media/usb/firmware.suit --slot A")?;
        let _ = fs::remove_file(self.vm.disk_path(Disk::Usb));
        self.vm.no_script();
        match run.step("factory") {
            Ok(step) if step.exit == 0 => Ok(()),
            _ => run.fail("the factory install of slot A failed"),
        }
    }

    /// Boots with `script` (after the guest helpers) until the guest powers off.
    pub fn boot(&mut self, script: &str) -> Result<Run> {
        self.boot_until(script, Stop::PowerOff)
    }

    /// Boots with `script` (after the guest helpers) and stops as `stop` says.
    pub fn boot_until(&mut self, script: &str, stop: Stop) -> Result<Run> {
        self.vm.script(&format!("{GUEST_HELPERS}{script}\n"));
        self.vm.boot_until(stop)
    }

    /// The agent's journal (`/data/suit-agent/journal.json`), read from the data disk.
    pub fn journal(&self) -> Result<Option<Value>> {
        self.vm
            .read_data_file("suit-agent/journal.json")?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error(format!("the agent's journal is not JSON: {e}")))
            })
            .transpose()
    }
}

/// One `agent LABEL ...` of a guest script.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// suit-agent's exit status.
    pub exit: i32,
    /// How long it ran, in seconds (guest uptime).
    pub secs: f64,
    /// Its last `SUIT-AGENT:` line (empty if none).
    pub said: String,
}

/// Reading the agent's verdicts from a boot's console.
pub trait AgentRun {
    /// The `agent LABEL ...` step of the guest script; an error with the console's end if
    /// the script did not get there.
    fn step(&self, label: &str) -> Result<Step>;
    /// The `info LABEL` answer (GET_INFO through `suit-agent info --json`).
    fn info(&self, label: &str) -> Result<Value>;
    /// The `bootstate LABEL` line: the boot state file's `KEY=value` pairs.
    fn bootstate(&self, label: &str) -> Result<Vec<(String, String)>>;
    /// What /init's `suit-agent boot-check` printed (`SUIT-AGENT:` line) and whether it passed.
    fn boot_check(&self) -> Option<(bool, String)>;
    /// The version the slot's application printed (`APP-VERSION:`), if it ran.
    fn app_version(&self) -> Option<&str>;
}

impl AgentRun for Run {
    fn step(&self, label: &str) -> Result<Step> {
        let prefix = format!("{label} exit=");
        let Some(line) = self
            .markers("SUIT-RESULT:")
            .into_iter()
            .find(|l| l.starts_with(&prefix))
        else {
            return self.fail(&format!("the guest script has no result for {label:?}"));
        };
        let (fields, said) = line.split_once(" | ").unwrap_or((line, ""));
        let field = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .unwrap_or_default()
        };
        Ok(Step {
            exit: field("exit=").parse().unwrap_or(-1),
            secs: field("secs=").parse().unwrap_or(f64::NAN),
            said: said.trim().to_string(),
        })
    }

    fn info(&self, label: &str) -> Result<Value> {
        let json = labelled(self, "SUIT-INFO:", label)?;
        serde_json::from_str(json).or_else(|e| {
            self.fail(&format!(
                "suit-agent info --json ({label}) did not print JSON ({e}): {json:?}"
            ))
        })
    }

    fn bootstate(&self, label: &str) -> Result<Vec<(String, String)>> {
        // "BOOT_ORDER=B A BOOT_A_LEFT=3 ...": a word without '=' continues the previous value
        let mut pairs: Vec<(String, String)> = Vec::new();
        for word in labelled(self, "SUIT-STATE:", label)?.split_whitespace() {
            match (word.split_once('='), pairs.last_mut()) {
                (Some((k, v)), _) => pairs.push((k.to_string(), v.to_string())),
                (None, Some((_, v))) => {
                    v.push(' ');
                    v.push_str(word);
                }
                (None, None) => {}
            }
        }
        Ok(pairs)
    }

    fn boot_check(&self) -> Option<(bool, String)> {
        let verdict = self.markers("SUIT-BOOTCHECK:").into_iter().next()?;
        let start = self.uart0.find("SUIT-INIT: suit-agent boot-check")?;
        let said = self.uart0[start..]
            .lines()
            .find_map(|l| l.strip_prefix("SUIT-AGENT:"))
            .unwrap_or_default()
            .trim()
            .to_string();
        Some((verdict.starts_with("ok"), said))
    }

    fn app_version(&self) -> Option<&str> {
        self.markers("APP-VERSION:").into_iter().next()
    }
}

/// The rest of the console line `<prefix> <label> <rest>`.
fn labelled<'r>(run: &'r Run, prefix: &str, label: &str) -> Result<&'r str> {
    let found = run.markers(prefix).into_iter().find_map(|l| {
        l.strip_prefix(label)
            .filter(|rest| rest.is_empty() || rest.starts_with(' '))
    });
    match found {
        Some(rest) => Ok(rest.trim()),
        None => run.fail(&format!("the console has no {prefix} {label} line")),
    }
}

/// Looks a key up in `KEY=value` pairs ([`AgentRun::bootstate`], [`Machine::bootstate`]).
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Runs `f` and prints how long it took (`QEMU-PHASE: name: S s`) on stderr.
pub fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    eprintln!(
        "QEMU-PHASE: {name}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    out
}

/// Checks that the TAs of `ta_dir` load in OP-TEE and answer: boots a throwaway device
/// (`build/qemu-tests/<name>/`) with them and the agent; the TA must answer /init's
/// BOOT_VERIFY (a refusal: nothing is approved on that device) and `suit-agent info`. The error names the TA file and quotes what the agent
/// and OP-TEE said.
pub fn preflight(name: &str, ta_dir: &Path) -> Result<()> {
    let tas: Vec<PathBuf> = fs::read_dir(ta_dir)
        .map_err(io("list", ta_dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ta"))
        .collect();
    if tas.is_empty() {
        return Err(Error(format!(
            "preflight: no TA (*.ta) in {}: run `make ta`",
            ta_dir.display()
        )));
    }
    let names = tas
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut vm = Machine::new(name)?;
    vm.agent(ensure_agent()?, Some(&repo_root().join(AGENT_CONFIG)))
        .tas(ta_dir)
        .script(&format!("{GUEST_HELPERS}agent preflight info\n"));
    let run = vm.boot()?;
    // No slot is approved on this throwaway device (the boot stage stops in recovery, so
    // boot-check does not run): the TA answering BOOT_VERIFY and `info` is the check.
    let answered = run.outcome == Outcome::PoweredOff
        && run.contains("is not approved to boot")
        && run.step("preflight").is_ok_and(|s| s.exit == 0)
        && run.contains("secure storage: ");
    if answered {
        return Ok(());
    }
    let agent: Vec<&str> = run
        .lines()
        .filter(|l| l.contains("SUIT-AGENT: FAILED") || l.starts_with("suit-agent: error"))
        .collect();
    let optee: Vec<&str> = run.optee.lines().filter(|l| l.starts_with("E/")).collect();
    Err(Error(format!(
        "preflight: the TA {names} does not load or answer in OP-TEE (BOOT_VERIFY at boot / suit-agent info in QEMU)\n  \
         agent:  {}\n  OP-TEE: {}\n{}",
        if agent.is_empty() { "(nothing)".into() } else { agent.join("\n          ") },
        if optee.is_empty() { "(no error lines)".into() } else { optee.join("\n          ") },
        run.report()
    )))
}

//! QEMU end-to-end harness: boots the OP-TEE QEMUv8 environment (qemu/, see qemu/README.md) on
//! persistent virtio disks, runs a guest script, reads verdicts from the serial log, simulates
//! reboots (a new QEMU on the same disks) and power cuts (SIGKILL of QEMU).
//!
//! ```no_run
//! use suit_tests::qemu::{Machine, Stop};
//! let mut vm = Machine::new("my_scenario").unwrap();       // fresh disks in build/qemu-tests/my_scenario
//! vm.script("echo SUIT-RESULT: $(cat /run/suit/booted-slot)");
//! let run = vm.boot().unwrap();                              // until the guest powers off
//! run.expect_poweroff().unwrap();
//! assert_eq!(run.markers("SUIT-RESULT:"), ["A"]);
//! let cut = vm.boot_until(Stop::KillAt("SUIT-READY".into())).unwrap();   // power cut
//! ```
//!
//! Only one QEMU runs at a time (a process-wide mutex plus a lock file under build/), every
//! boot is bounded by a timeout, and a boot stops early on an OP-TEE core abort/panic or a
//! kernel panic. Logs of both UARTs of every boot stay in the machine's directory; failures
//! print their paths.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// The benches' figure files, shared with host/benches (one writer of summary.json).
#[path = "../../host/benches/support/summary.rs"]
mod bench_summary;

/// Lines that end a boot at once: OP-TEE core faults (secure UART) and Linux panics.
const ABORT_PATTERNS: &[&str] = &["Core data-abort", "Panic", "Kernel panic"];
/// Guest address of the host's test server when networking is on (see [`Machine::network`]).
pub const GUEST_SERVER_URL: &str = "http://10.0.2.100:8080";

/// A harness failure; its text names the log files to look at.
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
// Debug = Display, so that `.unwrap()` in a test prints a readable report.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// The repository root (the parent of the tests crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Records a QEMU scenario's figures as `<stem>.json` in the bench directory (`make bench`'s
/// SUIT_BENCH_DIR, else build/bench) and merges every `*.json` there into `summary.json`, as
/// the benches do. Values are rounded to three decimals.
pub fn record_bench(stem: &str, figures: &[(&str, f64)]) {
    let dir = std::env::var_os("SUIT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/bench"));
    let own: serde_json::Map<String, serde_json::Value> = figures
        .iter()
        .map(|(k, v)| (k.to_string(), ((v * 1000.0).round() / 1000.0).into()))
        .collect();
    bench_summary::write_and_merge(&dir, stem, &own);
}

/// Builds a TA variant (ta/build-ta.sh with the `settings` variables, e.g. `TA_FACTORY=1`)
/// into `work/ta-<name>`; the build log is in the panic message if it fails.
pub fn build_ta_variant(work: &Path, name: &str, settings: &[(&str, &str)]) -> PathBuf {
    let out = work.join(format!("ta-{name}"));
    let run = build_command("bash")
        .arg(repo_root().join("ta/build-ta.sh"))
        .envs(settings.iter().copied())
        .env("TA_OUT_DIR", &out)
        .output()
        .expect("running ta/build-ta.sh");
    assert!(
        run.status.success(),
        "building the {name} TA failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// A command for a build inside a test: without the variables cargo sets for the test
/// process (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...), which a nested cargo would otherwise pass
/// on to build scripts that watch them, making it rebuild (e.g. `ring`) on every alternation
/// between `make` and the tests.
pub fn build_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    const SET_BY_CARGO_TEST: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if SET_BY_CARGO_TEST.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(repo_root()).stdin(Stdio::null());
    cmd
}

/// Runs a repository script once per process (with extra environment variables `envs`) and
/// remembers the outcome.
fn run_script_once(
    cell: &'static OnceLock<std::result::Result<(), String>>,
    script: &str,
    envs: &[(&str, &str)],
) -> Result<()> {
    run_script_once_echo(cell, script, envs, None)
}

/// [`run_script_once`], echoing the lines of the script's stderr that contain `echo` when it
/// succeeds.
fn run_script_once_echo(
    cell: &'static OnceLock<std::result::Result<(), String>>,
    script: &str,
    envs: &[(&str, &str)],
    echo: Option<&str>,
) -> Result<()> {
    let outcome = cell.get_or_init(|| {
        let out = build_command("bash")
            .arg(repo_root().join(script))
            .envs(envs.iter().copied())
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if out.status.success() {
            if let Some(marker) = echo {
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter(|l| l.contains(marker))
                    .for_each(|l| eprintln!("{l}"));
            }
            Ok(())
        } else {
            Err(format!(
                "{script} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    outcome.clone().map_err(Error)
}

/// Whether the machines boot the RPMB variant: QEMU_RPMB unset or 1 (the default), as in
/// qemu/run.sh and qemu/qemu.mk.
pub fn rpmb_default() -> bool {
    std::env::var("QEMU_RPMB").map_or(true, |v| v.trim() != "0")
}

/// The storage the default TA reports in GET_INFO (the beginning of `storage`): RPMB on the
/// RPMB variant, REE-FS on QEMU_RPMB=0 (ta/build-ta.sh picks TA_STORAGE the same way).
pub fn expected_storage() -> &'static str {
    if rpmb_default() {
        "RPMB"
    } else {
        "REE-FS"
    }
}

/// Builds the QEMU environment if needed (qemu/build-env.sh; fast when the cache is warm): the
/// RPMB variant too unless QEMU_RPMB=0 ([`rpmb_default`]).
pub fn ensure_env() -> Result<()> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let rpmb = if rpmb_default() { "1" } else { "0" };
    run_script_once(&ONCE, "qemu/build-env.sh", &[("QEMU_RPMB", rpmb)])
}

/// Builds the RPMB variant of the environment if needed (`QEMU_RPMB=1 qemu/build-env.sh`:
/// kernel with CONFIG_RPMB, optee-os with CFG_RPMB_FS, QEMU 11; see qemu/README.md).
pub fn ensure_rpmb_env() -> Result<()> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    run_script_once(&ONCE, "qemu/build-env.sh", &[("QEMU_RPMB", "1")])
}

/// Builds and signs the TA (ta/build-ta.sh, as `make ta`), once per process. Boots add every
/// `build/ta/*.ta` to the guest's /lib/optee_armtz/ (see [`Machine::tas`] for others).
///
/// The TA's build variables in the test's environment reach the script as they are, e.g.
/// `TA_HEAP_SIZE=163840` to find the smallest heap that passes a scenario (ta/ta.mk); the
/// script's `[ta]` lines (verifiers, stack, heap, signed size) are echoed to the test's stderr,
/// so a run's log says which TA it tested.
pub fn ensure_ta() -> Result<()> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    run_script_once_echo(&ONCE, "ta/build-ta.sh", &[], Some("[ta]"))
}

/// Cross-builds `suit-agent` for the guest with the OP-TEE backend (host/build-aarch64.sh, as
/// `make host-aarch64`), once per process, and returns the binary's path.
pub fn ensure_agent() -> Result<PathBuf> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    run_script_once(&ONCE, "host/build-aarch64.sh", &[])?;
    Ok(repo_root().join("target/aarch64-unknown-linux-gnu/release/suit-agent"))
}

/// One of the persistent disks (virtio-blk-pci, identified in the guest by `serial=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// Slot A (serial `slot-a`): an ext4 image, mounted read-only at /slot when A boots.
    SlotA,
    /// Slot B (serial `slot-b`).
    SlotB,
    /// The data disk (serial `data`, ext4, /data): secure storage, agent state, boot state.
    Data,
    /// Optional USB stick for offline updates (serial `usb`, ext4, /media/usb read-only);
    /// attached only when its image exists, see [`Machine::set_usb`].
    Usb,
}

impl Disk {
    pub fn serial(self) -> &'static str {
        match self {
            Disk::SlotA => "slot-a",
            Disk::SlotB => "slot-b",
            Disk::Data => "data",
            Disk::Usb => "usb",
        }
    }
    /// The guest device path (a symlink made by /init).
    pub fn guest_path(self) -> String {
        format!("/dev/disk/by-id/virtio-{}", self.serial())
    }
}

/// When a boot ends.
#[derive(Clone, Debug)]
pub enum Stop {
    /// Wait until the guest powers off (the end of /init).
    PowerOff,
    /// Power cut: SIGKILL QEMU as soon as a normal-world console line contains this text.
    KillAt(String),
    /// Power cut after this long (from QEMU's start).
    KillAfter(Duration),
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// /init powered the guest off ("SUIT-POWEROFF").
    PoweredOff,
    /// Killed on request ([`Stop::KillAt`] / [`Stop::KillAfter`]).
    Killed,
    /// The time limit was reached; QEMU was killed.
    Timeout,
    /// An OP-TEE core abort/panic or a kernel panic; the offending line.
    Abort(String),
    /// QEMU ended without the power-off marker (e.g. /init died).
    Exited,
}

/// The result of one boot: both consoles and how it ended.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    /// Normal-world console (TF-A, U-Boot, Linux, /init, the scenario), without '\r'.
    pub uart0: String,
    /// OP-TEE's secure console (TA traces).
    pub optee: String,
    pub uart0_path: PathBuf,
    pub optee_path: PathBuf,
    pub elapsed: Duration,
    /// 1 for the first boot of the machine, 2 for the next, ...
    pub boot: usize,
}

impl Run {
    /// Lines of the normal-world console.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.uart0.lines()
    }

    /// The rest of every console line that starts with `prefix`, trimmed, in order.
    /// E.g. `run.markers("SUIT-RESULT:")` for lines `SUIT-RESULT: ok`.
    pub fn markers(&self, prefix: &str) -> Vec<&str> {
        self.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .collect()
    }

    /// Whether the normal-world console contains `needle` anywhere.
    pub fn contains(&self, needle: &str) -> bool {
        self.uart0.contains(needle)
    }

    /// The slot /init booted ("SUIT-READY slot=A"), if it got that far.
    pub fn booted_slot(&self) -> Option<char> {
        self.markers("SUIT-READY slot=")
            .first()
            .and_then(|s| s.chars().next())
    }

    /// The guest script's exit status ("SUIT-SCENARIO: exit N").
    pub fn scenario_exit(&self) -> Option<i32> {
        self.markers("SUIT-SCENARIO: exit")
            .first()
            .and_then(|s| s.parse().ok())
    }

    /// Boot decisions printed by /init ("SUIT-BOOT: ...").
    pub fn boot_decisions(&self) -> Vec<&str> {
        self.markers("SUIT-BOOT:")
    }

    /// Ok if the guest powered off normally and the scenario (if any) exited 0.
    pub fn expect_success(&self) -> Result<&Self> {
        self.expect_poweroff()?;
        match self.scenario_exit() {
            Some(0) | None => Ok(self),
            Some(rc) => self.fail(&format!("the guest script exited {rc}")),
        }
    }

    /// Ok if the guest powered off normally.
    pub fn expect_poweroff(&self) -> Result<&Self> {
        if self.outcome == Outcome::PoweredOff {
            Ok(self)
        } else {
            self.fail("the guest did not power off normally")
        }
    }

    /// Ok if the console contains `needle`.
    pub fn expect(&self, needle: &str) -> Result<&Self> {
        if self.contains(needle) {
            Ok(self)
        } else {
            self.fail(&format!("the console has no {needle:?}"))
        }
    }

    /// An error describing this boot: what went wrong, the outcome, the log paths and the end
    /// of the console.
    pub fn fail<T>(&self, what: &str) -> Result<T> {
        Err(Error(format!("{what}\n{}", self.report())))
    }

    /// Outcome, log paths and the last console lines, for failure messages.
    pub fn report(&self) -> String {
        let tail: Vec<&str> = self.uart0.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "boot {} ended {:?} after {:.1} s\n  normal-world log: {}\n  OP-TEE log:       {}\n--- last console lines ---\n{}",
            self.boot,
            self.outcome,
            self.elapsed.as_secs_f64(),
            self.uart0_path.display(),
            self.optee_path.display(),
            tail.join("\n")
        )
    }
}

/// A test device: a directory with its persistent disks and the logs of its boots.
pub struct Machine {
    dir: PathBuf,
    script: Option<String>,
    files: Vec<(PathBuf, String)>,
    net_port: Option<u16>,
    net_fwds: Vec<(String, u16)>,
    agent_bin: Option<PathBuf>,
    agent_config: Option<PathBuf>,
    ta_dir: Option<PathBuf>,
    timeout: Duration,
    append: String,
    rpmb: bool,
    no_emmc: bool,
    boots: usize,
}

impl Machine {
    /// A machine with fresh disks in `build/qemu-tests/<name>/` (an old directory of that name
    /// is removed). Builds the environment if needed. The agent binary and its configuration
    /// default to the AGENT_BIN / AGENT_CONFIG environment variables when set.
    pub fn new(name: &str) -> Result<Machine> {
        Machine::at(repo_root().join("build/qemu-tests").join(name))
    }

    /// [`Machine::new`] in the directory `dir` (removed first if it exists).
    pub fn at(dir: PathBuf) -> Result<Machine> {
        ensure_env()?;
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| Error(format!("cannot clear {}: {e}", dir.display())))?;
        }
        fs::create_dir_all(dir.join("disks"))
            .map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
        let env_path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(Machine {
            dir,
            script: None,
            files: Vec::new(),
            net_port: None,
            net_fwds: Vec::new(),
            agent_bin: env_path("AGENT_BIN"),
            agent_config: env_path("AGENT_CONFIG"),
            ta_dir: None,
            timeout: Duration::from_secs(300),
            append: String::new(),
            rpmb: false,
            no_emmc: false,
            boots: 0,
        })
    }

    /// The machine's directory (disks/, boot-N-uart0.log, boot-N-optee.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host file behind a disk (created at the first boot if absent, except [`Disk::Usb`]).
    pub fn disk_path(&self, disk: Disk) -> PathBuf {
        self.dir
            .join("disks")
            .join(format!("{}.img", disk.serial()))
    }

    /// The guest script (busybox sh) that /init runs as /scenario.sh after booting, for every
    /// following boot until changed. `SUIT-SCENARIO: exit N` follows it on the console.
    pub fn script(&mut self, text: &str) -> &mut Self {
        self.script = Some(text.to_string());
        self
    }

    /// No guest script: boot, run /slot/app/start if any, power off.
    pub fn no_script(&mut self) -> &mut Self {
        self.script = None;
        self
    }

    /// Copy a host file into the guest's initramfs at `guest_path` (absolute) for every boot.
    pub fn add_file(&mut self, host: impl AsRef<Path>, guest_path: &str) -> &mut Self {
        self.files.push((
            host.as_ref().to_path_buf(),
            guest_path.trim_start_matches('/').to_string(),
        ));
        self
    }

    /// Networking: the guest reaches `http://10.0.2.100:8080/` ([`GUEST_SERVER_URL`]), relayed
    /// to `127.0.0.1:port` on the host, and nothing else.
    pub fn network(&mut self, port: u16) -> &mut Self {
        self.net_port = Some(port);
        self
    }

    /// With [`Machine::network`]: the guest's `http://<guest_ip>:8080/` too, relayed to
    /// `127.0.0.1:port` (e.g. a fleet server and a payload server side by side).
    pub fn forward(&mut self, guest_ip: &str, port: u16) -> &mut Self {
        self.net_fwds.push((guest_ip.to_string(), port));
        self
    }

    /// The agent binary (aarch64) installed as /usr/bin/suit-agent, and optionally its
    /// configuration (a file, or a directory of files) under /etc/suit-agent/.
    pub fn agent(&mut self, bin: impl AsRef<Path>, config: Option<&Path>) -> &mut Self {
        self.agent_bin = Some(bin.as_ref().to_path_buf());
        self.agent_config = config.map(Path::to_path_buf);
        self
    }

    /// The TAs to install: every `*.ta` of `dir` instead of those of `build/ta` (run.sh's
    /// TA_OUT_DIR).
    pub fn tas(&mut self, dir: &Path) -> &mut Self {
        self.ta_dir = Some(dir.to_path_buf());
        self
    }

    /// Time limit of each boot (default 300 s).
    pub fn timeout(&mut self, limit: Duration) -> &mut Self {
        self.timeout = limit;
        self
    }

    /// Boot the RPMB variant (run.sh with QEMU_RPMB=1, built first if needed): its own kernel
    /// and OP-TEE, QEMU 11, and an eMMC with an RPMB partition ([`Machine::emmc_path`]).
    /// Without this call a machine boots what QEMU_RPMB in the environment selects (the
    /// variant unless QEMU_RPMB=0).
    pub fn rpmb(&mut self) -> Result<&mut Self> {
        ensure_rpmb_env()?;
        self.rpmb = true;
        Ok(self)
    }

    /// The host file behind the eMMC of the RPMB variant: its RPMB partition (the first
    /// `qemu/build-rpmb.sh` rpmb-size bytes), then the user area. Created at the first boot.
    pub fn emmc_path(&self) -> PathBuf {
        self.dir.join("disks").join("emmc.img")
    }

    /// Whether the next boots leave the eMMC out (run.sh NO_EMMC=1): OP-TEE then cannot reach
    /// RPMB at all; the image stays as it is for later boots.
    pub fn hide_emmc(&mut self, hidden: bool) -> &mut Self {
        self.no_emmc = hidden;
        self
    }

    /// Extra kernel command-line arguments.
    pub fn append(&mut self, args: &str) -> &mut Self {
        self.append = args.to_string();
        self
    }

    /// Put an ext4 image into a slot disk (the disk becomes a copy of `image`, grown to at least
    /// the default slot size so that later images fit).
    pub fn set_slot(&self, disk: Disk, image: &Path) -> Result<()> {
        let dest = self.disk_path(disk);
        fs::copy(image, &dest).map_err(|e| {
            Error(format!(
                "cannot copy {} to {}: {e}",
                image.display(),
                dest.display()
            ))
        })?;
        let f = OpenOptions::new()
            .write(true)
            .open(&dest)
            .map_err(|e| Error(format!("{}: {e}", dest.display())))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        f.set_len(len.max(64 << 20))
            .map_err(|e| Error(format!("{}: {e}", dest.display())))?;
        Ok(())
    }

    /// Attach a USB stick made from the files in `dir` (ext4, mounted read-only at /media/usb).
    pub fn set_usb(&self, dir: &Path, size_mib: u32) -> Result<()> {
        make_ext4(dir, &self.disk_path(Disk::Usb), size_mib, "usb")
    }

    /// A file on the data disk (path relative to /data), read from the host with debugfs while
    /// the machine is off; None if it does not exist. After a power cut the disk's ext4
    /// journal is not replayed yet (the guest does that at the next mount): debugfs may then
    /// show an older state than the guest synced, so read such state in the next boot.
    pub fn read_data_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let img = self.disk_path(Disk::Data);
        if !img.exists() {
            return Ok(None);
        }
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat /{}", path.trim_start_matches('/')))
            .arg(&img)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error(format!("cannot run debugfs: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("File not found") {
            return Ok(None);
        }
        if !out.status.success() {
            return err(format!(
                "debugfs cat {path} on {} failed: {stderr}",
                img.display()
            ));
        }
        Ok(Some(out.stdout))
    }

    /// The boot state file /data/boot/bootstate parsed into (key, value) pairs, e.g.
    /// `[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "2"), ...]`; None before the first boot.
    pub fn bootstate(&self) -> Result<Option<Vec<(String, String)>>> {
        Ok(self.read_data_file("boot/bootstate")?.map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        }))
    }

    /// `e2fsck -fn` of a disk (read-only check); Ok(report) when the filesystem is clean.
    /// `-n` does not replay the journal: after a power cut, check after the next orderly
    /// boot (whose mount replays it), not right after the cut.
    pub fn fsck(&self, disk: Disk) -> Result<String> {
        let img = self.disk_path(disk);
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&img)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error(format!("cannot run e2fsck: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            err(format!(
                "e2fsck -fn {} reports problems ({}):\n{text}",
                img.display(),
                out.status
            ))
        }
    }

    /// Boot until the guest powers off.
    pub fn boot(&mut self) -> Result<Run> {
        self.boot_until(Stop::PowerOff)
    }

    /// Boot (a new QEMU on the same disks: the first call is the first boot, later calls are
    /// reboots) and stop as `stop` says. Returns Err only when the boot could not be run; how
    /// it ended is in [`Run::outcome`].
    pub fn boot_until(&mut self, stop: Stop) -> Result<Run> {
        let _guard = qemu_lock()?;
        self.boots += 1;
        let n = self.boots;
        let uart0_path = self.dir.join(format!("boot-{n}-uart0.log"));
        let optee_path = self.dir.join(format!("boot-{n}-optee.log"));
        let optee_live = self.dir.join("optee.log");
        let _ = fs::remove_file(&optee_live);

        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("qemu/run.sh"))
            .arg("--exec")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--timeout")
            .arg(self.timeout.as_secs().to_string());
        if let Some(text) = &self.script {
            let path = self.dir.join("scenario.sh");
            fs::write(&path, text)
                .map_err(|e| Error(format!("cannot write {}: {e}", path.display())))?;
            cmd.arg("--script").arg(path);
        }
        for (host, guest) in &self.files {
            cmd.arg("--add").arg(format!("{}:{guest}", host.display()));
        }
        if let Some(port) = self.net_port {
            cmd.arg("--net-port").arg(port.to_string());
        }
        for (ip, port) in &self.net_fwds {
            cmd.arg("--net-fwd").arg(format!("{ip}:{port}"));
        }
        if !self.append.is_empty() {
            cmd.arg("--append").arg(&self.append);
        }
        cmd.env(
            "AGENT_BIN",
            self.agent_bin.as_deref().unwrap_or(Path::new("")),
        );
        cmd.env(
            "AGENT_CONFIG",
            self.agent_config.as_deref().unwrap_or(Path::new("")),
        );
        if let Some(dir) = &self.ta_dir {
            cmd.env("TA_OUT_DIR", dir);
        }
        if self.rpmb {
            cmd.env("QEMU_RPMB", "1");
        }
        cmd.env("NO_EMMC", if self.no_emmc { "1" } else { "0" });
        let stderr_path = self.dir.join(format!("boot-{n}-run.err"));
        let stderr = File::create(&stderr_path)
            .map_err(|e| Error(format!("{}: {e}", stderr_path.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);

        let started = Instant::now();
        // run.sh prepares the disks and the initramfs, then execs QEMU: the child's PID is QEMU's.
        let mut child = cmd
            .spawn()
            .map_err(|e| Error(format!("cannot start qemu/run.sh: {e}")))?;
        let outcome = watch(
            &mut child,
            &stop,
            self.timeout,
            &uart0_path,
            &optee_live,
            started,
        );
        let elapsed = started.elapsed();
        let outcome = outcome?;
        let _ = fs::rename(&optee_live, &optee_path);
        let read = |p: &Path| {
            fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
                .unwrap_or_default()
        };
        let run = Run {
            uart0: read(&uart0_path),
            optee: read(&optee_path),
            outcome,
            uart0_path,
            optee_path,
            elapsed,
            boot: n,
        };
        if run.uart0.trim().is_empty() {
            let why = read(&stderr_path);
            return run.fail(&format!("QEMU printed nothing; qemu/run.sh said:\n{why}"));
        }
        Ok(run)
    }
}

/// Follows one QEMU run: copies UART0 to `uart0_path` line by line, checks every line and the
/// secure UART's file, and kills QEMU (SIGKILL) on abort, on the stop condition or on timeout.
fn watch(
    child: &mut Child,
    stop: &Stop,
    limit: Duration,
    uart0_path: &Path,
    optee_path: &Path,
    started: Instant,
) -> Result<Outcome> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut log =
        File::create(uart0_path).map_err(|e| Error(format!("{}: {e}", uart0_path.display())))?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut optee_seen = 0u64;
    let mut optee_tail = String::new();
    let kill = |child: &mut Child| {
        let _ = child.kill(); // SIGKILL
    };
    let mut outcome = None;
    let mut stopped_at: Option<Instant> = None;
    let mut powered_off = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let _ = log.write_all(line.as_bytes());
                if line.starts_with("SUIT-POWEROFF") {
                    powered_off = true;
                }
                if outcome.is_none() {
                    if let Stop::KillAt(marker) = stop {
                        if line.contains(marker.as_str()) {
                            kill(child);
                            outcome = Some(Outcome::Killed);
                        }
                    }
                }
                if outcome.is_none() && line.contains("Kernel panic") {
                    kill(child);
                    outcome = Some(Outcome::Abort(line.trim().to_string()));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // QEMU closed its stdout: ended
        }
        if outcome.is_some() {
            // drain the rest of the output until QEMU is gone (bounded, whatever happens)
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                break;
            }
            continue;
        }
        // The secure UART goes to a file: look at what was appended since the last check.
        if let Ok(mut f) = File::open(optee_path) {
            if f.seek(SeekFrom::Start(optee_seen)).is_ok() {
                let mut more = Vec::new();
                if f.read_to_end(&mut more).is_ok() && !more.is_empty() {
                    optee_seen += more.len() as u64;
                    optee_tail.push_str(&String::from_utf8_lossy(&more));
                    if let Some(line) = optee_tail
                        .lines()
                        .find(|l| ABORT_PATTERNS.iter().any(|p| l.contains(p)))
                    {
                        let line = line.trim().to_string();
                        std::thread::sleep(Duration::from_millis(300)); // let the dump reach the log
                        kill(child);
                        outcome = Some(Outcome::Abort(format!("OP-TEE: {line}")));
                    }
                    // keep only the unfinished last line for the next check
                    let keep = optee_tail.rfind('\n').map(|i| i + 1).unwrap_or(0);
                    optee_tail.drain(..keep);
                }
            }
        }
        if outcome.is_none() {
            let elapsed = started.elapsed();
            if let Stop::KillAfter(after) = stop {
                if elapsed >= *after {
                    kill(child);
                    outcome = Some(Outcome::Killed);
                }
            }
            if outcome.is_none() && elapsed >= limit {
                kill(child);
                outcome = Some(Outcome::Timeout);
            }
        }
    }
    let _ = reader.join();
    let _ = child.wait();
    Ok(outcome.unwrap_or(if powered_off {
        Outcome::PoweredOff
    } else {
        Outcome::Exited
    }))
}

/// One QEMU at a time: within this process (tests run on threads) and across processes.
fn qemu_lock() -> Result<QemuLock> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let guard = IN_PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = repo_root().join("build");
    fs::create_dir_all(&dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    let path = dir.join("qemu.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error(format!("{}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| Error(format!("cannot lock {}: {e}", path.display())))?;
    Ok(QemuLock {
        _file: file,
        _guard: guard,
    })
}

struct QemuLock {
    _file: File, // the lock is released when the file is closed
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// Make an ext4 image of `size_mib` MiB at `out` holding the files of `dir` (mkfs.ext4 -d), e.g.
/// a slot image with `app/start`. Needs no root. 4096-byte blocks: a dm-verity device has
/// 4096-byte logical blocks, and ext4 cannot mount with smaller ones on it.
pub fn make_ext4(dir: &Path, out: &Path, size_mib: u32, label: &str) -> Result<()> {
    let _ = fs::remove_file(out);
    let file = File::create(out).map_err(|e| Error(format!("{}: {e}", out.display())))?;
    file.set_len(u64::from(size_mib) << 20)
        .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    drop(file);
    let status = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-L",
            label,
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(dir)
        .arg(out)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error(format!("cannot run mkfs.ext4: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        err(format!(
            "mkfs.ext4 -d {} {} failed ({status})",
            dir.display(),
            out.display()
        ))
    }
}

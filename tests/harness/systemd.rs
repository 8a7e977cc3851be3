//! The systemd-booted QEMU device (qemu/systemd-root.sh, qemu/README.md "systemd device"): a
//! [`Device`] made and factory-installed as usual (busybox init), whose later boots run the
//! same verified-boot initramfs up to the boot check and then hand over to systemd on a trixie
//! root disk with the `make deb` packages installed by dpkg; and a gooseBit fleet server
//! (hawkBit DDI) on 127.0.0.1 with the project's SUIT plugin.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::device::Device;
use crate::qemu::{build_command, repo_root, Error, Result};

/// The QEMU cache (as qemu/run.sh: `$QEMU_CACHE`, default `build/qemu-cache`).
fn qemu_cache() -> PathBuf {
    std::env::var_os("QEMU_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/qemu-cache"))
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error(format!("cannot run {what}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Builds the systemd device's cached trixie root if needed (`qemu/systemd-root.sh base`), once
/// per process; its kernel is the RPMB variant's.
pub fn ensure_systemd_env() -> Result<()> {
    static ONCE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        run_ok(
            Command::new("bash")
                .args(["qemu/systemd-root.sh", "base"])
                .current_dir(repo_root())
                .env("QEMU_CACHE", qemu_cache()),
            "qemu/systemd-root.sh base",
        )
        .map(drop)
        .map_err(|e| e.0)
    })
    .clone()
    .map_err(Error)
}

/// The device's packages from `make deb` (build/deb): the agent and the TA, built first when
/// missing.
pub fn device_packages() -> Result<Vec<PathBuf>> {
    let dir = repo_root().join("build/deb");
    let find = || -> Vec<PathBuf> {
        ["suit-agent_", "suit-ta_"]
            .iter()
            .filter_map(|prefix| {
                fs::read_dir(&dir).ok()?.find_map(|e| {
                    let path = e.ok()?.path();
                    let name = path.file_name()?.to_str()?.to_string();
                    (name.starts_with(prefix) && name.ends_with("_arm64.deb")).then_some(path)
                })
            })
            .collect()
    };
    if find().len() < 2 {
        run_ok(
            build_command("make").arg("deb").current_dir(repo_root()),
            "make deb",
        )?;
    }
    let debs = find();
    if debs.len() < 2 {
        return Err(Error(format!(
            "make deb left no suit-agent/suit-ta arm64 package in {}",
            dir.display()
        )));
    }
    Ok(debs)
}

/// Turns `dev` (factory-installed) into the systemd device for its next boots: the
/// initramfs's /init hands over to systemd (`qemu/systemd-root.sh init`), the systemd kernel,
/// and a root disk made from the cached root with the `make deb` packages installed by dpkg
/// and `config` as /etc/suit-agent/config.toml (`qemu/systemd-root.sh image`); `scenario` is
/// the root's /scenario.sh, run by suit-qemu-ready.service after multi-user.target.
pub fn make_systemd(dev: &mut Device, config: &Path, scenario: &str) -> Result<()> {
    ensure_systemd_env()?;
    let debs = device_packages()?;
    let dir = dev.vm.dir().to_path_buf();
    let init = dir.join("systemd-init");
    let script = dir.join("systemd-scenario.sh");
    fs::write(&script, scenario).map_err(|e| Error(format!("{}: {e}", script.display())))?;
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("qemu/systemd-root.sh"))
            .args(["init", "--out"])
            .arg(&init),
        "qemu/systemd-root.sh init",
    )?;
    let mut image = Command::new("bash");
    image
        .arg(repo_root().join("qemu/systemd-root.sh"))
        .args(["image", "--out"])
        .arg(dir.join("disks/root.img"))
        .arg("--config")
        .arg(config)
        .arg("--add")
        .arg(format!("{}:/scenario.sh", script.display()))
        .env("QEMU_CACHE", qemu_cache());
    for deb in &debs {
        image.arg("--deb").arg(deb);
    }
    run_ok(&mut image, "qemu/systemd-root.sh image")?;
    dev.vm
        .add_file(&init, "/init")
        .append("net.ifnames=0")
        .no_script();
    Ok(())
}

/// gooseBit's logging configuration (its setting `logging`, a `logging.dictConfig`) with
/// uvicorn's access lines on stderr too: gooseBit's own configuration disables the loggers
/// configured before it, uvicorn's access logger among them, and the scenario counts the
/// daemon's requests in the access lines.
const ACCESS_LOGGING: &str = r#"{"version": 1, "disable_existing_loggers": false,
 "formatters": {"simple": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}},
 "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple"}},
 "loggers": {"uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": false},
             "tortoise": {"level": "WARNING"}, "aiosqlite": {"level": "WARNING"}},
 "root": {"level": "INFO", "handlers": ["console"]}}"#;

/// A gooseBit server (fleet/goosebit-suit/serve.sh, `make fleet-env`) on 127.0.0.1 with the
/// SUIT plugin, device authentication by target token, a poll time of 1 s and an operator
/// logged in. Stopped when dropped.
pub struct GooseBit {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port (for [`crate::qemu::Machine::network`]).
    pub port: u16,
    token: String,
    log: PathBuf,
}

impl GooseBit {
    /// Starts the server with its state in `dir`.
    pub fn start(dir: &Path) -> Result<GooseBit> {
        let venv = repo_root().join("build/goosebit-venv");
        if !venv.join("bin/uvicorn").is_file() {
            run_ok(
                build_command("make")
                    .arg("fleet-env")
                    .current_dir(repo_root()),
                "make fleet-env",
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error(format!("no free port: {e}")))?
            .port();
        fs::create_dir_all(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
        let log = dir.join("server.log");
        let stderr =
            fs::File::create(&log).map_err(|e| Error(format!("{}: {e}", log.display())))?;
        let child = Command::new("bash")
            .arg(repo_root().join("fleet/goosebit-suit/serve.sh"))
            .arg(dir.join("server"))
            .arg(port.to_string())
            .env("GOOSEBIT_VENV", &venv)
            .env("GOOSEBIT_POLL_TIME", "00:00:01")
            .env("GOOSEBIT_DEVICE_AUTH__ENABLE", "true")
            .env("GOOSEBIT_DEVICE_AUTH__MODE", "setup")
            .env("GOOSEBIT_LOGGING", ACCESS_LOGGING)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error(format!("cannot start gooseBit: {e}")))?;
        let mut server = GooseBit {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            token: String::new(),
            log,
        };
        let form = [
            ("username", "admin@example.com"),
            ("password", "test-password-1"),
        ];
        let start = Instant::now();
        let setup = loop {
            match ureq::post(&format!("{}/setup", server.url)).send_form(form) {
                Ok(mut response) => {
                    break response
                        .body_mut()
                        .read_to_string()
                        .map_err(|e| Error(format!("gooseBit /setup: {e}")))?
                }
                Err(_) if start.elapsed() < Duration::from_secs(90) => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(e) => {
                    return Err(Error(format!(
                        "gooseBit did not start: {e}\n{}",
                        server.log()
                    )))
                }
            }
        };
        let setup: Value = serde_json::from_str(&setup)
            .map_err(|e| Error(format!("gooseBit /setup answered {setup:?}: {e}")))?;
        server.token = setup["access_token"]
            .as_str()
            .ok_or_else(|| Error(format!("no access_token in {setup}")))?
            .to_string();
        Ok(server)
    }

    /// The server's log (uvicorn's access lines included, see `ACCESS_LOGGING`).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Assigns `envelope` (sequence `version`) to device `device` through the SUIT plugin.
    pub fn assign(&self, device: &str, envelope: &[u8], version: u64) -> Result<()> {
        ureq::put(&format!(
            "{}/plugins/goosebit_suit/devices/{device}?version={version}",
            self.url
        ))
        .header("Authorization", &format!("Bearer {}", self.token))
        .send(envelope)
        .map(drop)
        .map_err(|e| Error(format!("assigning to {device}: {e}\n{}", self.log())))
    }

    /// `GET path` of the operator's API, as JSON.
    pub fn get(&self, path: &str) -> Result<Value> {
        let text = ureq::get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| Error(format!("GET {path}: {e}")))?;
        serde_json::from_str(&text).map_err(|e| Error(format!("GET {path}: {e}: {text}")))
    }
}

impl Drop for GooseBit {
    fn drop(&mut self) {
        // serve.sh execs uvicorn: the child is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

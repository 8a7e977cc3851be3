//! `suit-agent daemon` against a real gooseBit 0.2.12 (hawkBit DDI) on 127.0.0.1 with the
//! project's SUIT plugin (fleet/goosebit-suit; `make fleet-env` installs both in
//! build/goosebit-venv): the server assigns v2, the device polls, installs through the
//! (simulated) TA, reboots, confirms, reports success with its signed SUIT report, and the
//! server shows version 2; a refused update (another class) reaches the server as failure
//! with the TA's reason.

#[path = "support/agent_config.rs"]
mod agent_config;
#[path = "support/ddi_device.rs"]
mod ddi_device;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_config::agent_ok;
use ddi_device::{envelope, verified_report, Device, CLASS};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A gooseBit server with the SUIT plugin and an operator logged in.
struct GooseBit {
    child: Child,
    url: String,
    token: String,
    dir: tempfile::TempDir,
}

impl GooseBit {
    fn start() -> GooseBit {
        let venv = repo().join("build/goosebit-venv");
        assert!(
            venv.join("bin/uvicorn").is_file(),
            "gooseBit is not installed in {}: run `make fleet-env`",
            venv.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("bash")
            .arg(repo().join("fleet/goosebit-suit/serve.sh"))
            .arg(dir.path().join("server"))
            .arg(port.to_string())
            .env("GOOSEBIT_VENV", &venv)
            .env("GOOSEBIT_POLL_TIME", "00:00:01")
            .env("GOOSEBIT_DEVICE_AUTH__ENABLE", "true")
            .env("GOOSEBIT_DEVICE_AUTH__MODE", "setup")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut server = GooseBit {
            child,
            url,
            token: String::new(),
            dir,
        };
        let start = Instant::now();
        let form = [
            ("username", "admin@example.com"),
            ("password", "test-password-1"),
        ];
        let setup = loop {
            match ureq::post(&format!("{}/setup", server.url)).send_form(form) {
                Ok(mut response) => break response.body_mut().read_to_string().unwrap(),
                Err(_) if start.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(e) => panic!("gooseBit did not start: {e}\n{}", server.log()),
            }
        };
        let setup: Value = serde_json::from_str(&setup).unwrap();
        server.token = setup["access_token"].as_str().unwrap().to_string();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Assigns `envelope` (sequence `version`) to device `dev-1` through the plugin.
    fn assign(&self, envelope: &[u8], version: u64) {
        ureq::put(&format!(
            "{}/plugins/goosebit_suit/devices/dev-1?version={version}",
            self.url
        ))
        .header("Authorization", &format!("Bearer {}", self.token))
        .send(envelope)
        .unwrap();
    }

    fn get(&self, path: &str) -> Value {
        let text = ureq::get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Device `dev-1` as the operator's API shows it.
    fn device(&self) -> Value {
        self.get("/api/v1/devices/dev-1")
    }

    /// The device's log on the server: the details of its feedbacks.
    fn device_log(&self) -> String {
        self.get("/api/v1/devices/dev-1/log")["log"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the device shows `state` (and `version`, when given).
    fn wait_for(&self, dev: &Device, state: &str, version: Option<&str>) {
        let start = Instant::now();
        loop {
            let device = self.device();
            let version_ok = version.is_none_or(|v| device["sw_version"] == v);
            if device["last_state"] == state && version_ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "device {device} never reached {state} {version:?}\nagent: {}\nserver: {}",
                dev.log(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for GooseBit {
    fn drop(&mut self) {
        // serve.sh execs uvicorn: the child is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn goosebit_assigns_v2_and_shows_it_after_the_confirmed_trial_boot() {
    let server = GooseBit::start();
    let work = tempfile::tempdir().unwrap();
    let dev = Device::new(&server.url, "");
    server.assign(&envelope(work.path(), 2, CLASS), 2);

    // The device registers (configData), polls, downloads, installs through the TA.
    let daemon = dev.daemon();
    server.wait_for(&dev, "Running", None);
    let registered = server.device();
    assert_eq!(registered["hardware"]["model"], "qemu-virt", "{registered}");
    let start = Instant::now();
    while !dev.log().contains("reboot due") {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", dev.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    daemon.stop(&dev);

    // Reboot into the trial slot: boot-check confirms; the daemon reports success.
    dev.boot_slot_b();
    agent_ok(&dev.config, &["boot-check"]);
    let daemon = dev.daemon();
    server.wait_for(&dev, "Finished", Some("2"));
    daemon.stop(&dev);
    let log = server.device_log();
    assert!(log.contains("sequence 2 confirmed"), "{log}");
    let report = verified_report(&dev, log.lines());
    assert_eq!(report["result"], "success", "{report}");
}

#[test]
fn goosebit_gets_the_tas_refusal_as_failure_feedback() {
    let server = GooseBit::start();
    let work = tempfile::tempdir().unwrap();
    let dev = Device::new(&server.url, "");
    server.assign(&envelope(work.path(), 2, "another-class"), 2);
    let daemon = dev.daemon();
    server.wait_for(&dev, "Error", None);
    // In the error state gooseBit offers nothing more: the device does not try again.
    std::thread::sleep(Duration::from_secs(2));
    daemon.stop(&dev);
    assert_eq!(dev.log().matches("failed: ").count(), 1, "{}", dev.log());
    let log = server.device_log();
    assert!(
        log.contains("[applicability]") && log.contains("class"),
        "{log}"
    );
    let report = verified_report(&dev, log.lines());
    assert_eq!(report["result"], "failure", "{report}");
    assert_eq!(server.device()["sw_version"], "0");
}

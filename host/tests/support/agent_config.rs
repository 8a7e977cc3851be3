//! The `suit-agent` of a simulated device (simulator TA trusting the development vendor key,
//! boot state in a file, one `rootfs` component with two slots): its configuration, for tests
//! and benches, and running it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What differs between the simulated devices of the tests and benches.
pub struct AgentConfig {
    /// The device's directory: state, staging, boot state, booted slot, slot files.
    pub dir: PathBuf,
    /// Slot B's path; `<dir>/slot-b.img` when `None`.
    pub slot_b: Option<PathBuf>,
    /// Component slots 0 and 1 for slots A and B.
    pub component_slots: bool,
    /// `chunk-size = 65536` and two fetch attempts 100 ms apart.
    pub quick_retry: bool,
    /// The health-check command, a TOML array; none when `None`.
    pub health_check: Option<String>,
}

impl AgentConfig {
    /// Slot files in `dir`, component slots, default transfer settings, no health check.
    pub fn new(dir: &Path) -> Self {
        AgentConfig {
            dir: dir.to_path_buf(),
            slot_b: None,
            component_slots: true,
            quick_retry: false,
            health_check: None,
        }
    }

    /// Marks slot A as booted and writes `<dir>/agent.toml`; returns its path.
    pub fn write(&self) -> PathBuf {
        let d = self.dir.display();
        let slot_b = self
            .slot_b
            .clone()
            .unwrap_or_else(|| self.dir.join("slot-b.img"));
        let anchor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys/dev-vendor-es384.pub.pem");
        let slot = |n: u32| {
            if self.component_slots {
                format!(", component-slot = {n}")
            } else {
                String::new()
            }
        };
        let mut toml = format!(
            "state-dir = \"{d}/state\"\nstaging-dir = \"{d}/staging\"\nbooted-slot-file = \"{d}/booted-slot\"\n"
        );
        if self.quick_retry {
            toml.push_str(
                "chunk-size = 65536\n[retry]\nattempts = 2\ninitial-backoff = \"100ms\"\n",
            );
        }
        write!(
            toml,
            "[boot]\nbackend = \"file\"\npath = \"{d}/bootstate\"\n[[component]]\nid = [\"rootfs\"]\nslot-a = {{ path = \"{d}/slot-a.img\"{} }}\nslot-b = {{ path = \"{}\"{} }}\n",
            slot(0),
            slot_b.display(),
            slot(1),
        )
        .unwrap();
        if let Some(command) = &self.health_check {
            write!(toml, "[health-check]\ncommand = {command}\n").unwrap();
        }
        write!(
            toml,
            "[simulator]\ntrust-anchors = [\"{}\"]\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n",
            anchor.display()
        )
        .unwrap();
        std::fs::write(self.dir.join("booted-slot"), "A\n").unwrap();
        let config = self.dir.join("agent.toml");
        std::fs::write(&config, toml).unwrap();
        config
    }
}

/// Runs `suit-agent --tee simulator --config <config> <args>`; asserts that it did not panic.
pub fn run_agent(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .args(["--tee", "simulator", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(101),
        "suit-agent panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the agent as [`run_agent`] does; asserts that it succeeded and returns its stdout.
pub fn agent_ok(config: &Path, args: &[&str]) -> String {
    let out = run_agent(config, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

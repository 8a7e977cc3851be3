//! The agent's policy (issue 12): the authorization hook and the battery source of
//! `[policy]`, reported to the TA for update-authorized and minimum-battery — the real
//! `suit-agent` binary with the simulator TA, slots in files, payloads from `file://`.

#[allow(dead_code)] // helpers of the other agent tests
#[path = "support/agent_config.rs"]
mod agent_config;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_config::{run_agent, AgentConfig};
use serde_json::Value;
use suit_host::agent::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A simulated device whose config gets `policy` appended as its `[policy]` table.
struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Device {
    fn new(policy: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slot-a.img"), image(1, 8192)).unwrap();
        let config = AgentConfig::new(dir.path()).write();
        let mut toml = std::fs::read_to_string(&config).unwrap();
        toml.push_str(&format!("[policy]\n{policy}\n"));
        std::fs::write(&config, toml).unwrap();
        Device { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An executable shell script `name` in the device's directory.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A signed envelope of a new `rootfs` (sequence 2) fetched from a file, with `extra`
    /// top-level spec lines.
    fn envelope(&self, extra: &str) -> PathBuf {
        let d = self.dir.path();
        std::fs::write(d.join("v2.img"), image(2, 8192)).unwrap();
        std::fs::write(
            d.join("v2.toml"),
            format!(
                "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n{extra}\n\
                 [text]\ndescription = \"release 2\"\n\
                 [[component]]\nid = [\"rootfs\"]\nimage = \"v2.img\"\nuri = \"file://{}/v2.img\"\n",
                d.display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
            .current_dir(d)
            .args(["create", "--spec", "v2.toml", "--out", "v2.suit", "--key"])
            .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        d.join("v2.suit")
    }

    fn install(&self, envelope: &Path) -> Output {
        run_agent(&self.config, &["install", envelope.to_str().unwrap()])
    }

    /// Nothing changed: no pending install, slot B never written.
    fn assert_untouched(&self) {
        let out = run_agent(&self.config, &["status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
        assert_eq!(status["update"], Value::Null, "{status}");
        assert_eq!(status["ta"]["install"], "idle", "{status}");
        assert_eq!(status["ta"]["floors"], serde_json::json!([]), "{status}");
        assert!(!self.path("slot-b.img").exists());
    }
}

/// Asserts exit code 1 and a failure line containing every one of `texts`.
fn refused(out: &Output, texts: &[&str]) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("SUIT-AGENT: FAILED"))
        .unwrap_or_else(|| panic!("no failure line in {stdout}"));
    for t in texts {
        assert!(line.contains(t), "{line:?} lacks {t:?}");
    }
}

fn installed(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_hook_that_says_no_refuses_the_update() {
    let dev = with_hook(
        "env | grep ^SUIT_ > \"$(dirname \"$0\")/hook.env\"\necho 'user postponed updates'\nexit 1",
        "5s",
    );
    let env_file = dev.path("hook.env");
    let out = dev.install(&dev.envelope("update-authorized = true"));
    refused(
        &out,
        &[
            "[applicability]",
            "condition update-authorized failed on component 0",
        ],
    );
    assert!(
        text(&out.stderr)
            .contains("the authorization hook declined the update: user postponed updates"),
        "{}",
        text(&out.stderr)
    );
    dev.assert_untouched();
    // What the hook was told.
    let env = std::fs::read_to_string(&env_file).unwrap();
    for line in [
        "SUIT_SEQUENCE_NUMBER=2",
        "SUIT_COMPONENTS=['rootfs']",
        "SUIT_SLOT=B",
        "SUIT_MANIFEST_DESCRIPTION=release 2",
    ] {
        assert!(env.lines().any(|l| l == line), "{line:?} not in {env}");
    }
}

/// A device whose `[policy]` runs `body` as its hook, with `timeout`.
fn with_hook(body: &str, timeout: &str) -> Device {
    let dev = Device::new("");
    let hook = dev.script("authorize", body);
    let toml = std::fs::read_to_string(&dev.config).unwrap();
    std::fs::write(
        &dev.config,
        format!(
            "{toml}authorize = [\"{}\"]\nauthorize-timeout = \"{timeout}\"\n",
            hook.display()
        ),
    )
    .unwrap();
    dev
}

#[test]
fn defaults_and_a_hook_that_says_yes_let_the_update_through() {
    // No [policy] entries: no hook, no battery.
    let dev = Device::new("");
    installed(&dev.install(&dev.envelope("update-authorized = true\nminimum-battery = 100000")));
    let dev = with_hook("exit 0", "5s");
    installed(&dev.install(&dev.envelope("update-authorized = true")));
}

#[test]
fn hook_failures_are_typed_errors_and_change_nothing() {
    let cases = [
        (
            "sleep 5",
            "300ms",
            "did not answer within 300ms; it was killed",
        ),
        (
            "exit 3",
            "5s",
            "failed (exit status: 3); it must exit 0 (authorised) or 1 (declined)",
        ),
        ("kill -9 $$", "5s", "failed (signal: 9"),
        (
            "head -c 5000 /dev/zero | tr '\\0' x; exit 1",
            "5s",
            "unusable output: more than 4096 bytes",
        ),
        (
            "printf '\\377\\376'; exit 1",
            "5s",
            "unusable output: not UTF-8",
        ),
        (
            "sleep 3 & exit 0",
            "1s",
            "its standard output stayed open after it exited",
        ),
    ];
    for (body, timeout, message) in cases {
        let dev = with_hook(body, timeout);
        // Even for a manifest that does not ask: the device's facts are not established.
        let out = dev.install(&dev.envelope(""));
        refused(&out, &["[policy]", "authorization hook", message]);
        dev.assert_untouched();
    }
    let dev = Device::new("authorize = [\"/nonexistent/authorize\"]");
    refused(
        &dev.install(&dev.envelope("")),
        &["authorization hook /nonexistent/authorize: cannot run it"],
    );
}

#[test]
fn battery_below_the_minimum_refuses_the_update() {
    let dev = Device::new("");
    let battery = dev.path("energy_now");
    let toml = std::fs::read_to_string(&dev.config).unwrap();
    std::fs::write(
        &dev.config,
        format!("{toml}battery = \"{}\"\n", battery.display()),
    )
    .unwrap();
    let envelope = dev.envelope("minimum-battery = 5000");
    // 4.999999 Wh in µWh, as the kernel's energy_now says it.
    std::fs::write(&battery, "4999999\n").unwrap();
    refused(
        &dev.install(&envelope),
        &["condition minimum-battery failed on component 0: battery at 4999 mWh, the manifest requires 5000 mWh"],
    );
    dev.assert_untouched();
    for bad in ["", "-1", "full"] {
        std::fs::write(&battery, bad).unwrap();
        refused(
            &dev.install(&envelope),
            &["[policy]", "is not a charge in µWh"],
        );
    }
    std::fs::remove_file(&battery).unwrap();
    refused(
        &dev.install(&envelope),
        &["[policy]", "energy_now: cannot read it"],
    );
    dev.assert_untouched();
    std::fs::write(&battery, "5000000\n").unwrap();
    installed(&dev.install(&envelope));
}

#[test]
fn the_policy_table_is_parsed_strictly_with_documented_defaults() {
    let base = "[[component]]\nid = [\"rootfs\"]\nslot-a = { path = \"/dev/a\" }\nslot-b = { path = \"/dev/b\" }\n";
    let parse = |extra: &str| Config::parse(&format!("{extra}\n{base}"), Path::new("c.toml"));
    let defaults = parse("").unwrap().policy;
    assert_eq!(defaults.authorize, None);
    assert_eq!(defaults.battery, None);
    assert_eq!(
        defaults.authorize_timeout,
        std::time::Duration::from_secs(30)
    );
    let set = parse(
        "[policy]\nauthorize = [\"/usr/lib/suit/authorize\", \"--fleet\"]\nauthorize-timeout = \"2m\"\nbattery = \"/sys/class/power_supply/BAT0/energy_now\"",
    )
    .unwrap()
    .policy;
    assert_eq!(
        set.authorize.unwrap(),
        ["/usr/lib/suit/authorize", "--fleet"]
    );
    assert_eq!(set.authorize_timeout, std::time::Duration::from_secs(120));
    for (bad, message) in [
        ("[policy]\nbattery = \"energy_now\"", "must be absolute"),
        ("[policy]\nauthorize = []", "the command needs a program"),
        (
            "[policy]\nauthorize-timeout = \"0s\"",
            "must be greater than zero",
        ),
        (
            "[policy]\nbattery-command = [\"/bin/true\"]",
            "unknown field",
        ),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("policy") && e.contains(message), "{bad}: {e}");
    }
}

//! The Debian packaging of the agent (packaging/deb, host/systemd): the tee-supplicant ordering
//! fix, the units' preconditions, and what the maintainer scripts do, run with stub
//! deb-systemd-helper/deb-systemd-invoke/systemctl/udevadm that record their calls.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The values of `key=` lines of `section` in a unit file, split at white space.
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.to_string();
        } else if current == format!("[{section}]") {
            if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                out.extend(v.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

#[test]
fn tee_supplicant_waits_for_the_optee_device() {
    let dropin = read("host/systemd/tee-supplicant.service.d/suit-agent.conf");
    assert_eq!(values(&dropin, "Unit", "BindsTo"), ["dev-teepriv0.device"]);
    assert_eq!(values(&dropin, "Unit", "After"), ["dev-teepriv0.device"]);
    // The device unit exists only if udev tags the device for systemd.
    let rule = read("host/systemd/60-suit-agent-tee.rules");
    let rule = rule
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .expect("a rule");
    for part in ["KERNEL==\"teepriv[0-9]*\"", "TAG+=\"systemd\""] {
        assert!(rule.contains(part), "{rule}");
    }
    for unit in ["suit-agent.service", "suit-agent-boot-check.service"] {
        let unit = read(&format!("host/systemd/{unit}"));
        assert!(values(&unit, "Unit", "Requires").contains(&"tee-supplicant.service".into()));
        assert!(values(&unit, "Unit", "After").contains(&"tee-supplicant.service".into()));
    }
}

#[test]
fn units_do_not_run_without_a_configuration() {
    for unit in ["suit-agent.service", "suit-agent-boot-check.service"] {
        let text = read(&format!("host/systemd/{unit}"));
        assert_eq!(
            values(&text, "Unit", "ConditionPathExists"),
            ["/etc/suit-agent/config.toml"],
            "{unit}"
        );
        assert_eq!(
            values(&text, "Unit", "Documentation"),
            ["man:suit-agent(8)"]
        );
    }
    assert!(repo().join("packaging/man/suit-agent.8").is_file());
}

#[test]
fn every_systemd_file_is_packaged() {
    let script = read("packaging/deb/build.sh");
    for entry in std::fs::read_dir(repo().join("host/systemd")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".sh") {
            continue;
        }
        assert!(
            script.contains(&name),
            "packaging/deb/build.sh does not ship {name}"
        );
    }
}

/// Runs a maintainer script with stubs first in PATH; returns the recorded calls. With
/// `systemd`, as on a running systemd (a private mount namespace whose /run has
/// systemd/system); `None` when such a namespace cannot be made here (not root).
fn run_script(script: &str, args: &[&str], systemd: bool) -> Option<Vec<String>> {
    let stubs = tempfile::tempdir().unwrap();
    let log = stubs.path().join("calls");
    for tool in [
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "udevadm",
    ] {
        let stub = stubs.path().join(tool);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> {}\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        make_executable(&stub);
    }
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap()
    );
    let script_path = repo().join("packaging/deb/suit-agent").join(script);
    let mut command = if systemd {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec sh \"$0\" \"$@\"")
            .arg(&script_path);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg(&script_path);
        c
    };
    let out = command
        .args(args)
        .env("PATH", path)
        .env_remove("DPKG_ROOT")
        .output()
        .unwrap();
    if systemd && !out.status.success() && !log.exists() {
        eprintln!(
            "no private mount namespace here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn postinst_enables_both_units_and_never_runs_boot_check() {
    for (args, systemd) in [
        (&["configure"][..], false),
        (&["configure"][..], true),
        (&["configure", "0.0.9"][..], true),
    ] {
        let Some(calls) = run_script("postinst", args, systemd) else {
            continue;
        };
        for unit in ["suit-agent-boot-check.service", "suit-agent.service"] {
            assert!(
                calls.contains(&format!("deb-systemd-helper enable {unit}")),
                "{args:?}: {calls:?}"
            );
        }
        // boot-check judges a trial boot: never started or restarted by an installation.
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("deb-systemd-invoke") && c.contains("boot-check")),
            "{calls:?}"
        );
        if systemd {
            let expected = if args.len() == 1 {
                "deb-systemd-invoke start suit-agent.service"
            } else {
                "deb-systemd-invoke try-restart suit-agent.service"
            };
            assert!(calls.contains(&expected.to_string()), "{calls:?}");
            // udev tags /dev/teepriv0 before systemd reloads the drop-in that binds to it.
            let trigger = calls.iter().position(|c| c.starts_with("udevadm trigger"));
            let reload = calls
                .iter()
                .position(|c| c == "systemctl --system daemon-reload");
            assert!(trigger.is_some() && trigger < reload, "{calls:?}");
        }
    }
}

#[test]
fn removal_stops_the_daemon_and_purge_forgets_the_units() {
    let calls = run_script("postrm", &["purge"], false).unwrap_or_default();
    if Path::new("/usr/bin/deb-systemd-helper").is_file() {
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with("deb-systemd-helper purge")
                    && c.contains("suit-agent-boot-check.service")
                    && c.contains("suit-agent.service")),
            "{calls:?}"
        );
    }
    if let Some(calls) = run_script("prerm", &["remove"], true) {
        assert_eq!(calls, ["deb-systemd-invoke stop suit-agent.service"]);
    }
    if let Some(calls) = run_script("prerm", &["upgrade", "0.2.0"], true) {
        assert!(calls.is_empty(), "{calls:?}");
    }
}

#[test]
fn units_pass_the_target_systemd() {
    // `make verify-units` (CI runs it before the tests) caches trixie's systemd here.
    if !repo()
        .join("build/systemd-trixie/root/usr/bin/systemd-analyze")
        .is_file()
    {
        eprintln!("no trixie systemd in build/systemd-trixie: run make verify-units");
        return;
    }
    let out = Command::new("bash")
        .arg(repo().join("host/systemd/verify-trixie.sh"))
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("clean (systemd 257"), "{report}");
}

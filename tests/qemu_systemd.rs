//! The device as users run it: systemd as init on the QEMU device (TF-A, OP-TEE with RPMB,
//! U-Boot, Linux; the initramfs verifies the A/B slot through the TA and dm-verity, then hands
//! over to systemd on a trixie root with the `make deb` packages installed by dpkg), driven by
//! a gooseBit fleet server (hawkBit DDI) on 127.0.0.1 with the project's SUIT plugin.
//!
//! First the server assigns an envelope of another device class: the TA refuses it and the
//! failure feedback reaches the server with the TA's reason and a signed SUIT report. Then it
//! assigns v2 → `suit-agent.service` polls, installs through the real TA and reboots → the trial
//! boot's `suit-agent-boot-check.service` confirms → the daemon reports success with its signed
//! SUIT report → the server shows version 2, and the daemon polls again. The boot
//! time to multi-user.target is printed (`QEMU-MEASURE: systemd_boot_s=...`) and written to
//! build/bench/qemu_systemd.json (merged into summary.json like the benches' figures).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use suit_tests::device::{
    phase, signing_key_pem, tool, work_dir, AgentRun, Device, Firmware, Release, AGENT_CONFIG,
    CLASS,
};
use suit_tests::nginx::Nginx;
use suit_tests::qemu::{record_bench, repo_root, Run};
use suit_tests::systemd::{make_systemd, GooseBit};

/// The device's controller id on the fleet server.
const DEVICE: &str = "qemu-systemd-1";
/// Where the guest reaches the payload server (the fleet server is 10.0.2.100:8080).
const PAYLOADS: &str = "http://10.0.2.101:8080";

/// Run by suit-qemu-ready.service after multi-user.target: once the daemon's verdict on a
/// deployment has reached the server in this boot (its action record, written since the boot,
/// says delivered), a few more polls (the server's poll time is 1 s), then power off. A boot
/// that installs reboots before. The record's time is read before its text: the daemon
/// replaces the file atomically, so text read after a time of this boot is of this boot
/// (the other order can pair the last boot's verdict with the time of a newer record).
const SCENARIO: &str = r#"#!/bin/sh
booted=$(awk '/^btime/ {print $2}' /proc/stat)
action=/data/suit-agent/ddi-action.json
for u in tee-supplicant suit-agent-boot-check suit-agent suit-qemu-app; do
    echo "SUIT-UNIT: $u.service $(systemctl show -p ActiveState -p SubState -p Result -p ExecMainStatus $u.service | sort | tr '\n' ' ')"
done
i=0
while [ $i -lt 600 ]; do
    if [ "$(stat -c %Y $action 2>/dev/null || echo 0)" -ge "$booted" ] && grep -q '"delivered":true' $action; then
        echo "SUIT-FLEET: verdict delivered: $(head -c 300 $action)"
        sleep 6
        echo "SUIT-FLEET: daemon $(systemctl is-active suit-agent.service) after the verdict"
        systemctl poweroff
        exit 0
    fi
    sleep 0.5; i=$((i + 1))
done
echo "SUIT-FLEET: no verdict delivered within 300 s"
systemctl poweroff
"#;

/// `SUIT-MEASURE: systemd_boot_s=X` of a boot (the uptime at multi-user.target).
fn boot_seconds(run: &Run) -> f64 {
    run.markers("SUIT-MEASURE: systemd_boot_s=")
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no boot time\n{}", run.report()))
}

/// The device's agent configuration on the root disk: the QEMU device's (qemu/agent-config.toml)
/// with the fleet server and a reboot through systemd.
fn systemd_config(dir: &Path) -> std::path::PathBuf {
    let base = fs::read_to_string(repo_root().join(AGENT_CONFIG)).unwrap();
    let text = format!(
        "reboot-command = [\"/usr/bin/systemctl\", \"reboot\"]\n{base}\n\
         [ddi]\nserver-url = \"http://10.0.2.100:8080\"\ncontroller-id = \"{DEVICE}\"\n\
         target-token = \"qemu-systemd-token\"\nboard-name = \"qemu-virt\"\nboard-revision = \"1\"\n"
    );
    let path = dir.join("systemd-agent-config.toml");
    fs::write(&path, text).unwrap();
    path
}

/// The device's log on the server (its feedback lines).
fn device_log(server: &GooseBit) -> String {
    server
        .get(&format!("/api/v1/devices/{DEVICE}/log"))
        .unwrap()["log"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The last SUIT report carried by the feedback lines `suit-report i/n: HEX` of the server's
/// device log, checked with `suit-tool verify-report` against the device's signing key; its JSON.
fn verified_report(dir: &Path, log: &str, signing_key: &Path) -> Value {
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("suit-report "))
        .collect();
    let last_start = lines.iter().rposition(|l| l.starts_with("1/")).unwrap_or(0);
    let hex: String = lines[last_start..]
        .iter()
        .filter_map(|l| l.split_once(": ").map(|(_, h)| h.to_string()))
        .collect();
    assert!(
        !hex.is_empty(),
        "no SUIT report in the server's log:\n{log}"
    );
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let report = dir.join("feedback.suit-report");
    fs::write(&report, bytes).unwrap();
    let out = tool(
        dir,
        &[
            "verify-report",
            "--device-key",
            &signing_key.to_string_lossy(),
            &report.to_string_lossy(),
            "--json",
        ],
    )
    .unwrap();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn goosebit_updates_the_systemd_device_through_the_ta() {
    let work = work_dir("systemd_update").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let mut dev = Device::new("systemd_update", &v1).unwrap();

    // The device's signing key (reports), from the busybox device (its factory image).
    let run = dev.boot("info key").unwrap();
    run.expect_success().unwrap();
    let signing_key = work.join("signing.pub.pem");
    signing_key_pem(&run.info("key").unwrap(), &signing_key).unwrap();

    // From now on the device boots systemd.
    let config = systemd_config(&work);
    phase(
        "systemd root image (dpkg -i of make deb's packages)",
        || make_systemd(&mut dev, &config, SCENARIO).unwrap(),
    );
    let nginx = Nginx::start();
    let server = GooseBit::start(&work.join("goosebit")).unwrap();
    dev.vm
        .network(server.port)
        .forward("10.0.2.101", nginx.http_port)
        .timeout(Duration::from_secs(420));
    let refused = Release::create(
        &work,
        "other-class",
        3,
        "another-class",
        &v2,
        &format!("{PAYLOADS}/other-class.img"),
        None,
    )
    .unwrap();
    nginx.put("other-class.img", &fs::read(&refused.payload).unwrap());
    server
        .assign(DEVICE, &fs::read(&refused.envelope).unwrap(), 3)
        .unwrap();

    // Boot 1 under systemd (slot A, v1): the TA refuses the other class's envelope; the failure
    // reaches the server with the TA's reason, and nothing is installed.
    let run = phase("systemd boot: poll, refusal of another class", || {
        dev.vm.boot().unwrap()
    });
    assert_eq!(run.booted_slot(), Some('A'), "{}", run.report());
    run.expect("SUIT-INIT: switch_root to systemd").unwrap();
    run.expect("SUIT-FLEET: verdict delivered").unwrap();
    assert!(
        !run.contains("installed sequence"),
        "the other class's envelope was installed\n{}",
        run.report()
    );
    let refusal_boot = boot_seconds(&run);
    let device = server.get(&format!("/api/v1/devices/{DEVICE}")).unwrap();
    assert_eq!(device["last_state"], "Error", "{device}");
    assert_ne!(device["sw_version"], "3", "{device}");
    let log = device_log(&server);
    assert!(
        log.contains("[applicability]") && log.contains("class"),
        "the TA's reason is not in the server's log:\n{log}"
    );
    let report = verified_report(&work, &log, &signing_key);
    assert_eq!(report["result"], "failure", "{report}");

    let rel2 = Release::create(
        &work,
        "v2",
        2,
        CLASS,
        &v2,
        &format!("{PAYLOADS}/v2.img"),
        None,
    )
    .unwrap();
    nginx.put("v2.img", &fs::read(&rel2.payload).unwrap());
    server
        .assign(DEVICE, &fs::read(&rel2.envelope).unwrap(), 2)
        .unwrap();

    // Boot 2 (slot A, v1): the daemon polls, installs v2 through the TA, reboots.
    let run = phase("systemd boot: poll, install v2, reboot", || {
        dev.vm.boot().unwrap()
    });
    assert_eq!(run.booted_slot(), Some('A'), "{}", run.report());
    run.expect("SUIT-SYSTEMD: multi-user reached").unwrap();
    run.expect("APP-VERSION: v1").unwrap();
    assert!(
        run.contains("installed sequence 2") && run.contains("reboot"),
        "the daemon did not install v2 and reboot\n{}",
        run.report()
    );
    assert!(
        !run.contains("SUIT-FLEET: verdict delivered"),
        "{}",
        run.report()
    );
    let first_boot = boot_seconds(&run);
    println!(
        "QEMU-MEASURE: systemd_boot_s={first_boot} (first boot of the root, to multi-user.target)"
    );
    let state = dev.vm.bootstate().unwrap().unwrap();
    assert!(
        state.contains(&("BOOT_ORDER".into(), "B A".into())),
        "{state:?}"
    );

    // Boot 3: the trial of slot B; boot-check confirms, the daemon reports success.
    let run = phase("systemd trial boot: confirm, report", || {
        dev.vm.boot().unwrap()
    });
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    run.expect("APP-VERSION: v2").unwrap();
    run.expect("confirmed slot B: sequence 2").unwrap();
    let unit = run
        .markers("SUIT-UNIT: suit-agent-boot-check.service")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    // `systemctl show` lists the properties in its own order: sorted by the scenario.
    assert_eq!(
        unit,
        "ActiveState=active ExecMainStatus=0 Result=success SubState=exited",
        "{}",
        run.report()
    );
    run.expect("SUIT-FLEET: verdict delivered").unwrap();
    run.expect("SUIT-FLEET: daemon active after the verdict")
        .unwrap();
    let trial_boot = boot_seconds(&run);
    println!("QEMU-MEASURE: systemd_trial_boot_s={trial_boot} (trial boot, to multi-user.target)");

    // The server: version 2, finished, the SUIT report signed by the device; polled again.
    let device = server.get(&format!("/api/v1/devices/{DEVICE}")).unwrap();
    assert_eq!(device["sw_version"], "2", "{device}");
    assert_eq!(device["last_state"], "Finished", "{device}");
    let log = device_log(&server);
    assert!(log.contains("sequence 2 confirmed"), "{log}");
    let report = verified_report(&work, &log, &signing_key);
    assert_eq!(report["result"], "success", "{report}");
    let access = server.log();
    let feedback_at = access
        .rfind("/feedback")
        .unwrap_or_else(|| panic!("no feedback request in the server's log:\n{access}"));
    let polls_after = access[feedback_at..]
        .matches(&format!("GET /DEFAULT/controller/v1/{DEVICE} "))
        .count();
    assert!(
        polls_after >= 1,
        "the daemon did not poll after its verdict:\n{access}"
    );

    record_bench(
        "qemu_systemd",
        &[
            ("systemd_boot_s", first_boot),
            ("systemd_refusal_boot_s", refusal_boot),
            ("systemd_trial_boot_s", trial_boot),
        ],
    );
}

//! Attacks on the TA's own state by root in Linux, on the RPMB variant (the default QEMU
//! device; the TA built with TA_STORAGE=rpmb): wiping OP-TEE's REE-FS files, restoring an older
//! copy of them after a newer update was confirmed, and making the RPMB route fail while the
//! TA starts (booting without the eMMC).
//! After each: the anti-rollback floor never goes down, the device key never changes,
//! PROVISION stays locked, and where the TA cannot read its state it refuses with a clear
//! message instead of starting fresh. Also: the floor and a pending trial survive QEMU restarts
//! and a power cut during the TA's RPMB write (COMMIT).
//!   cargo test -p suit-tests --features qemu --test qemu_state_attacks -- --test-threads=1
//! (part of `make qemu-test`, not of `QEMU_RPMB=0 make qemu-test`: only RPMB withstands these)

use std::fs;
use std::path::Path;

use serde_json::Value;
use suit_tests::device::{phase, rootfs_floor, work_dir, AgentRun, Device, Firmware, Release};
use suit_tests::qemu::{Disk, Outcome, Run, Stop};

const CLASS: &str = suit_tests::device::CLASS;

/// What the device looked like after its confirmed update.
struct Known {
    key: String,
    floor: u64,
    provisioned: Value,
    /// The data disk (OP-TEE's REE-FS files in /data/tee) before the update was confirmed.
    old_data: Vec<u8>,
}

/// A factory device with v1 in slot A and a USB stick holding v2's envelope (sequence 2).
fn device_with_v2_on_usb(name: &str) -> Device {
    let work = work_dir(name).unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let dev = Device::new(name, &v1).unwrap();
    let stick = work.join("usb");
    fs::create_dir_all(&stick).unwrap();
    fs::copy(&v2.image, stick.join("v2.img")).unwrap();
    let v2 = Firmware {
        version: v2.version,
        image: stick.join("v2.img"),
    };
    Release::create(
        &stick,
        "v2",
        2,
        CLASS,
        &v2,
        "file:///media/usb/v2.img",
        None,
    )
    .unwrap();
    dev.vm.set_usb(&stick, 16).unwrap();
    dev
}

/// A device with v1 from the factory and v2 (sequence 2) installed from a USB stick, its
/// trial boot confirmed: floor 2. Returns the device and what it looked like then.
fn updated_device(name: &str) -> (Device, Known) {
    let mut dev = device_with_v2_on_usb(name);

    // The first GET_INFO of a TA instance already names RPMB (each suit-agent run opens the
    // TA anew); then install v2.
    let run = phase("install v2 from USB", || {
        dev.boot("info first\nagent install-v2 install file:///media/usb/v2.suit\n")
            .unwrap()
    });
    run.expect_success().unwrap();
    let first = run.info("first").unwrap();
    assert!(
        first["storage"].as_str().unwrap_or("").starts_with("RPMB"),
        "GET_INFO must report RPMB from the first call: {first}"
    );
    let install = run.step("install-v2").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let old_data = fs::read(dev.vm.disk_path(Disk::Data)).unwrap();

    // The restart keeps the pending trial (in RPMB): the trial boot of B confirms it.
    let run = phase("trial boot of v2, confirm", || {
        dev.boot("info confirmed").unwrap()
    });
    run.expect_success().unwrap();
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("confirmed slot B: sequence 2"),
        "{said}\n{}",
        run.report()
    );
    let confirmed = run.info("confirmed").unwrap();
    assert_eq!(rootfs_floor(&confirmed), Some(2), "{confirmed}");
    assert_eq!(first["device-public-key"], confirmed["device-public-key"]);
    let known = Known {
        key: confirmed["device-public-key"].as_str().unwrap().to_string(),
        floor: 2,
        provisioned: confirmed["provisioned"].clone(),
        old_data,
    };
    (dev, known)
}

/// The guest script of an attacked boot: the TA asked for its info (`agent LABEL info`, so
/// that a refusal's message is on the console) and, if it answers, `info LABEL-json`; then
/// PROVISION, which must stay refused.
fn probe(label: &str) -> String {
    format!(
        "agent {label} info\n\
         info {label}-json\n\
         agent {label}-provision provision --device-id 00000000-0000-4000-8000-000000000001\n"
    )
}

/// The verdict of [`probe`] in `run`: the TA either refused with a clear message naming the
/// storage problem, or answered with the known key, a floor not below the known one and
/// PROVISION unchanged. Never a fresh state. Returns "refused" or "intact" for the report.
fn check_probe(run: &Run, label: &str, known: &Known) -> &'static str {
    let step = run.step(label).unwrap();
    let provision = run.step(&format!("{label}-provision")).unwrap();
    assert_ne!(
        provision.exit, 0,
        "{label}: PROVISION must stay locked: {provision:?}"
    );
    if step.exit == 0 {
        let info = run.info(&format!("{label}-json")).unwrap();
        assert_eq!(
            info["device-public-key"].as_str(),
            Some(known.key.as_str()),
            "{label}: the device key changed (a fresh state): {info}"
        );
        assert!(
            rootfs_floor(&info).is_some_and(|f| f >= known.floor),
            "{label}: the floor went down: {info}"
        );
        assert_eq!(info["provisioned"], known.provisioned, "{label}: {info}");
        assert!(
            info["storage"].as_str().unwrap_or("").starts_with("RPMB"),
            "{info}"
        );
        "intact"
    } else {
        assert!(
            step.said.contains("FAILED") && clear_storage_message(&step.said),
            "{label}: the refusal must say that secure storage failed: {step:?}\n{}",
            run.report()
        );
        assert!(
            run.info(&format!("{label}-json"))
                .map(|i| i.is_null())
                .unwrap_or(true),
            "{label}: the TA refused info but printed one"
        );
        "refused"
    }
}

/// Whether an agent failure line names a storage failure a human can act on.
fn clear_storage_message(said: &str) -> bool {
    ["secure storage", "RPMB"].iter().any(|w| said.contains(w))
}

/// Boots with the known-good data disk and eMMC back: the TA answers with the same key and
/// floor, its storage RPMB.
fn check_recovered(dev: &mut Device, label: &str, known: &Known) {
    let run = dev.boot(&format!("info {label}")).unwrap();
    run.expect_success().unwrap();
    let info = run.info(label).unwrap();
    assert_eq!(
        info["device-public-key"].as_str(),
        Some(known.key.as_str()),
        "{info}"
    );
    assert_eq!(rootfs_floor(&info), Some(known.floor), "{info}");
    assert_eq!(info["provisioned"], known.provisioned);
}

/// Root wipes OP-TEE's REE-FS files, restores an older copy of them, hides the eMMC: never a
/// fresh state, never a lower floor.
#[test]
fn attacks_on_the_ta_state_never_give_a_fresh_state_or_a_lower_floor() {
    let (mut dev, known) = updated_device("state_attacks");
    let data = dev.vm.disk_path(Disk::Data);
    let good_data = fs::read(&data).unwrap();
    let good_emmc = fs::read(dev.vm.emmc_path()).unwrap();
    let mut verdicts = Vec::new();

    // 1. Wipe OP-TEE's REE-FS files as root, reboot.
    let run = phase("attack: wipe /data/tee", || {
        dev.boot("rm -rf /data/tee/* && sync && echo SUIT-RESULT: wiped\n")
            .unwrap()
    });
    assert_eq!(run.markers("SUIT-RESULT:"), ["wiped"], "{}", run.report());
    let run = phase("after the wipe", || dev.boot(&probe("wiped")).unwrap());
    run.expect_poweroff().unwrap();
    verdicts.push(("REE-FS files wiped", check_probe(&run, "wiped", &known)));
    restore(&data, &good_data, dev.vm.emmc_path().as_path(), &good_emmc);
    check_recovered(&mut dev, "after-wipe-restored", &known);

    // 2. Restore an older copy of the REE-FS files (taken before v2 was confirmed).
    fs::write(&data, &known.old_data).unwrap();
    let run = phase("attack: older REE-FS files", || {
        dev.boot(&probe("rolled-back")).unwrap()
    });
    run.expect_poweroff().unwrap();
    verdicts.push((
        "older REE-FS files restored",
        check_probe(&run, "rolled-back", &known),
    ));
    restore(&data, &good_data, dev.vm.emmc_path().as_path(), &good_emmc);
    check_recovered(&mut dev, "after-rollback-restored", &known);

    // 3. The RPMB route fails while the TA starts: the eMMC is not there at all.
    dev.vm.hide_emmc(true);
    let run = phase("attack: boot without the eMMC", || {
        dev.boot(&probe("no-emmc")).unwrap()
    });
    dev.vm.hide_emmc(false);
    run.expect_poweroff().unwrap();
    assert_eq!(
        check_probe(&run, "no-emmc", &known),
        "refused",
        "without RPMB the TA cannot have read its state"
    );
    verdicts.push(("booted without the eMMC", "refused"));

    // (Unbinding the eMMC's controller at run time is not among them: the kernel's RPMB
    // route then dereferences the removed device and oopses, a denial of service only.)
    check_recovered(&mut dev, "final", &known);
    for (attack, verdict) in verdicts {
        eprintln!("QEMU-MEASURE: state attack: {attack}: TA {verdict}");
    }
}

/// Puts the known-good data disk and eMMC image back (the host's copy, taken after the
/// confirmed update).
fn restore(data: &Path, good_data: &[u8], emmc: &Path, good_emmc: &[u8]) {
    fs::write(data, good_data).unwrap();
    fs::write(emmc, good_emmc).unwrap();
}

/// A power cut while the TA writes its state to RPMB (COMMIT of an install, right after the
/// agent recorded the written slot), then restarts: the state is the old or the new one,
/// never corrupt or fresh; the install completes, its trial survives the restart and the
/// floor rises to 2 and stays there.
#[test]
fn floor_and_pending_trial_survive_restarts_and_a_power_cut_during_an_rpmb_write() {
    let name = "state_power_cut";
    let mut dev = device_with_v2_on_usb(name);

    // Cut once the agent journaled the written slot: the next TA call is COMMIT, whose RPMB
    // write takes about a second under TCG.
    let run = phase("power cut during COMMIT's RPMB write", || {
        dev.boot_until(
            "info before\n\
             agent install install file:///media/usb/v2.suit &\n\
             i=0\n\
             while ! grep -q '\"written\"' /data/suit-agent/journal.json 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done\n\
             echo SUIT-MARK: slot written, COMMIT next\n\
             wait\n",
            Stop::KillAt("SUIT-MARK: slot written".into()),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    let key = run.info("before").unwrap()["device-public-key"].clone();

    // Restarts until the update is confirmed (at most three): the TA answers each time with
    // the same key; the install resumes or its committed trial runs.
    let mut floor = None;
    for n in 1..=3 {
        let run = phase("restart after the cut", || {
            dev.boot(&format!(
                "info after-{n}\n\
                 agent resume-{n} install file:///media/usb/v2.suit\n\
                 info end-{n}\n"
            ))
            .unwrap()
        });
        run.expect_success().unwrap();
        for label in [format!("after-{n}"), format!("end-{n}")] {
            let info = run.info(&label).unwrap();
            assert_eq!(
                info["device-public-key"], key,
                "the TA's state was lost or replaced: {info}"
            );
            assert!(
                info["storage"].as_str().unwrap_or("").starts_with("RPMB"),
                "{info}"
            );
            floor = rootfs_floor(&info);
        }
        if floor == Some(2) {
            break;
        }
    }
    assert_eq!(
        floor,
        Some(2),
        "the update never got confirmed after the cut"
    );

    // The floor survives another restart.
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let run = dev.boot("info restarted").unwrap();
    run.expect_success().unwrap();
    let info = run.info("restarted").unwrap();
    assert_eq!(rootfs_floor(&info), Some(2), "{info}");
    assert_eq!(info["device-public-key"], key);
}

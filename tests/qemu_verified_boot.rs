//! Verified boot in real OP-TEE under QEMU: /init asks the TA (BOOT_VERIFY through
//! `suit-agent boot-verify`) before it mounts a slot, maps it through dm-verity with the TA's
//! root hash, and reads the application through it. Each attack runs as root in the guest and
//! is followed by a reboot; the attacker's code must never run, the floor never decreases, and
//! the device comes up on the approved slot or stops in recovery with a clear line.
//!   cargo test -p suit-tests --features qemu --test qemu_verified_boot -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    phase, rootfs_floor, work_dir, AgentRun, Device, Firmware, Release, CLASS,
};
use suit_tests::qemu::{make_ext4, Disk, Outcome, Run, Stop};

/// What the attacker's replacement application prints.
const EVIL: &str = "APP-VERSION: evil";

/// A firmware image whose application carries `blob_mib` MiB of data, so that the middle of
/// the image belongs to the application (read through dm-verity at every boot).
fn firmware(dir: &Path, version: &str, healthy: bool, size_mib: u32, blob_mib: usize) -> Firmware {
    let fw = Firmware::build(dir, version, healthy, size_mib).unwrap();
    let tree = dir.join(format!("{version}-tree"));
    let blob: Vec<u8> = (0..blob_mib << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    fs::write(tree.join("app/data"), blob).unwrap();
    make_ext4(&tree, &fw.image, size_mib, version).unwrap();
    fw
}

/// The physical block of `file`'s block `logical` in the ext4 `image` (debugfs).
fn physical_block(image: &Path, file: &str, logical: u64) -> u64 {
    let out = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap {file} {logical}"))
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("debugfs bmap: {}", String::from_utf8_lossy(&out.stderr)))
}

/// An envelope for `fw` whose payload is read from the USB stick, and the stick with both.
fn release_on_usb(dev: &Device, work: &Path, fw: &Firmware, sequence: u64) {
    let stick = work.join(format!("{}-usb", fw.version));
    fs::create_dir_all(&stick).unwrap();
    fs::copy(&fw.image, stick.join(format!("{}.img", fw.version))).unwrap();
    let uri = format!("file:///media/usb/{}.img", fw.version);
    let local = Firmware {
        version: fw.version.clone(),
        image: stick.join(format!("{}.img", fw.version)),
    };
    Release::create(&stick, "update", sequence, CLASS, &local, &uri, None).unwrap();
    let mib = u32::try_from(fw.size().unwrap() >> 20).unwrap() + 8;
    dev.vm.set_usb(&stick, mib).unwrap();
}

/// The common verdict of an attack's reboot: the attacker's code never ran, the floor is 2,
/// and the device runs confirmed v2 from slot B.
/// After a fallback that rolled the trial back (floor untouched), the trial slot is no longer
/// approved: pointing the boot state at it still comes up on slot A with v1.
fn rolled_back_trial_stays_refused(dev: &mut Device, run: &Run) {
    let (ok, said) = run.boot_check().unwrap();
    assert!(ok && said.contains("rolled back"), "{said}");
    assert_eq!(rootfs_floor(&run.info("after").unwrap()), None);
    dev.boot(
        "printf 'BOOT_ORDER=B A\\nBOOT_A_LEFT=3\\nBOOT_B_LEFT=3\\n' > /data/boot/bootstate; sync",
    )
    .unwrap()
    .expect_success()
    .unwrap();
    let run = dev.boot("").unwrap();
    assert!(
        run.contains("SUIT-BOOT: slot B refused by the TA"),
        "{}",
        run.report()
    );
    assert_eq!(
        (run.booted_slot(), run.app_version()),
        (Some('A'), Some("v1")),
        "{}",
        run.report()
    );
}

fn runs_v2(run: &Run) {
    run.expect_success().unwrap();
    assert!(
        !run.contains(EVIL),
        "the attacker's code ran\n{}",
        run.report()
    );
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    assert_eq!(run.app_version(), Some("v2"), "{}", run.report());
    assert!(
        run.contains("SUIT-BOOT: slot B approved by the TA: sequence 2, good"),
        "{}",
        run.report()
    );
    assert_eq!(rootfs_floor(&run.info("after").unwrap()), Some(2));
}

/// Guest commands that release slot B's verity device and mount its raw disk read-write.
const OPEN_B_RW: &str = "umount /slot; dmsetup remove_all\nmkdir -p /mnt/b && mount -t ext4 /dev/disk/by-id/virtio-slot-b /mnt/b\n";

#[test]
fn attacks_as_root_never_run_unapproved_code() {
    let work = work_dir("verified_boot_attacks").unwrap();
    let v1 = firmware(&work, "v1", true, 16, 6);
    let v2 = firmware(&work, "v2", true, 16, 6);
    let v3 = firmware(&work, "v3", true, 8, 1);
    let mut dev = Device::new("verified_boot_attacks", &v1).unwrap();

    // The factory boot (Device::new) approved slot A; the first ordinary boot runs v1
    // through dm-verity.
    let run = phase("factory image boots verified", || {
        dev.boot("info first").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(
        (run.booted_slot(), run.app_version()),
        (Some('A'), Some("v1")),
        "{}",
        run.report()
    );
    assert!(
        run.contains("SUIT-BOOT: slot A approved by the TA: sequence 0, good"),
        "{}",
        run.report()
    );
    assert!(
        run.contains("/dev/mapper/suit-slot-a (root hash from the TA) mounted read-only at /slot")
    );

    // Honest path: update -> trial -> confirm -> boot.
    release_on_usb(&dev, &work, &v2, 2);
    let run = phase("install v2", || {
        dev.boot("agent install install /media/usb/update.suit")
            .unwrap()
    });
    assert_eq!(run.step("install").unwrap().exit, 0, "{}", run.report());
    let run = phase("trial boot of v2, confirm", || {
        dev.boot("info after").unwrap()
    });
    run.expect_success().unwrap();
    assert!(
        run.contains("SUIT-BOOT: slot B approved by the TA: sequence 2, trial"),
        "{}",
        run.report()
    );
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("confirmed slot B: sequence 2"),
        "{said}"
    );
    assert_eq!(run.app_version(), Some("v2"));
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let good_b = work.join("slot-b-confirmed.img");
    fs::copy(dev.vm.disk_path(Disk::SlotB), &good_b).unwrap();
    let restore_b = |dev: &Device| fs::copy(&good_b, dev.vm.disk_path(Disk::SlotB)).unwrap();

    // 1. Downgrade: prefer slot A (v1) in the boot state.
    dev.boot(
        "printf 'BOOT_ORDER=A B\\nBOOT_A_LEFT=3\\nBOOT_B_LEFT=3\\n' > /data/boot/bootstate; sync",
    )
    .unwrap()
    .expect_success()
    .unwrap();
    let run = phase("(1) downgrade: reboot", || dev.boot("info after").unwrap());
    assert!(
        run.contains("SUIT-BOOT: slot A refused by the TA: "),
        "{}",
        run.report()
    );
    assert!(
        run.contains(
            "is not approved to boot: its sequence number 0 is below the anti-rollback floor 2"
        ),
        "{}",
        run.report()
    );
    assert!(!run.contains("APP-VERSION: v1"));
    runs_v2(&run);

    // 2. Tamper: replace slot B's application through its raw disk.
    dev.boot(&format!(
        "{OPEN_B_RW}printf '#!/bin/sh\\necho \"{EVIL}\"\\n' > /mnt/b/app/start; umount /mnt/b; sync"
    ))
    .unwrap()
    .expect_success()
    .unwrap();
    let run = phase("(2) tampered slot B: reboot", || {
        dev.boot("info after").unwrap()
    });
    run.expect_success().unwrap();
    assert!(
        !run.contains(EVIL),
        "the attacker's code ran\n{}",
        run.report()
    );
    assert!(
        run.contains("SUIT-BOOT: slot B: verification failed"),
        "{}",
        run.report()
    );
    assert!(run.contains("SUIT-BOOT: recovery: "), "{}", run.report());
    assert_eq!(run.app_version(), None);
    assert_eq!(rootfs_floor(&run.info("after").unwrap()), Some(2));
    restore_b(&dev);
    runs_v2(&dev.boot("info after").unwrap());

    // 3. Copy and modify: the approved slot B image over slot A, changed, A preferred.
    dev.boot(&format!(
        "umount /slot; dmsetup remove_all\n\
         dd if=/dev/disk/by-id/virtio-slot-b of=/dev/disk/by-id/virtio-slot-a bs=1M 2>/dev/null\n\
         mkdir -p /mnt/a && mount -t ext4 /dev/disk/by-id/virtio-slot-a /mnt/a\n\
         printf '#!/bin/sh\\necho \"{EVIL}\"\\n' > /mnt/a/app/start; umount /mnt/a\n\
         printf 'BOOT_ORDER=A B\\nBOOT_A_LEFT=3\\nBOOT_B_LEFT=3\\n' > /data/boot/bootstate; sync"
    ))
    .unwrap()
    .expect_success()
    .unwrap();
    let run = phase("(3) copied and modified into A: reboot", || {
        dev.boot("info after").unwrap()
    });
    assert!(
        run.contains("SUIT-BOOT: slot A refused by the TA"),
        "{}",
        run.report()
    );
    runs_v2(&run);

    // 4. Random bytes into one block in the middle of the confirmed slot (of its 16 MiB image:
    //    the middle of the application's 6 MiB data file lies there).
    let middle = physical_block(&v2.image, "/app/data", 768);
    assert!(
        (1536..2560).contains(&middle),
        "block {middle} is not in the middle of the image"
    );
    dev.boot(&format!(
        "umount /slot; dmsetup remove_all\n\
         dd if=/dev/urandom of=/dev/disk/by-id/virtio-slot-b bs=4096 seek={middle} count=1 conv=notrunc,fsync 2>/dev/null; sync"
    ))
    .unwrap()
        .expect_success()
        .unwrap();
    let run = phase("(4) a random block in slot B: reboot", || {
        dev.boot("info after").unwrap()
    });
    run.expect_success().unwrap();
    assert!(
        run.contains("SUIT-BOOT: slot B: verification failed: dm-verity found corrupted blocks"),
        "{}",
        run.report()
    );
    assert!(run.contains("SUIT-BOOT: recovery: "), "{}", run.report());
    assert!(run.contains("device-mapper: verity"), "{}", run.report());
    assert_eq!(run.app_version(), None);
    assert_eq!(rootfs_floor(&run.info("after").unwrap()), Some(2));
    restore_b(&dev);

    // 5. A trial rolled back, then the boot state pointed at it.
    release_on_usb(&dev, &work, &v3, 3);
    let run = dev
        .boot("agent install install /media/usb/update.suit\nagent rollback rollback")
        .unwrap();
    assert_eq!(run.step("install").unwrap().exit, 0, "{}", run.report());
    assert_eq!(run.step("rollback").unwrap().exit, 0, "{}", run.report());
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    dev.boot(
        "printf 'BOOT_ORDER=A B\\nBOOT_A_LEFT=1\\nBOOT_B_LEFT=3\\n' > /data/boot/bootstate; sync",
    )
    .unwrap()
    .expect_success()
    .unwrap();
    let run = phase("(5) boot state at a rolled-back trial: reboot", || {
        dev.boot("info after").unwrap()
    });
    assert!(
        run.contains("SUIT-BOOT: slot A refused by the TA: "),
        "{}",
        run.report()
    );
    assert!(
        run.contains("is not approved to boot: the TA has no approval for it"),
        "{}",
        run.report()
    );
    assert!(!run.contains("APP-VERSION: v3"));
    runs_v2(&run);
}

#[test]
fn failed_trial_and_power_cut_fall_back_to_the_approved_slot() {
    let work = work_dir("verified_boot_fallback").unwrap();
    let v1 = firmware(&work, "v1", true, 8, 1);
    let v2 = firmware(&work, "v2", false, 8, 1);
    let v3 = firmware(&work, "v3", true, 8, 1);
    let mut dev = Device::new("verified_boot_fallback", &v1).unwrap();

    // A failed trial (v2's health check fails): back on A, and B's trial approval withdrawn.
    release_on_usb(&dev, &work, &v2, 2);
    let run = dev
        .boot("agent install install /media/usb/update.suit")
        .unwrap();
    assert_eq!(run.step("install").unwrap().exit, 0, "{}", run.report());
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let run = phase("failed trial of v2", || dev.boot("info trial").unwrap());
    assert!(
        run.contains("SUIT-BOOT: slot B approved by the TA: sequence 2, trial"),
        "{}",
        run.report()
    );
    assert!(run.contains("SUIT-BOOTCHECK: FAILED"), "{}", run.report());
    let run = phase("fallback after the failed trial", || {
        dev.boot("info after").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(
        (run.booted_slot(), run.app_version()),
        (Some('A'), Some("v1")),
        "{}",
        run.report()
    );
    rolled_back_trial_stays_refused(&mut dev, &run);

    // Power cut during the trial boot of v3: the next boot falls back to A, which rolls the
    // trial back; the trial slot is no longer approved.
    release_on_usb(&dev, &work, &v3, 3);
    let run = dev
        .boot("agent install install /media/usb/update.suit")
        .unwrap();
    assert_eq!(run.step("install").unwrap().exit, 0, "{}", run.report());
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let run = phase("power cut during the trial boot", || {
        dev.boot_until("", Stop::KillAt("SUIT-READY".into()))
            .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    assert!(
        run.contains("SUIT-BOOT: slot B approved by the TA: sequence 3, trial"),
        "{}",
        run.report()
    );
    let run = phase("after the power cut", || dev.boot("info after").unwrap());
    run.expect_success().unwrap();
    assert_eq!(
        (run.booted_slot(), run.app_version()),
        (Some('A'), Some("v1")),
        "{}",
        run.report()
    );
    assert!(!run.contains("APP-VERSION: v3"));
    rolled_back_trial_stays_refused(&mut dev, &run);
}

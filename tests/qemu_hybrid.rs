//! A hybrid post-quantum update end to end in QEMU (issue 14): the real TA built with
//! `TA_HYBRID=1` (anchor set: the development ECDSA P-384 **and** ML-DSA-65 keys, policy
//! "all must sign", ML-DSA-65 verified by fips204 inside OP-TEE), the real agent.
//! Manufacturing and an update from a USB stick: each envelope once with the ECDSA signature
//! only (refused: authentication) and once with both (installed); then the trial boot of the
//! update confirms it.
//!   cargo test -p suit-tests --features qemu --test qemu_hybrid -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    phase, rootfs_floor, tool, work_dir, AgentRun, Device, Firmware, Release, AGENT_CONFIG, CLASS,
};
use suit_tests::qemu::{build_ta_variant, ensure_agent, make_ext4, repo_root, Disk, Machine};

/// The post-quantum half of the development hybrid pair.
const MLDSA_KEY: &str = "keys/dev-vendor-mldsa65.priv.pem";

/// A release on the USB stick `stick` for `firmware` (`<name>.img`), as `<name>.suit` signed
/// with the ECDSA key only and `<name>-hybrid.suit` with the ML-DSA-65 signature added.
fn release(stick: &Path, name: &str, sequence: u64, firmware: &Firmware) {
    fs::create_dir_all(stick).unwrap();
    let image = stick.join(format!("{name}.img"));
    fs::copy(&firmware.image, &image).unwrap();
    let on_stick = Firmware {
        version: firmware.version.clone(),
        image,
    };
    let uri = format!("file:///media/usb/{name}.img");
    let rel = Release::create(stick, name, sequence, CLASS, &on_stick, &uri, None).unwrap();
    let hybrid = stick.join(format!("{name}-hybrid.suit"));
    tool(
        stick,
        &[
            "sign",
            "--key",
            &repo_root().join(MLDSA_KEY).to_string_lossy(),
            &rel.envelope.to_string_lossy(),
            "--out",
            &hybrid.to_string_lossy(),
        ],
    )
    .unwrap();
}

#[test]
fn hybrid_update_end_to_end() {
    let work = work_dir("qemu_hybrid").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let tas = phase("build the hybrid TA", || {
        build_ta_variant(&work, "hybrid", &[("TA_HYBRID", "1")])
    });

    let mut vm = Machine::at(repo_root().join("build/qemu-tests/qemu_hybrid")).unwrap();
    vm.agent(
        ensure_agent().unwrap(),
        Some(&repo_root().join(AGENT_CONFIG)),
    );
    vm.tas(&tas);
    vm.set_slot(Disk::SlotA, &v1.image).unwrap();
    let empty = vm.dir().join("empty-tree");
    fs::create_dir_all(&empty).unwrap();
    let blank = vm.dir().join("blank.img");
    make_ext4(&empty, &blank, 4, "blank").unwrap();
    vm.set_slot(Disk::SlotB, &blank).unwrap();
    let mut dev = Device { vm };

    // Manufacturing: slot A's envelope (sequence 0) from a USB stick, in recovery.
    let factory = work.join("factory-usb");
    release(&factory, "firmware", 0, &v1);
    dev.vm.set_usb(&factory, 16).unwrap();
    let run = phase("factory install: ECDSA only, then hybrid", || {
        dev.boot(
            "info factory\n\
             agent classical factory-install /media/usb/firmware.suit --slot A\n\
             agent hybrid factory-install /media/usb/firmware-hybrid.suit --slot A\n",
        )
        .unwrap()
    });
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    dev.vm.no_script();
    let info = run.info("factory").unwrap();
    let algs = info.to_string();
    assert!(algs.contains("-49"), "GET_INFO lists no ML-DSA-65: {info}");
    let classical = run.step("classical").unwrap();
    assert_ne!(classical.exit, 0, "{}", run.report());
    assert!(
        run.contains("ML-DSA-65 key"),
        "the refusal must name the missing signature:\n{}",
        run.report()
    );
    let hybrid = run.step("hybrid").unwrap();
    assert_eq!(hybrid.exit, 0, "{}", run.report());

    // An update from a USB stick: v2 (sequence 2), classical then hybrid.
    let stick = work.join("usb");
    release(&stick, "v2", 2, &v2);
    dev.vm.set_usb(&stick, 16).unwrap();
    let run = phase("install v2: ECDSA only, then hybrid", || {
        dev.boot(
            "agent classical-v2 install /media/usb/v2.suit\n\
             agent hybrid-v2 install /media/usb/v2-hybrid.suit\n",
        )
        .unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'));
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    let classical = run.step("classical-v2").unwrap();
    assert_ne!(classical.exit, 0, "{}", run.report());
    let hybrid = run.step("hybrid-v2").unwrap();
    assert_eq!(hybrid.exit, 0, "{}", run.report());
    assert!(
        hybrid.said.contains("installed sequence 2 into slot B"),
        "{hybrid:?}"
    );

    // The trial boot of v2 confirms it.
    let run = phase("trial boot of v2, confirm", || {
        dev.boot("info confirmed").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'));
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("confirmed slot B: sequence 2"),
        "{said}"
    );
    assert_eq!(run.app_version(), Some("v2"));
    assert_eq!(rootfs_floor(&run.info("confirmed").unwrap()), Some(2));
}

//! Fleet KEK provisioning in real OP-TEE (issue 14, docs/keys.md): a factory TA
//! (`TA_FACTORY=1`) takes the fleet KEK sealed to its key-agreement key (`suit-tool wrap-kek`
//! on the host, `suit-agent provision --kek-wrapped` on the device: the KEK never crosses
//! Linux in clear). A KEK sealed to another key is refused and leaves PROVISION open; the
//! right one is accepted, and an update encrypted to the fleet KEK then installs.
//!   cargo test -p suit-tests --features qemu --test qemu_kek -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    device_key_pem, phase, tool, work_dir, AgentRun, Device, Firmware, CLASS, VENDOR, VENDOR_KEY,
};
use suit_tests::qemu::{build_ta_variant, repo_root};

/// `path` as a string argument.
fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn a_sealed_fleet_kek_is_provisioned_and_decrypts_an_update() {
    let work = work_dir("qemu_kek").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let tas = phase("build the factory TA", || {
        build_ta_variant(&work, "factory", &[("TA_FACTORY", "1")])
    });
    let mut dev = Device::new("qemu_kek", &v1).unwrap();
    dev.vm.tas(&tas);

    let run = phase("read the key-agreement key", || {
        dev.boot("info before").unwrap()
    });
    run.expect_success().unwrap();
    let before = run.info("before").unwrap();
    assert_eq!(before["provisioned"], false, "{before}");
    let device_pub = work.join("device.pub.pem");
    device_key_pem(&before, &device_pub).unwrap();

    // The factory's key server: the KEK sealed to this device, and to another key.
    let usb = work.join("usb");
    fs::create_dir_all(&usb).unwrap();
    let kek = work.join("fleet.kek");
    fs::write(&kek, [0x6b; 32]).unwrap();
    let other = work.join("other");
    tool(&work, &["keygen", "--alg", "ES384", "--out", &arg(&other)]).unwrap();
    for (key, out) in [
        (device_pub.clone(), usb.join("kek.cose")),
        (work.join("other.pub.pem"), usb.join("other.cose")),
    ] {
        tool(
            &work,
            &[
                "wrap-kek",
                "--device-key",
                &arg(&key),
                "--kek",
                &arg(&kek),
                "--out",
                &arg(&out),
            ],
        )
        .unwrap();
    }
    // v2 encrypted to the fleet KEK.
    let spec = work.join("v2.toml");
    fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"{}\"\nuri = \"file:///media/usb/v2.enc\"\n\
             [component.encryption]\nkek = \"{}\"\nkid = \"fleet\"\nciphertext = \"{}\"\n",
            v2.image.display(),
            kek.display(),
            usb.join("v2.enc").display()
        ),
    )
    .unwrap();
    tool(
        &work,
        &[
            "create",
            "--spec",
            &arg(&spec),
            "--out",
            &arg(&usb.join("v2.suit")),
            "--key",
            &arg(&repo_root().join(VENDOR_KEY)),
        ],
    )
    .unwrap();
    dev.vm.set_usb(&usb, 16).unwrap();

    let run = phase("provision the sealed KEK, install v2", || {
        dev.boot(
            "agent other provision --kek-wrapped /media/usb/other.cose --kid fleet\n\
             info refused\n\
             agent provision provision --kek-wrapped /media/usb/kek.cose --kid fleet\n\
             info provisioned\n\
             agent install install /media/usb/v2.suit\n",
        )
        .unwrap()
    });
    run.expect_success().unwrap();
    let other = run.step("other").unwrap();
    assert_ne!(other.exit, 0, "{}", run.report());
    assert!(other.said.contains("[decryption]"), "{other:?}");
    let refused = run.info("refused").unwrap();
    assert_eq!(refused["provisioned"], false, "{refused}");
    assert_eq!(refused["kek-present"], false, "{refused}");
    let provision = run.step("provision").unwrap();
    assert_eq!(provision.exit, 0, "{}", run.report());
    let provisioned = run.info("provisioned").unwrap();
    assert_eq!(provisioned["kek-present"], true, "{provisioned}");
    let install = run.step("install").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 2 into slot B"),
        "{install:?}"
    );
}

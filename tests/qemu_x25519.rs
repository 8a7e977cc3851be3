//! The EdDSA profile's key agreement in real OP-TEE (issue 14, docs/keys.md): the real TA built
//! with `TA_AGREEMENT=x25519` gets an X25519 key-agreement key on its first state; the agent
//! prints it as RFC 8410 SPKI PEM; an update encrypted to it by suit-tool (ECDH-ES+A128KW with
//! X25519, A128GCM) installs from a USB stick.
//!   cargo test -p suit-tests --features qemu --test qemu_x25519 -- --test-threads=1

use std::fs;

use suit_tests::device::{
    device_key_pem, phase, tool, work_dir, AgentRun, Device, Firmware, Release, AGENT_CONFIG,
    CLASS, VENDOR, VENDOR_KEY,
};
use suit_tests::qemu::{build_ta_variant, ensure_agent, make_ext4, repo_root, Disk, Machine};

#[test]
fn an_x25519_device_installs_an_update_encrypted_to_it() {
    let work = work_dir("qemu_x25519").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let tas = phase("build the X25519 TA", || {
        build_ta_variant(&work, "x25519", &[("TA_AGREEMENT", "x25519")])
    });

    let mut vm = Machine::at(repo_root().join("build/qemu-tests/qemu_x25519")).unwrap();
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

    // Manufacturing: slot A's envelope from a USB stick; the first GET_INFO creates the state.
    let factory = work.join("factory-usb");
    fs::create_dir_all(&factory).unwrap();
    let image = factory.join("firmware.img");
    fs::copy(&v1.image, &image).unwrap();
    let on_stick = Firmware {
        version: v1.version.clone(),
        image,
    };
    let uri = "file:///media/usb/firmware.img";
    Release::create(&factory, "firmware", 0, CLASS, &on_stick, uri, None).unwrap();
    dev.vm.set_usb(&factory, 16).unwrap();
    let run = phase("factory install, read the X25519 key", || {
        dev.boot(
            "info factory\n\
             agent factory factory-install /media/usb/firmware.suit --slot A\n",
        )
        .unwrap()
    });
    let _ = fs::remove_file(dev.vm.disk_path(Disk::Usb));
    dev.vm.no_script();
    assert_eq!(run.step("factory").unwrap().exit, 0, "{}", run.report());
    let info = run.info("factory").unwrap();
    let key = info["device-public-key"].as_str().unwrap_or_default();
    assert_eq!(key.len(), 64, "a 32-byte X25519 key: {info}");
    let device_pub = work.join("device.pub.pem");
    device_key_pem(&info, &device_pub).unwrap();

    // v2 encrypted to the device's X25519 key (the profile's A128GCM, ECDH-ES+A128KW).
    let usb = work.join("usb");
    fs::create_dir_all(&usb).unwrap();
    let spec = work.join("v2.toml");
    fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"{}\"\nuri = \"file:///media/usb/v2.enc\"\n\
             [component.encryption]\nrecipient = \"{}\"\ncontent-alg = \"A128GCM\"\n\
             ciphertext = \"{}\"\n",
            v2.image.display(),
            device_pub.display(),
            usb.join("v2.enc").display()
        ),
    )
    .unwrap();
    let envelope = usb.join("v2.suit");
    tool(
        &work,
        &[
            "create",
            "--spec",
            &spec.to_string_lossy(),
            "--out",
            &envelope.to_string_lossy(),
            "--key",
            &repo_root().join(VENDOR_KEY).to_string_lossy(),
        ],
    )
    .unwrap();
    let inspected = tool(&work, &["inspect", &envelope.to_string_lossy()]).unwrap();
    assert!(inspected.contains("ECDH-ES+A128KW (X25519)"), "{inspected}");
    dev.vm.set_usb(&usb, 16).unwrap();
    let run = phase("install v2 encrypted to X25519", || {
        dev.boot("agent install install /media/usb/v2.suit\n")
            .unwrap()
    });
    run.expect_success().unwrap();
    let install = run.step("install").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 2 into slot B"),
        "{install:?}"
    );
}

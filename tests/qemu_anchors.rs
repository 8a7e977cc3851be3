//! Trust-anchor rotation in real OP-TEE (issue 14, docs/anchors.md): the real TA (built-in
//! anchor: the development ES384 key) applies a signed anchor update that retires that key and
//! adds a new one (`suit-agent install` → UPDATE_ANCHORS), the state lands in secure storage;
//! after a reboot firmware signed by the retired key is refused, the update itself can no
//! longer be replayed, firmware signed by the new key installs, and its trial boot confirms.
//!   cargo test -p suit-tests --features qemu --test qemu_anchors -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    phase, rootfs_floor, tool, work_dir, AgentRun, Device, Firmware, Release, CLASS, VENDOR,
    VENDOR_KEY,
};
use suit_tests::qemu::repo_root;

/// `path` as a string argument.
fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn rotated_anchor_signs_firmware_after_a_reboot() {
    let work = work_dir("qemu_anchors").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let usb = work.join("usb");
    fs::create_dir_all(&usb).unwrap();
    let old_priv = repo_root().join(VENDOR_KEY);
    let old_pub = repo_root().join("keys/dev-vendor-es384.pub.pem");

    // Vendor side: a new key, the anchor update (sequence 1) signed by the key in force, and
    // v2 once signed by the old key, once by the new one.
    let k2 = work.join("k2");
    tool(&work, &["keygen", "--alg", "ES384", "--out", &arg(&k2)]).unwrap();
    let (k2_priv, k2_pub) = (work.join("k2.priv.pem"), work.join("k2.pub.pem"));
    let unsigned = work.join("anchors.suit");
    tool(
        &work,
        &[
            "anchors",
            "--add",
            &arg(&k2_pub),
            "--retire",
            &arg(&old_pub),
            "--sequence",
            "1",
            "--vendor",
            VENDOR,
            "--class",
            CLASS,
            "--out",
            &arg(&unsigned),
        ],
    )
    .unwrap();
    tool(
        &work,
        &[
            "sign",
            "--key",
            &arg(&old_priv),
            &arg(&unsigned),
            "--out",
            &arg(&usb.join("anchors.suit")),
        ],
    )
    .unwrap();
    let uri = "file:///media/usb/v2.img";
    let old = Release::create(&work, "v2-old", 2, CLASS, &v2, uri, None).unwrap();
    fs::copy(&old.envelope, usb.join("v2-old.suit")).unwrap();
    fs::copy(&old.payload, usb.join("v2.img")).unwrap();
    let spec = work.join("v2-new.toml");
    fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"{}\"\nuri = \"{uri}\"\n",
            v2.image.display()
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
            &arg(&usb.join("v2-new.suit")),
            "--key",
            &arg(&k2_priv),
        ],
    )
    .unwrap();

    let mut dev = Device::new("qemu_anchors", &v1).unwrap();
    dev.vm.set_usb(&usb, 16).unwrap();

    let run = phase("rotate the anchor set", || {
        dev.boot("agent rotate install /media/usb/anchors.suit\ninfo rotated")
            .unwrap()
    });
    run.expect_success().unwrap();
    let rotate = run.step("rotate").unwrap();
    assert_eq!(rotate.exit, 0, "{}", run.report());
    assert!(
        rotate.said.contains("trust-anchor update 1 applied"),
        "{rotate:?}"
    );
    assert_eq!(run.booted_slot(), Some('A'), "nothing to boot changed");

    let run = phase("reboot: retired key, replay, new key", || {
        dev.boot(
            "agent old install /media/usb/v2-old.suit\n\
             agent replay install /media/usb/anchors.suit\n\
             agent new install /media/usb/v2-new.suit\n",
        )
        .unwrap()
    });
    run.expect_success().unwrap();
    for label in ["old", "replay"] {
        let step = run.step(label).unwrap();
        assert_ne!(step.exit, 0, "{}", run.report());
        assert!(
            step.said.contains("FAILED [authentication]"),
            "{label}: {step:?}"
        );
    }
    let new = run.step("new").unwrap();
    assert_eq!(new.exit, 0, "{}", run.report());
    assert!(
        new.said.contains("installed sequence 2 into slot B"),
        "{new:?}"
    );
    let _ = fs::remove_file(dev.vm.disk_path(suit_tests::qemu::Disk::Usb));

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

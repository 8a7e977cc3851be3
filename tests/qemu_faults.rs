//! Faults during an update, in real OP-TEE under QEMU: power cuts (SIGKILL of QEMU) at the
//! three moments that matter, and a staged payload changed between its approval and its
//! write. Verdicts come from the serial console; the disks are checked on the host too.
//!   cargo test -p suit-tests --features qemu --test qemu_faults -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    device_key_pem, get, phase, rootfs_floor, work_dir, AgentRun, Device, Firmware, Release, CLASS,
};
use suit_tests::nginx::Nginx;
use suit_tests::qemu::{Disk, Outcome, Stop, GUEST_SERVER_URL as URL};

fn serve(nginx: &Nginx, name: &str, file: &Path) {
    nginx.put(name, &fs::read(file).unwrap());
}

/// (h) Power cuts during the download, during the write of the inactive slot, and after COMMIT
/// (trial armed) before the reboot. After each the device boots a good slot and the next
/// install resumes; in the end the trial boots and confirms.
#[test]
fn power_cuts_during_download_write_and_after_commit() {
    let nginx = Nginx::start();
    let work = work_dir("power_cuts").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    // nginx sends /slow/ at 512 KiB/s: the 4 MiB download takes about 8 s.
    let rel = Release::create(
        &work,
        "v2",
        2,
        CLASS,
        &v2,
        &format!("{URL}/slow/v2.img"),
        None,
    )
    .unwrap();
    serve(&nginx, "v2.suit", &rel.envelope);
    serve(&nginx, "slow/v2.img", &rel.payload);
    let payload_requests = || {
        nginx
            .requests()
            .into_iter()
            .filter(|r| r.uri == "/slow/v2.img")
            .collect::<Vec<_>>()
    };
    let mut dev = Device::new("power_cuts", &v1).unwrap();
    dev.vm.network(nginx.http_port);
    let slot_b = fs::read(dev.vm.disk_path(Disk::SlotB)).unwrap();

    // 1. Cut once a quarter of the payload is staged (and written back by the kernel).
    let run = phase("(h) power cut during the download", || {
        dev.boot_until(
            &format!(
                "agent install-1 install {URL}/v2.suit &\n\
                 staged() {{ stat -c %s /data/suit-agent/staging/*/*.partial 2>/dev/null || echo 0; }}\n\
                 i=0\n\
                 while [ \"$(staged)\" -lt 1048576 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n\
                 sync\n\
                 echo \"SUIT-MARK: download in progress, $(staged) bytes staged\"\n\
                 wait\n"
            ),
            Stop::KillAt("SUIT-MARK: download in progress".into()),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    assert_eq!(run.booted_slot(), Some('A'));
    assert!(
        fs::read(dev.vm.disk_path(Disk::SlotB)).unwrap() == slot_b,
        "nothing is written before approval"
    );

    // 2. The device boots A; the install resumes the download with Range, approves, and is
    //    cut while it writes slot B.
    let run = phase("(h) resume, power cut during the write", || {
        dev.boot_until(
            &format!("agent install-2 install {URL}/v2.suit"),
            Stop::KillAt("writing component".into()),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    assert_eq!(run.booted_slot(), Some('A'));
    assert_eq!(run.app_version(), Some("v1"));
    run.expect("resuming the interrupted install").unwrap();
    let requests = payload_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].status, 206, "{requests:?}");
    assert!(
        requests[1]
            .range
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-")),
        "the download resumes where it stopped: {requests:?}"
    );

    // 3. Still on A (the half-written slot B is not armed); the install redoes approval and
    //    write from the staged payload, commits, arms the trial, and the power is cut before
    //    the reboot.
    let run = phase("(h) redo, power cut after COMMIT", || {
        dev.boot_until(
            &format!("bootstate before\nagent install-3 install {URL}/v2.suit"),
            Stop::KillAt("SUIT-AGENT: installed sequence 2".into()),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    assert_eq!(run.booted_slot(), Some('A'));
    assert_eq!(run.app_version(), Some("v1"));
    let before = run.bootstate("before").unwrap();
    assert_eq!(get(&before, "BOOT_ORDER"), Some("A B"), "{before:?}");
    run.expect("resuming the interrupted install").unwrap();
    assert_eq!(payload_requests().len(), 2, "the staged payload is reused");

    // 4. The next boot is the trial of B (one attempt, armed before the cut), and it confirms.
    let run = phase("(h) trial boot after the cuts, confirm", || {
        dev.boot("info final").unwrap()
    });
    run.expect_success().unwrap();
    assert!(
        run.boot_decisions()
            .contains(&"booting slot B (BOOT_B_LEFT 1 -> 0)"),
        "{}",
        run.report()
    );
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("confirmed slot B: sequence 2"),
        "{said}"
    );
    assert_eq!(run.app_version(), Some("v2"));
    let info = run.info("final").unwrap();
    assert_eq!(rootfs_floor(&info), Some(2));
    assert_eq!(info["install"], "idle");
    // The guest replayed the data disk's journal after each cut; after this orderly power-off
    // the file system is clean.
    dev.vm.fsck(Disk::Data).unwrap();
}

/// (f) The staged ciphertext is changed after the TA approved it, while the agent writes the
/// slot (time of check to time of use): the agent is stopped (SIGSTOP) as soon as it logs
/// "writing component", the end of the staged file (the AES-GCM tag) is overwritten, and the
/// agent continued. DECRYPT_FOR_INSTALL in the TA refuses the result, nothing is committed and
/// no trial is armed; the next install downloads the payload again.
#[test]
fn staged_payload_changed_after_approval_is_not_activated() {
    let nginx = Nginx::start();
    let work = work_dir("toctou").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 16).unwrap();
    let mut dev = Device::new("toctou", &v1).unwrap();
    dev.vm.network(nginx.http_port);

    let run = phase("(f) read the device key", || dev.boot("info key").unwrap());
    run.expect_success().unwrap();
    let key = work.join("device.pub.pem");
    device_key_pem(&run.info("key").unwrap(), &key).unwrap();
    let rel = Release::create(
        &work,
        "v2",
        2,
        CLASS,
        &v2,
        &format!("{URL}/v2.enc"),
        Some(&key),
    )
    .unwrap();
    serve(&nginx, "v2.suit", &rel.envelope);
    serve(&nginx, "v2.enc", &rel.payload);

    let run = phase(
        "(f) change the staged payload while the agent writes",
        || {
            dev.boot(&format!(
            "agent toctou install {URL}/v2.suit > /tmp/install.log &\n\
             i=0\n\
             until grep -q 'writing component' /tmp/install.log || [ $i -ge 3000 ]; do sleep 0.02; i=$((i + 1)); done\n\
             pid=$(pidof suit-agent)\n\
             kill -STOP $pid && echo \"SUIT-MARK: agent $pid stopped while writing\"\n\
             f=$(ls /data/suit-agent/staging/*/component-*.bin)\n\
             size=$(stat -c %s $f)\n\
             dd if=/dev/zero of=$f bs=1 seek=$((size - 16)) count=16 conv=notrunc 2>/dev/null \
               && echo \"SUIT-MARK: zeroed the last 16 bytes of $f ($size bytes)\"\n\
             kill -CONT $pid\n\
             wait\n\
             cat /tmp/install.log\n\
             info after\n\
             bootstate after\n"
        ))
        .unwrap()
        },
    );
    run.expect_success().unwrap();
    assert_eq!(
        run.markers("SUIT-MARK:").len(),
        2,
        "stopped and changed: {}",
        run.report()
    );
    let install = run.step("toctou").unwrap();
    assert_eq!(install.exit, 1, "{}", run.report());
    assert!(install.said.contains("FAILED [decryption]"), "{install:?}");
    let info = run.info("after").unwrap();
    assert_eq!(info["install"], "idle", "nothing committed");
    assert_eq!(rootfs_floor(&info), None);
    let state = run.bootstate("after").unwrap();
    assert_eq!(
        get(&state, "BOOT_ORDER"),
        Some("A B"),
        "no trial: {state:?}"
    );

    // The device stays on v1; a new attempt downloads the payload again and installs it.
    let run = phase("(f) reboot: still v1; the retry installs", || {
        dev.boot(&format!("agent retry install {URL}/v2.suit"))
            .unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'));
    assert_eq!(run.app_version(), Some("v1"));
    let retry = run.step("retry").unwrap();
    assert!(
        retry.exit == 0 && retry.said.contains("installed sequence 2 into slot B"),
        "{retry:?}"
    );
    let downloads = nginx
        .requests()
        .iter()
        .filter(|r| r.uri == "/v2.enc")
        .count();
    assert_eq!(downloads, 2);
}

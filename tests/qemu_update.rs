//! Updates end to end in real OP-TEE under QEMU: the SUIT TA, the aarch64 `suit-agent` (run by
//! /init's boot-check at every boot and by the scenario scripts), A/B slot disks holding ext4
//! firmware, the data disk with the TA's secure storage, a real nginx on the host's loopback
//! reached by the guest as http://10.0.2.100:8080. Every verdict is read from the serial
//! console; host-side checks of the disks come on top.
//!   cargo test -p suit-tests --features qemu --test qemu_update -- --test-threads=1

use std::fs;
use std::path::Path;

use suit_tests::device::{
    device_key_pem, get, phase, rootfs_floor, signing_key_pem, tool, work_dir, AgentRun, Device,
    Firmware, Release, CLASS,
};
use suit_tests::nginx::Nginx;
use suit_tests::qemu::{Disk, GUEST_SERVER_URL as URL};

/// Serves `file` at `/<name>`.
fn serve(nginx: &Nginx, name: &str, file: &Path) {
    nginx.put(name, &fs::read(file).unwrap());
}

/// How often nginx was asked for `/<name>`.
fn requests(nginx: &Nginx, name: &str) -> usize {
    let uri = format!("/{name}");
    nginx.requests().iter().filter(|r| r.uri == uri).count()
}

/// The first `len` bytes of a disk image.
fn head(path: &Path, len: u64) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap();
    bytes.truncate(len as usize);
    bytes
}

/// (command id, seconds) of each TA invocation in kprobe trace lines (`suit_invoke` with
/// `func=N`, then its `suit_return`; the agent invokes one command at a time).
fn invoke_times(lines: &[&str]) -> Vec<(u32, f64)> {
    let event = |line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| *w == "suit_invoke:" || *w == "suit_return:")?;
        let time: f64 = words
            .get(at.checked_sub(1)?)?
            .trim_end_matches(':')
            .parse()
            .ok()?;
        let func = words
            .iter()
            .find_map(|w| w.strip_prefix("func="))
            .and_then(|f| f.parse::<u32>().ok());
        Some((words[at] == "suit_invoke:", func, time))
    };
    let mut open = None;
    let mut times = Vec::new();
    for (is_call, func, time) in lines.iter().filter_map(|l| event(l)) {
        match (is_call, func, open.take()) {
            (true, Some(f), _) => open = Some((f, time)),
            (false, _, Some((f, start))) => times.push((f, time - start)),
            _ => {}
        }
    }
    times
}

/// One device's life: (a) the TA's own acceptance, (b) an encrypted update v1 -> v2 over the
/// network with its trial boot and confirmation, (c) a replayed old envelope, (d) an envelope
/// for another device class, (e) a payload tampered on the server, (g) an update whose health
/// check fails and is rolled back.
#[test]
fn update_lifecycle() {
    let nginx = Nginx::start();
    let work = work_dir("update_lifecycle").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 8).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 8).unwrap();
    let v3 = Firmware::build(&work, "v3", false, 4).unwrap();
    let mut dev = Device::new("update_lifecycle", &v1).unwrap();
    dev.vm.network(nginx.http_port);

    // v1's envelope (the factory firmware, sequence 1), and a copy tampered after signing:
    // one character of the payload URI inside the signed manifest changed.
    let rel1 = Release::create(&work, "v1", 1, CLASS, &v1, &format!("{URL}/v1.img"), None).unwrap();
    serve(&nginx, "v1.suit", &rel1.envelope);
    serve(&nginx, "v1.img", &rel1.payload);
    let mut tampered = fs::read(&rel1.envelope).unwrap();
    let at = tampered
        .windows(7)
        .position(|w| w == b"/v1.img")
        .expect("the URI is in the manifest");
    tampered[at + 2] = b'9';
    nginx.put("tampered.suit", &tampered);

    // (a) GET_INFO, LOAD_MANIFEST of a valid and of a tampered envelope.
    let run = phase("(a) TA: info, valid and tampered envelopes", || {
        dev.boot(&format!(
            "agent info-text info\n\
             info first\n\
             agent check-valid check {URL}/v1.suit\n\
             agent check-tampered check {URL}/tampered.suit\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'), "{}", run.report());
    let (ok, said) = run.boot_check().expect("/init ran boot-check");
    assert!(ok && said.contains("nothing pending"), "{said}");
    assert_eq!(run.app_version(), Some("v1"));
    assert_eq!(run.step("info-text").unwrap().exit, 0);
    // RPMB on the default device (TA_STORAGE=rpmb), REE-FS on QEMU_RPMB=0.
    let storage = suit_tests::qemu::expected_storage();
    run.expect(&format!("secure storage: {storage}")).unwrap();
    let first = run.info("first").unwrap();
    assert!(
        first["storage"].as_str().unwrap().starts_with(storage),
        "{first}"
    );
    assert_eq!(first["install"], "idle");
    assert_eq!(rootfs_floor(&first), None);
    let valid = run.step("check-valid").unwrap();
    assert_eq!(valid.exit, 0, "a valid envelope is accepted: {valid:?}");
    run.expect("update available: sequence number 1").unwrap();
    let bad = run.step("check-tampered").unwrap();
    assert_eq!(bad.exit, 1);
    assert!(bad.said.contains("FAILED [authentication]"), "{bad:?}");
    assert_eq!(requests(&nginx, "v1.img"), 0, "check fetches no payload");

    // The vendor encrypts v2 and v3 to the device key read from the device.
    let device_key = work.join("device.pub.pem");
    device_key_pem(&first, &device_key).unwrap();
    let signing_key = work.join("device-signing.pub.pem");
    signing_key_pem(&first, &signing_key).unwrap();
    let rel2 = Release::create(
        &work,
        "v2",
        2,
        CLASS,
        &v2,
        &format!("{URL}/v2.enc"),
        Some(&device_key),
    )
    .unwrap();
    serve(&nginx, "v2.suit", &rel2.envelope);
    serve(&nginx, "v2.enc", &rel2.payload);

    // (a)+(b) Install v2: LOAD_MANIFEST, download, PAYLOAD_UPDATE/FINAL (approval token),
    // DECRYPT_FOR_INSTALL into slot B, COMMIT, trial armed. A kprobe counts the agent's TA
    // invocations (TEE_IOC_INVOKE -> optee_invoke_func).
    let run = phase("(b) install v2 (encrypted, 8 MiB) over the network", || {
        dev.boot(&format!(
            "t=/sys/kernel/tracing\n\
             mount -t tracefs nodev $t \
               && echo 'p:suit_invoke optee_invoke_func func=+0(%x1):u32' > $t/kprobe_events \
               && echo 'r:suit_return optee_invoke_func' >> $t/kprobe_events \
               && echo 1 > $t/events/kprobes/suit_invoke/enable \
               && echo 1 > $t/events/kprobes/suit_return/enable\n\
             agent install-v2 install {URL}/v2.suit\n\
             cp \"$(ls /data/suit-agent/reports/*.suit-report | tail -n 1)\" /data/install-v2.suit-report\n\
             echo \"SUIT-MEASURE: ta-invocations $(grep -c ' suit_invoke:' $t/trace)\"\n\
             grep -E ' suit_(invoke|return):' $t/trace | sed 's/^/SUIT-TRACE: /'\n\
             bootstate installed\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'));
    let install = run.step("install-v2").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 2 into slot B"),
        "{install:?}"
    );
    let state = run.bootstate("installed").unwrap();
    assert_eq!(
        get(&state, "BOOT_ORDER"),
        Some("B A"),
        "trial armed: {state:?}"
    );
    assert_eq!(get(&state, "BOOT_B_LEFT"), Some("1"));
    let size = v2.size().unwrap();
    assert_eq!(
        head(&dev.vm.disk_path(Disk::SlotB), size),
        fs::read(&v2.image).unwrap(),
        "slot B holds v2's plaintext, decrypted by the TA"
    );
    // The SUIT report the TA signed for this install verifies with the device's public key.
    // (The journal keeps no approval tokens: a token is good only in the TA session that
    // issued it; the report is what the device gives a verifier.)
    let report = dev
        .vm
        .read_data_file("install-v2.suit-report")
        .unwrap()
        .expect("the agent keeps the install's SUIT report");
    let report_file = work.join("v2.suit-report");
    fs::write(&report_file, report).unwrap();
    let verified = tool(
        &work,
        &[
            "verify-report",
            "--device-key",
            &signing_key.to_string_lossy(),
            &report_file.to_string_lossy(),
        ],
    )
    .unwrap();
    assert!(verified.contains("valid SUIT report"), "{verified}");
    let invocations: f64 = run.markers("SUIT-MEASURE: ta-invocations")[0]
        .parse()
        .unwrap();
    let mib = size as f64 / (1 << 20) as f64;
    eprintln!(
        "QEMU-MEASURE: install of {mib:.1} MiB (encrypted, the TA's largest chunks): {:.2} s = {:.3} s/MiB; \
         {invocations} TA invocations = {:.1} per MiB",
        install.secs,
        install.secs / mib,
        invocations / mib
    );

    // The TA's time per command (kprobe to kretprobe of optee_invoke_func, so the world
    // switches are in it): LOAD_MANIFEST, and the 8 MiB approval (PAYLOAD_UPDATE + FINAL).
    let times = invoke_times(&run.markers("SUIT-TRACE:"));
    let ms = |ids: &[u32]| {
        let picked: Vec<f64> = ids
            .iter()
            .flat_map(|id| times.iter().filter(move |(f, _)| f == id).map(|(_, t)| *t))
            .collect();
        (picked.len(), picked.iter().sum::<f64>() * 1e3)
    };
    let (n_load, load) = ms(&[2]);
    let (n_approve, approve) = ms(&[3, 4]);
    let (n_decrypt, decrypt) = ms(&[5]);
    assert!(
        n_load >= 1 && n_approve >= 2,
        "no TA invocations traced: {times:?}"
    );
    eprintln!(
        "QEMU-MEASURE: TA time: LOAD_MANIFEST {load:.1} ms ({n_load} call); approval of \
         {mib:.1} MiB (PAYLOAD_UPDATE + FINAL) {approve:.0} ms ({n_approve} calls) = \
         {:.0} ms/MiB; DECRYPT_FOR_INSTALL {decrypt:.0} ms ({n_decrypt} calls)",
        approve / mib
    );

    // (b) The trial boot of B: boot-check runs the health check, CONFIRM re-hashes slot B in
    // the TA and raises the floor.
    let run = phase("(b) trial boot of v2 and confirm", || {
        dev.boot("info confirmed").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("confirmed slot B: sequence 2"),
        "{said}"
    );
    assert_eq!(run.app_version(), Some("v2"));
    let confirmed = run.info("confirmed").unwrap();
    assert_eq!(rootfs_floor(&confirmed), Some(2));
    assert_eq!(confirmed["install"], "idle");
    assert_eq!(confirmed["last-outcome"], "confirmed");
    eprintln!(
        "QEMU-MEASURE: boot-check with CONFIRM of {mib:.1} MiB: {}",
        run.markers("SUIT-BOOTCHECK:")[0]
    );

    // (c) (d) (e) After a restart: the floor persisted; a replayed v1, an envelope for
    // another class and a payload tampered on the server change nothing.
    let other = Release::create(
        &work,
        "other",
        4,
        "another-board",
        &v2,
        &format!("{URL}/other.img"),
        None,
    )
    .unwrap();
    serve(&nginx, "other.suit", &other.envelope);
    serve(&nginx, "other.img", &other.payload);
    let rel3 = Release::create(
        &work,
        "v3",
        3,
        CLASS,
        &v3,
        &format!("{URL}/v3.enc"),
        Some(&device_key),
    )
    .unwrap();
    serve(&nginx, "v3.suit", &rel3.envelope);
    let mut evil = fs::read(&rel3.payload).unwrap();
    evil[100_000] ^= 0x01;
    nginx.put("v3.enc", &evil);
    let slot_a = fs::read(dev.vm.disk_path(Disk::SlotA)).unwrap();
    let run = phase(
        "(c)(d)(e) restart; replay, other class, tampered payload",
        || {
            dev.boot(&format!(
                "info restarted\n\
             bootstate before\n\
             agent replay-v1 install {URL}/v1.suit\n\
             agent other-class install {URL}/other.suit\n\
             agent tampered-payload install {URL}/v3.suit\n\
             bootstate after\n\
             info after\n"
            ))
            .unwrap()
        },
    );
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'));
    assert_eq!(run.app_version(), Some("v2"));
    let restarted = run.info("restarted").unwrap();
    assert_eq!(
        rootfs_floor(&restarted),
        Some(2),
        "the floor survives a restart"
    );
    assert_eq!(
        restarted["device-public-key"], first["device-public-key"],
        "so does the device key"
    );
    let replay = run.step("replay-v1").unwrap();
    assert_eq!(replay.exit, 1);
    assert!(replay.said.contains("FAILED [rollback]"), "{replay:?}");
    let other = run.step("other-class").unwrap();
    assert_eq!(other.exit, 1);
    assert!(other.said.contains("FAILED [applicability]"), "{other:?}");
    let tampered = run.step("tampered-payload").unwrap();
    assert_eq!(tampered.exit, 1);
    assert!(
        tampered.said.contains("FAILED [digest]") || tampered.said.contains("FAILED [decryption]"),
        "{tampered:?}"
    );
    assert_eq!(
        run.bootstate("before").unwrap(),
        run.bootstate("after").unwrap()
    );
    let after = run.info("after").unwrap();
    assert_eq!(
        (rootfs_floor(&after), &after["install"]),
        (Some(2), &"idle".into())
    );
    assert!(
        fs::read(dev.vm.disk_path(Disk::SlotA)).unwrap() == slot_a,
        "the inactive slot A is untouched"
    );
    assert_eq!(requests(&nginx, "v1.img"), 0, "no payload for a replay");
    assert_eq!(requests(&nginx, "other.img"), 0, "nor for another class");
    assert_eq!(requests(&nginx, "v3.enc"), 1);

    // (g) The server is repaired; v3 installs into slot A (downloaded again: the refused
    // payload was not kept) ...
    serve(&nginx, "v3.enc", &rel3.payload);
    let run = phase("(g) install v3 (fails its health check)", || {
        dev.boot(&format!(
            "agent install-v3 install {URL}/v3.suit\nbootstate installed\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    let install = run.step("install-v3").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 3 into slot A"),
        "{install:?}"
    );
    assert_eq!(requests(&nginx, "v3.enc"), 2);
    let state = run.bootstate("installed").unwrap();
    assert_eq!(get(&state, "BOOT_ORDER"), Some("A B"));
    assert_eq!(get(&state, "BOOT_A_LEFT"), Some("1"));

    // ... its trial boot fails the health check: the agent marks A bad, the device reboots
    // before the application starts ...
    let run = phase("(g) trial boot of v3 fails", || {
        dev.boot("info never").unwrap()
    });
    run.expect_poweroff().unwrap();
    assert_eq!(run.booted_slot(), Some('A'));
    let (ok, said) = run.boot_check().unwrap();
    assert!(!ok && said.contains("health check failed"), "{said}");
    run.expect("APP-HEALTH: v3 is broken").unwrap();
    assert_eq!(run.app_version(), None, "the application does not start");
    assert!(!run.contains("SUIT-SCENARIO: start"));
    let state = dev.vm.bootstate().unwrap().unwrap();
    assert_eq!(get(&state, "BOOT_ORDER"), Some("B A"), "{state:?}");
    assert_eq!(get(&state, "BOOT_A_LEFT"), Some("0"));

    // ... and falls back to v2, whose boot-check rolls the pending install back.
    let run = phase("(g) fallback to v2 and rollback", || {
        dev.boot("info final").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'));
    let (ok, said) = run.boot_check().unwrap();
    assert!(
        ok && said.contains("rolled back: the trial of slot A failed, slot B runs"),
        "{said}"
    );
    assert_eq!(run.app_version(), Some("v2"));
    let last = run.info("final").unwrap();
    assert_eq!(rootfs_floor(&last), Some(2), "a rollback leaves the floor");
    assert_eq!(last["install"], "idle");
    assert_eq!(last["last-outcome"], "rolled-back");
    dev.vm.fsck(Disk::Data).unwrap();
}

/// (i) An offline update from a USB stick: envelope and payload side by side, the payload URI
/// a file:// URL; the device has no network.
#[test]
fn offline_update_from_a_usb_disk() {
    let work = work_dir("offline_update").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 4).unwrap();
    let rel =
        Release::create(&work, "v2", 2, CLASS, &v2, "file:///media/usb/v2.img", None).unwrap();
    let usb = work.join("usb");
    fs::create_dir_all(&usb).unwrap();
    fs::copy(&rel.envelope, usb.join("update.suit")).unwrap();
    fs::copy(&rel.payload, usb.join("v2.img")).unwrap();
    let mut dev = Device::new("offline_update", &v1).unwrap();
    dev.vm.set_usb(&usb, 16).unwrap();

    let run = phase("(i) offline install from /media/usb", || {
        dev.boot("agent offline install /media/usb/update.suit\nbootstate installed")
            .unwrap()
    });
    run.expect_success().unwrap();
    run.expect("usb disk").unwrap();
    assert!(!run.contains("network eth0"), "the device is offline");
    let install = run.step("offline").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 2 into slot B"),
        "{install:?}"
    );
    assert_eq!(
        get(&run.bootstate("installed").unwrap(), "BOOT_ORDER"),
        Some("B A")
    );

    let run = phase("(i) trial boot of v2 and confirm", || {
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

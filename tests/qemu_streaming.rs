//! The one-pass install (docs/streaming.md) in real OP-TEE under QEMU: manifests made with
//! `streaming = true` (the dm-verity root bound by the signature, the tree published as
//! `<payload>.verity`), the real TA's STREAM_UPDATE/FINAL, the aarch64 agent writing the slot as
//! the TA releases blocks, a real nginx. Verdicts from the serial console, disks checked on the
//! host.
//!   cargo test -p suit-tests --features qemu --test qemu_streaming -- --test-threads=1

use std::fs;
use std::path::{Path, PathBuf};

use suit_tests::device::{
    device_key_pem, get, phase, rootfs_floor, tool, work_dir, AgentRun, Device, Firmware, CLASS,
    VENDOR, VENDOR_KEY,
};
use suit_tests::nginx::Nginx;
use suit_tests::qemu::{record_bench, repo_root, Disk, Outcome, Stop, GUEST_SERVER_URL as URL};

/// `suit-tool create` of a streaming manifest for `fw` fetched from `uri`, encrypted to
/// `recipient` when given; returns the envelope, the payload and its tree.
fn release(
    dir: &Path,
    fw: &Firmware,
    uri: &str,
    recipient: Option<&Path>,
) -> (PathBuf, PathBuf, PathBuf) {
    let mut spec = format!(
        "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n\
         [[component]]\nid = [\"rootfs\"]\nimage = \"{}\"\nuri = \"{uri}\"\nstreaming = true\n",
        fw.image.display()
    );
    let payload = match recipient {
        Some(key) => {
            let enc = dir.join("v2.enc");
            spec += &format!(
                "[component.encryption]\nrecipient = \"{}\"\nciphertext = \"{}\"\n",
                key.display(),
                enc.display()
            );
            enc
        }
        None => fw.image.clone(),
    };
    let spec_path = dir.join("v2.toml");
    fs::write(&spec_path, spec).unwrap();
    let envelope = dir.join("v2.suit");
    let key = repo_root().join(VENDOR_KEY);
    tool(
        dir,
        &[
            "create",
            "--spec",
            &spec_path.to_string_lossy(),
            "--out",
            &envelope.to_string_lossy(),
            "--key",
            &key.to_string_lossy(),
        ],
    )
    .unwrap();
    let mut tree = payload.clone().into_os_string();
    tree.push(".verity");
    (envelope, payload, PathBuf::from(tree))
}

fn serve(nginx: &Nginx, name: &str, file: &Path) {
    nginx.put(name, &fs::read(file).unwrap());
}

/// Slot B's disk, grown so that an image and its tree fit.
fn grow_slot_b(dev: &Device, bytes: u64) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dev.vm.disk_path(Disk::SlotB))
        .unwrap();
    if f.metadata().unwrap().len() < bytes {
        f.set_len(bytes).unwrap();
    }
}

fn head(path: &Path, len: u64) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap();
    bytes.truncate(len as usize);
    bytes
}

/// Counts the agent's TA invocations with a kprobe (TEE_IOC_INVOKE -> optee_invoke_func),
/// recording each one's command id (`func`, the first field of `struct tee_ioctl_invoke_arg`,
/// the second argument: x1 on arm64).
const COUNT_INVOKES: &str = "t=/sys/kernel/tracing\n\
    mount -t tracefs nodev $t && echo 'p:suit_invoke optee_invoke_func func=+0(%x1):u32' > $t/kprobe_events \
      && echo 1 > $t/events/kprobes/suit_invoke/enable\n";

/// Counts the shared-memory buffers the agent registers with the TEE driver: libteec's
/// TEEC_RegisterSharedMemory / TEEC_AllocateSharedMemory (and every temporary memref, which
/// libteec backs with one) end in TEE_IOC_SHM_REGISTER -> tee_shm_register_user_buf or
/// TEE_IOC_SHM_ALLOC -> tee_shm_alloc_user_buf. tee-supplicant allocates too (OP-TEE's RPC
/// buffers): only the agent's registrations are counted (`suit-agent` in the trace line).
const COUNT_SHM: &str = "echo 'p:suit_shm_reg tee_shm_register_user_buf' >> $t/kprobe_events \
      && echo 'p:suit_shm_alloc tee_shm_alloc_user_buf' >> $t/kprobe_events \
      && echo 1 > $t/events/kprobes/suit_shm_reg/enable \
      && echo 1 > $t/events/kprobes/suit_shm_alloc/enable\n";

/// A streamed encrypted update of 64 MiB: no staging, about one TA invocation per chunk, the
/// slot written with the tree the TA checked, and the trial boot mounts it through dm-verity
/// and confirms.
#[test]
fn streamed_encrypted_update_of_64_mib() {
    let nginx = Nginx::start();
    let work = work_dir("streaming_64m").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 64).unwrap();
    let mut dev = Device::new("streaming_64m", &v1).unwrap();
    dev.vm.network(nginx.http_port);
    let run = dev.boot("info key").unwrap();
    run.expect_success().unwrap();
    let device_key = work.join("device.pub.pem");
    device_key_pem(&run.info("key").unwrap(), &device_key).unwrap();
    let (envelope, payload, tree) =
        release(&work, &v2, &format!("{URL}/v2.enc"), Some(&device_key));
    serve(&nginx, "v2.suit", &envelope);
    serve(&nginx, "v2.enc", &payload);
    serve(&nginx, "v2.enc.verity", &tree);
    let size = v2.size().unwrap();
    grow_slot_b(&dev, size + (4 << 20));

    let run = phase("streamed install of 64 MiB (encrypted)", || {
        dev.boot(&format!(
            "{COUNT_INVOKES}{COUNT_SHM}\
             agent install-v2 install {URL}/v2.suit\n\
             echo \"SUIT-MEASURE: ta-invocations $(grep -c ' suit_invoke:' $t/trace)\"\n\
             echo \"SUIT-MEASURE: shm-registrations $(grep -c 'suit-agent-[0-9]* .* suit_shm_' $t/trace)\"\n\
             echo \"SUIT-MEASURE: all-shm-registrations $(grep -c ' suit_shm_' $t/trace)\"\n\
             echo \"SUIT-MEASURE: stream-updates $(grep -c ' suit_invoke:.* func=14$' $t/trace)\"\n\
             echo \"SUIT-MEASURE: staged-bytes $(find /data/suit-agent/staging -type f ! -name '*.suit*' -exec cat {{}} + | wc -c)\"\n\
             bootstate installed\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    let install = run.step("install-v2").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert!(
        install.said.contains("installed sequence 2 into slot B"),
        "{install:?}"
    );
    let state = run.bootstate("installed").unwrap();
    assert_eq!(get(&state, "BOOT_ORDER"), Some("B A"), "{state:?}");
    assert_eq!(
        head(&dev.vm.disk_path(Disk::SlotB), size),
        fs::read(&v2.image).unwrap(),
        "slot B holds v2's plaintext"
    );
    let staged: u64 = run.markers("SUIT-MEASURE: staged-bytes")[0]
        .trim()
        .parse()
        .unwrap();
    assert_eq!(staged, 0, "nothing of the payload is staged");
    let invocations: f64 = run.markers("SUIT-MEASURE: ta-invocations")[0]
        .trim()
        .parse()
        .unwrap();
    let stream_updates: f64 = run.markers("SUIT-MEASURE: stream-updates")[0]
        .trim()
        .parse()
        .unwrap();
    let registrations: f64 = run.markers("SUIT-MEASURE: shm-registrations")[0]
        .trim()
        .parse()
        .unwrap();
    let mib = size as f64 / (1 << 20) as f64;
    eprintln!(
        "QEMU-MEASURE: the agent registered {registrations} shared-memory buffers for the \
         {mib:.1} MiB install (all processes: {})",
        run.markers("SUIT-MEASURE: all-shm-registrations")[0].trim()
    );
    eprintln!(
        "QEMU-MEASURE: streamed install of {mib:.1} MiB (encrypted, one pass): {:.2} s = {:.3} s/MiB; \
         {invocations} TA invocations = {:.2} per MiB, of which {stream_updates} STREAM_UPDATE = {:.3} per MiB",
        install.secs,
        install.secs / mib,
        invocations / mib,
        stream_updates / mib
    );
    // The default TA (256 KiB heap) takes 1 MiB per STREAM_UPDATE: one invoke per MiB, plus
    // a few per update (GET_INFO, LOAD_MANIFEST, STREAM_FINAL, COMMIT, ...).
    assert!(
        stream_updates / mib <= 1.0,
        "{stream_updates} STREAM_UPDATE invokes for {mib:.1} MiB"
    );
    assert!(
        invocations - stream_updates <= 8.0,
        "{invocations} TA invocations, {stream_updates} of them STREAM_UPDATE"
    );
    // The session's shared memory is registered once (grown at most a few times), not once
    // per chunk: libteec's temporary memrefs registered a buffer per parameter and invoke.
    assert!(
        registrations <= 4.0,
        "{registrations} shared-memory registrations for {stream_updates} STREAM_UPDATE invokes"
    );
    record_bench(
        "qemu_streaming",
        &[
            ("ta_invokes_per_mib", stream_updates / mib),
            ("ta_shm_registrations_per_stream", registrations),
            ("ta_invokes_total_per_mib_64m", invocations / mib),
            ("qemu_stream_seconds_per_mib", install.secs / mib),
        ],
    );

    // The trial boot of B maps it with dm-verity and the TA's root, then confirms.
    let run = phase("trial boot of the streamed v2 and confirm", || {
        dev.boot("info confirmed").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    assert_eq!(run.app_version(), Some("v2"));
    let (ok, said) = run.boot_check().unwrap();
    assert!(ok && said.contains("confirmed slot B"), "{said}");
    assert_eq!(rootfs_floor(&run.info("confirmed").unwrap()), Some(2));
}

/// A power cut in the middle of the stream: the next install resumes from the last block the
/// journal recorded as written, with a Range request, and completes.
#[test]
fn power_cut_mid_stream_resumes_from_the_last_written_block() {
    let nginx = Nginx::start();
    let work = work_dir("streaming_cut").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 8).unwrap();
    // nginx sends /slow/ at 512 KiB/s: the 8 MiB stream takes about 16 s.
    let (envelope, payload, tree) = release(&work, &v2, &format!("{URL}/slow/v2.img"), None);
    serve(&nginx, "v2.suit", &envelope);
    serve(&nginx, "slow/v2.img", &payload);
    serve(&nginx, "slow/v2.img.verity", &tree);
    let mut dev = Device::new("streaming_cut", &v1).unwrap();
    dev.vm.network(nginx.http_port);
    let size = v2.size().unwrap();
    grow_slot_b(&dev, size + (4 << 20));

    let run = phase("power cut during the stream", || {
        dev.boot_until(
            &format!(
                "agent install-1 install {URL}/v2.suit &\n\
                 i=0\n\
                 while ! grep -q '\"streamed\"' /data/suit-agent/journal.json 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\n\
                 sync\n\
                 echo \"SUIT-MARK: streaming, $(grep -o '\"streamed\": *[0-9]*' /data/suit-agent/journal.json)\"\n\
                 wait\n"
            ),
            Stop::KillAt("SUIT-MARK: streaming".into()),
        )
        .unwrap()
    });
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());
    assert_eq!(run.booted_slot(), Some('A'));

    let run = phase("resume the stream after the cut", || {
        dev.boot(&format!(
            "agent install-2 install {URL}/v2.suit\nbootstate installed\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    let install = run.step("install-2").unwrap();
    assert_eq!(install.exit, 0, "{}", run.report());
    assert_eq!(
        head(&dev.vm.disk_path(Disk::SlotB), size),
        fs::read(&v2.image).unwrap()
    );
    let requests: Vec<_> = nginx
        .requests()
        .into_iter()
        .filter(|r| r.uri == "/slow/v2.img")
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].status, 206, "{requests:?}");
    let from: u64 = requests[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{requests:?}"));
    assert!(from > 0 && from.is_multiple_of(4096), "{requests:?}");
    assert!(requests[1].body_bytes <= size - from, "{requests:?}");
    eprintln!(
        "QEMU-MEASURE: streamed install resumed after a power cut at byte {from} of {size} \
         (Range request, {} bytes sent again)",
        requests[1].body_bytes
    );
}

/// A block tampered in the middle of the payload: the TA refuses it, nothing from that block
/// on reaches slot B, no trial is armed and the device keeps running v1.
#[test]
fn tampered_block_stops_the_stream_before_it_is_written() {
    let nginx = Nginx::start();
    let work = work_dir("streaming_tamper").unwrap();
    let v1 = Firmware::build(&work, "v1", true, 4).unwrap();
    let v2 = Firmware::build(&work, "v2", true, 8).unwrap();
    let (envelope, payload, tree) = release(&work, &v2, &format!("{URL}/v2.img"), None);
    serve(&nginx, "v2.suit", &envelope);
    let mut bad = fs::read(&payload).unwrap();
    let at = 4 * 1024 * 1024 + 1234;
    bad[at] ^= 0x40;
    nginx.put("v2.img", &bad);
    serve(&nginx, "v2.img.verity", &tree);
    let mut dev = Device::new("streaming_tamper", &v1).unwrap();
    dev.vm.network(nginx.http_port);
    let size = v2.size().unwrap();
    grow_slot_b(&dev, size + (4 << 20));
    let before = fs::read(dev.vm.disk_path(Disk::SlotB)).unwrap();

    let run = phase("stream with a tampered block", || {
        dev.boot(&format!(
            "agent install-bad install {URL}/v2.suit\nbootstate after\n"
        ))
        .unwrap()
    });
    run.expect_success().unwrap();
    let install = run.step("install-bad").unwrap();
    assert_eq!(install.exit, 1, "{}", run.report());
    assert!(
        install.said.contains("does not match the dm-verity tree"),
        "{install:?}"
    );
    let state = run.bootstate("after").unwrap();
    assert_eq!(get(&state, "BOOT_ORDER"), Some("A B"), "{state:?}");
    let slot = fs::read(dev.vm.disk_path(Disk::SlotB)).unwrap();
    let block = at / 4096 * 4096;
    assert_eq!(
        slot[block..block + 4096],
        before[block..block + 4096],
        "the tampered block never reached slot B"
    );
    assert_eq!(slot[at..], before[at..], "nothing after it either");
    let image = fs::read(&v2.image).unwrap();
    assert_eq!(slot[..4096], image[..4096], "the blocks before it were");

    let run = phase("the device still runs v1", || {
        dev.boot("info after").unwrap()
    });
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'));
    assert_eq!(run.app_version(), Some("v1"));
}

//! The RPMB variant of the QEMU environment (QEMU_RPMB=1, qemu/build-rpmb.sh): optee-os built
//! with CFG_RPMB_FS=y reaches the RPMB partition of QEMU's eMMC through the kernel's RPMB
//! subsystem, and secure objects kept there survive QEMU restarts and power cuts. Secure
//! objects are written and read from the guest's shell with `tee-objects` (qemu/tee-objects.c,
//! through xtest's storage TA). Part of `make qemu-test` (the variant is the default); alone:
//!   cargo test -p suit-tests --features qemu --test qemu_rpmb -- --test-threads=1
//!   (`make qemu-rpmb-test` runs it with tests/qemu_state_attacks.rs)

use std::path::PathBuf;

use suit_tests::qemu::{repo_root, Disk, Machine, Outcome, Run, Stop};

/// The RPMB variant's cache directory (qemu/build-rpmb.sh's $QEMU_CACHE/rpmb).
fn rpmb_cache() -> PathBuf {
    std::env::var_os("QEMU_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/qemu-cache"))
        .join("rpmb")
}

fn cache_value(name: &str) -> String {
    let path = rpmb_cache().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The RPMB partition of the machine's eMMC image (its first rpmb-size bytes).
fn rpmb_partition(vm: &Machine) -> Vec<u8> {
    let size: usize = cache_value("rpmb-size")
        .parse()
        .expect("rpmb-size is a number");
    let image = std::fs::read(vm.emmc_path()).expect("the eMMC image exists after a boot");
    assert!(
        image.len() > size,
        "eMMC image smaller than its RPMB partition"
    );
    image[..size].to_vec()
}

/// The `TEE-OBJ:` lines of a boot (tee-objects' verdicts).
fn objects(run: &Run) -> Vec<&str> {
    run.markers("TEE-OBJ:")
}

/// The console line /init prints about the RPMB route, checked: OP-TEE announced the kernel
/// route, the kernel registered the eMMC's RPMB, its CID is the one the RPMB key was derived
/// from (qemu/build-rpmb.sh).
fn check_kernel_route(run: &Run) {
    let line = run
        .markers("SUIT-INIT: rpmb ")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_else(|| panic!("no 'SUIT-INIT: rpmb' line\n{}", run.report()));
    assert!(
        line.contains("routing=kernel") && line.contains("devices=rpmb0"),
        "OP-TEE must reach RPMB through the kernel's RPMB subsystem: {line}\n{}",
        run.report()
    );
    let cid = cache_value("emmc-cid");
    assert!(
        line.contains(&format!("cid={cid}")),
        "the eMMC's CID differs from the one the RPMB key is derived from ({cid}): {line}"
    );
    assert!(
        !run.optee.contains("Verify key failed") && !run.optee.contains("RPMB INIT"),
        "OP-TEE could not use the eMMC's RPMB key:\n{}",
        run.optee
    );
}

#[test]
fn xtest_smoke_passes_on_the_kernel_rpmb_route() {
    let mut vm = Machine::new("qemu_rpmb_smoke").unwrap();
    vm.rpmb().unwrap().script(
        "xtest -t regression 1001 4001 6001 > /tmp/xtest.log 2>&1; rc=$?\n\
         grep -E 'test cases of which|subtests of which' /tmp/xtest.log\n\
         if [ $rc = 0 ] && grep -q 'test cases of which 0 failed' /tmp/xtest.log; then\n\
             echo SUIT-RESULT: xtest pass; else cat /tmp/xtest.log; echo SUIT-RESULT: xtest fail $rc; fi\n",
    );
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    check_kernel_route(&run);
    assert_eq!(
        run.markers("SUIT-RESULT:"),
        ["xtest pass"],
        "{}",
        run.report()
    );
    // REE-FS integrity is anchored in RPMB: xtest's secure storage wrote the eMMC's RPMB
    assert!(
        rpmb_partition(&vm).iter().any(|&b| b != 0),
        "nothing was written to the eMMC's RPMB partition"
    );
}

#[test]
fn secure_objects_live_on_the_emmc_and_survive_restarts_and_a_power_cut() {
    let mut vm = Machine::new("qemu_rpmb_persistence").unwrap();
    vm.rpmb().unwrap();

    // boot 1: one object in RPMB, one in REE-FS (its integrity anchored in RPMB)
    vm.script(
        "tee-objects put rpmb state written-in-boot-1\n\
         tee-objects put ree ree-state ree-written-in-boot-1\n\
         tee-objects get rpmb state\n",
    );
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    check_kernel_route(&run);
    assert_eq!(
        objects(&run),
        [
            "put rpmb state ok",
            "put ree ree-state ok",
            "get rpmb state = written-in-boot-1"
        ],
        "{}",
        run.report()
    );
    let rpmb_after_boot_1 = rpmb_partition(&vm);
    assert!(
        rpmb_after_boot_1.iter().any(|&b| b != 0),
        "RPMB partition still blank"
    );
    let old_data = std::fs::read(vm.disk_path(Disk::Data)).unwrap();

    // boot 2 (QEMU restart): both read back
    vm.script("tee-objects get rpmb state\ntee-objects get ree ree-state\n");
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    assert_eq!(
        objects(&run),
        [
            "get rpmb state = written-in-boot-1",
            "get ree ree-state = ree-written-in-boot-1"
        ],
        "{}",
        run.report()
    );

    // boot 3: power cut (SIGKILL of QEMU) while RPMB writes go on
    vm.script(
        "i=0; while [ $i -lt 200 ]; do tee-objects put rpmb churn $i; echo SUIT-CHURN: $i; i=$((i + 1)); done\n",
    );
    let cut = vm.boot_until(Stop::KillAt("SUIT-CHURN: 3".into())).unwrap();
    assert_eq!(cut.outcome, Outcome::Killed, "{}", cut.report());

    // boot 4: the object of boot 1 is intact, the interrupted one readable, storage sound
    vm.script(
        "tee-objects get rpmb state\n\
         tee-objects get rpmb churn\n\
         tee-objects get ree ree-state\n\
         xtest -t regression 6001 > /tmp/xtest.log 2>&1 && echo SUIT-RESULT: xtest 6001 pass\n",
    );
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    let lines = objects(&run);
    assert_eq!(lines.len(), 3, "{}", run.report());
    assert_eq!(
        lines[0],
        "get rpmb state = written-in-boot-1",
        "{}",
        run.report()
    );
    let churn: u32 = lines[1]
        .strip_prefix("get rpmb churn = ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("churn object unreadable after the power cut: {}", lines[1]));
    assert!(
        churn >= 3,
        "churn object older than the last confirmed write: {churn}"
    );
    assert_eq!(
        lines[2],
        "get ree ree-state = ree-written-in-boot-1",
        "{}",
        run.report()
    );
    assert_eq!(
        run.markers("SUIT-RESULT:"),
        ["xtest 6001 pass"],
        "{}",
        run.report()
    );

    // the RPMB object lives on the eMMC: an older copy of the data disk (REE-FS files) is
    // refused for the REE-FS object (rollback caught through RPMB), the RPMB object stays
    std::fs::write(vm.disk_path(Disk::Data), &old_data).unwrap();
    vm.script("tee-objects get ree ree-state\ntee-objects get rpmb state\n");
    let run = vm.boot().unwrap();
    run.expect_poweroff().unwrap();
    let lines = objects(&run);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("ree ree-state error")),
        "an old copy of the REE-FS files must be refused: {lines:?}\n{}",
        run.report()
    );

    // a blank eMMC (RPMB erased): the object of boot 1 is gone, so it was on the eMMC
    std::fs::write(
        vm.emmc_path(),
        vec![0u8; std::fs::metadata(vm.emmc_path()).unwrap().len() as usize],
    )
    .unwrap();
    vm.script("tee-objects get rpmb state\n");
    let run = vm.boot().unwrap();
    run.expect_poweroff().unwrap();
    let lines = objects(&run);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("rpmb state error")),
        "with a blank RPMB the object must be gone: {lines:?}\n{}",
        run.report()
    );
}

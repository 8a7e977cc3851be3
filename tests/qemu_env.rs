//! End-to-end checks of the QEMU environment itself (qemu/): A/B boot decisions of /init,
//! persistence across a power cut, loopback-only networking. They need QEMU and build the
//! environment on first use, so they build only with the `qemu` feature:
//!   cargo test -p suit-tests --features qemu --test qemu_env -- --test-threads=1

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use suit_tests::qemu::{make_ext4, Disk, Machine, Outcome, Stop, GUEST_SERVER_URL};

fn get(state: &[(String, String)], key: &str) -> String {
    state
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn boot_decisions_follow_rauc_semantics() {
    let mut vm = Machine::new("qemu_env_boot_decisions").unwrap();

    // slot A holds an application that /init starts
    let app = vm.dir().join("slot-a-tree");
    std::fs::create_dir_all(app.join("app")).unwrap();
    std::fs::write(
        app.join("app/start"),
        "#!/bin/sh\necho SUIT-RESULT: app of slot A ran\n",
    )
    .unwrap();
    std::fs::set_permissions(
        app.join("app/start"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let image = vm.dir().join("slot-a.ext4");
    make_ext4(&app, &image, 16, "rootfs").unwrap();
    vm.set_slot(Disk::SlotA, &image).unwrap();

    // boot 1: defaults are created, A boots; the guest then asks for a trial boot of B
    vm.script(
        "echo SUIT-RESULT: booted $(cat /run/suit/booted-slot)\n\
         printf 'BOOT_ORDER=B A\\nBOOT_A_LEFT=0\\nBOOT_B_LEFT=1\\n' > /data/boot/bootstate.tmp\n\
         sync; mv /data/boot/bootstate.tmp /data/boot/bootstate; sync\n",
    );
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('A'), "{}", run.report());
    assert!(
        run.markers("SUIT-RESULT:").contains(&"app of slot A ran"),
        "{}",
        run.report()
    );
    assert!(
        run.boot_decisions()
            .iter()
            .any(|d| d.starts_with("created")),
        "{}",
        run.report()
    );

    // boot 2: trial boot of B uses its last try
    vm.no_script();
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    let state = vm.bootstate().unwrap().unwrap();
    assert_eq!(get(&state, "BOOT_B_LEFT"), "0");

    // boot 3: no slot has tries left: both reset to 3, the first of BOOT_ORDER (B) boots
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    assert!(
        run.boot_decisions()
            .iter()
            .any(|d| d.starts_with("NO-SLOT-LEFT")),
        "{}",
        run.report()
    );
    assert_eq!(run.booted_slot(), Some('B'), "{}", run.report());
    let state = vm.bootstate().unwrap().unwrap();
    assert_eq!(get(&state, "BOOT_ORDER"), "B A");
    assert_eq!(get(&state, "BOOT_A_LEFT"), "3");
    assert_eq!(get(&state, "BOOT_B_LEFT"), "2");
    vm.fsck(Disk::Data).unwrap();
}

#[test]
fn synced_data_survives_a_power_cut() {
    let mut vm = Machine::new("qemu_env_power_cut").unwrap();
    vm.script(
        "echo precious > /data/precious.tmp; sync; mv /data/precious.tmp /data/precious; sync\n\
         echo SUIT-SYNCED\n\
         i=0; while true; do dd if=/dev/zero of=/data/junk.$((i % 4)) bs=64k count=16 2>/dev/null; i=$((i+1)); done\n",
    );
    let run = vm.boot_until(Stop::KillAt("SUIT-SYNCED".into())).unwrap();
    assert_eq!(run.outcome, Outcome::Killed, "{}", run.report());

    vm.script("echo SUIT-RESULT: $(cat /data/precious)\n");
    let run = vm.boot().unwrap();
    run.expect_success().unwrap();
    assert_eq!(
        run.markers("SUIT-RESULT:"),
        ["precious"],
        "{}",
        run.report()
    );
    vm.fsck(Disk::Data).unwrap();
}

#[test]
fn guest_reaches_only_the_loopback_server() {
    // A tiny HTTP server on the host's loopback, bounded in connections and time.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let server_done = done.clone();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut served = 0;
        while served < 8 && Instant::now() < deadline && !server_done.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut req = [0u8; 1024];
                    let _ = conn.read(&mut req);
                    let body = format!("hello-suit-{served}");
                    let _ = write!(
                        conn,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        served
    });

    let mut vm = Machine::new("qemu_env_network").unwrap();
    vm.network(port).script(&format!(
        "echo SUIT-RESULT: $(wget -q -T 10 -O - {GUEST_SERVER_URL}/a)\n\
         echo SUIT-RESULT: $(wget -q -T 10 -O - {GUEST_SERVER_URL}/b)\n\
         if wget -q -T 3 -O - http://10.0.2.2/ >/dev/null 2>&1; then echo SUIT-RESULT: escaped; else echo SUIT-RESULT: blocked; fi\n"
    ));
    let run = vm.boot().unwrap();
    done.store(true, Ordering::Relaxed);
    let served = server.join().unwrap();
    run.expect_success().unwrap();
    assert_eq!(
        run.markers("SUIT-RESULT:"),
        ["hello-suit-0", "hello-suit-1", "blocked"],
        "{}",
        run.report()
    );
    assert_eq!(served, 2);
}

#[test]
fn harness_stops_on_panic_and_timeout() {
    let mut vm = Machine::new("qemu_env_panic_timeout").unwrap();
    vm.script("echo c > /proc/sysrq-trigger\n");
    let run = vm.boot().unwrap();
    assert!(
        matches!(&run.outcome, Outcome::Abort(line) if line.contains("Kernel panic")),
        "{}",
        run.report()
    );
    assert!(run.expect_success().is_err());

    vm.script("echo SUIT-RESULT: sleeping; sleep 600\n")
        .timeout(Duration::from_secs(20));
    let run = vm.boot().unwrap();
    assert_eq!(run.outcome, Outcome::Timeout, "{}", run.report());
    assert_eq!(run.markers("SUIT-RESULT:"), ["sleeping"]);
    assert!(run.elapsed < Duration::from_secs(30));
}

//! `make run`: the product's main job, end to end, in the OP-TEE QEMU environment.
//!
//! A device (OP-TEE with the SUIT TA, Linux with `suit-agent`, firmware v1 in slot A) boots,
//! its TA creates the device key; the vendor signs firmware v2 and encrypts it to that key; a
//! loopback nginx serves it; the device installs it into slot B, reboots into it on trial,
//! checks its health and confirms it. Every step is explained as it happens; the exit status
//! is 0 only if the device ends up running a confirmed v2.
//!
//! Run it with `make run` (which builds the TA, the agent and the environment first), or
//! `cargo run -p suit-tests --bin demo`. Everything lands in `build/demo/`.

use std::fs;
use std::io::IsTerminal;
use std::process::ExitCode;

use suit_tests::device::{
    device_key_pem, rootfs_floor, suit_tool, tool, AgentRun, Device, Firmware, Release, CLASS,
    VENDOR, VENDOR_KEY,
};
use suit_tests::nginx::Nginx;
use suit_tests::qemu::{ensure_agent, ensure_env, ensure_ta, repo_root, Run, GUEST_SERVER_URL};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("\n{} {why}", bold("1;31", "FAILED:"));
            ExitCode::FAILURE
        }
    }
}

/// `text` in an ANSI style (e.g. "1" bold) when the output is a terminal.
fn bold(style: &str, text: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn step(n: u32, title: &str, what: &str) {
    println!("\n{}", bold("1", &format!("{n}. {title}")));
    for line in what.lines() {
        println!("   {line}");
    }
}

/// Prints the console lines of a boot that tell the story (boot decision, agent, application).
fn show(run: &Run) {
    println!(
        "   --- console of boot {} ({:.0} s, full log: {}) ---",
        run.boot,
        run.elapsed.as_secs_f64(),
        run.uart0_path.display()
    );
    for line in run.lines().filter(|l| {
        [
            "SUIT-BOOT: booting",
            "SUIT-BOOT: slot",
            "SUIT-BOOT: recovery",
            "SUIT-READY",
            "SUIT-AGENT:",
            "SUIT-BOOTCHECK",
            "APP-",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            || l.contains("suit_host::agent::update:")
    }) {
        // drop the log's timestamp and target: "2026-...Z  INFO suit_host::agent::update: x"
        let line = line.split_once("update: ").map_or(line, |(_, rest)| rest);
        println!("   | {line}");
    }
}

fn check(ok: bool, what: &str, run: &Run) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}\n{}", run.report()))
    }
}

fn demo() -> Result<()> {
    let err = |e: suit_tests::qemu::Error| e.to_string();
    let root = repo_root();
    let dir = root.join("build/demo");
    let vendor = dir.join("vendor");
    let _ = fs::remove_dir_all(&vendor);
    fs::create_dir_all(&vendor).map_err(|e| format!("{}: {e}", vendor.display()))?;

    step(
        1,
        "Build",
        "The trusted application (TA) for OP-TEE, the device agent suit-agent for aarch64,\n\
         the vendor tool suit-tool, and the emulated board: TF-A, OP-TEE, U-Boot and Linux\n\
         from Debian packages, run by QEMU with TrustZone (qemu/README.md). By default the
         RPMB variant: OP-TEE built with RPMB, an eMMC with a replay-protected partition, and the
         TA keeping its state there (QEMU_RPMB=0: Debian's OP-TEE, REE-FS, no rollback protection).",
    );
    ensure_ta().map_err(err)?;
    let agent = ensure_agent().map_err(err)?;
    ensure_env().map_err(err)?;
    let suit_tool = suit_tool().map_err(err)?;
    println!(
        "   TA:         build/ta/*.ta (signed for OP-TEE; trusts keys/dev-vendor-es384.pub.pem)"
    );
    println!("   agent:      {}", agent.display());
    println!("   suit-tool:  {}", suit_tool.display());

    step(
        2,
        "The device",
        "Two firmware slots, A and B, each an ext4 image with an application app/start\n\
         (prints its version) and a health check app/health. Slot A holds v1; slot B is empty.\n\
         A data disk keeps OP-TEE's REE-FS files, the agent's state and the boot state; the\n\
         TA's own state (device key, floors, install state) is in the eMMC's RPMB partition.\n\
         Manufacturing: v1 is flashed into slot A, and a factory boot (in recovery: the TA has\n\
         approved nothing yet) runs `suit-agent factory-install` of v1's signed envelope, so that\n\
         the TA records slot A's dm-verity root hash. No trust on first use.",
    );
    let v1 = Firmware::build(&vendor, "v1", true, 8).map_err(err)?;
    let v2 = Firmware::build(&vendor, "v2", true, 8).map_err(err)?;
    let mut dev = Device::at(dir.join("device"), &v1).map_err(err)?;
    println!("   disks in {}", dev.vm.dir().join("disks").display());

    step(
        3,
        "First boot: firmware v1",
        "QEMU starts TF-A, OP-TEE and Linux. The init (verified boot) asks the TA what slot A\n\
         may boot (BOOT_VERIFY), maps it through dm-verity with the TA's root hash, runs\n\
         `suit-agent boot-check` (nothing pending), then v1's application. We ask the TA for its\n\
         identity: it generated the device's P-384 key inside OP-TEE at the factory boot.",
    );
    let run = dev.boot("info device").map_err(err)?;
    show(&run);
    check(run.expect_success().is_ok(), "the first boot failed", &run)?;
    check(run.app_version() == Some("v1"), "v1 did not start", &run)?;
    let info = run.info("device").map_err(err)?;
    let device_key = vendor.join("device.pub.pem");
    device_key_pem(&info, &device_key).map_err(err)?;
    println!(
        "   TA: vendor {} class {}, secure storage {}",
        info["vendor-id"].as_str().unwrap_or("?"),
        info["class-id"].as_str().unwrap_or("?"),
        info["storage"].as_str().unwrap_or("?")
    );
    println!(
        "   device public key (the private key stays in the TA): {}",
        device_key.display()
    );

    step(
        4,
        "The vendor publishes v2",
        &format!(
            "suit-tool creates a SUIT manifest for v2: sequence number 2, vendor {VENDOR}, class\n\
             {CLASS}; the payload is encrypted to this device's key (ECDH-ES+A256KW, A256GCM);\n\
             the envelope is signed with the vendor key {VENDOR_KEY}\n\
             (a development key: its public half is compiled into the TA as the trust anchor)."
        ),
    );
    let rel = Release::create(
        &vendor,
        "v2",
        2,
        CLASS,
        &v2,
        &format!("{GUEST_SERVER_URL}/v2.enc"),
        Some(&device_key),
    )
    .map_err(err)?;
    let inspect = tool(&vendor, &["inspect", &rel.envelope.to_string_lossy()]).map_err(err)?;
    for line in inspect
        .lines()
        .take_while(|l| !l.starts_with("shared-sequence"))
        .filter(|l| !l.starts_with("NOT VERIFIED") && !l.starts_with("framing"))
    {
        println!("   | {line}");
    }

    step(
        5,
        "The update server",
        "A real nginx on the host's loopback serves the envelope and the encrypted payload; the\n\
         device reaches it as http://10.0.2.100:8080 (QEMU user networking, nothing else).",
    );
    let nginx = Nginx::start();
    for (name, file) in [("v2.suit", &rel.envelope), ("v2.enc", &rel.payload)] {
        let bytes = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        nginx.put(name, &bytes);
        println!(
            "   {GUEST_SERVER_URL}/{name} ({} bytes) -> 127.0.0.1:{}",
            bytes.len(),
            nginx.http_port
        );
    }
    dev.vm.network(nginx.http_port);

    step(
        6,
        "Install v2",
        "`suit-agent install http://10.0.2.100:8080/v2.suit`: the TA authenticates the envelope\n\
         and checks it applies and is newer; the agent downloads the payload; the TA approves it\n\
         (approval token), decrypts it chunk by chunk into slot B, records the install (COMMIT);\n\
         the agent arms a one-time trial boot of slot B.",
    );
    let run = dev
        .boot(&format!("agent install install {GUEST_SERVER_URL}/v2.suit"))
        .map_err(err)?;
    show(&run);
    let install = run.step("install").map_err(err)?;
    check(
        run.expect_success().is_ok() && install.exit == 0,
        "the install failed",
        &run,
    )?;

    step(
        7,
        "Reboot into v2",
        "The init boots slot B once (trial): the TA approves it for its trial boots, dm-verity\n\
         checks every block read against the root the TA computed. boot-check runs v2's health check, streams slot B\n\
         through the TA, which compares it with what it approved and raises the anti-rollback\n\
         floor to 2 (CONFIRM); slot B becomes the default. Then v2's application starts.",
    );
    let run = dev.boot("info after").map_err(err)?;
    show(&run);
    check(
        run.expect_success().is_ok(),
        "the boot into v2 failed",
        &run,
    )?;
    let confirmed = run
        .boot_check()
        .is_some_and(|(ok, said)| ok && said.contains("confirmed slot B"));
    check(
        confirmed && run.booted_slot() == Some('B') && run.app_version() == Some("v2"),
        "the device does not run a confirmed v2",
        &run,
    )?;
    let after = run.info("after").map_err(err)?;
    check(
        rootfs_floor(&after) == Some(2),
        "the TA did not raise the floor to 2",
        &run,
    )?;
    println!(
        "   TA: anti-rollback floor of ['rootfs'] {}, install state {}, last update {}",
        rootfs_floor(&after).unwrap_or_default(),
        after["install"],
        after["last-outcome"]
    );

    println!(
        "\n{} the device runs firmware v2 from slot B: authenticated, decrypted and\n\
         approved by the TA in OP-TEE, confirmed after its trial boot; the anti-rollback floor is\n\
         now 2, so v1's envelope would be refused. The TA's state is kept in {}.\nLogs: {}",
        bold("1;32", "SUCCESS:"),
        after["storage"].as_str().unwrap_or("?"),
        dev.vm.dir().display()
    );
    Ok(())
}

//! `make bench` for `suit-agent install` (simulator backend, release build) of a 64 MiB image
//! served by a real nginx on loopback, against the baseline of the same transfer without any
//! checks: `curl` downloading the file and `dd` writing it to the slot with fsync, measured in
//! the same run. Plain and encrypted (A256GCM to the device key) installs are both measured.

#[path = "../tests/support/debian.rs"]
mod debian;
#[allow(dead_code)] // HTTPS and access-log helpers are not used here
#[path = "../tests/support/nginx.rs"]
mod nginx;
#[allow(dead_code)] // the tool benches' ids and memory helpers
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{make_image, run, time_runs, tool, MIB};

const SIZE: u64 = 64 * MIB;
const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_suit-agent")
}

/// A simulated device in `dir`: slot files, boot state, agent configuration.
fn device_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("booted-slot"), "A\n").unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"state-dir = "{d}/state"
staging-dir = "{d}/staging"
booted-slot-file = "{d}/booted-slot"
[boot]
backend = "file"
path = "{d}/bootstate"
[[component]]
id = ["rootfs"]
slot-a = {{ path = "{d}/slot-a.img" }}
slot-b = {{ path = "{d}/slot-b.img" }}
[simulator]
trust-anchors = ["{anchor}"]
vendor = "{VENDOR}"
class = "{CLASS}"
"#,
            d = dir.display(),
            anchor = repo().join("keys/dev-vendor-es384.pub.pem").display()
        ),
    )
    .unwrap();
    config
}

fn agent_cmd(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(agent());
    cmd.args(["--tee", "simulator", "--config"])
        .arg(config)
        .args(args);
    cmd
}

/// The device key (PEM) of the simulated TA behind `config`.
fn device_key_pem(config: &Path) -> String {
    let out = run(&mut agent_cmd(config, &["info", "--json"]));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["device-public-key-pem"].as_str().unwrap().to_string()
}

/// Creates the envelope for the image in `work`, served at `url`.
fn envelope(work: &Path, url: &str, encryption: &str) -> Vec<u8> {
    let spec = work.join("v2.toml");
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"v2.img\"\nuri = \"{url}\"\n{encryption}"
        ),
    )
    .unwrap();
    let out = work.join("v2.suit");
    run(Command::new(tool())
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem")));
    std::fs::read(out).unwrap()
}

/// Median time of `runs` installs, each on a fresh device.
fn install_time(server: &nginx::Nginx, work: &Path, encrypted: bool, runs: usize) -> Duration {
    let mut n = 0;
    time_runs(runs, || {
        n += 1;
        let dir = work.join(format!(
            "device-{}-{n}",
            if encrypted { "enc" } else { "plain" }
        ));
        let config = device_config(&dir);
        let (payload, extra) = if encrypted {
            std::fs::write(work.join("device.pub.pem"), device_key_pem(&config)).unwrap();
            (
                "v2.img.enc",
                "[component.encryption]\nrecipient = \"device.pub.pem\"\n",
            )
        } else {
            ("v2.img", "")
        };
        let env = envelope(work, &server.url(payload), extra);
        server.put("v2.suit", &env);
        server.put(payload, &std::fs::read(work.join(payload)).unwrap());
        run(&mut agent_cmd(
            &config,
            &["install", &server.url("v2.suit")],
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    })
}

fn main() {
    debian::ensure_tool("curl", "curl");
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    make_image(&work.join("v2.img"), SIZE);
    let server = nginx::Nginx::start();
    server.put("baseline.img", &std::fs::read(work.join("v2.img")).unwrap());
    let slot = work.join("baseline-slot.img");
    let download = work.join("baseline-download.img");
    let baseline = time_runs(3, || {
        run(Command::new("curl")
            .args(["-sSf", "-o"])
            .arg(&download)
            .arg(server.url("baseline.img")));
        run(Command::new("dd")
            .arg(format!("if={}", download.display()))
            .arg(format!("of={}", slot.display()))
            .args(["bs=1M", "conv=fsync", "status=none"]));
        std::fs::remove_file(&download).unwrap();
    });
    let plain = install_time(&server, work, false, 3);
    let encrypted = install_time(&server, work, true, 3);
    let mib = (SIZE / MIB) as f64;
    println!(
        "suit-agent install of a {mib} MiB image (simulator TA, nginx on loopback, release build):"
    );
    println!(
        "  baseline curl + dd conv=fsync: {:.2} s ({:.0} MiB/s)",
        baseline.as_secs_f64(),
        mib / baseline.as_secs_f64()
    );
    for (name, t) in [("plain", plain), ("encrypted A256GCM", encrypted)] {
        println!(
            "  install, {name}: {:.2} s ({:.0} MiB/s) — ratio {:.2}× the baseline (target ≤ 1.5×)",
            t.as_secs_f64(),
            mib / t.as_secs_f64(),
            t.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!("  (install = envelope + LOAD_MANIFEST, download, approval stream with digest, slot write with fsync and read-back, COMMIT, trial armed)");
}

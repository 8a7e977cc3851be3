//! `make bench` for `suit-agent install` (simulator backend, release build) of a 64 MiB image
//! served by a real nginx on loopback, against the baseline of the same transfer without any
//! checks: `curl` downloading the file and `dd` writing it to the slot with fsync, measured in
//! the same run. Plain and encrypted (A256GCM to the device key) installs are both measured, in
//! wall time and in CPU time (user + system, GNU time), at 64 MiB and, when the disk has room,
//! 1 GiB; the staging directory is sampled during one more install of each kind. The main
//! figures are the one-pass install (`streaming = true`, docs/streaming.md); the staged install
//! of manifests without a tree root is measured too at 64 MiB (`install_staged_*`). Only the
//! `suit-agent install` command is timed: envelopes and devices are made beforehand. Each round
//! runs the baseline, the plain and the encrypted install, each after a `sync`; a ratio is the
//! median of the rounds' ratios, after an uncounted warm-up round. The figures also go to
//! `build/bench/summary.json` (see `support::Summary`).

#[allow(dead_code)] // the agent runners of the tests
#[path = "../tests/support/agent_config.rs"]
mod agent_config;
#[path = "../tests/support/debian.rs"]
mod debian;
#[allow(dead_code)] // HTTPS and access-log helpers are not used here
#[path = "../tests/support/nginx.rs"]
mod nginx;
#[allow(dead_code)] // the tool benches' ids and memory helpers
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_config::AgentConfig;
use support::{make_image, median, run, tool, Summary, MIB};

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
fn device_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    AgentConfig {
        component_slots: false,
        ..AgentConfig::new(dir)
    }
    .write()
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

/// Creates `<name>.suit` for the image `v2-<suffix>.img` in `work`, served at `url`; a
/// streaming one also writes the tree beside the payload (`<payload>.verity`).
fn envelope(
    work: &Path,
    name: &str,
    suffix: &str,
    url: &str,
    encryption: &str,
    streaming: bool,
) -> PathBuf {
    let spec = work.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\nid = [\"rootfs\"]\nimage = \"v2-{suffix}.img\"\nuri = \"{url}\"\nstreaming = {streaming}\n{encryption}"
        ),
    )
    .unwrap();
    let out = work.join(format!("{name}.suit"));
    run(Command::new(tool())
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem")));
    out
}

/// Copies `file` into the server's document root as `name` (streamed: images can be 1 GiB).
fn serve(server: &nginx::Nginx, name: &str, file: &Path) {
    let dest = server.put(name, b"");
    std::fs::copy(file, dest).unwrap();
}

/// Serves the tree `create` wrote beside `payload` (streaming manifests) at `<payload>.verity`.
fn serve_tree(server: &nginx::Nginx, work: &Path, payload: &str) {
    let tree = work.join(format!("{payload}.verity"));
    if tree.exists() {
        let name = format!("{payload}.verity");
        serve(server, &name, &tree);
        std::fs::remove_file(tree).unwrap();
    }
}

/// Wall time and CPU seconds (user + system, the process and its children) of one command.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            wall: self.wall + o.wall,
            cpu: self.cpu + o.cpu,
        }
    }
}

/// Runs `cmd`, which must succeed, under GNU time (`-f "%U %S"`, written to a file so that the
/// command's own stderr stays apart).
fn measure(cmd: &Command, scratch: &Path) -> Cost {
    let report = scratch.join("time.out");
    let t = Instant::now();
    run(Command::new("/usr/bin/time")
        .args(["-f", "%U %S", "-o"])
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args()));
    let wall = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&report).unwrap();
    let cpu = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or_else(|e| panic!("{text}: {e}")))
        .sum();
    Cost { wall, cpu }
}

/// The medians of wall times and of CPU times, separately.
fn medians(v: &[Cost]) -> Cost {
    Cost {
        wall: median(v.iter().map(|c| c.wall).collect()),
        cpu: median(v.iter().map(|c| c.cpu).collect()),
    }
}

/// The medians of the rounds' ratios `costs[i] / baseline[i]`, wall and CPU: each install
/// over the baseline of its own round, so that a slow moment of the shared disk weighs on
/// one pair, not on one contender.
fn paired_ratios(costs: &[Cost], baseline: &[Cost]) -> Cost {
    let pairs = || costs.iter().zip(baseline);
    Cost {
        wall: median(pairs().map(|(c, b)| c.wall / b.wall).collect()),
        cpu: median(pairs().map(|(c, b)| c.cpu / b.cpu).collect()),
    }
}

/// Flushes the file systems (`sync`), so that the writeback of a setup step (copying a
/// device, deleting the last round's files) is not timed as part of the next command.
fn settle() {
    run(&mut Command::new("sync"));
}

/// Total size of the payload files under `dir` (0 when it does not exist): everything but
/// the envelopes (`*.suit`, a few KiB, kept for every install).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() && !e.file_name().to_string_lossy().contains(".suit") => {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        })
        .sum()
}

/// One install on a fresh device (a copy of `template`, whose TA already has its key).
fn fresh_device(template: &Path, dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    run(Command::new("cp").arg("-a").arg(template).arg(dir));
    device_config(dir)
}

/// What one image size costs to install: baseline, plain and encrypted, each the median of
/// `runs`, and the installs' ratios to the baseline (medians of the rounds' ratios); with
/// `staging`, one more install of each kind (untimed) samples the staging directory.
struct Figures {
    baseline: Cost,
    plain: Cost,
    encrypted: Cost,
    plain_ratio: Cost,
    encrypted_ratio: Cost,
    staging_peak: Option<(u64, u64)>,
}

fn bench_size(
    server: &nginx::Nginx,
    work: &Path,
    template: &Path,
    (size, suffix): (u64, &str),
    runs: usize,
    staging: bool,
    streaming: bool,
) -> Figures {
    let image = work.join(format!("v2-{suffix}.img"));
    make_image(&image, size);
    // The baseline: the same bytes without any check, downloaded then written with fsync.
    let served = format!("baseline-{suffix}.img");
    serve(server, &served, &image);
    let slot = work.join("baseline-slot.img");
    let download = work.join("baseline-download.img");
    let mut curl = Command::new("curl");
    curl.args(["-sSf", "-o"])
        .arg(&download)
        .arg(server.url(&served));
    let mut dd = Command::new("dd");
    dd.arg(format!("if={}", download.display()))
        .arg(format!("of={}", slot.display()))
        .args(["bs=1M", "conv=fsync", "status=none"]);
    let mut kinds: Vec<(String, Vec<Cost>)> = Vec::new();
    // Plain: the payload is the image.
    serve(server, &format!("v2-{suffix}.img"), &image);
    let name = format!("v2-{suffix}");
    let plain = envelope(
        work,
        &name,
        suffix,
        &server.url(&format!("{name}.img")),
        "",
        streaming,
    );
    serve_tree(server, work, &format!("{name}.img"));
    serve(server, &format!("{name}.suit"), &plain);
    kinds.push((server.url(&format!("{name}.suit")), Vec::new()));
    // Encrypted to the template device's key.
    let enc = format!("v2-{suffix}.img.enc");
    let name = format!("v2-{suffix}-enc");
    let encrypted = envelope(
        work,
        &name,
        suffix,
        &server.url(&enc),
        "[component.encryption]\nrecipient = \"device.pub.pem\"\n",
        streaming,
    );
    serve(server, &enc, &work.join(&enc));
    serve_tree(server, work, &enc);
    std::fs::remove_file(work.join(&enc)).unwrap();
    serve(server, &format!("{name}.suit"), &encrypted);
    kinds.push((server.url(&format!("{name}.suit")), Vec::new()));
    std::fs::remove_file(&image).unwrap();
    let mut baseline = Vec::new();
    let device = work.join("device");
    // Alternating runs: every contender meets the same page-cache and writeback conditions,
    // and each starts on flushed file systems. Round 0 warms up (the served files' page cache,
    // the file system's allocation after the setup's deletions) and is not counted: measured,
    // its first 1 GiB install took 2-3 times as long as any later one.
    for round in 0..=runs {
        let _ = std::fs::remove_file(&slot);
        settle();
        // No flush between the two: the download's writeback is part of the baseline's cost.
        baseline.push(measure(&curl, work) + measure(&dd, work));
        std::fs::remove_file(&download).unwrap();
        for (url, costs) in &mut kinds {
            let config = fresh_device(template, &device);
            settle();
            costs.push(measure(&agent_cmd(&config, &["install", url]), work));
        }
        let last = |c: &[Cost]| c.last().map_or(0.0, |c| c.wall);
        println!(
            "  {}: baseline {:.2} s, plain {:.2} s, encrypted {:.2} s",
            if round == 0 { "warm-up" } else { "run" },
            last(&baseline),
            last(&kinds[0].1),
            last(&kinds[1].1)
        );
        if round == 0 {
            baseline.clear();
            kinds.iter_mut().for_each(|(_, costs)| costs.clear());
        }
    }
    std::fs::remove_file(&slot).unwrap();
    let staging_peak = staging.then(|| {
        let mut peaks = kinds.iter().map(|(url, _)| {
            let config = fresh_device(template, &device);
            staging_peak(&config, &device.join("staging"), url)
        });
        (peaks.next().unwrap(), peaks.next().unwrap())
    });
    std::fs::remove_dir_all(&device).unwrap();
    Figures {
        baseline: medians(&baseline),
        plain: medians(&kinds[0].1),
        encrypted: medians(&kinds[1].1),
        plain_ratio: paired_ratios(&kinds[0].1, &baseline),
        encrypted_ratio: paired_ratios(&kinds[1].1, &baseline),
        staging_peak,
    }
}

/// The largest size the staging directory reaches during one install, sampled every 2 ms.
fn staging_peak(config: &Path, staging: &Path, url: &str) -> u64 {
    let mut child = agent_cmd(config, &["install", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        peak = peak.max(tree_bytes(staging));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "install for the staging sample failed");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Free bytes of the file system holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let out = run(Command::new("df").args(["--output=avail", "-B1"]).arg(dir));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Disk space the 1 GiB round needs: the image, its ciphertext, the served copies (plain,
/// ciphertext, baseline), the baseline's download and slot, the device's staging and slot, with
/// room to spare.
const NEED_1G: u64 = 10 * 1024 * MIB;

fn main() {
    debian::ensure_tool("curl", "curl");
    debian::ensure_tool("time", "time");
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = nginx::Nginx::start();
    // One device whose TA has made its key: every install starts from a copy of it.
    let template = work.join("template");
    let config = device_config(&template);
    std::fs::write(work.join("device.pub.pem"), device_key_pem(&config)).unwrap();
    let mut summary = Summary::new("agent");
    // (size, key suffix, runs, sample the staging directory, one pass, key prefix)
    let mut sizes = vec![
        (SIZE, "64m", 3, true, true, "install"),
        (SIZE, "64m", 3, true, false, "install_staged"),
    ];
    let free = free_bytes(work);
    if free >= NEED_1G {
        sizes.push((1024 * MIB, "1g", 5, false, true, "install"));
    } else {
        println!(
            "1 GiB installs skipped: {} GiB free under {}, they need {} GiB",
            free / (1024 * MIB),
            work.display(),
            NEED_1G / (1024 * MIB)
        );
    }
    // BENCH_SIZES=1g (or 64m): only those rounds, e.g. while iterating on one figure.
    let only = std::env::var("BENCH_SIZES").ok();
    sizes.retain(|(_, suffix, ..)| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == *suffix))
    });
    for (size, suffix, runs, staging, streaming, prefix) in sizes {
        let f = bench_size(
            &server,
            work,
            &template,
            (size, suffix),
            runs,
            staging,
            streaming,
        );
        let mib = (size / MIB) as f64;
        let path = if streaming {
            "one pass"
        } else {
            "staged, no tree root"
        };
        println!(
            "suit-agent install of a {mib} MiB image, {path} (simulator TA, nginx on loopback, release build, medians of {runs} rounds; ratios: medians of the rounds' ratios):"
        );
        println!(
            "  baseline curl + dd conv=fsync: {:.2} s ({:.0} MiB/s), {:.2} s CPU",
            f.baseline.wall,
            mib / f.baseline.wall,
            f.baseline.cpu
        );
        for (name, key, c, ratio) in [
            ("plain", "plain", f.plain, f.plain_ratio),
            (
                "encrypted A256GCM",
                "encrypted",
                f.encrypted,
                f.encrypted_ratio,
            ),
        ] {
            println!(
                "  install, {name}: {:.2} s ({:.0} MiB/s) — ratio {:.2}× the baseline (target ≤ {}×); CPU {:.2} s, {:.2}× the baseline's",
                c.wall,
                mib / c.wall,
                ratio.wall,
                if key == "plain" { "1.2" } else { "1.5" },
                c.cpu,
                ratio.cpu
            );
            summary.record(&format!("{prefix}_{key}_ratio_{suffix}"), ratio.wall);
            // The energy proxy: `install_cpu_ratio_*` is the plain install's.
            let cpu_key = if key == "plain" {
                format!("{prefix}_cpu_ratio_{suffix}")
            } else {
                format!("{prefix}_{key}_cpu_ratio_{suffix}")
            };
            summary.record(&cpu_key, ratio.cpu);
        }
        if streaming {
            summary.record(&format!("baseline_curl_dd_s_{suffix}"), f.baseline.wall);
        }
        if let Some((plain, encrypted)) = f.staging_peak {
            println!(
                "  staging directory peak: plain {plain} bytes, encrypted {encrypted} bytes (image {size})"
            );
            let key = if streaming {
                "staging_peak_bytes".to_string()
            } else {
                format!("{prefix}_staging_peak_bytes")
            };
            summary.record_count(&key, plain.max(encrypted));
        }
    }
    println!("  (install = `suit-agent install URL` alone: envelope + LOAD_MANIFEST, then one pass: tree, download through STREAM_UPDATE into the slot with fsync, COMMIT, trial armed; staged: download, approval stream with digest, slot write with fsync and read-back, COMMIT, trial armed; CPU = user + system seconds from GNU time)");
    summary.write();
}

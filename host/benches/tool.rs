//! `make bench` for the manifest core and `suit-tool process`. Every figure is reported with a
//! baseline measured in the same run on the same machine:
//! * authenticate + process of an ES384 envelope vs one bare P-384 ECDSA verification;
//! * image-digest throughput of `suit-tool process` on a 256 MiB image vs `sha256sum`;
//! * peak memory (max RSS, from `/usr/bin/time`) of `process` at 64 and 256 MiB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use suit_shared::auth::TrustAnchor;
use suit_shared::digest::SuitDigest;
use suit_shared::error::Uuid;
use suit_shared::manifest::Manifest;
use suit_shared::params::ComponentParams;
use suit_shared::processor::{
    ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform, Processor, Section,
};

mod support;

use support::{ids, make_image, peak_rss_kib, run, time_runs, tool, MIB};

/// An envelope for `image`, signed with a fresh ES384 key; returns (envelope, public key).
fn envelope_for(dir: &Path, image: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join("bench-key");
    if !dir.join("bench-key.pub.pem").exists() {
        run(Command::new(tool())
            .args(["keygen", "--alg", "ES384", "--out"])
            .arg(&prefix));
    }
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 1\nvendor = \"example.com\"\nclass = \"bench\"\n[[component]]\nid = [\"fw\"]\nimage = {:?}\nuri = \"http://h/fw\"\n",
            image.display().to_string()
        ),
    )
    .unwrap();
    let env = dir.join(format!("{name}.suit"));
    run(Command::new(tool())
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&env)
        .arg("--key")
        .arg(dir.join("bench-key.priv.pem")));
    (env, dir.join("bench-key.pub.pem"))
}

fn process_cmd(env: &Path, anchor: &Path, image: &Path) -> Command {
    let (v, c) = ids();
    let mut cmd = Command::new(tool());
    cmd.arg("process")
        .arg(env)
        .arg("--trust-anchor")
        .arg(anchor)
        .args(["--vendor-id", &v, "--class-id", &c]);
    cmd.arg("--image").arg(format!("0={}", image.display()));
    cmd
}

/// A platform whose only component always matches: isolates manifest processing cost.
struct Matching(DeviceIdentity);

impl Platform for Matching {
    fn identity(&self) -> &DeviceIdentity {
        &self.0
    }
    fn component_slot(&self, _: ComponentRef<'_, '_>) -> Option<u64> {
        Some(0)
    }
    fn check_image(
        &mut self,
        _: ComponentRef<'_, '_>,
        _: &SuitDigest<'_>,
        _: Option<u64>,
    ) -> suit_shared::Result<ImageCheck> {
        Ok(ImageCheck::Match)
    }
    fn check_content(&mut self, _: ComponentRef<'_, '_>, _: &[u8]) -> suit_shared::Result<bool> {
        Ok(true)
    }
    fn fetch(
        &mut self,
        _: ComponentRef<'_, '_>,
        _: FetchSource<'_>,
        _: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        Ok(())
    }
    fn write(
        &mut self,
        _: ComponentRef<'_, '_>,
        _: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        Ok(())
    }
    fn copy(
        &mut self,
        _: ComponentRef<'_, '_>,
        _: ComponentRef<'_, '_>,
        _: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        Ok(())
    }
}

fn latency(dir: &Path) {
    let image = dir.join("small.bin");
    make_image(&image, MIB);
    let (env, anchor) = envelope_for(dir, &image, "small");
    let bytes = std::fs::read(&env).unwrap();
    let anchors = [suit_host::keys::load_trust_anchor(&anchor).unwrap()];
    let (v, c) = ids();
    let uuid = |s: &str| Uuid(*uuid::Uuid::parse_str(s).unwrap().as_bytes());
    let identity = DeviceIdentity {
        vendor_id: uuid(&v),
        class_id: uuid(&c),
        device_id: None,
    };
    let n = 200;
    let full = time_runs(9, || {
        for _ in 0..n {
            let a = Manifest::authenticate(&bytes, &anchors).unwrap();
            let mut p = Matching(identity.clone());
            Processor::new(&a, &mut p).run(&Section::UPDATE).unwrap();
        }
    }) / n;
    // Baseline: one bare ECDSA P-384 verification of a message of the same kind.
    let TrustAnchor::P384 { key, .. } = &anchors[0] else {
        unreachable!("ES384 bench key")
    };
    let signer = suit_host::keys::load_signing_key(&dir.join("bench-key.priv.pem")).unwrap();
    let suit_shared::author::SigningKey::P384(sk) = signer else {
        unreachable!("ES384 bench key")
    };
    use p384::ecdsa::signature::{Signer, Verifier};
    let msg = [7u8; 96];
    let sig: p384::ecdsa::Signature = sk.sign(&msg);
    let bare = time_runs(9, || {
        for _ in 0..n {
            key.verify(&msg, &sig).unwrap();
        }
    }) / n;
    println!(
        "authenticate + process, ES384 envelope ({} bytes):",
        bytes.len()
    );
    println!("  {:>9.1} µs per envelope", full.as_secs_f64() * 1e6);
    println!(
        "  baseline: one bare P-384 ECDSA verify {:.1} µs",
        bare.as_secs_f64() * 1e6
    );
    println!(
        "  ratio {:.2}× the bare signature check",
        full.as_secs_f64() / bare.as_secs_f64()
    );
}

fn throughput(dir: &Path) {
    println!("image digest during `suit-tool process` (release build):");
    let mut rss = Vec::new();
    for size_mib in [64u64, 256] {
        let image = dir.join(format!("image-{size_mib}.bin"));
        make_image(&image, size_mib * MIB);
        let (env, anchor) = envelope_for(dir, &image, &format!("image-{size_mib}"));
        let mut cmd = process_cmd(&env, &anchor, &image);
        if size_mib == 256 {
            // Warm the page cache for both contenders.
            run(Command::new("sha256sum").arg(&image));
            let tool_time = time_runs(3, || {
                run(&mut cmd);
            });
            let sha_time = time_runs(3, || {
                run(Command::new("sha256sum").arg(&image));
            });
            let mbps = |d: Duration| (size_mib as f64) / d.as_secs_f64();
            println!(
                "  suit-tool process: {:.2} s ({:.0} MiB/s)",
                tool_time.as_secs_f64(),
                mbps(tool_time)
            );
            println!(
                "  baseline sha256sum: {:.2} s ({:.0} MiB/s)",
                sha_time.as_secs_f64(),
                mbps(sha_time)
            );
            println!(
                "  ratio {:.2}× the time of sha256sum",
                tool_time.as_secs_f64() / sha_time.as_secs_f64()
            );
        }
        rss.push((size_mib, peak_rss_kib(&cmd)));
        std::fs::remove_file(&image).ok();
    }
    for (size, kib) in rss {
        match kib {
            Some(k) => println!(
                "  peak memory at {size} MiB image: {:.1} MiB",
                k as f64 / 1024.0
            ),
            None => println!("  peak memory: /usr/bin/time not installed (apt-get install time)"),
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; any other argument filters nothing here.
    let dir = std::env::temp_dir().join(format!("suit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    latency(&dir);
    throughput(&dir);
    std::fs::remove_dir_all(&dir).ok();
}

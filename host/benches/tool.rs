//! `make bench` for the manifest core and `suit-tool process`. Every figure is reported with a
//! baseline measured in the same run on the same machine:
//! * authenticate + process of an ES256 and an ES384 envelope vs one bare ECDSA verification on
//!   the same curve, ours (RustCrypto) and OpenSSL's (`openssl speed ecdsap256|ecdsap384`);
//! * image-digest throughput of `suit-tool process` on a 256 MiB image vs `sha256sum`;
//! * peak memory (max RSS, from `/usr/bin/time`) of `process` at 64 and 256 MiB.
//!
//! The figures also go to `build/bench/summary.json` (see `support::Summary`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use suit_shared::auth::TrustAnchor;
use suit_shared::author::SigningKey;
use suit_shared::digest::SuitDigest;
use suit_shared::error::Uuid;
use suit_shared::manifest::Manifest;
use suit_shared::params::ComponentParams;
use suit_shared::processor::{
    ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform, Processor, Section,
};

mod support;

use support::{ids, make_image, peak_rss_kib, run, time_runs, tool, Summary, MIB};

/// An envelope for `image`, signed with a fresh `alg` key; returns (envelope, public key,
/// private key).
fn envelope_for(dir: &Path, image: &Path, alg: &str, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let prefix = dir.join(format!("bench-{alg}"));
    let public = dir.join(format!("bench-{alg}.pub.pem"));
    let private = dir.join(format!("bench-{alg}.priv.pem"));
    if !public.exists() {
        run(Command::new(tool())
            .args(["keygen", "--alg", alg, "--out"])
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
    let env = dir.join(format!("{name}-{alg}.suit"));
    run(Command::new(tool())
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&env)
        .arg("--key")
        .arg(&private));
    (env, public, private)
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

/// Verifications per second of `openssl speed` for `curve` (`ecdsap256`, `ecdsap384`).
///
/// The baseline for authenticate + process: OpenSSL's bare ECDSA verify on the same curve, of a
/// precomputed digest, measured in this run. It uses OpenSSL's own key rather than ours: an ECDSA
/// verification costs the same for every key of a curve (two scalar multiplications), and the
/// `openssl` command line cannot repeat one verify of a given key and digest without paying a
/// process start each time, which would flatter us by orders of magnitude. The ratio therefore
/// says what our whole authenticate + process costs above the fastest bare signature check on
/// this machine (the envelope's digest, CBOR and COSE decoding, the processor are all ours).
fn openssl_verifies_per_s(curve: &str) -> f64 {
    let out = run(Command::new("openssl").args(["speed", "-mr", "-seconds", "3", curve]));
    let text = String::from_utf8_lossy(&out.stdout);
    // `+F4:<index>:<bits>:<signs/s>:<verifies/s>`
    text.lines()
        .filter(|l| l.starts_with("+F4:"))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no verify figure in `openssl speed {curve}`: {text}"))
}

/// A bare verify of `msg` with the anchor's key (RustCrypto, the provider the core uses today).
fn bare_verify(anchor: &TrustAnchor, signer: &SigningKey, n: u32) -> Duration {
    use p256::ecdsa::signature::{Signer, Verifier};
    let msg = [7u8; 96];
    match (anchor, signer) {
        (TrustAnchor::P256 { key, .. }, SigningKey::P256(sk)) => {
            let sig: p256::ecdsa::Signature = sk.sign(&msg);
            time_runs(9, || {
                for _ in 0..n {
                    key.verify(&msg, &sig).unwrap();
                }
            }) / n
        }
        (TrustAnchor::P384 { key, .. }, SigningKey::P384(sk)) => {
            let sig: p384::ecdsa::Signature = sk.sign(&msg);
            time_runs(9, || {
                for _ in 0..n {
                    key.verify(&msg, &sig).unwrap();
                }
            }) / n
        }
        _ => panic!("the bench key and its anchor differ"),
    }
}

/// Authenticate + process of an envelope signed with `alg` (`ES256`, `ES384`), against a bare
/// verify of our library and OpenSSL's.
fn latency(dir: &Path, alg: &str, curve: &str, summary: &mut Summary) {
    let image = dir.join("small.bin");
    make_image(&image, MIB);
    let (env, anchor, key) = envelope_for(dir, &image, alg, "small");
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
    let signer = suit_host::keys::load_signing_key(&key).unwrap();
    let bare = bare_verify(&anchors[0], &signer, n);
    let openssl = 1.0 / openssl_verifies_per_s(curve);
    let full_s = full.as_secs_f64();
    println!(
        "authenticate + process, {alg} envelope ({} bytes):",
        bytes.len()
    );
    println!("  {:>9.1} µs per envelope", full_s * 1e6);
    println!(
        "  baseline: one bare ECDSA verify, RustCrypto {:.1} µs, `openssl speed {curve}` {:.1} µs",
        bare.as_secs_f64() * 1e6,
        openssl * 1e6
    );
    println!(
        "  ratio {:.2}× our bare verify, {:.2}× OpenSSL's",
        full_s / bare.as_secs_f64(),
        full_s / openssl
    );
    let a = alg.to_lowercase();
    summary.record(&format!("authenticate_{a}_us"), full_s * 1e6);
    summary.record(
        &format!("authenticate_{a}_ratio_bare_verify"),
        full_s / bare.as_secs_f64(),
    );
    summary.record(&format!("authenticate_{a}_ratio_openssl"), full_s / openssl);
}

fn throughput(dir: &Path, summary: &mut Summary) {
    println!("image digest during `suit-tool process` (release build):");
    let mut rss = Vec::new();
    for size_mib in [64u64, 256] {
        let image = dir.join(format!("image-{size_mib}.bin"));
        make_image(&image, size_mib * MIB);
        let (env, anchor, _) = envelope_for(dir, &image, "ES384", &format!("image-{size_mib}"));
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
            summary.record("process_digest_mib_per_s_256m", mbps(tool_time));
            summary.record(
                "process_digest_ratio_sha256sum_256m",
                tool_time.as_secs_f64() / sha_time.as_secs_f64(),
            );
        }
        rss.push((size_mib, peak_rss_kib(&cmd)));
        std::fs::remove_file(&image).ok();
    }
    for (size, kib) in rss {
        match kib {
            Some(k) => {
                println!(
                    "  peak memory at {size} MiB image: {:.1} MiB",
                    k as f64 / 1024.0
                );
                summary.record_count(&format!("process_peak_rss_bytes_{size}m"), k * 1024);
            }
            None => println!("  peak memory: /usr/bin/time not installed (apt-get install time)"),
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; any other argument filters nothing here.
    let dir = std::env::temp_dir().join(format!("suit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut summary = Summary::new("tool");
    latency(&dir, "ES256", "ecdsap256", &mut summary);
    latency(&dir, "ES384", "ecdsap384", &mut summary);
    throughput(&dir, &mut summary);
    std::fs::remove_dir_all(&dir).ok();
    summary.write();
}

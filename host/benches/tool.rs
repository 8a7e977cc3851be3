//! `make bench` for the manifest core and `suit-tool process`. Every figure is reported with a
//! baseline measured in the same run on the same machine:
//! * authenticate + process of an ES256 and an ES384 envelope (with the host's crypto provider,
//!   OpenSSL) vs a bare OpenSSL verify of the envelope's own signature in this process
//!   (key, signature and digest prepared beforehand; rounds interleaved so both meet the same
//!   machine load), and vs `openssl speed ecdsap256|ecdsap384` and a bare RustCrypto verify
//!   for reference;
//! * image-digest throughput of `suit-tool process` on a 256 MiB image vs `sha256sum`;
//! * peak memory (max RSS, from `/usr/bin/time`) of `process` at 64 and 256 MiB.
//!
//! The figures also go to `build/bench/summary.json` (see `support::Summary`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coset::{CoseSign1, TaggedCborSerializable};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use suit_shared::auth::TrustAnchor;
use suit_shared::crypto::{CryptoProvider, SigAlg, RUST_CRYPTO};
use suit_shared::digest::SuitDigest;
use suit_shared::envelope::Envelope;
use suit_shared::error::Uuid;
use suit_shared::manifest::Manifest;
use suit_shared::params::ComponentParams;
use suit_shared::processor::{
    ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform, Processor, Section,
};

mod support;

use support::{ids, make_image, median, peak_rss_kib, run, time_runs, tool, Summary, MIB};

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
    fn component_slot(&self, _: ComponentRef<'_>) -> Option<u64> {
        Some(0)
    }
    fn check_image(
        &mut self,
        _: ComponentRef<'_>,
        _: &SuitDigest<'_>,
        _: Option<u64>,
    ) -> suit_shared::Result<ImageCheck> {
        Ok(ImageCheck::Match)
    }
    fn check_content(&mut self, _: ComponentRef<'_>, _: &[u8]) -> suit_shared::Result<bool> {
        Ok(true)
    }
    fn fetch(
        &mut self,
        _: ComponentRef<'_>,
        _: FetchSource<'_>,
        _: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: ComponentRef<'_>, _: &ComponentParams<'_>) -> suit_shared::Result<()> {
        Ok(())
    }
    fn copy(
        &mut self,
        _: ComponentRef<'_>,
        _: ComponentRef<'_>,
        _: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        Ok(())
    }
}

/// Verifications per second of `openssl speed` for `curve` (`ecdsap256`, `ecdsap384`), with
/// OpenSSL's own key and a precomputed digest: a reference figure next to the in-process one.
fn openssl_speed_verifies_per_s(curve: &str) -> f64 {
    // -elapsed: wall clock, like our figures (by default it divides by user CPU time).
    let out =
        run(Command::new("openssl").args(["speed", "-elapsed", "-mr", "-seconds", "3", curve]));
    let text = String::from_utf8_lossy(&out.stdout);
    // `+F4:<index>:<bits>:<signs/s>:<verifies/s>`
    text.lines()
        .filter(|l| l.starts_with("+F4:"))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no verify figure in `openssl speed {curve}`: {text}"))
}

/// The envelope's first signature: (to-be-signed bytes, `r || s`).
fn envelope_signature(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let env = Envelope::decode(bytes).unwrap();
    let auth = env.auth.unwrap();
    let sign1 = CoseSign1::from_tagged_slice(auth.raw_blocks()[0]).unwrap();
    let tbs = sign1.tbs_detached_data(auth.digest_encoding(), b"");
    (tbs, sign1.signature)
}

/// A bare OpenSSL ECDSA verify of one signature: the public key parsed, the signature decoded
/// and the digest computed beforehand, so that only the verification itself is timed.
struct BareOpenSsl {
    key: EcKey<openssl::pkey::Public>,
    sig: EcdsaSig,
    digest: Vec<u8>,
}

impl BareOpenSsl {
    fn new(anchor: &TrustAnchor, tbs: &[u8], signature: &[u8]) -> Self {
        let (nid, sec1, digest) = match anchor {
            TrustAnchor::Signature {
                alg: SigAlg::EcdsaP256Sha256,
                public_key,
                ..
            } => (
                Nid::X9_62_PRIME256V1,
                public_key.clone(),
                openssl::sha::sha256(tbs).to_vec(),
            ),
            TrustAnchor::Signature {
                alg: SigAlg::EcdsaP384Sha384,
                public_key,
                ..
            } => (
                Nid::SECP384R1,
                public_key.clone(),
                openssl::sha::sha384(tbs).to_vec(),
            ),
            _ => panic!("the bench anchors are ECDSA keys"),
        };
        let group = EcGroup::from_curve_name(nid).unwrap();
        let point = EcPoint::from_bytes(&group, &sec1, &mut BigNumContext::new().unwrap()).unwrap();
        let n = signature.len() / 2;
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(&signature[..n]).unwrap(),
            BigNum::from_slice(&signature[n..]).unwrap(),
        )
        .unwrap();
        BareOpenSsl {
            key: EcKey::from_public_key(&group, &point).unwrap(),
            sig,
            digest,
        }
    }

    fn verify(&self) {
        assert!(self.sig.verify(&self.digest, &self.key).unwrap());
    }
}

/// Authenticate + process of an envelope signed with `alg` (`ES256`, `ES384`), against a bare
/// OpenSSL verify of the same signature (the ratio the issue sets), `openssl speed` and a bare
/// RustCrypto verify.
fn latency(dir: &Path, alg: &str, curve: &str, summary: &mut Summary) {
    let image = dir.join("small.bin");
    make_image(&image, MIB);
    let (env, anchor, _key) = envelope_for(dir, &image, alg, "small");
    let bytes = std::fs::read(&env).unwrap();
    let anchors = [suit_host::keys::load_trust_anchor(&anchor).unwrap()];
    let (v, c) = ids();
    let uuid = |s: &str| Uuid(*uuid::Uuid::parse_str(s).unwrap().as_bytes());
    let identity = DeviceIdentity {
        vendor_id: uuid(&v),
        class_id: uuid(&c),
        device_id: None,
    };
    let (tbs, signature) = envelope_signature(&bytes);
    let bare = BareOpenSsl::new(&anchors[0], &tbs, &signature);
    let (sig_alg, sec1) = match &anchors[0] {
        TrustAnchor::Signature {
            alg, public_key, ..
        } => (*alg, public_key.clone()),
        TrustAnchor::Hmac256 { .. } => panic!("the bench anchors are ECDSA keys"),
    };
    // Paired rounds: within a round ours and the baseline alternate envelope by envelope, so a
    // burst of load from other processes on the shared machine hits both alike; the ratio is
    // the median of the rounds' ratios.
    let n = 50;
    let (mut full, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..21 {
        let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..n {
            let t = Instant::now();
            let a = Manifest::authenticate(&bytes, &anchors).unwrap();
            let mut p = Matching(identity.clone());
            Processor::new(&a, &mut p).run(&Section::UPDATE).unwrap();
            ours += t.elapsed();
            let t = Instant::now();
            bare.verify();
            theirs += t.elapsed();
        }
        ratios.push(ours.as_secs_f64() / theirs.as_secs_f64());
        full.push(ours / n);
        base.push(theirs / n);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let rust = time_runs(5, || {
        for _ in 0..n {
            assert!(RUST_CRYPTO.verify(sig_alg, &sec1, &tbs, &signature));
        }
    }) / n;
    let (full, base) = (median(full), median(base));
    let speed = 1.0 / openssl_speed_verifies_per_s(curve);
    let full_s = full.as_secs_f64();
    println!(
        "authenticate + process, {alg} envelope ({} bytes), provider {}:",
        bytes.len(),
        suit_shared::crypto::provider().name()
    );
    println!("  {:>9.1} µs per envelope", full_s * 1e6);
    println!(
        "  baseline: a bare OpenSSL verify of the same signature {:.1} µs; for reference \
         `openssl speed {curve}` {:.1} µs, a bare RustCrypto verify {:.1} µs",
        base.as_secs_f64() * 1e6,
        speed * 1e6,
        rust.as_secs_f64() * 1e6
    );
    println!(
        "  ratio {ratio:.2}× the bare OpenSSL verify ({:.2}× `openssl speed`)",
        full_s / speed
    );
    let a = alg.to_lowercase();
    summary.record(&format!("authenticate_{a}_us"), full_s * 1e6);
    summary.record(&format!("verify_{a}_openssl_us"), base.as_secs_f64() * 1e6);
    summary.record(
        &format!("verify_{a}_rustcrypto_us"),
        rust.as_secs_f64() * 1e6,
    );
    summary.record(&format!("authenticate_{a}_ratio_openssl"), ratio);
    summary.record(
        &format!("authenticate_{a}_ratio_openssl_speed"),
        full_s / speed,
    );
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
    suit_host::crypto::install();
    let dir = std::env::temp_dir().join(format!("suit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut summary = Summary::new("tool");
    latency(&dir, "ES256", "ecdsap256", &mut summary);
    latency(&dir, "ES384", "ecdsap384", &mut summary);
    throughput(&dir, &mut summary);
    std::fs::remove_dir_all(&dir).ok();
    summary.write();
}

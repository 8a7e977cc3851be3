//! Round trips of the algorithm profiles (draft-ietf-suit-mti and ours) through `suit-tool`:
//! `create` with the profile's key distribution and content encryption, `sign` with its
//! signature algorithm, `process` on the simulated device, which must give the image back.
//! The same profiles through the TA core: `profiles_ta.rs`.

use std::path::PathBuf;
use std::process::Output;

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, Scratch};

const VENDOR: &str = "example.com";
const CLASS: &str = "qemu-armv8a";

fn tool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    cli::tool(args)
}

fn vendor_id() -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, VENDOR.as_bytes()).to_string()
}

fn class_id() -> String {
    let vendor = uuid::Uuid::parse_str(&vendor_id()).unwrap();
    uuid::Uuid::new_v5(&vendor, CLASS.as_bytes()).to_string()
}

/// How the payload's key reaches the device.
enum KeyDistribution {
    /// ECDH-ES + AES-KW to a device key of this `suit-tool keygen` algorithm.
    Ecdh(&'static str),
    /// AES-KW with a KEK of this many bytes.
    Kek(usize),
}

struct Profile {
    name: &'static str,
    signature: &'static str,
    keys: KeyDistribution,
    content: &'static str,
}

/// Creates, signs and processes one envelope under `p`; returns the decrypted image.
fn round_trip(dir: &Scratch, p: &Profile) -> Vec<u8> {
    let image: Vec<u8> = (0..70_000u32).map(|i| (i * 29 % 251) as u8).collect();
    dir.write(&format!("{}.bin", p.name), &image);
    let (device_arg, device_file, recipient_line) = match p.keys {
        KeyDistribution::Ecdh(alg) => {
            let prefix = dir.path(&format!("{}-device", p.name));
            ok(tool(&[&"keygen", &"--alg", &alg, &"--out", &prefix]));
            (
                "--recipient-key",
                dir.path(&format!("{}-device.priv.pem", p.name)),
                format!("recipient = \"{}-device.pub.pem\"", p.name),
            )
        }
        KeyDistribution::Kek(len) => {
            let kek: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
            let path = dir.write(&format!("{}.kek", p.name), &kek);
            ("--kek", path, format!("kek = \"{}.kek\"", p.name))
        }
    };
    let spec = format!(
        "sequence-number = 3\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\n\
         id = [\"fw\"]\nimage = \"{name}.bin\"\nuri = \"https://updates.example.com/{name}.enc\"\n\
         [component.encryption]\n{recipient_line}\ncontent-alg = \"{content}\"\n\
         ciphertext = \"{name}.enc\"\n",
        name = p.name,
        content = p.content,
    );
    let spec = dir.write(&format!("{}.toml", p.name), spec.as_bytes());
    let unsigned = dir.path(&format!("{}-unsigned.suit", p.name));
    ok(tool(&[&"create", &"--spec", &spec, &"--out", &unsigned]));
    let prefix = dir.path(&format!("{}-vendor", p.name));
    ok(tool(&[
        &"keygen",
        &"--alg",
        &p.signature,
        &"--lms-height",
        &"5",
        &"--out",
        &prefix,
    ]));
    let vendor_priv = dir.path(&format!("{}-vendor.priv.pem", p.name));
    let vendor_pub = dir.path(&format!("{}-vendor.pub.pem", p.name));
    let signed = dir.path(&format!("{}.suit", p.name));
    ok(tool(&[
        &"sign",
        &"--key",
        &vendor_priv,
        &unsigned,
        &"--out",
        &signed,
    ]));
    let ciphertext = dir.path(&format!("{}.enc", p.name));
    assert_ne!(std::fs::read(&ciphertext).unwrap(), image);
    let out_path = dir.path(&format!("{}.out", p.name));
    let out = ok(tool(&[
        &"process",
        &signed,
        &"--trust-anchor",
        &vendor_pub,
        &"--vendor-id",
        &vendor_id(),
        &"--class-id",
        &class_id(),
        &"--image",
        &format!("1={}", ciphertext.display()),
        &device_arg,
        &device_file,
        &"--output",
        &format!("0={}", out_path.display()),
        &"--json",
    ]));
    assert!(out.contains("\"accepted\""), "{}: {out}", p.name);
    // Another vendor key: the same envelope is not authentic.
    let other = dir.path(&format!("{}-other", p.name));
    ok(tool(&[&"keygen", &"--alg", &"ES384", &"--out", &other]));
    let other_pub: PathBuf = dir.path(&format!("{}-other.pub.pem", p.name));
    let refused = tool(&[&"verify", &"--trust-anchor", &other_pub, &signed]);
    assert_eq!(code(&refused), 1, "{}", p.name);
    std::fs::read(&out_path).unwrap()
}

#[test]
fn every_profile_round_trips_through_suit_tool() {
    let dir = Scratch::new("profiles");
    let image: Vec<u8> = (0..70_000u32).map(|i| (i * 29 % 251) as u8).collect();
    let profiles = [
        // suit-sha256-es256-ecdh-a128gcm (the A128CTR variant: `ctr_profiles_round_trip`).
        Profile {
            name: "es256-ecdh-a128gcm",
            signature: "ES256",
            keys: KeyDistribution::Ecdh("ES256"),
            content: "A128GCM",
        },
        // suit-sha256-eddsa-ecdh-a128gcm: Ed25519, ECDH-ES+A128KW with X25519.
        Profile {
            name: "eddsa-ecdh-a128gcm",
            signature: "Ed25519",
            keys: KeyDistribution::Ecdh("X25519"),
            content: "A128GCM",
        },
        // Ed25519 with a fleet KEK (A128KW).
        Profile {
            name: "ed25519-a128kw-a128gcm",
            signature: "Ed25519",
            keys: KeyDistribution::Kek(16),
            content: "A128GCM",
        },
        // suit-sha256-hsslms-a256kw-a256ctr's signature and key wrap with A256GCM (the
        // profile itself, with A256CTR: `ctr_profiles_round_trip`).
        Profile {
            name: "hsslms-a256kw-a256gcm",
            signature: "HSS-LMS",
            keys: KeyDistribution::Kek(32),
            content: "A256GCM",
        },
        // Ours: ES384 with ECDH-ES+A256KW on P-384 and A256GCM.
        Profile {
            name: "es384-ecdh-a256gcm",
            signature: "ES384",
            keys: KeyDistribution::Ecdh("ES384"),
            content: "A256GCM",
        },
        // The post-quantum signature with our encryption.
        Profile {
            name: "mldsa65-ecdh-a256gcm",
            signature: "ML-DSA-65",
            keys: KeyDistribution::Ecdh("ES384"),
            content: "A256GCM",
        },
    ];
    for p in &profiles {
        assert_eq!(round_trip(&dir, p), image, "{}", p.name);
    }
}

/// The draft's AES-CTR profiles (RFC 9459 content encryption, integrity from the signed image
/// digest alone): suit-tool writes them and the device decrypts them.
#[test]
fn ctr_profiles_round_trip() {
    let dir = Scratch::new("profiles-ctr");
    let image: Vec<u8> = (0..70_000u32).map(|i| (i * 29 % 251) as u8).collect();
    let profiles = [
        // suit-sha256-es256-ecdh-a128ctr.
        Profile {
            name: "es256-ecdh-a128ctr",
            signature: "ES256",
            keys: KeyDistribution::Ecdh("ES256"),
            content: "A128CTR",
        },
        // suit-sha256-eddsa-ecdh-a128ctr.
        Profile {
            name: "eddsa-ecdh-a128ctr",
            signature: "Ed25519",
            keys: KeyDistribution::Ecdh("X25519"),
            content: "A128CTR",
        },
        // suit-sha256-hsslms-a256kw-a256ctr.
        Profile {
            name: "hsslms-a256kw-a256ctr",
            signature: "HSS-LMS",
            keys: KeyDistribution::Kek(32),
            content: "A256CTR",
        },
    ];
    for p in &profiles {
        assert_eq!(round_trip(&dir, p), image, "{}", p.name);
        // CTR adds no tag: the ciphertext is as long as the image.
        let ciphertext = std::fs::read(dir.path(&format!("{}.enc", p.name))).unwrap();
        assert_eq!(ciphertext.len(), image.len(), "{}", p.name);
    }
}

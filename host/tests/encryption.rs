//! Payload encryption through `suit-tool`'s command line (DESIGN.md §8): `encrypt`, `decrypt`,
//! `process --kek/--recipient-key` and `create` with encrypted components; every public
//! encryption vector; tampering rejected (exit 1, category `decryption` or `digest`) with
//! nothing written; usage and I/O errors (exit 2).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, tool, Scratch};

/// No scratch files left behind by the tool in `dir`.
fn assert_clean(dir: &Scratch) {
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with(".suit-scratch"),
            "scratch file left: {name:?}"
        );
    }
}

/// The public vectors (`SUIT_VECTORS=` overrides the location).
fn vectors() -> PathBuf {
    let dir = std::env::var_os("SUIT_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/suit-vectors")
        });
    assert!(
        dir.join("index.json").is_file(),
        "SUIT test vectors not found at {} (set SUIT_VECTORS=)",
        dir.display()
    );
    dir
}

fn v(rel: &str) -> PathBuf {
    vectors().join(rel)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

const FIRMWARE: &[u8] = b"This is a real firmware image.";

/// (info, ciphertext, key flag, key file, expected plaintext file or None for FIRMWARE / config).
fn vector_pairs() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let kek = "keys/a128kw-kek-16xa.bin";
    let ecdh = "keys/enc-ecdh-es-recipient-p256.priv.pem";
    vec![
        (
            "encryption/suit-encryption-info-aes-kw-aes-gcm.cose",
            "encryption/encrypted-payload-aes-kw-aes-gcm.bin",
            "--kek",
            kek,
        ),
        (
            "encryption/suit-encryption-info-aes-kw-aes-ctr.cose",
            "encryption/encrypted-payload-aes-kw-aes-ctr.bin",
            "--kek",
            kek,
        ),
        (
            "encryption/suit-encryption-info-es-ecdh-aes-gcm.cose",
            "encryption/encrypted-payload-es-ecdh-aes-gcm.bin",
            "--recipient-key",
            ecdh,
        ),
        (
            "encryption/suit-encryption-info-es-ecdh-aes-ctr.cose",
            "encryption/encrypted-payload-es-ecdh-aes-ctr.bin",
            "--recipient-key",
            ecdh,
        ),
        (
            "libcsuit/encryption_info_aes.cose",
            "libcsuit/encrypted_image_aes.bin",
            "--kek",
            kek,
        ),
        (
            "libcsuit/encryption_info_esdh.cose",
            "libcsuit/encrypted_image_esdh.bin",
            "--recipient-key",
            ecdh,
        ),
        (
            "libcsuit/encryption_info_config_aes.cose",
            "libcsuit/encrypted_config_aes.bin",
            "--kek",
            kek,
        ),
        (
            "libcsuit/encryption_info_config_esdh.cose",
            "libcsuit/encrypted_config_esdh.bin",
            "--recipient-key",
            ecdh,
        ),
    ]
}

#[test]
fn every_vector_decrypts_with_suit_tool() {
    let dir = Scratch::new("vectors");
    for (i, (info, ciphertext, flag, key)) in vector_pairs().into_iter().enumerate() {
        let out = dir.path(&format!("plain-{i}"));
        let stdout = ok(tool(&[
            "decrypt".as_ref(),
            "--in".as_ref(),
            v(ciphertext).as_os_str(),
            "--info".as_ref(),
            v(info).as_os_str(),
            flag.as_ref(),
            v(key).as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]));
        assert!(stdout.starts_with("decrypted"), "{stdout}");
        let plain = std::fs::read(&out).unwrap();
        if info.contains("config") {
            assert_eq!(plain.len(), 61, "{info}");
            assert!(plain.starts_with(b"{\"name\":\"FOO Bar\""), "{info}");
        } else {
            assert_eq!(plain, FIRMWARE, "{info}");
        }
        // A GCM payload with one bit flipped: exit 1, nothing at --out.
        if !info.contains("ctr") {
            let mut bad = std::fs::read(v(ciphertext)).unwrap();
            bad[5] ^= 0x10;
            let bad = dir.write("bad.bin", &bad);
            let out = dir.path(&format!("tampered-{i}"));
            let result = tool(&[
                "decrypt".as_ref(),
                "--in".as_ref(),
                bad.as_os_str(),
                "--info".as_ref(),
                v(info).as_os_str(),
                flag.as_ref(),
                v(key).as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ]);
            assert_eq!(code(&result), 1, "{info}");
            let stderr = String::from_utf8_lossy(&result.stderr);
            assert!(
                stderr.contains("(decryption)") && stderr.contains("tag mismatch"),
                "{stderr}"
            );
            assert!(
                !out.exists(),
                "{info}: output written despite the tag mismatch"
            );
        }
    }
    assert_clean(&dir);
}

fn process(envelope: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["process".as_ref(), envelope.as_os_str(), "--json".as_ref()];
    args.extend_from_slice(extra);
    tool(&args)
}

#[test]
fn encrypted_manifests_process_with_suit_tool() {
    let dir = Scratch::new("manifests");
    let hmac = v("keys/hmac256-key-32xa.bin");
    let es256 = v("keys/draft-es256-p256.pub.pem");
    let kek = v("keys/a128kw-kek-16xa.bin");
    let ecdh = v("keys/enc-ecdh-es-recipient-p256.priv.pem");
    let payload = format!(
        "1={}",
        v("encryption/encrypted-payload-aes-kw-aes-gcm.bin").display()
    );
    let cases: [(&str, &str, &Path, &str, &Path); 8] = [
        (
            "encryption/suit-manifest-aes-kw-content.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "encryption/suit-manifest-aes-kw.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "encryption/suit-manifest-aes-kw-slot.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "encryption/suit-manifest-es-ecdh-content.suit",
            "--trust-anchor",
            &es256,
            "--recipient-key",
            &ecdh,
        ),
        (
            "libcsuit/suit_manifest_expAW.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "libcsuit/suit_manifest_expAF.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "libcsuit/suit_manifest_expAFS.suit",
            "--hmac-key",
            &hmac,
            "--kek",
            &kek,
        ),
        (
            "libcsuit/suit_manifest_expEW.suit",
            "--trust-anchor",
            &es256,
            "--recipient-key",
            &ecdh,
        ),
    ];
    for (i, (file, auth_flag, auth, key_flag, key)) in cases.into_iter().enumerate() {
        let out = dir.path(&format!("component0-{i}"));
        let output = format!("0={}", out.display());
        let result = process(
            &v(file),
            &[
                auth_flag.as_ref(),
                auth.as_os_str(),
                key_flag.as_ref(),
                key.as_os_str(),
                "--image".as_ref(),
                payload.as_ref(),
                "--output".as_ref(),
                output.as_ref(),
            ],
        );
        assert_eq!(
            code(&result),
            0,
            "{file}: {}",
            String::from_utf8_lossy(&result.stdout)
        );
        assert_eq!(json(&result)["result"], "accepted", "{file}");
        assert_eq!(std::fs::read(&out).unwrap(), FIRMWARE, "{file}");
        // Without a key: rejected as decryption, and --output is not written.
        let out = dir.path(&format!("nokey-{i}"));
        let output = format!("0={}", out.display());
        let result = process(
            &v(file),
            &[
                auth_flag.as_ref(),
                auth.as_os_str(),
                "--image".as_ref(),
                payload.as_ref(),
                "--output".as_ref(),
                output.as_ref(),
            ],
        );
        assert_eq!(code(&result), 1, "{file}");
        assert_eq!(json(&result)["error"]["category"], "decryption", "{file}");
        assert!(!out.exists());
    }
    // The example with an integrated dependency is refused as unsupported.
    let result = process(
        &v("encryption/suit-manifest-es-ecdh-dependency.suit"),
        &[
            "--trust-anchor".as_ref(),
            es256.as_os_str(),
            "--trust-anchor".as_ref(),
            v("keys/enc-dependency-es256-p256.pub.pem").as_os_str(),
            "--recipient-key".as_ref(),
            ecdh.as_os_str(),
        ],
    );
    assert_eq!(code(&result), 1);
    let j = json(&result);
    assert_eq!(j["error"]["category"], "policy");
    assert!(j["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("dependencies not supported"));
}

fn keygen(dir: &Scratch, alg: &str, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.path(name);
    ok(tool(&[
        "keygen".as_ref(),
        "--alg".as_ref(),
        alg.as_ref(),
        "--out".as_ref(),
        prefix.as_os_str(),
    ]));
    (
        dir.path(&format!("{name}.priv.pem")),
        dir.path(&format!("{name}.pub.pem")),
    )
}

#[test]
fn encrypt_decrypt_round_trips() {
    let dir = Scratch::new("roundtrip");
    let (p384_priv, p384_pub) = keygen(&dir, "ES384", "dev384");
    let (p256_priv, p256_pub) = keygen(&dir, "ES256", "dev256");
    let kek16 = dir.write("kek16", &[0x11; 16]);
    let kek32 = dir.write("kek32", &[0x22; 32]);
    // Odd size, several read chunks (CHUNK is 256 KiB).
    let plaintext: Vec<u8> = (0..600_001u32).map(|i| (i * 31 % 253) as u8).collect();
    let input = dir.write("plain.bin", &plaintext);
    let cases: [(&str, &Path, &str, &Path, &str, &str); 6] = [
        (
            "--recipient",
            &p384_pub,
            "--recipient-key",
            &p384_priv,
            "A256GCM",
            "A256GCM, ECDH-ES+A256KW (P-384)",
        ),
        (
            "--recipient",
            &p384_pub,
            "--recipient-key",
            &p384_priv,
            "A128GCM",
            "A128GCM, ECDH-ES+A128KW (P-384)",
        ),
        (
            "--recipient",
            &p256_pub,
            "--recipient-key",
            &p256_priv,
            "A128GCM",
            "A128GCM, ECDH-ES+A128KW (P-256)",
        ),
        (
            "--recipient",
            &p256_pub,
            "--recipient-key",
            &p256_priv,
            "A256GCM",
            "A256GCM, ECDH-ES+A256KW (P-256)",
        ),
        (
            "--kek",
            &kek16,
            "--kek",
            &kek16,
            "A256GCM",
            "A256GCM, A128KW",
        ),
        (
            "--kek",
            &kek32,
            "--kek",
            &kek32,
            "A128GCM",
            "A128GCM, A256KW",
        ),
    ];
    for (i, (to_flag, to, key_flag, key, alg, description)) in cases.into_iter().enumerate() {
        let enc = dir.path(&format!("c{i}.enc"));
        let info = dir.path(&format!("c{i}.cose"));
        let stdout = ok(tool(&[
            "encrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            enc.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
            to_flag.as_ref(),
            to.as_os_str(),
            "--content-alg".as_ref(),
            alg.as_ref(),
        ]));
        assert!(stdout.contains(description), "{stdout}");
        assert_eq!(
            std::fs::metadata(&enc).unwrap().len(),
            plaintext.len() as u64 + 16
        );
        let out = dir.path(&format!("c{i}.out"));
        ok(tool(&[
            "decrypt".as_ref(),
            "--in".as_ref(),
            enc.as_os_str(),
            "--info".as_ref(),
            info.as_os_str(),
            key_flag.as_ref(),
            key.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]));
        assert_eq!(std::fs::read(&out).unwrap(), plaintext, "{description}");
    }
    // Wrong recipient key: exit 1, decryption, nothing written.
    let enc = dir.path("c0.enc");
    let info = dir.path("c0.cose");
    let (other_priv, _) = keygen(&dir, "ES384", "other");
    let out = dir.path("wrong.out");
    let result = tool(&[
        "decrypt".as_ref(),
        "--in".as_ref(),
        enc.as_os_str(),
        "--info".as_ref(),
        info.as_os_str(),
        "--recipient-key".as_ref(),
        other_priv.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code(&result), 1);
    assert!(String::from_utf8_lossy(&result.stderr).contains("(decryption)"));
    assert!(!out.exists());
    // Truncated and extended ciphertexts.
    let ciphertext = std::fs::read(&enc).unwrap();
    for (name, bytes) in [
        ("truncated", ciphertext[..ciphertext.len() - 1].to_vec()),
        ("extended", [ciphertext.as_slice(), b"x"].concat()),
    ] {
        let bad = dir.write(name, &bytes);
        let result = tool(&[
            "decrypt".as_ref(),
            "--in".as_ref(),
            bad.as_os_str(),
            "--info".as_ref(),
            info.as_os_str(),
            "--recipient-key".as_ref(),
            p384_priv.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(code(&result), 1, "{name}");
        assert!(!out.exists(), "{name}");
    }
    assert_clean(&dir);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = Scratch::new("usage");
    let input = dir.write("plain.bin", b"payload");
    let bad_kek = dir.write("kek24", &[0; 24]);
    let (_, public) = keygen(&dir, "ES384", "dev");
    let out = dir.path("o.enc");
    let info = dir.path("o.cose");
    let absent = dir.path("absent");
    let cases: Vec<Vec<&std::ffi::OsStr>> = vec![
        // A 24-byte KEK (A192KW) is not supported.
        vec![
            "encrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
            "--kek".as_ref(),
            bad_kek.as_os_str(),
        ],
        // Both recipients, or none.
        vec![
            "encrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
            "--kek".as_ref(),
            bad_kek.as_os_str(),
            "--recipient".as_ref(),
            public.as_os_str(),
        ],
        vec![
            "encrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
        ],
        // A content algorithm outside the profiles (AES-192-GCM).
        vec![
            "encrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
            "--recipient".as_ref(),
            public.as_os_str(),
            "--content-alg".as_ref(),
            "A192GCM".as_ref(),
        ],
        // Missing input.
        vec![
            "encrypt".as_ref(),
            "--in".as_ref(),
            absent.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--info-out".as_ref(),
            info.as_os_str(),
            "--recipient".as_ref(),
            public.as_os_str(),
        ],
        // A public key where the private key belongs.
        vec![
            "decrypt".as_ref(),
            "--in".as_ref(),
            input.as_os_str(),
            "--info".as_ref(),
            input.as_os_str(),
            "--recipient-key".as_ref(),
            public.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    ];
    for args in cases {
        let result = tool(&args);
        assert_eq!(
            code(&result),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(!out.exists(), "{args:?}");
    }
    // Encryption info that is not COSE: rejected (1), malformed.
    let result = tool(&[
        "decrypt".as_ref(),
        "--in".as_ref(),
        input.as_os_str(),
        "--info".as_ref(),
        input.as_os_str(),
        "--kek".as_ref(),
        dir.write("kek16", &[1; 16]).as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code(&result), 1);
    assert!(String::from_utf8_lossy(&result.stderr).contains("(malformed)"));
}

const VENDOR: &str = "example.com";
const CLASS: &str = "gateway-rev-b";

fn ids() -> (String, String) {
    let vendor = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, VENDOR.as_bytes());
    let class = uuid::Uuid::new_v5(&vendor, CLASS.as_bytes());
    (vendor.to_string(), class.to_string())
}

#[test]
fn create_encrypts_and_process_decrypts() {
    let dir = Scratch::new("create");
    let (vendor_priv, vendor_pub) = keygen(&dir, "ES384", "vendor");
    let (dev_priv, _) = keygen(&dir, "ES384", "device");
    let (other_priv, _) = keygen(&dir, "ES384", "other");
    let rootfs: Vec<u8> = (0..300_007u32).map(|i| (i % 241) as u8).collect();
    dir.write("rootfs.img", &rootfs);
    dir.write(
        "app.bin",
        b"application payload, encrypted for the fleet KEK",
    );
    dir.write("fleet.kek", &[0x5a; 32]);
    let spec = format!(
        "sequence-number = 4\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n\
         [[component]]\nid = [\"rootfs\"]\nimage = \"rootfs.img\"\nuri = \"https://u.example/rootfs.img.enc\"\n\
         [component.encryption]\nrecipient = \"device.pub.pem\"\nkid = \"device-1\"\n\
         [[component]]\nid = [\"app\"]\nimage = \"app.bin\"\nintegrated = true\n\
         [component.encryption]\nkek = \"fleet.kek\"\ncontent-alg = \"A128GCM\"\nciphertext = \"app.sealed\"\n"
    );
    let spec = dir.write("spec.toml", spec.as_bytes());
    let envelope = dir.path("update.suit");
    let stdout = ok(tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        envelope.as_os_str(),
        "--key".as_ref(),
        vendor_priv.as_os_str(),
    ]));
    assert!(
        stdout.contains("rootfs.img.enc") && stdout.contains("app.sealed"),
        "{stdout}"
    );
    let ciphertext = dir.path("rootfs.img.enc");
    assert_eq!(
        std::fs::metadata(&ciphertext).unwrap().len(),
        rootfs.len() as u64 + 16
    );
    // The two-component form: components 2 and 3 cache the ciphertexts.
    let inspect: Value = serde_json::from_str(&ok(tool(&[
        "inspect".as_ref(),
        envelope.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(
        inspect["components"].as_array().unwrap().len(),
        4,
        "{inspect}"
    );
    let text = inspect.to_string();
    assert!(
        text.contains("A256GCM, ECDH-ES+A256KW (P-384) kid 'device-1'")
            && text.contains("\"A128GCM, A256KW\""),
        "{text}"
    );

    let (vendor_id, class_id) = ids();
    let image = format!("2={}", ciphertext.display());
    let out0 = dir.path("out0");
    let out1 = dir.path("out1");
    let (o0, o1) = (
        format!("0={}", out0.display()),
        format!("1={}", out1.display()),
    );
    let fleet = dir.path("fleet.kek");
    let run = |image: &str, key: &Path, outputs: bool| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--trust-anchor".as_ref(),
            vendor_pub.as_os_str(),
            "--vendor-id".as_ref(),
            vendor_id.as_ref(),
            "--class-id".as_ref(),
            class_id.as_ref(),
            "--image".as_ref(),
            image.as_ref(),
            "--recipient-key".as_ref(),
            key.as_os_str(),
            "--kek".as_ref(),
            fleet.as_os_str(),
        ];
        if outputs {
            let extra: [&std::ffi::OsStr; 4] = [
                "--output".as_ref(),
                o0.as_ref(),
                "--output".as_ref(),
                o1.as_ref(),
            ];
            args.extend(extra);
        }
        process(&envelope, &args)
    };
    let result = run(&image, &dev_priv, true);
    assert_eq!(
        code(&result),
        0,
        "{}",
        String::from_utf8_lossy(&result.stdout)
    );
    assert_eq!(std::fs::read(&out0).unwrap(), rootfs);
    assert_eq!(
        std::fs::read(&out1).unwrap(),
        b"application payload, encrypted for the fleet KEK"
    );
    std::fs::remove_file(&out0).unwrap();
    std::fs::remove_file(&out1).unwrap();

    // Another device's key: decryption.
    let result = run(&image, &other_priv, true);
    assert_eq!(code(&result), 1);
    assert_eq!(json(&result)["error"]["category"], "decryption");
    assert!(!out0.exists() && !out1.exists());

    // A tampered ciphertext is caught by the ciphertext digest before anything is decrypted.
    let mut bad = std::fs::read(&ciphertext).unwrap();
    bad[1000] ^= 4;
    let bad = dir.write("bad.enc", &bad);
    let result = run(&format!("2={}", bad.display()), &dev_priv, true);
    assert_eq!(code(&result), 1);
    let j = json(&result);
    assert_eq!(j["error"]["category"], "digest", "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("component 2"),
        "{j}"
    );
    assert!(!out0.exists() && !out1.exists());

    // A second create encrypts again with a fresh content key and IV.
    let first = std::fs::read(&ciphertext).unwrap();
    let again = dir.path("again.suit");
    ok(tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        again.as_os_str(),
    ]));
    assert_ne!(std::fs::read(&ciphertext).unwrap(), first);
    assert_clean(&dir);
}

#[test]
fn aes_ctr_needs_an_image_digest() {
    // A manifest of our own that writes the draft's AES-CTR payload (parameter-content) with
    // and without image-digest, signed with a fresh key.
    use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
    use suit_shared::command::{Command, CommandSequence, Directive, ReportingPolicy};
    use suit_shared::component::ComponentId;
    use suit_shared::digest::DigestAlg;
    use suit_shared::manifest::{Manifest, Severable};
    use suit_shared::params::Parameter;

    let dir = Scratch::new("ctr");
    let (vendor_priv, vendor_pub) = keygen(&dir, "ES256", "vendor");
    let info = std::fs::read(v("encryption/suit-encryption-info-aes-kw-aes-ctr.cose")).unwrap();
    let ciphertext = std::fs::read(v("encryption/encrypted-payload-aes-kw-aes-ctr.bin")).unwrap();
    let good = DigestAlg::Sha256.digest(FIRMWARE);
    let wrong = DigestAlg::Sha256.digest(b"another image");
    let cases: [(Option<&suit_shared::digest::DigestValue>, Option<&str>); 3] = [
        (Some(&good), None),
        (None, Some("policy")),
        (Some(&wrong), Some("digest")),
    ];
    for (i, (digest, rejection)) in cases.into_iter().enumerate() {
        let mut params = vec![
            Parameter::Content(&ciphertext),
            Parameter::EncryptionInfo(&info),
        ];
        if let Some(d) = digest {
            params.push(Parameter::ImageDigest(d.as_suit_digest()));
        }
        let manifest = Manifest {
            sequence_number: 1,
            components: vec![ComponentId::new([b"fw"])],
            shared_sequence: None,
            reference_uri: None,
            manifest_component_id: None,
            set_version: None,
            validate: None,
            load: None,
            invoke: None,
            uninstall: None,
            payload_fetch: Severable::Absent,
            install: Severable::Present {
                value: CommandSequence {
                    commands: vec![
                        Command::OverrideParameters(params),
                        Command::Directive(Directive::Write, ReportingPolicy(15)),
                    ],
                },
                severed: false,
            },
            candidate_verification: Severable::Absent,
            text: Severable::Absent,
            coswid: Severable::Absent,
        };
        let encoded = encode_manifest(&manifest, DigestAlg::Sha256);
        let unsigned = build_envelope(&encoded, &[], DigestAlg::Sha256);
        let key = suit_host::keys::load_signing_key(&vendor_priv).unwrap();
        let signed = sign_envelope(&unsigned, &key, key.default_alg(), None).unwrap();
        let envelope = dir.write(&format!("ctr-{i}.suit"), &signed);
        let out = dir.path(&format!("ctr-{i}.out"));
        let output = format!("0={}", out.display());
        let result = process(
            &envelope,
            &[
                "--trust-anchor".as_ref(),
                vendor_pub.as_os_str(),
                "--kek".as_ref(),
                v("keys/a128kw-kek-16xa.bin").as_os_str(),
                "--output".as_ref(),
                output.as_ref(),
            ],
        );
        match rejection {
            None => {
                assert_eq!(
                    code(&result),
                    0,
                    "{}",
                    String::from_utf8_lossy(&result.stdout)
                );
                assert_eq!(std::fs::read(&out).unwrap(), FIRMWARE);
            }
            Some(category) => {
                assert_eq!(code(&result), 1);
                let j = json(&result);
                assert_eq!(j["error"]["category"], category, "{j}");
                assert!(!out.exists());
            }
        }
    }
    let j = json(&process(
        &dir.path("ctr-1.suit"),
        &[
            "--trust-anchor".as_ref(),
            vendor_pub.as_os_str(),
            "--kek".as_ref(),
            v("keys/a128kw-kek-16xa.bin").as_os_str(),
        ],
    ));
    assert!(
        j["error"]["message"].as_str().unwrap().contains("AES-CTR"),
        "{j}"
    );
}

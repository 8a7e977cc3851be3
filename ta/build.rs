//! Build script of the SUIT TA: writes the OP-TEE TA header (UUID, stack and heap sizes,
//! flags) and the link arguments against the TA dev kit (TA_DEV_KIT_DIR), and compiles the
//! TA's configuration in (`$OUT_DIR/ta_config.rs`):
//!
//! * `TRUST_ANCHOR` — the built-in anchor set: SPKI PEM files of the keys that sign envelopes
//!   (ECDSA P-384/P-256, Ed25519, ML-DSA-65, HSS-LMS), comma-separated, converted here to
//!   SEC1 or the raw key; default `keys/dev-vendor-es384.pub.pem` (a DEVELOPMENT key);
//! * `TA_ANCHOR_POLICY` — `any` (the default: a valid signature from any one anchor) or `all`
//!   (every anchor must sign the same manifest digest); part of the anchor set, never chosen
//!   at run time;
//! * `TA_HYBRID` — `1` selects the development hybrid set: `keys/dev-vendor-es384.pub.pem` and
//!   `keys/dev-vendor-mldsa65.pub.pem` with policy `all` (ECDSA P-384 **and** ML-DSA-65);
//!   `TRUST_ANCHOR` / `TA_ANCHOR_POLICY` still override;
//! * `TA_VENDOR` / `TA_CLASS` — vendor domain and class name, turned into UUIDv5 as
//!   `suit-tool create` does (default `example.com` / `qemu-armv8a`), or `TA_VENDOR_ID` /
//!   `TA_CLASS_ID` as UUIDs;
//! * `TA_MAX_CHUNK`, `TA_MAX_ENVELOPE` — largest bulk chunk and envelope (bytes; K/M suffixes;
//!   default 1 MiB chunks, the ABI's most: the core reads a chunk piece by piece from shared
//!   memory, so the chunk does not bound the heap; 64 KiB envelopes);
//! * `TA_CLIENT` — the only TEE client that may change state: `user:UID` (a Linux user, as
//!   the kernel vouches for it with TEEC_LOGIN_USER; default `user:0`, root, which the agent
//!   is on the QEMU device), or `any` (development only: every client);
//! * `TA_FACTORY` — `1` builds a factory TA in which PROVISION works (once); anything else,
//!   the default, a production TA without it;
//! * `TA_STORAGE` — where the TA keeps its state: `rpmb` (the default: replay-protected, for
//!   OP-TEE built with CFG_RPMB_FS=y) or `ree-fs` (boards without RPMB: no rollback
//!   protection). Fixed here; the TA never tries another storage at run time;
//! * `TA_AGREEMENT` — the curve of the key-agreement key a new state gets: `p384` (the
//!   default) or `x25519` (draft-ietf-suit-mti's EdDSA profile; needs the cargo feature
//!   `x25519`, which ta/build-ta.sh turns on); a stored key keeps its curve;
//! * `TA_CRYPTO` — the crypto provider: `gp` (the default: OP-TEE's GlobalPlatform crypto,
//!   src/gp_crypto.rs) or `rustcrypto` (the portable RustCrypto code inside the TA);
//! * `TA_UUID`, `TA_STACK_SIZE`, `TA_HEAP_SIZE` — as before. ta/ta.mk sets them; the default
//!   UUID is the one in `ta/uuid`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use optee_utee_build::{Error, HeaderFileGenerator, TaConfig};
use p256::pkcs8::DecodePublicKey;

/// TA_FLAG_SINGLE_INSTANCE | TA_FLAG_MULTI_SESSION: one TA instance shared by all sessions, so
/// the core can keep one update at a time and see every session.
const TA_FLAGS: u32 = (1 << 2) | (1 << 3);

fn env(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn size_from_env(name: &str, default: u32) -> u32 {
    let Some(text) = env(name) else {
        return default;
    };
    let text = text.trim();
    let (digits, scale) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1024),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 1024 * 1024),
        _ => (text, 1),
    };
    match digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) => n,
        None => panic!("{name}={text} is not a size in bytes (e.g. 65536, 64K, 1M)"),
    }
}

/// The TA's default UUID, from `ta/uuid` (its one place).
fn default_uuid() -> String {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("uuid");
    println!("cargo:rerun-if-changed={}", path.display());
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) => panic!("reading the TA UUID from {}: {e}", path.display()),
    }
}

/// One built-in anchor: the `SigAlg` variant and the key (SEC1 point or raw public key).
struct Anchor {
    alg: &'static str,
    key: Vec<u8>,
}

/// id-Ed25519, id-ml-dsa-65, id-alg-hss-lms-hashsig.
const OIDS: [(&str, &str, usize); 3] = [
    ("1.3.101.112", "Ed25519", 32),
    ("2.16.840.1.101.3.4.3.18", "MlDsa65", 1952),
    ("1.2.840.113549.1.9.16.3.17", "HssLms", 60),
];

fn anchor_from_file(path: &std::path::Path) -> Anchor {
    use p256::pkcs8::der::{pem, Decode};
    use p256::pkcs8::SubjectPublicKeyInfoRef;
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("TRUST_ANCHOR={}: {e}", path.display()));
    if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(&text) {
        return Anchor {
            alg: "EcdsaP384Sha384",
            key: k.to_sec1_point(false).as_bytes().to_vec(),
        };
    }
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(&text) {
        return Anchor {
            alg: "EcdsaP256Sha256",
            key: k.to_sec1_point(false).as_bytes().to_vec(),
        };
    }
    let bad = || -> ! {
        panic!(
            "TRUST_ANCHOR={} is not an SPKI PEM public key (ECDSA P-384/P-256, Ed25519, ML-DSA-65, HSS-LMS)",
            path.display()
        )
    };
    let Ok(("PUBLIC KEY", der)) = pem::decode_vec(text.as_bytes()) else {
        bad()
    };
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(&der) else {
        bad()
    };
    let oid = spki.algorithm.oid.to_string();
    let Some((_, alg, len)) = OIDS.iter().find(|(o, _, _)| *o == oid) else {
        bad()
    };
    match spki.subject_public_key.as_bytes() {
        Some(key) if key.len() == *len && spki.algorithm.parameters.is_none() => Anchor {
            alg,
            key: key.to_vec(),
        },
        _ => bad(),
    }
}

/// The built-in anchor set and its policy (`Any` or `All`).
fn anchor_set() -> (Vec<Anchor>, &'static str) {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let hybrid = env("TA_HYBRID").is_some_and(|v| v.trim() == "1");
    let files: Vec<PathBuf> = match env("TRUST_ANCHOR") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect(),
        None if hybrid => vec![
            manifest_dir.join("../keys/dev-vendor-es384.pub.pem"),
            manifest_dir.join("../keys/dev-vendor-mldsa65.pub.pem"),
        ],
        None => vec![manifest_dir.join("../keys/dev-vendor-es384.pub.pem")],
    };
    if files.is_empty() {
        panic!("TRUST_ANCHOR names no key file");
    }
    let policy = match env("TA_ANCHOR_POLICY").as_deref().map(str::trim) {
        Some("all") => "All",
        Some("any") => "AnyOne",
        None if hybrid => "All",
        None => "AnyOne",
        Some(other) => panic!("TA_ANCHOR_POLICY={other} is neither any nor all"),
    };
    let anchors: Vec<Anchor> = files.iter().map(|f| anchor_from_file(f)).collect();
    for a in &anchors {
        let feature = match a.alg {
            "Ed25519" => "ed25519",
            "MlDsa65" => "ml-dsa-65",
            "HssLms" => "hss-lms",
            _ => continue,
        };
        let var = format!("CARGO_FEATURE_{}", feature.replace('-', "_").to_uppercase());
        if std::env::var_os(var).is_none() {
            panic!(
                "TRUST_ANCHOR has a {} key but the TA is built without its verifier: add `{feature}` \
                 to TA_FEATURES (or leave TA_FEATURES empty: ta/build-ta.sh derives it from the anchors)",
                a.alg
            );
        }
    }
    (anchors, policy)
}

fn identity() -> ([u8; 16], [u8; 16]) {
    let parse = |name: &str, text: &str| {
        uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{name}={text} is not a UUID: {e}"))
    };
    let vendor = match env("TA_VENDOR_ID") {
        Some(id) => parse("TA_VENDOR_ID", &id),
        None => {
            let name = env("TA_VENDOR").unwrap_or_else(|| "example.com".into());
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, name.as_bytes())
        }
    };
    let class = match env("TA_CLASS_ID") {
        Some(id) => parse("TA_CLASS_ID", &id),
        None => {
            let name = env("TA_CLASS").unwrap_or_else(|| "qemu-armv8a".into());
            uuid::Uuid::new_v5(&vendor, name.as_bytes())
        }
    };
    (*vendor.as_bytes(), *class.as_bytes())
}

/// The client identity from `TA_CLIENT`: login method and UUID, as OP-TEE reports it for a
/// Linux client that opens its session with TEEC_LOGIN_USER, as the agent does (UUIDv5 of
/// "uid=<hex euid>" in the kernel's client namespace).
fn client() -> Option<(u32, [u8; 16])> {
    // drivers/tee/tee_core.c `tee_client_uuid_ns`.
    let namespace = uuid::Uuid::from_bytes([
        0x58, 0xac, 0x9c, 0xa0, 0x20, 0x86, 0x46, 0x83, 0xa1, 0xb8, 0xec, 0x4b, 0xc0, 0x8e, 0x01,
        0xb6,
    ]);
    let text = env("TA_CLIENT").unwrap_or_else(|| "user:0".into());
    let text = text.trim();
    if text == "any" {
        return None;
    }
    let Some(("user", id)) = text.split_once(':') else {
        panic!("TA_CLIENT={text} is neither user:UID nor any");
    };
    let id: u32 = id
        .parse()
        .unwrap_or_else(|e| panic!("TA_CLIENT={text}: {id} is not a number: {e}"));
    let name = format!("uid={id:x}");
    // 1: TEE_LOGIN_USER.
    Some((
        1,
        *uuid::Uuid::new_v5(&namespace, name.as_bytes()).as_bytes(),
    ))
}

/// The `StorageKind` variant named by `TA_STORAGE`.
fn storage() -> &'static str {
    match env("TA_STORAGE").as_deref().map(str::trim) {
        None | Some("rpmb") => "Rpmb",
        Some("ree-fs") => "ReeFs",
        Some(other) => panic!("TA_STORAGE={other} is neither rpmb nor ree-fs"),
    }
}

/// The key-agreement curve named by `TA_AGREEMENT`; X25519 needs the feature `x25519`.
fn agreement() -> &'static str {
    match env("TA_AGREEMENT").as_deref().map(str::trim) {
        None | Some("p384") => "P384",
        Some("x25519") if std::env::var_os("CARGO_FEATURE_X25519").is_some() => "X25519",
        Some("x25519") => panic!("TA_AGREEMENT=x25519 needs the cargo feature x25519"),
        Some(other) => panic!("TA_AGREEMENT={other} is neither p384 nor x25519"),
    }
}

/// The crypto provider named by `TA_CRYPTO`, as the cfg `ta_crypto`; the cargo feature
/// `rustcrypto` (which links the RustCrypto provider) must agree with it.
fn crypto() {
    println!("cargo::rustc-check-cfg=cfg(ta_crypto, values(\"gp\", \"rustcrypto\"))");
    let name = match env("TA_CRYPTO").as_deref().map(str::trim) {
        None | Some("gp") => "gp",
        Some("rustcrypto") => "rustcrypto",
        Some(other) => panic!("TA_CRYPTO={other} is neither gp nor rustcrypto"),
    };
    let feature = std::env::var_os("CARGO_FEATURE_RUSTCRYPTO").is_some();
    if feature != (name == "rustcrypto") {
        panic!(
            "TA_CRYPTO={name} needs the cargo feature `rustcrypto` {} (ta/build-ta.sh sets it)",
            if feature { "off" } else { "on" }
        );
    }
    println!("cargo:rustc-cfg=ta_crypto=\"{name}\"");
}

fn write_config() {
    let (anchors, policy) = anchor_set();
    let (vendor, class) = identity();
    let max_chunk = size_from_env("TA_MAX_CHUNK", 1 << 20).min(1 << 20);
    let max_envelope = size_from_env("TA_MAX_ENVELOPE", 64 * 1024);
    let mut out =
        String::from("// Generated by build.rs from TRUST_ANCHOR, TA_ANCHOR_POLICY, TA_HYBRID, TA_VENDOR/TA_CLASS, TA_MAX_*, TA_CLIENT, TA_FACTORY, TA_STORAGE.\n");
    let _ = writeln!(out, "const TRUST_ANCHORS: &[(SigAlg, &[u8])] = &[");
    for a in &anchors {
        let _ = writeln!(out, "    (SigAlg::{}, &{:?}),", a.alg, a.key);
    }
    let _ = writeln!(out, "];");
    let _ = writeln!(
        out,
        "const ANCHOR_POLICY: AnchorPolicy = AnchorPolicy::{policy};"
    );
    let _ = writeln!(out, "const VENDOR_ID: [u8; 16] = {vendor:?};");
    let _ = writeln!(out, "const CLASS_ID: [u8; 16] = {class:?};");
    let _ = writeln!(out, "const MAX_CHUNK: usize = {max_chunk};");
    let _ = writeln!(out, "const MAX_ENVELOPE: usize = {max_envelope};");
    let _ = writeln!(
        out,
        "const CLIENT: Option<(u32, [u8; 16])> = {:?};",
        client()
    );
    let factory = env("TA_FACTORY").is_some_and(|v| v.trim() == "1");
    let _ = writeln!(out, "const FACTORY: bool = {factory};");
    let _ = writeln!(
        out,
        "const AGREEMENT: DeviceCurve = DeviceCurve::{};",
        agreement()
    );
    let _ = writeln!(
        out,
        "const STORAGE: StorageKind = StorageKind::{};",
        storage()
    );
    let dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    std::fs::write(dir.join("ta_config.rs"), out)
        .unwrap_or_else(|e| panic!("cannot write ta_config.rs: {e}"));
}

fn main() -> Result<(), Error> {
    write_config();
    crypto();
    let uuid = env("TA_UUID").unwrap_or_else(default_uuid);
    let stack = size_from_env("TA_STACK_SIZE", 48 * 1024);
    let heap = size_from_env("TA_HEAP_SIZE", 256 * 1024);
    // The TA code can read its own UUID with env!("TA_UUID").
    println!("cargo:rustc-env=TA_UUID={uuid}");

    let config = TaConfig::new_default_with_cargo_env(&uuid)?
        .ta_stack_size(stack)
        .ta_data_size(heap)
        .ta_flags(TA_FLAGS);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("user_ta_header.rs"),
        HeaderFileGenerator::new().generate(&config)?,
    )?;
    link(&out)
}

/// Link arguments of `optee_utee_build::build` (dev kit libraries, entry point, PIE, 4 KiB
/// pages, the dynamic list OP-TEE's loader reads), with the dev kit's linker script minus the
/// unwind tables: the TA is built with panic=abort and nothing in it unwinds (OP-TEE prints
/// a TA's abort backtrace from frame pointers), so `.eh_frame` (which the script `KEEP`s) and
/// `.eh_frame_hdr` are discarded — about 55 KB of the signed TA.
fn link(out: &Path) -> Result<(), Error> {
    println!("cargo:rerun-if-env-changed=TA_DEV_KIT_DIR");
    let dev_kit = PathBuf::from(std::env::var("TA_DEV_KIT_DIR")?);
    let template = dev_kit.join("src/ta.ld.S");
    println!("cargo:rerun-if-changed={}", template.display());
    println!("cargo:rerun-if-env-changed=CC");
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH")?.as_str() {
        "aarch64" => "-DARM64=1",
        "arm" => "-DARM32=1",
        other => panic!("the TA builds for aarch64 or arm, not {other}"),
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let pre = std::process::Command::new(cc)
        .args(["-E", "-P", "-x", "c", arch])
        .arg(&template)
        .output()?;
    if !pre.status.success() {
        panic!(
            "preprocessing {} failed: {}",
            template.display(),
            String::from_utf8_lossy(&pre.stderr)
        );
    }
    let script = String::from_utf8(pre.stdout)?;
    // The dev kit's rules for the unwind sections, which become one discard rule.
    const UNWIND: [&str; 3] = [
        "*(.eh_frame_hdr)",
        "*(.eh_frame_entry .eh_frame_entry.*)",
        ".eh_frame : { KEEP(*(.eh_frame)) *(.eh_frame.*) }",
    ];
    const DISCARD: &str = "/DISCARD/ : { *(.interp) }";
    if UNWIND.iter().chain([&DISCARD]).any(|r| !script.contains(r)) {
        panic!(
            "{} no longer has the unwind and discard rules this build.rs rewrites",
            template.display()
        );
    }
    let script = UNWIND
        .iter()
        .fold(script, |s, rule| s.replace(rule, ""))
        .replace(
            DISCARD,
            "/DISCARD/ : { *(.interp) *(.eh_frame_hdr) *(.eh_frame_entry .eh_frame_entry.*) \
             *(.eh_frame) *(.eh_frame.*) }",
        );
    let lds = out.join("ta.lds");
    // Written only when it changes, so that cargo does not relink for nothing.
    if std::fs::read_to_string(&lds).ok().as_deref() != Some(script.as_str()) {
        std::fs::write(&lds, &script)?;
    }
    std::fs::write(
        out.join("dyn_list"),
        "{ __elf_phdr_info; trace_ext_prefix; trace_level; ta_head; };\n",
    )?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-search={}", dev_kit.join("lib").display());
    println!("cargo:rustc-link-lib=static=utee");
    println!("cargo:rustc-link-lib=static=utils");
    for arg in [
        format!("-T{}", lds.display()),
        "-z".into(),
        "max-page-size=0x1000".into(),
        "-z".into(),
        "common-page-size=0x1000".into(),
        // Again after the Rust objects, which need members of these archives too.
        "-Wl,-lutee".into(),
        "-Wl,-lutils".into(),
        "-e__ta_entry".into(),
        "-pie".into(),
        "-Os".into(),
        "-Wl,--sort-section=alignment".into(),
        "-Wl,--dynamic-list=dyn_list".into(),
    ] {
        println!("cargo:rustc-link-arg={arg}");
    }
    Ok(())
}

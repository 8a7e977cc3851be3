//! `suit-tool` end to end through its command line: the contracts of DESIGN.md §8, every
//! rejection category `process` can reach, and exit codes (never a panic).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, Scratch};

/// `suit-tool` with arguments of mixed types (text and paths).
fn tool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    cli::tool(args)
}
use suit_shared::author::{build_envelope, sign_envelope, EncodedManifest};
use suit_shared::cbor::Writer;
use suit_shared::digest::DigestAlg;

const VENDOR: &str = "example.com";
const CLASS: &str = "gateway-rev-b";

fn uuid5(namespace: &uuid::Uuid, name: &str) -> String {
    uuid::Uuid::new_v5(namespace, name.as_bytes()).to_string()
}

fn vendor_id() -> String {
    uuid5(&uuid::Uuid::NAMESPACE_DNS, VENDOR)
}

fn class_id() -> String {
    uuid5(&uuid::Uuid::parse_str(&vendor_id()).unwrap(), CLASS)
}

/// A device, keys, an image and a signed envelope for it.
struct Fixture {
    dir: Scratch,
    key: PathBuf,
    anchor: PathBuf,
    image: PathBuf,
    envelope: PathBuf,
}

impl Fixture {
    fn new(name: &str, alg: &str, sign_alg: &str) -> Self {
        let dir = Scratch::new(name);
        let prefix = dir.path("vendor");
        ok(tool(&[&"keygen", &"--alg", &alg, &"--out", &prefix]));
        let key = dir.path("vendor.priv.pem");
        let anchor = dir.path("vendor.pub.pem");
        let image: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let image = dir.write("firmware.bin", &image);
        let spec = format!(
            "sequence-number = 7\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[text]\ndescription = \"test firmware\"\n\
             [[component]]\nid = [\"fw\"]\nimage = \"firmware.bin\"\nuri = \"https://updates.example.com/fw.bin\"\n"
        );
        let spec = dir.write("spec.toml", spec.as_bytes());
        let unsigned = dir.path("unsigned.suit");
        ok(tool(&[&"create", &"--spec", &spec, &"--out", &unsigned]));
        let envelope = dir.path("signed.suit");
        ok(tool(&[
            &"sign", &"--key", &key, &"--alg", &sign_alg, &unsigned, &"--out", &envelope,
        ]));
        Fixture {
            dir,
            key,
            anchor,
            image,
            envelope,
        }
    }

    fn process(&self, envelope: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, Value) {
        let image = format!("0={}", self.image.display());
        let (v, c) = (vendor_id(), class_id());
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"process",
            &envelope,
            &"--trust-anchor",
            &self.anchor,
            &"--json",
        ];
        // Defaults for the flags a test does not set itself.
        const FLAGS: [&str; 3] = ["--image", "--vendor-id", "--class-id"];
        for (flag, value) in FLAGS.iter().zip([&image, &v, &c]) {
            if !extra.iter().any(|a| a.as_ref() == *flag) {
                args.push(flag);
                args.push(value);
            }
        }
        args.extend_from_slice(extra);
        let out = tool(&args);
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        (code(&out), json)
    }

    /// Asserts that `process` rejects with `category`.
    fn rejects(
        &self,
        envelope: &Path,
        extra: &[&dyn AsRef<std::ffi::OsStr>],
        category: &str,
    ) -> String {
        let (code, json) = self.process(envelope, extra);
        assert_eq!(json["result"], "rejected", "{json}");
        assert_eq!(json["error"]["category"], category, "{json}");
        assert_eq!(code, 1, "{json}");
        json["error"]["message"].as_str().unwrap().to_string()
    }

    /// Signs a raw manifest encoding with the fixture's key.
    fn signed_raw(&self, name: &str, manifest: Vec<u8>) -> PathBuf {
        let envelope = build_envelope(
            &EncodedManifest {
                manifest,
                severed: Vec::new(),
            },
            &[],
            DigestAlg::Sha256,
        );
        let key = suit_host::keys::load_signing_key(&self.key).unwrap();
        let signed = sign_envelope(&envelope, &key, key.default_alg(), None).unwrap();
        self.dir.write(name, &signed)
    }
}

fn uuid_bytes(text: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(text).unwrap().as_bytes().to_vec()
}

/// A one-component manifest with `shared` and `install` sequences given as raw commands.
fn raw_manifest(
    version: u64,
    shared: impl Fn(&mut Writer),
    shared_len: usize,
    install: impl Fn(&mut Writer),
    install_len: usize,
) -> Vec<u8> {
    let mut seq = Writer::new();
    seq.array(shared_len);
    shared(&mut seq);
    let shared = seq.into_bytes();
    let mut common = Writer::new();
    common
        .map(2)
        .u64(2)
        .array(1)
        .array(1)
        .bytes(b"fw")
        .u64(4)
        .bytes(&shared);
    let common = common.into_bytes();
    let mut inst = Writer::new();
    inst.array(install_len);
    install(&mut inst);
    let install = inst.into_bytes();
    let mut m = Writer::new();
    m.map(4)
        .u64(1)
        .u64(version)
        .u64(2)
        .u64(1)
        .u64(3)
        .bytes(&common)
        .u64(20)
        .bytes(&install);
    m.into_bytes()
}

/// The usual compatibility check: override vendor/class, then check both (6 items).
fn compat(w: &mut Writer) {
    w.u64(20)
        .map(2)
        .u64(1)
        .bytes(&uuid_bytes(&vendor_id()))
        .u64(2)
        .bytes(&uuid_bytes(&class_id()));
    w.u64(1).u64(15).u64(2).u64(15);
}

#[test]
fn round_trip_es384_and_esp384() {
    for (name, alg) in [("es384", "ES384"), ("esp384", "ESP384")] {
        let f = Fixture::new(name, "ES384", alg);
        let verified = ok(tool(&[
            &"verify",
            &"--trust-anchor",
            &f.anchor,
            &f.envelope,
        ]));
        assert!(verified.contains(alg), "{verified}");
        let text = ok(tool(&[&"inspect", &f.envelope]));
        assert!(text.contains("sequence number: 7"), "{text}");
        assert!(
            text.contains("https://updates.example.com/fw.bin"),
            "{text}"
        );
        let json: Value =
            serde_json::from_str(&ok(tool(&[&"inspect", &f.envelope, &"--json"]))).unwrap();
        assert_eq!(json["sequence-number"], 7);
        assert_eq!(json["components"][0], "['fw']");
        assert_eq!(json["authentication"]["blocks"][0]["type"], "COSE_Sign1");
        let diag = ok(tool(&[&"inspect", &f.envelope, &"--diag"]));
        assert!(diag.starts_with("107({"), "{diag}");
        let (code, json) = f.process(&f.envelope, &[]);
        assert_eq!(
            (code, &json["result"]),
            (0, &Value::from("accepted")),
            "{json}"
        );
        assert_eq!(json["sequence-number"], 7);
    }
}

#[test]
fn es256_keys_and_a_second_signature() {
    let f = Fixture::new("es256", "ES256", "ES256");
    let second = f.dir.path("second");
    ok(tool(&[&"keygen", &"--alg", &"ES384", &"--out", &second]));
    let twice = f.dir.path("twice.suit");
    ok(tool(&[
        &"sign",
        &"--key",
        &f.dir.path("second.priv.pem"),
        &f.envelope,
        &"--out",
        &twice,
    ]));
    // Either signer alone is enough.
    ok(tool(&[&"verify", &"--trust-anchor", &f.anchor, &twice]));
    ok(tool(&[
        &"verify",
        &"--trust-anchor",
        &f.dir.path("second.pub.pem"),
        &twice,
    ]));
    // ES384 with a P-256 key is refused.
    let out = tool(&[
        &"sign",
        &"--key",
        &f.key,
        &"--alg",
        &"ES384",
        &f.envelope,
        &"--out",
        &twice,
    ]);
    assert_eq!(code(&out), 1);
}

#[test]
fn applicability_digest_size_and_rollback() {
    let f = Fixture::new("checks", "ES384", "ES384");
    let msg = f.rejects(
        &f.envelope,
        &[&"--vendor-id", &"11111111-2222-3333-4444-555555555555"],
        "applicability",
    );
    assert!(msg.contains("vendor identifier mismatch"), "{msg}");
    let msg = f.rejects(
        &f.envelope,
        &[&"--class-id", &"11111111-2222-3333-4444-555555555555"],
        "applicability",
    );
    assert!(msg.contains("class identifier mismatch"), "{msg}");

    let mut tampered = std::fs::read(&f.image).unwrap();
    tampered[1000] ^= 0x01;
    let tampered = f.dir.write("tampered.bin", &tampered);
    let arg = format!("0={}", tampered.display());
    f.rejects(&f.envelope, &[&"--image", &arg], "digest");

    let mut longer = std::fs::read(&f.image).unwrap();
    longer.push(0);
    let longer = f.dir.write("longer.bin", &longer);
    let arg = format!("0={}", longer.display());
    f.rejects(&f.envelope, &[&"--image", &arg], "size");

    let msg = f.rejects(&f.envelope, &[&"--sequence-floor", &"8"], "rollback");
    assert!(msg.contains("below"), "{msg}");
    // The floor itself is acceptable (re-applying the same manifest).
    let (code, _) = f.process(&f.envelope, &[&"--sequence-floor", &"7"]);
    assert_eq!(code, 0);
}

#[test]
fn authentication_failures() {
    let f = Fixture::new("auth", "ES384", "ES384");
    let good = std::fs::read(&f.envelope).unwrap();
    // Flip a bit inside the signature (the COSE_Sign1 ends the authentication wrapper; find
    // the 96-byte signature by its bstr header 0x58 0x60).
    let at = good
        .windows(2)
        .position(|w| w == [0x58, 0x60])
        .expect("signature bstr")
        + 10;
    let mut bad = good.clone();
    bad[at] ^= 0x01;
    let bad = f.dir.write("bad-signature.suit", &bad);
    f.rejects(&bad, &[], "authentication");
    ok(tool(&[
        &"verify",
        &"--trust-anchor",
        &f.anchor,
        &f.envelope,
    ]));
    assert_eq!(
        code(&tool(&[&"verify", &"--trust-anchor", &f.anchor, &bad])),
        1
    );

    // A key that did not sign it.
    let other = f.dir.path("other");
    ok(tool(&[&"keygen", &"--out", &other]));
    let other_pub = f.dir.path("other.pub.pem");
    let out = tool(&[&"verify", &"--trust-anchor", &other_pub, &f.envelope]);
    assert_eq!(code(&out), 1);
    let out = tool(&[
        &"process",
        &f.envelope,
        &"--trust-anchor",
        &other_pub,
        &"--json",
    ]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["category"], "authentication");

    // A manifest changed after signing (the digest no longer matches).
    let mut changed = good.clone();
    let seq_at = changed
        .windows(2)
        .position(|w| w == [0x02, 0x07])
        .expect("sequence number 7");
    changed[seq_at + 1] = 0x09;
    let changed = f.dir.write("changed.suit", &changed);
    let msg = f.rejects(&changed, &[], "authentication");
    assert!(msg.contains("digest"), "{msg}");

    // Unsigned envelope.
    let unsigned = f.dir.path("unsigned.suit");
    f.rejects(&unsigned, &[], "authentication");
}

#[test]
fn malformed_inputs() {
    let f = Fixture::new("malformed", "ES384", "ES384");
    let good = std::fs::read(&f.envelope).unwrap();
    for (name, bytes) in [
        ("empty", Vec::new()),
        ("garbage", b"this is not CBOR at all".to_vec()),
        ("truncated", good[..good.len() - 10].to_vec()),
        ("trailing", [good.clone(), vec![0]].concat()),
        ("other-tag", [vec![0xd8, 0x6c], good[2..].to_vec()].concat()),
    ] {
        let p = f.dir.write(&format!("{name}.suit"), &bytes);
        f.rejects(&p, &[], "malformed");
        assert_eq!(code(&tool(&[&"inspect", &p])), 1, "{name}");
    }
}

#[test]
fn unsupported_version_is_refused() {
    let f = Fixture::new("version", "ES384", "ES384");
    let m = raw_manifest(2, compat, 6, |_| {}, 0);
    let p = f.signed_raw("v2.suit", m);
    let msg = f.rejects(&p, &[], "malformed");
    assert!(msg.contains("unsupported manifest version 2"), "{msg}");
}

#[test]
fn custom_command_in_shared_sequence() {
    let f = Fixture::new("custom", "ES384", "ES384");
    let m = raw_manifest(
        1,
        |w| {
            compat(w);
            w.i64(-300).null();
        },
        8,
        |_| {},
        0,
    );
    let p = f.signed_raw("custom.suit", m);
    let msg = f.rejects(&p, &[], "malformed");
    assert!(
        msg.contains("shared sequence must not contain custom command"),
        "{msg}"
    );
}

#[test]
fn unknown_condition_is_refused() {
    let f = Fixture::new("unknown", "ES384", "ES384");
    let m = raw_manifest(
        1,
        compat,
        6,
        |w| {
            w.u64(200).u64(15);
        },
        2,
    );
    let p = f.signed_raw("unknown.suit", m);
    let msg = f.rejects(&p, &[], "policy");
    assert!(msg.contains("unsupported command 200"), "{msg}");
}

#[test]
fn soft_failure_outside_try_each() {
    let f = Fixture::new("soft", "ES384", "ES384");
    let m = raw_manifest(
        1,
        compat,
        6,
        |w| {
            w.u64(20).map(1).u64(13).bool(true);
        },
        2,
    );
    let p = f.signed_raw("soft.suit", m);
    let msg = f.rejects(&p, &[], "malformed");
    assert!(msg.contains("soft-failure"), "{msg}");
}

#[test]
fn component_index_out_of_range() {
    let f = Fixture::new("index", "ES384", "ES384");
    let m = raw_manifest(
        1,
        compat,
        6,
        |w| {
            w.u64(12).u64(3);
        },
        2,
    );
    let p = f.signed_raw("index.suit", m);
    let msg = f.rejects(&p, &[], "malformed");
    assert!(msg.contains("component index 3 is out of range"), "{msg}");
}

#[test]
fn exit_codes_for_usage_and_io_errors() {
    let f = Fixture::new("exit", "ES384", "ES384");
    // Unknown subcommand, missing argument, missing file.
    assert_eq!(code(&tool(&[&"frobnicate"])), 2);
    assert_eq!(code(&tool(&[&"verify", &f.envelope])), 2);
    assert_eq!(
        code(&tool(&[
            &"verify",
            &"--trust-anchor",
            &f.anchor,
            &f.dir.path("absent.suit")
        ])),
        2
    );
    assert_eq!(
        code(&tool(&[
            &"verify",
            &"--trust-anchor",
            &f.dir.path("absent.pem"),
            &f.envelope
        ])),
        2
    );
    // A fetch without a file to retrieve is an I/O problem of the simulation, not a verdict.
    let out = tool(&[
        &"process",
        &f.envelope,
        &"--trust-anchor",
        &f.anchor,
        &"--vendor-id",
        &vendor_id(),
        &"--class-id",
        &class_id(),
    ]);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--image 0=FILE"));
}

#[test]
fn ab_template_selects_by_slot() {
    let dir = Scratch::new("ab");
    let prefix = dir.path("k");
    ok(tool(&[&"keygen", &"--out", &prefix]));
    dir.write("a.img", &[0xaa; 4096]);
    dir.write("b.img", &[0xbb; 8192]);
    let spec = format!(
        "sequence-number = 1\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\n[[component]]\nid = [\"rootfs\"]\n\
         [[component.slot]]\nslot = 0\nimage = \"a.img\"\nuri = \"http://h/a.img\"\n\
         [[component.slot]]\nslot = 1\nimage = \"b.img\"\nuri = \"http://h/b.img\"\n"
    );
    let spec = dir.write("ab.toml", spec.as_bytes());
    let env = dir.path("ab.suit");
    ok(tool(&[
        &"create",
        &"--spec",
        &spec,
        &"--out",
        &env,
        &"--key",
        &dir.path("k.priv.pem"),
    ]));
    let anchor = dir.path("k.pub.pem");
    let run = |slot: &str, image: &str| {
        let img = format!("0={}", dir.path(image).display());
        let out = tool(&[
            &"process",
            &env,
            &"--trust-anchor",
            &anchor,
            &"--vendor-id",
            &vendor_id(),
            &"--class-id",
            &class_id(),
            &"--slot",
            &slot,
            &"--image",
            &img,
            &"--json",
        ]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(run("0", "a.img")["result"], "accepted");
    assert_eq!(run("1", "b.img")["result"], "accepted");
    assert_eq!(run("1", "a.img")["error"]["category"], "size");
    assert_eq!(run("2", "a.img")["error"]["category"], "applicability");
}

#[test]
fn integrated_payload_and_severed_text() {
    let dir = Scratch::new("integrated");
    let prefix = dir.path("k");
    ok(tool(&[&"keygen", &"--out", &prefix]));
    dir.write("cfg.json", b"{\"setting\": 1}");
    let spec = format!(
        "sequence-number = 3\nvendor = \"{VENDOR}\"\nclass = \"{CLASS}\"\nsever = [\"text\"]\n[text]\ndescription = \"config\"\n\
         [[component]]\nid = [\"config\"]\nimage = \"cfg.json\"\nintegrated = true\n"
    );
    let spec = dir.write("spec.toml", spec.as_bytes());
    let env = dir.path("cfg.suit");
    ok(tool(&[
        &"create",
        &"--spec",
        &spec,
        &"--out",
        &env,
        &"--key",
        &dir.path("k.priv.pem"),
    ]));
    let json: Value = serde_json::from_str(&ok(tool(&[&"inspect", &env, &"--json"]))).unwrap();
    assert_eq!(json["integrated-payloads"][0]["key"], "#cfg.json");
    assert_eq!(json["text"]["severed"], true);
    // No --image needed: the payload travels in the envelope.
    let out = tool(&[
        &"process",
        &env,
        &"--trust-anchor",
        &dir.path("k.pub.pem"),
        &"--vendor-id",
        &vendor_id(),
        &"--class-id",
        &class_id(),
        &"--json",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
}

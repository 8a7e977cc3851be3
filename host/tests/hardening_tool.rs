//! Issue 9 items 1 (tokens), 17, 18, 19 and 20 through `suit-tool`'s command line.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, tool, Scratch};
use suit_shared::cbor::{Key, Reader, Writer};

const VENDOR_ID: &str = "cfbff0d1-9375-5685-968c-48ce8b15ae17"; // UUID5(DNS, "example.com")

fn class_id() -> String {
    let vendor = uuid::Uuid::parse_str(VENDOR_ID).unwrap();
    uuid::Uuid::new_v5(&vendor, b"gw").to_string()
}

/// Keys, a firmware image and a signed envelope made by `create` from `extra` spec lines.
struct Fixture {
    dir: Scratch,
    envelope: PathBuf,
}

impl Fixture {
    fn new(name: &str, sever: &str, component: &str) -> Self {
        let dir = Scratch::new(name);
        ok(tool(&[
            "keygen".as_ref(),
            "--out".as_ref(),
            dir.path("k").as_os_str(),
        ]));
        let image: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
        dir.write("fw.bin", &image);
        let spec = format!(
            "sequence-number = 3\nvendor = \"example.com\"\nclass = \"gw\"\nsever = [{sever}]\n\
             [text]\ndescription = \"firmware\"\n[[component]]\nid = [\"fw\"]\nimage = \"fw.bin\"\n{component}"
        );
        let spec = dir.write("spec.toml", spec.as_bytes());
        let envelope = dir.path("update.suit");
        ok(tool(&[
            "create".as_ref(),
            "--spec".as_ref(),
            spec.as_os_str(),
            "--out".as_ref(),
            envelope.as_os_str(),
            "--key".as_ref(),
            dir.path("k.priv.pem").as_os_str(),
        ]));
        Fixture { dir, envelope }
    }

    /// The envelope with member `key` replaced by `value` (a bstr) or removed (`None`).
    fn edited(&self, name: &str, key: i64, value: Option<&[u8]>) -> PathBuf {
        let bytes = std::fs::read(&self.envelope).unwrap();
        let mut r = Reader::new(&bytes, "test envelope");
        assert_eq!(r.tag().unwrap(), 107);
        let mut entries = r.map().unwrap();
        let mut kept: Vec<(Key<'_>, Vec<u8>)> = Vec::new();
        while entries.next_entry() {
            let k = r.map_key(&mut entries).unwrap();
            let raw = r.raw_item().unwrap().to_vec();
            if k != Key::Int(key) {
                kept.push((k, raw));
            } else if let Some(v) = value {
                let mut w = Writer::new();
                w.bytes(v);
                kept.push((k, w.into_bytes()));
            }
        }
        let mut w = Writer::new();
        w.tag(107).map(kept.len());
        for (k, raw) in kept {
            match k {
                Key::Int(i) => w.i64(i),
                Key::Text(t) => w.str(t),
                Key::Other(o) => w.raw(o),
            };
            w.raw(&raw);
        }
        self.dir.write(name, &w.into_bytes())
    }

    fn verify(&self, envelope: &Path) -> std::process::Output {
        tool(&[
            "verify".as_ref(),
            "--trust-anchor".as_ref(),
            self.dir.path("k.pub.pem").as_os_str(),
            envelope.as_os_str(),
        ])
    }

    fn process(&self, envelope: &Path, extra: &[&str]) -> (i32, Value) {
        let image = format!("0={}", self.dir.path("fw.bin").display());
        let class = class_id();
        let anchor = self.dir.path("k.pub.pem");
        let mut args = vec![
            "process".as_ref(),
            envelope.as_os_str(),
            "--trust-anchor".as_ref(),
            anchor.as_os_str(),
            "--vendor-id".as_ref(),
            VENDOR_ID.as_ref(),
            "--class-id".as_ref(),
            class.as_ref(),
            "--image".as_ref(),
            image.as_ref(),
            "--json".as_ref(),
        ]
        .into_iter()
        .map(|a: &std::ffi::OsStr| a.to_os_string())
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(Into::into));
        let out = tool(&args);
        let json = serde_json::from_slice(&out.stdout).unwrap();
        (code(&out), json)
    }
}

/// Item 18: `verify` checks every severed member present, and says which are stripped.
#[test]
fn verify_checks_every_severed_member() {
    let f = Fixture::new(
        "verify-severed",
        "\"install\", \"text\"",
        "uri = \"https://x/fw.bin\"\n",
    );
    let out = ok(f.verify(&f.envelope));
    assert!(out.contains("severed install: present"), "{out}");
    // A replaced install or text member: authentic signature, but not what was signed.
    for (key, name) in [(20, "install"), (23, "text")] {
        let forged = f.edited(&format!("forged-{name}.suit"), key, Some(&[0x80]));
        let out = f.verify(&forged);
        assert_eq!(
            code(&out),
            1,
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("digest") && err.contains(name), "{err}");
    }
    // A stripped member is legitimate: authentic, and reported absent.
    let stripped = f.edited("stripped.suit", 23, None);
    let out = ok(f.verify(&stripped));
    assert!(out.contains("severed text: absent (stripped)"), "{out}");
}

/// Item 20: processing an envelope whose install was stripped says it is absent, and does
/// not call the envelope malformed.
#[test]
fn stripped_install_is_reported_absent() {
    let f = Fixture::new("stripped", "\"install\"", "uri = \"https://x/fw.bin\"\n");
    let stripped = f.edited("stripped.suit", 20, None);
    let (code, json) = f.process(&stripped, &[]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["result"], "rejected", "{json}");
    assert_ne!(json["error"]["category"], "malformed", "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("absent"), "{message}");
    // The complete envelope is accepted.
    let (code, json) = f.process(&f.envelope, &[]);
    assert_eq!(code, 0, "{json}");
}

/// Item 17: the ciphertext of an encrypted component lives in a sibling component.
#[test]
fn encrypted_component_uses_a_sibling_id() {
    let dir = Scratch::new("sibling-kek");
    let kek = dir.write("fleet.kek", &[7u8; 32]);
    let f = Fixture::new(
        "sibling",
        "",
        &format!(
            "uri = \"https://x/fw.bin.enc\"\n[component.encryption]\nkek = \"{}\"\n",
            kek.display()
        ),
    );
    let json: Value = serde_json::from_str(&ok(tool(&[
        "inspect".as_ref(),
        f.envelope.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(
        json["components"],
        serde_json::json!(["['fw']", "['fw.ciphertext']"]),
        "{json}"
    );
    // The device fetches the ciphertext (image 1) and decrypts it into component 0.
    let cipher = format!("1={}", f.dir.path("fw.bin.enc").display());
    let kek_arg = kek.display().to_string();
    let (code, json) = f.process(&f.envelope, &["--image", &cipher, "--kek", &kek_arg]);
    assert_eq!(code, 0, "{json}");
}

/// Item 1: a token whose COSE header nests deeply is refused before coset decodes it.
#[test]
fn verify_token_refuses_deep_nesting() {
    let dir = Scratch::new("deep-token");
    ok(tool(&[
        "keygen".as_ref(),
        "--out".as_ref(),
        dir.path("device").as_os_str(),
    ]));
    let mut protected = Writer::new();
    protected.map(2).u64(1).i64(-35).u64(100);
    for _ in 0..200 {
        protected.array(1);
    }
    protected.u64(0);
    let mut token = Writer::new();
    token
        .tag(18)
        .array(4)
        .bytes(&protected.into_bytes())
        .map(0)
        .bytes(&[0xa0])
        .bytes(&[0; 96]);
    let token = dir.write("token.cose", &token.into_bytes());
    let out = tool(&[
        "verify-token".as_ref(),
        "--device-key".as_ref(),
        dir.path("device.pub.pem").as_os_str(),
        token.as_os_str(),
    ]);
    assert_eq!(code(&out), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nesting"), "{err}");
}

/// The public SUIT test vectors (`../shared/suit-vectors`, or `SUIT_VECTORS`).
fn vectors() -> PathBuf {
    std::env::var_os("SUIT_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/suit-vectors"))
}

/// Item 19: `inspect` shows an envelope with dependencies; `process` still refuses it.
#[test]
fn inspect_shows_dependencies_process_refuses_them() {
    let envelope = vectors().join("trust-domains/example1_process.suit");
    let out = ok(tool(&["inspect".as_ref(), envelope.as_os_str()]));
    assert!(out.contains("directive-process-dependency"), "{out}");
    assert!(out.contains("dependency manifest"), "{out}");
    let json: Value = serde_json::from_str(&ok(tool(&[
        "inspect".as_ref(),
        envelope.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(json["dependencies"]["components"][0]["index"], 1, "{json}");
    assert!(
        json["dependencies"]["dependency-resolution"]["value"].is_array(),
        "{json}"
    );
    let anchor = vectors().join("keys/draft-es256-p256.pub.pem");
    let out = tool(&[
        "process".as_ref(),
        envelope.as_os_str(),
        "--trust-anchor".as_ref(),
        anchor.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code(&out), 1);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["category"], "policy", "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("dependencies not supported"), "{message}");
}

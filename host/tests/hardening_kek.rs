//! PROVISION takes the fleet KEK sealed to the device's key-agreement key (issue 14; ABI 6):
//! a KEK sealed to another device, an altered one and one in clear are refused and leave the
//! device unprovisioned; a sealed one is opened, and payloads encrypted to the fleet KEK then
//! decrypt. Simulator backend: the real TA core in-process; and the CLI end to end
//! (`suit-tool wrap-kek`, `suit-agent provision --kek-wrapped`, an install encrypted to the KEK).

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

#[path = "support/agent_config.rs"]
mod agent_config;

use std::path::Path;
use std::process::Command;

use agent_config::{agent_ok, run_agent, AgentConfig};
use sim::{approve, expect_rejection, image, vendor_key, Device};
use suit_host::tee::simulator::SimulatorSession;
use suit_host::tee::Tee;
use suit_host::tool::crypt::{seal_kek, RecipientPublic};
use suit_shared::abi::{PayloadSource, Provisioning, SealedKek};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
use suit_shared::encryption::{AesKey, EncryptionInfo};
use suit_shared::Category;

const FLEET_KEK: [u8; 32] = [0x5a; 32];

fn agreement_key(s: &mut SimulatorSession) -> RecipientPublic {
    let info = s.get_info().unwrap();
    RecipientPublic::P384(p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap())
}

fn sealed_for(s: &mut SimulatorSession, kek: &[u8]) -> Vec<u8> {
    seal_kek(&agreement_key(s), &AesKey::from_slice(kek).unwrap()).unwrap()
}

fn provision(sealed: Vec<u8>) -> Provisioning {
    Provisioning {
        kek: Some(SealedKek {
            sealed,
            kid: b"fleet".to_vec(),
        }),
        ..Provisioning::default()
    }
}

/// Nothing was provisioned: no KEK, not locked, the state as it was.
fn unprovisioned(s: &mut SimulatorSession) {
    let info = s.get_info().unwrap();
    assert!(!info.provisioned && !info.kek_present, "{info:?}");
}

/// A signed envelope whose one component "app" is encrypted to the fleet KEK (kid "fleet"),
/// made with suit-tool's spec templates; returns it with the ciphertext.
fn fleet_encrypted(dir: &Path, app: &[u8]) -> (Vec<u8>, Vec<u8>) {
    std::fs::write(dir.join("fleet.kek"), FLEET_KEK).unwrap();
    std::fs::write(dir.join("app.bin"), app).unwrap();
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        "sequence-number = 3\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"app\"]\nimage = \"app.bin\"\nuri = \"http://x/app.bin.enc\"\n\
         [component.encryption]\nkek = \"fleet.kek\"\nkid = \"fleet\"\n",
    )
    .unwrap();
    let prepared = suit_host::tool::spec::Spec::load(&spec)
        .unwrap()
        .prepare(dir)
        .unwrap();
    let encoded = encode_manifest(&prepared.manifest(), prepared.digest_alg());
    let key = vendor_key();
    let envelope = sign_envelope(
        &build_envelope(&encoded, &[], prepared.digest_alg()),
        &key,
        key.default_alg(),
        None,
    )
    .unwrap();
    (envelope, std::fs::read(dir.join("app.bin.enc")).unwrap())
}

#[test]
fn a_sealed_kek_is_opened_and_fleet_payloads_then_decrypt() {
    let dev = Device::new();
    let mut s = dev.session();
    let dir = tempfile::tempdir().unwrap();
    let app = image(9000, 41);
    let (envelope, ciphertext) = fleet_encrypted(dir.path(), &app);
    // Without the KEK the TA has no key for the payload: refused when planning.
    expect_rejection(s.load_manifest(&envelope, 0), Category::Decryption, "");

    let sealed = sealed_for(&mut s, &FLEET_KEK);
    s.provision(&provision(sealed)).unwrap();
    let info = s.get_info().unwrap();
    assert!(info.provisioned && info.kek_present);

    let plan = s.load_manifest(&envelope, 0).unwrap();
    let item = plan.items[0].clone();
    assert_eq!(
        item.source,
        PayloadSource::Uri("http://x/app.bin.enc".into())
    );
    let approval = approve(&mut s, item.index, &ciphertext, 4096);
    let mut out = Vec::new();
    s.decrypt_stream(
        item.index,
        &approval.token,
        &mut ciphertext.as_slice(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, app);
}

#[test]
fn a_kek_sealed_to_another_device_is_refused() {
    let (ours, theirs) = (Device::new(), Device::new());
    let mut s = ours.session();
    let for_them = sealed_for(&mut theirs.session(), &FLEET_KEK);
    expect_rejection(s.provision(&provision(for_them)), Category::Decryption, "");
    unprovisioned(&mut s);
    // The refusal locked nothing: the KEK sealed to this device is accepted afterwards.
    let for_us = sealed_for(&mut s, &FLEET_KEK);
    s.provision(&provision(for_us)).unwrap();
    assert!(s.get_info().unwrap().kek_present);
}

#[test]
fn an_altered_sealed_kek_is_refused() {
    let dev = Device::new();
    let mut s = dev.session();
    let sealed = sealed_for(&mut s, &FLEET_KEK);
    let (_, ciphertext) = EncryptionInfo::decode_attached(&sealed).unwrap();
    let at = ciphertext.as_ptr() as usize - sealed.as_ptr() as usize;
    let len = ciphertext.len();
    assert_eq!(len, FLEET_KEK.len() + 16, "the KEK and the GCM tag");
    // A byte of the encrypted KEK, of its tag, of the wrapped content key (the last bytes).
    for (i, what) in [
        (at, "tag"),
        (at + len - 1, "tag"),
        (sealed.len() - 1, "unwrap"),
    ] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        expect_rejection(s.provision(&provision(bad)), Category::Decryption, what);
        unprovisioned(&mut s);
    }
    // Cut short, or with a byte added: not a COSE_Encrypt any more.
    for bad in [
        sealed[..sealed.len() - 1].to_vec(),
        [sealed.as_slice(), &[0]].concat(),
    ] {
        expect_rejection(s.provision(&provision(bad)), Category::Malformed, "");
        unprovisioned(&mut s);
    }
    s.provision(&provision(sealed)).unwrap();
}

#[test]
fn a_kek_in_clear_is_refused() {
    let dev = Device::new();
    let mut s = dev.session();
    for clear in [vec![0x5a; 32], vec![0x16; 16]] {
        expect_rejection(s.provision(&provision(clear)), Category::Policy, "in clear");
        unprovisioned(&mut s);
    }
}

#[test]
fn a_sealed_secret_that_is_not_a_kek_is_refused() {
    let dev = Device::new();
    let mut s = dev.session();
    // 24 bytes (an AES-192 key): sealed correctly, but no key-wrap KEK.
    let device = agreement_key(&mut s);
    let RecipientPublic::P384(key) = device else {
        unreachable!("the TA's agreement key is P-384")
    };
    let to = suit_shared::encryption::RecipientPublicKey::P384 {
        key: &key,
        wrap: suit_shared::encryption::AesKwAlg::A256Kw,
    };
    let sealed = suit_shared::encryption::Encryptor::seal(
        suit_shared::encryption::ContentAlg::A256Gcm,
        &to,
        None,
        &[7; 24],
        &mut suit_host::tool::crypt::OsRng,
    )
    .unwrap();
    expect_rejection(s.provision(&provision(sealed)), Category::Malformed, "KEK");
    unprovisioned(&mut s);
}

#[test]
fn a_kek_sealed_with_aes_ctr_is_refused() {
    use suit_shared::encryption::{AesKwAlg, ContentAlg, Encryptor, RecipientPublicKey};
    let dev = Device::new();
    let mut s = dev.session();
    let RecipientPublic::P384(key) = agreement_key(&mut s) else {
        unreachable!("the TA's agreement key is P-384")
    };
    let to = RecipientPublicKey::P384 {
        key: &key,
        wrap: AesKwAlg::A128Kw,
    };
    // Encryptor::seal makes AES-GCM only; an AES-CTR one by hand: the detached form with the
    // ciphertext put where its nil is (after the tag, the array head, the empty protected
    // header and the unprotected {alg, 16-byte IV}).
    let (mut encryptor, info) = Encryptor::for_recipient(
        ContentAlg::A128Ctr,
        &to,
        None,
        &mut suit_host::tool::crypt::OsRng,
    )
    .unwrap();
    let mut ciphertext = vec![0u8; FLEET_KEK.len()];
    encryptor.update(&FLEET_KEK, &mut ciphertext).unwrap();
    // d8 60 | 84 | 40 | a2 01 39 ff fd 05 50 <IV>
    let nil = 2 + 1 + 1 + (1 + 1 + 3 + 1 + 1 + 16);
    assert_eq!(info[nil], 0xf6);
    let mut sealed = info[..nil].to_vec();
    sealed.extend_from_slice(&[0x58, ciphertext.len() as u8]);
    sealed.extend_from_slice(&ciphertext);
    sealed.extend_from_slice(&info[nil + 1..]);
    assert!(EncryptionInfo::decode_attached(&sealed).is_ok());
    expect_rejection(
        s.provision(&provision(sealed)),
        Category::Decryption,
        "needs AES-GCM",
    );
    unprovisioned(&mut s);
}

fn tool(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "suit-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn wrap_kek_and_agent_provision_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("slot-a.img"), vec![0u8; 16384]).unwrap();
    let mut config = AgentConfig::new(d);
    // suit-tool encrypts without A/B slots.
    config.component_slots = false;
    let config = config.write();

    // The device's key-agreement key, as the factory reads it.
    let info: serde_json::Value =
        serde_json::from_str(&agent_ok(&config, &["info", "--json"])).unwrap();
    let pem = info["device-public-key-pem"].as_str().unwrap();
    std::fs::write(d.join("device.pub.pem"), pem).unwrap();
    std::fs::write(d.join("fleet.kek"), FLEET_KEK).unwrap();
    let out = tool(&[
        "wrap-kek".as_ref(),
        "--device-key".as_ref(),
        d.join("device.pub.pem").as_os_str(),
        "--kek".as_ref(),
        d.join("fleet.kek").as_os_str(),
        "--out".as_ref(),
        d.join("kek.cose").as_os_str(),
    ]);
    assert!(out.contains("ECDH-ES+A256KW, A256GCM"), "{out}");
    let sealed = std::fs::read(d.join("kek.cose")).unwrap();
    assert!(
        !sealed.windows(32).any(|w| w == FLEET_KEK),
        "no KEK in clear"
    );

    // The old form is gone from the CLI: a KEK file is not an option any more.
    let old = run_agent(
        &config,
        &["provision", "--kek", d.join("fleet.kek").to_str().unwrap()],
    );
    assert_eq!(old.status.code(), Some(2));
    let out = agent_ok(
        &config,
        &[
            "provision",
            "--kek-wrapped",
            d.join("kek.cose").to_str().unwrap(),
            "--kid",
            "fleet",
        ],
    );
    assert!(out.contains("provisioned"), "{out}");
    let info: serde_json::Value =
        serde_json::from_str(&agent_ok(&config, &["info", "--json"])).unwrap();
    assert_eq!(info["kek-present"], true, "{info}");

    // A payload encrypted to the fleet KEK installs.
    let app = image(12_000, 42);
    std::fs::write(d.join("rootfs.bin"), &app).unwrap();
    std::fs::write(
        d.join("fw.toml"),
        "sequence-number = 4\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"rootfs\"]\nimage = \"rootfs.bin\"\nintegrated = true\n\
         [component.encryption]\nkek = \"fleet.kek\"\nkid = \"fleet\"\n",
    )
    .unwrap();
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys/dev-vendor-es384.priv.pem");
    tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        d.join("fw.toml").as_os_str(),
        "--out".as_ref(),
        d.join("fw.suit").as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ]);
    let out = agent_ok(&config, &["install", d.join("fw.suit").to_str().unwrap()]);
    assert!(out.contains("installed sequence 4"), "{out}");
    let slot_b = std::fs::read(d.join("slot-b.img")).unwrap();
    assert_eq!(&slot_b[..app.len()], &app[..]);
}

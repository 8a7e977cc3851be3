//! draft-ietf-suit-mti's EdDSA profiles through the TA core (simulator backend): a TA whose
//! key-agreement key is X25519 (`SimulatorConfig::agreement`, like a TA built with
//! `TA_AGREEMENT=x25519`) installs envelopes that suit-tool made for it — Ed25519 signature,
//! ECDH-ES+A128KW with X25519, A128GCM or A128CTR — and takes a fleet KEK sealed to its X25519
//! key; a P-384 device has no key for such a payload.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::path::Path;
use std::process::Command;

use sim::{approve, expect_rejection, image, Device};
use suit_host::tee::simulator::{DeviceCurve, SimulatorSession};
use suit_host::tee::Tee;
use suit_host::tool::crypt::{seal_kek, RecipientPublic};
use suit_shared::abi::{Provisioning, SealedKek};
use suit_shared::encryption::AesKey;
use suit_shared::Category;

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

/// A device trusting the Ed25519 key `vendor.pub.pem` in `dir`, its agreement key on `curve`.
fn device(dir: &Path, curve: DeviceCurve) -> Device {
    let anchor = suit_host::keys::load_trust_anchor(&dir.join("vendor.pub.pem")).unwrap();
    Device::with(|c| {
        c.trust_anchors = vec![anchor];
        c.agreement = curve;
    })
}

/// The device's key-agreement key as suit-tool reads it (SPKI PEM), written to `dir`.
fn write_device_key(s: &mut SimulatorSession, dir: &Path) -> Vec<u8> {
    let key = s.get_info().unwrap().device_public_key;
    let x25519: [u8; 32] = key.as_slice().try_into().expect("an X25519 agreement key");
    std::fs::write(
        dir.join("device.pub.pem"),
        suit_host::keys::x25519_public_pem(&x25519).unwrap(),
    )
    .unwrap();
    key
}

/// An envelope for component "app" encrypted to `device.pub.pem` with `content`, signed by
/// the Ed25519 key `vendor.priv.pem`; returns it with the ciphertext.
fn envelope(dir: &Path, app: &[u8], content: &str) -> (Vec<u8>, Vec<u8>) {
    std::fs::write(dir.join("app.bin"), app).unwrap();
    let spec = dir.join(format!("{content}.toml"));
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 5\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
             [[component]]\nid = [\"app\"]\nimage = \"app.bin\"\nuri = \"http://x/app.enc\"\n\
             [component.encryption]\nrecipient = \"device.pub.pem\"\ncontent-alg = \"{content}\"\n\
             ciphertext = \"{content}.enc\"\n"
        ),
    )
    .unwrap();
    let (unsigned, signed) = (dir.join("unsigned.suit"), dir.join("signed.suit"));
    tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        unsigned.as_os_str(),
    ]);
    tool(&[
        "sign".as_ref(),
        "--key".as_ref(),
        dir.join("vendor.priv.pem").as_os_str(),
        unsigned.as_os_str(),
        "--out".as_ref(),
        signed.as_os_str(),
    ]);
    (
        std::fs::read(&signed).unwrap(),
        std::fs::read(dir.join(format!("{content}.enc"))).unwrap(),
    )
}

fn keygen(dir: &Path) {
    tool(&[
        "keygen".as_ref(),
        "--alg".as_ref(),
        "Ed25519".as_ref(),
        "--out".as_ref(),
        dir.join("vendor").as_os_str(),
    ]);
}

#[test]
fn eddsa_x25519_profiles_round_trip_through_suit_tool_and_the_ta() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d);
    for content in ["A128GCM", "A128CTR"] {
        let dev = device(d, DeviceCurve::X25519);
        let mut s = dev.session();
        assert_eq!(write_device_key(&mut s, d).len(), 32);
        let app = image(30_000, 51);
        let (env, ciphertext) = envelope(d, &app, content);
        let info = tool(&["inspect".as_ref(), d.join("signed.suit").as_os_str()]);
        assert!(info.contains("ECDH-ES+A128KW (X25519)"), "{info}");
        let plan = s.load_manifest(&env, 0).unwrap();
        let item = plan.items[0].clone();
        let approval = approve(&mut s, item.index, &ciphertext, 4096);
        assert_eq!(approval.size, app.len() as u64);
        let mut out = Vec::new();
        s.decrypt_stream(
            item.index,
            &approval.token,
            &mut ciphertext.as_slice(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, app, "{content}");
        s.commit(&[approval.token]).unwrap();
    }
}

#[test]
fn a_p384_device_has_no_key_for_an_x25519_payload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d);
    // Encrypted to an X25519 device; offered to a P-384 one.
    write_device_key(&mut device(d, DeviceCurve::X25519).session(), d);
    let (env, _) = envelope(d, &image(1000, 52), "A128GCM");
    let p384 = device(d, DeviceCurve::P384);
    expect_rejection(
        p384.session().load_manifest(&env, 0),
        Category::Decryption,
        "needs an X25519 ECDH key",
    );
    // And another X25519 device cannot unwrap it either.
    expect_rejection(
        device(d, DeviceCurve::X25519)
            .session()
            .load_manifest(&env, 0),
        Category::Decryption,
        "",
    );
}

#[test]
fn a_fleet_kek_is_sealed_to_an_x25519_device() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let dev = device(dir.path(), DeviceCurve::X25519);
    let mut s = dev.session();
    let key: [u8; 32] = write_device_key(&mut s, dir.path()).try_into().unwrap();
    let sealed = seal_kek(
        &RecipientPublic::X25519(key),
        &AesKey::from_slice(&[0x33; 16]).unwrap(),
    )
    .unwrap();
    s.provision(&Provisioning {
        kek: Some(SealedKek {
            sealed,
            kid: Vec::new(),
        }),
        ..Provisioning::default()
    })
    .unwrap();
    assert!(s.get_info().unwrap().kek_present);
}

/// A stored X25519 agreement key survives a TA restart; the signing key stays P-384.
#[test]
fn the_x25519_agreement_key_is_kept_across_restarts() {
    let mut dev = Device::with(|c| c.agreement = DeviceCurve::X25519);
    let before = dev.session().get_info().unwrap();
    assert_eq!(before.device_public_key.len(), 32);
    assert_eq!(before.signing_public_key.len(), 97, "signing stays P-384");
    dev.restart();
    let after = dev.session().get_info().unwrap();
    assert_eq!(after.device_public_key, before.device_public_key);
}

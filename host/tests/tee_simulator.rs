//! Every TA command through the simulator backend, in order and out of order: the real TA
//! core in-process, envelopes signed with the development vendor key.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use sim::{
    approve, class, expect_rejection, feed, manifest, rejected, sign, vendor, vendor_key, Device,
};
use std::path::Path;

use suit_host::tee::Tee;
use suit_host::tool::spec::class_uuid;
use suit_shared::abi::{
    self, CommandId, InstallState, LastOutcome, PayloadSource, Provisioning, Request, StorageKind,
};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
use suit_shared::command::{Command, Condition, Directive, IndexSelection, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::encryption::{AesKey, AesKwAlg, ContentAlg, Encryptor, RecipientPublicKey};
use suit_shared::error::Uuid;
use suit_shared::params::{Parameter, VendorId};
use suit_shared::token::Token;
use suit_shared::Category;
use suit_ta_core::Param;

fn rp() -> ReportingPolicy {
    ReportingPolicy(15)
}

/// One component of a test manifest.
struct Comp {
    id: &'static str,
    image: Vec<u8>,
    /// Encryption info when the payload is encrypted (fetched ciphertext, decrypted on copy).
    encryption_info: Option<Vec<u8>>,
}

/// A signed envelope: vendor/class checks in the shared sequence; per component a fetch from
/// `http://example.com/<id>` and an image-match. Encrypted components are fetched into a
/// staging component and decrypted by a copy (draft-ietf-suit-firmware-encryption).
fn envelope(seq: u64, class_id: Uuid, comps: &[Comp]) -> Vec<u8> {
    let mut ids = Vec::new();
    for c in comps {
        ids.push(ComponentId::new([c.id.as_bytes()]));
    }
    let staging: Vec<&'static str> = comps
        .iter()
        .filter(|c| c.encryption_info.is_some())
        .map(|_| "staging")
        .collect();
    for s in &staging {
        ids.push(ComponentId::new([s.as_bytes()]));
    }
    let n = ids.len();
    let digests: Vec<_> = comps
        .iter()
        .map(|c| DigestAlg::Sha256.digest(&c.image))
        .collect();
    let uris: Vec<String> = comps
        .iter()
        .map(|c| format!("http://example.com/{}", c.id))
        .collect();
    let multi = n > 1;
    let select = |i: usize| Command::SetComponentIndex(IndexSelection::One(i));
    let mut shared = Vec::new();
    if multi {
        shared.push(Command::SetComponentIndex(IndexSelection::All));
    }
    shared.push(Command::OverrideParameters(vec![
        Parameter::VendorId(VendorId::Uuid(vendor())),
        Parameter::ClassId(class_id),
    ]));
    shared.push(Command::Condition(Condition::VendorId, rp()));
    shared.push(Command::Condition(Condition::ClassId, rp()));
    let mut install = Vec::new();
    let mut staging_index = comps.len();
    for (i, c) in comps.iter().enumerate() {
        let digest = Parameter::ImageDigest(SuitDigest {
            alg: DigestAlg::Sha256,
            bytes: digests[i].as_bytes(),
        });
        let size = Parameter::ImageSize(c.image.len() as u64);
        match &c.encryption_info {
            None => {
                if multi {
                    install.push(select(i));
                }
                install.push(Command::OverrideParameters(vec![
                    Parameter::Uri(&uris[i]),
                    digest,
                    size,
                ]));
                install.push(Command::Directive(Directive::Fetch, rp()));
                install.push(Command::Condition(Condition::ImageMatch, rp()));
            }
            Some(info) => {
                install.push(select(staging_index));
                install.push(Command::OverrideParameters(vec![Parameter::Uri(&uris[i])]));
                install.push(Command::Directive(Directive::Fetch, rp()));
                install.push(select(i));
                install.push(Command::OverrideParameters(vec![
                    Parameter::SourceComponent(staging_index as u64),
                    Parameter::EncryptionInfo(info),
                    digest,
                    size,
                ]));
                install.push(Command::Directive(Directive::Copy, rp()));
                install.push(Command::Condition(Condition::ImageMatch, rp()));
                staging_index += 1;
            }
        }
    }
    let manifest = manifest(seq, ids, shared, install);
    sign(&manifest, &vendor_key())
}

fn plain(id: &'static str, image: &[u8]) -> Comp {
    Comp {
        id,
        image: image.to_vec(),
        encryption_info: None,
    }
}

fn image(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

struct TestRng(u64);

impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.try_next_u64().map(|v| v as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        // splitmix64: deterministic test randomness.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

/// Encrypts `plaintext` for `recipient`: (ciphertext with tag, encryption info).
fn encrypt(plaintext: &[u8], recipient: &RecipientPublicKey<'_>) -> (Vec<u8>, Vec<u8>) {
    let (mut enc, info) =
        Encryptor::for_recipient(ContentAlg::A256Gcm, recipient, None, &mut TestRng(7)).unwrap();
    let mut out = vec![0u8; plaintext.len()];
    enc.update(plaintext, &mut out).unwrap();
    out.extend_from_slice(&enc.finalize());
    (out, info)
}

fn device_public_key(tee: &mut dyn Tee) -> p384::PublicKey {
    let info = tee.get_info().unwrap();
    p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap()
}

/// The device's signing key (tokens and reports).
fn signing_public_key(tee: &mut dyn Tee) -> p384::PublicKey {
    let info = tee.get_info().unwrap();
    p384::PublicKey::from_sec1_bytes(&info.signing_public_key).unwrap()
}

/// Decrypts `ciphertext` in chunks of `chunk` through DECRYPT_FOR_INSTALL.
fn decrypt(
    tee: &mut dyn Tee,
    index: u32,
    token: &[u8],
    ciphertext: &[u8],
    chunk: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let n = ciphertext.chunks(chunk).count();
    for (i, c) in ciphertext.chunks(chunk).enumerate() {
        out.extend(
            tee.decrypt_for_install(index, token, (i * chunk) as u64, c, i + 1 == n)
                .unwrap(),
        );
    }
    out
}

/// LOAD_MANIFEST, approve every plain component, COMMIT; returns the tokens.
fn install_plain(tee: &mut dyn Tee, env: &[u8], slot: u64, images: &[&[u8]]) -> Vec<Vec<u8>> {
    let plan = tee.load_manifest(env, slot).unwrap();
    let mut tokens = Vec::new();
    for (item, img) in plan.items.iter().zip(images) {
        tokens.push(approve(tee, item.index, img, 1000).token);
    }
    tee.commit(&tokens).unwrap();
    tokens
}

fn confirm_all(tee: &mut dyn Tee, images: &[&[u8]]) -> Vec<(ComponentId, u64)> {
    for (i, img) in images.iter().enumerate() {
        let mut slot = img.to_vec();
        slot.extend_from_slice(&[0xff; 5000]); // a slot device is larger than its image
        tee.confirm_stream(i as u32, &mut slot.as_slice(), img.len() as u64)
            .unwrap();
    }
    tee.confirm().unwrap()
}

#[test]
fn get_info_reports_identity_key_and_storage() {
    let mut dev = Device::new();
    let mut s = dev.session();
    let info = s.get_info().unwrap();
    assert_eq!(info.abi_version, abi::ABI_VERSION);
    assert_eq!(info.storage, StorageKind::Simulator);
    assert_eq!(info.vendor_id, vendor());
    assert_eq!(info.class_id, class());
    assert_eq!(info.device_public_key.len(), 97);
    assert_eq!(info.install, InstallState::Idle);
    assert!(info.algorithms.signature.contains(&-35));
    assert!(info.algorithms.content_encryption.contains(&3));
    assert_eq!(info.max_chunk, 4096);
    drop(s);
    // The device key is generated once and kept.
    dev.restart();
    let again = dev.session().get_info().unwrap();
    assert_eq!(again.device_public_key, info.device_public_key);
}

#[test]
fn full_update_confirm_and_replay() {
    let mut dev = Device::new();
    let fw = image(10_000, 1);
    let env = envelope(5, class(), &[plain("rootfs", &fw)]);
    let mut s = dev.session();
    let key = signing_public_key(&mut s);
    let plan = s.load_manifest(&env, 1).unwrap();
    assert_eq!(plan.sequence_number, 5);
    assert_eq!(plan.items.len(), 1);
    let item = &plan.items[0];
    assert_eq!(item.component_id, ComponentId::new([b"rootfs"]));
    assert_eq!(item.slot, 1);
    assert_eq!(
        item.source,
        PayloadSource::Uri("http://example.com/rootfs".into())
    );
    assert_eq!(item.size, Some(fw.len() as u64));
    assert_eq!(item.digest, Some(DigestAlg::Sha256.digest(&fw)));
    assert!(item.encryption_info.is_none());

    let approval = approve(&mut s, item.index, &fw, 4096);
    let verifying = p384::ecdsa::VerifyingKey::from(&key);
    let token = Token::verify(&approval.token, verifying.to_sec1_point(false).as_bytes()).unwrap();
    assert_eq!(token.claims.sequence_number, 5);
    assert_eq!(token.claims.slot, 1);
    assert_eq!(token.claims.image_size, fw.len() as u64);
    assert_eq!(token.claims.image_digest, DigestAlg::Sha256.digest(&fw));
    assert_eq!(token.claims.manifest_digest, plan.manifest_digest);

    let pending = s.commit(std::slice::from_ref(&approval.token)).unwrap();
    assert_eq!(pending.sequence_number, 5);
    assert_eq!(pending.slot, 1);
    // COMMIT twice
    expect_rejection(
        s.commit(&[approval.token]),
        Category::Policy,
        "already committed",
    );
    // CONFIRM in the committing session
    expect_rejection(s.confirm(), Category::Policy, "trial boot");
    drop(s);

    // Trial boot: a new TA instance (reboot), a new session.
    dev.restart();
    let mut s = dev.session();
    let info = s.get_info().unwrap();
    assert!(matches!(info.install, InstallState::Trial(ref p) if p.sequence_number == 5));
    assert_eq!(info.floors, vec![]);
    let floors = confirm_all(&mut s, &[&fw]);
    assert_eq!(floors, vec![(ComponentId::new([b"rootfs"]), 5)]);
    let info = s.get_info().unwrap();
    assert_eq!(info.install, InstallState::Idle);
    assert_eq!(info.last_outcome, LastOutcome::Confirmed);
    // CONFIRM without trial
    expect_rejection(s.confirm(), Category::Policy, "no install is pending");

    // Replay of an older manifest after CONFIRM
    let old = envelope(4, class(), &[plain("rootfs", &fw)]);
    expect_rejection(
        s.load_manifest(&old, 0),
        Category::Rollback,
        "below the device's floor 5",
    );
    // The same sequence number re-applies (§6.3.1).
    s.load_manifest(&env, 0).unwrap();
}

#[test]
fn rollback_before_confirm_keeps_the_floor() {
    let dev = Device::new();
    let fw = image(3000, 2);
    let mut s = dev.session();
    install_plain(
        &mut s,
        &envelope(3, class(), &[plain("rootfs", &fw)]),
        1,
        &[&fw],
    );
    confirm_after_reboot(&dev, &fw);
    let fw2 = image(3000, 3);
    let mut s = dev.session();
    install_plain(
        &mut s,
        &envelope(7, class(), &[plain("rootfs", &fw2)]),
        0,
        &[&fw2],
    );
    drop(s);
    let mut s = dev.session();
    // A pending install blocks new updates.
    expect_rejection(
        s.load_manifest(&envelope(8, class(), &[plain("rootfs", &fw2)]), 1),
        Category::Policy,
        "is pending",
    );
    s.rollback().unwrap();
    s.rollback().unwrap(); // idempotent
    let info = s.get_info().unwrap();
    assert_eq!(info.install, InstallState::Idle);
    assert_eq!(info.last_outcome, LastOutcome::RolledBack);
    assert_eq!(info.floors, vec![(ComponentId::new([b"rootfs"]), 3)]);
    expect_rejection(s.confirm(), Category::Policy, "no install is pending");
    // The rolled-back manifest may be tried again; an older one may not.
    s.load_manifest(&envelope(7, class(), &[plain("rootfs", &fw2)]), 0)
        .unwrap();
    s.abort().unwrap();
    expect_rejection(
        s.load_manifest(&envelope(2, class(), &[plain("rootfs", &fw2)]), 0),
        Category::Rollback,
        "below",
    );
}

fn confirm_after_reboot(dev: &Device, fw: &[u8]) {
    let mut s = dev.session();
    confirm_all(&mut s, &[fw]);
}

#[test]
fn commands_out_of_order() {
    let dev = Device::new();
    let fw = image(100, 4);
    let mut s = dev.session();
    expect_rejection(
        s.payload_final(0),
        Category::Policy,
        "no manifest is loaded",
    );
    expect_rejection(
        s.payload_update(0, 0, b"x"),
        Category::Policy,
        "LOAD_MANIFEST first",
    );
    expect_rejection(
        s.decrypt_for_install(0, b"t", 0, b"x", true),
        Category::Policy,
        "no manifest",
    );
    expect_rejection(s.commit(&[]), Category::Policy, "no manifest");
    expect_rejection(
        s.confirm_update(0, 0, b"x"),
        Category::Policy,
        "no install is pending",
    );
    s.abort().unwrap();
    s.rollback().unwrap();

    let env = envelope(1, class(), &[plain("rootfs", &fw)]);
    let plan = s.load_manifest(&env, 0).unwrap();
    expect_rejection(s.load_manifest(&env, 0), Category::Policy, "ABORT it first");
    expect_rejection(
        s.payload_update(9, 0, b"x"),
        Category::Policy,
        "not in the install plan",
    );
    // COMMIT before approval
    expect_rejection(s.commit(&[vec![]]), Category::Policy, "not approved");
    // DECRYPT_FOR_INSTALL on a plain component / without approval
    expect_rejection(
        s.decrypt_for_install(plan.items[0].index, b"t", 0, b"x", true),
        Category::Policy,
        "not encrypted",
    );
    let a = approve(&mut s, plan.items[0].index, &fw, 64);
    expect_rejection(
        s.payload_update(plan.items[0].index, 0, b"more"),
        Category::Policy,
        "already approved",
    );
    expect_rejection(
        s.commit(&[]),
        Category::Authentication,
        "one token per plan item",
    );
    s.commit(&[a.token]).unwrap();
    expect_rejection(s.payload_final(0), Category::Policy, "already committed");
}

#[test]
fn payload_checks_digest_size_and_restart() {
    let dev = Device::new();
    let fw = image(5000, 5);
    let env = envelope(1, class(), &[plain("rootfs", &fw)]);
    let mut s = dev.session();
    s.load_manifest(&env, 0).unwrap();
    // Wrong content of the right size
    let mut bad = fw.clone();
    bad[100] ^= 1;
    feed(&mut s, 0, &bad, 4096);
    expect_rejection(
        s.payload_final(0),
        Category::Digest,
        "image digest mismatch",
    );
    // Too long: refused while streaming
    let long = image(5001, 5);
    expect_rejection(
        s.payload_update(0, 0, &long[..4096])
            .and_then(|_| s.payload_update(0, 4096, &long[4096..])),
        Category::Size,
        "exceeds",
    );
    // Too short
    s.payload_update(0, 0, &fw[..10]).unwrap();
    expect_rejection(s.payload_final(0), Category::Size, "size mismatch");
    // Offsets: a lost or repeated chunk is refused, offset 0 restarts the component.
    s.payload_update(0, 0, &fw[..100]).unwrap();
    expect_rejection(
        s.payload_update(0, 50, &fw[50..200]),
        Category::Policy,
        "resume at offset 100",
    );
    expect_rejection(
        s.payload_update(0, 300, &fw[300..400]),
        Category::Policy,
        "resume at offset 100",
    );
    s.payload_update(0, 100, &fw[100..200]).unwrap();
    // After failures the component streams again from the start.
    approve(&mut s, 0, &fw, 4096);
}

#[test]
fn rejected_manifests_change_nothing() {
    let dev = Device::new();
    let fw = image(100, 6);
    let mut s = dev.session();
    let before = s.get_info().unwrap();
    let env = envelope(1, class(), &[plain("rootfs", &fw)]);
    // Tampered envelope (a byte of the manifest)
    let mut tampered = env.clone();
    let pos = tampered.len() - 20;
    tampered[pos] ^= 0x01;
    let (c, m) = rejected(s.load_manifest(&tampered, 0).unwrap_err());
    assert!(
        matches!(c, Category::Authentication | Category::Malformed),
        "{c}: {m}"
    );
    // Another class
    let other = envelope(
        1,
        class_uuid(vendor(), "another-board"),
        &[plain("rootfs", &fw)],
    );
    expect_rejection(
        s.load_manifest(&other, 0),
        Category::Applicability,
        "class identifier mismatch",
    );
    // Garbage
    expect_rejection(
        s.load_manifest(b"\xa0", 0),
        Category::Malformed,
        "authentication-wrapper",
    );
    assert_eq!(s.get_info().unwrap(), before);
    // Unsigned envelope
    let manifest_only = {
        let mut e = env.clone();
        e.truncate(10);
        e
    };
    assert!(s.load_manifest(&manifest_only, 0).is_err());
    s.load_manifest(&env, 0).unwrap();
}

#[test]
fn encrypted_payload_for_the_device_key() {
    let mut dev = Device::new();
    let fw = image(9000, 7);
    let mut s = dev.session();
    let key = device_public_key(&mut s);
    let (ciphertext, info) = encrypt(
        &fw,
        &RecipientPublicKey::P384 {
            key: &key,
            wrap: AesKwAlg::A256Kw,
        },
    );
    let env = envelope(
        2,
        class(),
        &[Comp {
            id: "rootfs",
            image: fw.clone(),
            encryption_info: Some(info.clone()),
        }],
    );
    let plan = s.load_manifest(&env, 1).unwrap();
    assert_eq!(
        plan.items.len(),
        1,
        "the staging component is not an install item"
    );
    let item = &plan.items[0];
    assert_eq!(item.encryption_info.as_deref(), Some(info.as_slice()));
    assert_eq!(
        item.source,
        PayloadSource::Uri("http://example.com/rootfs".into())
    );
    // Altered ciphertext: the tag check fails at FINAL.
    let mut bad = ciphertext.clone();
    bad[5] ^= 1;
    feed(&mut s, item.index, &bad, 4096);
    let (c, _) = rejected(s.payload_final(item.index).unwrap_err());
    assert!(matches!(c, Category::Decryption | Category::Digest), "{c}");
    // The real ciphertext is approved.
    let approval = approve(&mut s, item.index, &ciphertext, 4000);
    assert_eq!(approval.digest, DigestAlg::Sha256.digest(&fw));
    assert_eq!(approval.size, fw.len() as u64);
    // COMMIT needs the decryption for install first.
    expect_rejection(
        s.commit(std::slice::from_ref(&approval.token)),
        Category::Policy,
        "decrypted for install",
    );
    // A forged token is refused.
    let mut forged = approval.token.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    expect_rejection(
        s.decrypt_for_install(item.index, &forged, 0, &ciphertext[..100], false),
        Category::Authentication,
        "approval token refused",
    );
    // Decrypt in chunks (the TA re-hashes); a chunk at the wrong offset is refused, offset 0
    // starts again.
    s.decrypt_for_install(item.index, &approval.token, 0, &ciphertext[..4000], false)
        .unwrap();
    expect_rejection(
        s.decrypt_for_install(item.index, &approval.token, 100, &ciphertext[..10], false),
        Category::Policy,
        "resume at offset 4000",
    );
    let plain_out = decrypt(&mut s, item.index, &approval.token, &ciphertext, 4000);
    assert_eq!(plain_out, fw);
    s.commit(&[approval.token]).unwrap();
    drop(s);
    dev.restart();
    let mut s = dev.session();
    confirm_all(&mut s, &[&fw]);
}

#[test]
fn fleet_kek_provisioning_is_locked_after_once() {
    let dev = Device::new();
    let kek = [0x42u8; 32];
    let mut s = dev.session();
    let fw = image(2000, 8);
    let (ciphertext, info) = encrypt(
        &fw,
        &RecipientPublicKey::Kek(&AesKey::from_slice(&kek).unwrap()),
    );
    let env = envelope(
        1,
        class(),
        &[Comp {
            id: "rootfs",
            image: fw.clone(),
            encryption_info: Some(info),
        }],
    );
    // Without the KEK the TA has no key for this payload: refused when planning.
    expect_rejection(s.load_manifest(&env, 0), Category::Decryption, "");
    let device_id = Uuid([9; 16]);
    let device =
        p384::PublicKey::from_sec1_bytes(&s.get_info().unwrap().device_public_key).unwrap();
    let sealed = suit_host::tool::crypt::seal_kek(
        &suit_host::tool::crypt::RecipientPublic::P384(device),
        &AesKey::from_slice(&kek).unwrap(),
    )
    .unwrap();
    s.provision(&Provisioning {
        kek: Some(abi::SealedKek {
            sealed,
            kid: Vec::new(),
        }),
        vendor_id: None,
        class_id: None,
        device_id: Some(device_id),
    })
    .unwrap();
    let info = s.get_info().unwrap();
    assert!(info.provisioned && info.kek_present);
    assert_eq!(info.device_id, Some(device_id));
    expect_rejection(
        s.provision(&Provisioning::default()),
        Category::Policy,
        "provisioning is locked",
    );
    expect_rejection(
        dev.session().provision(&Provisioning::default()),
        Category::Policy,
        "locked",
    );
    let plan = s.load_manifest(&env, 0).unwrap();
    let a = approve(&mut s, plan.items[0].index, &ciphertext, 512);
    let out = s
        .decrypt_for_install(plan.items[0].index, &a.token, 0, &ciphertext, true)
        .unwrap();
    assert_eq!(out, fw);
}

#[test]
fn a_second_session_cannot_interfere() {
    let dev = Device::new();
    let fw = image(1500, 9);
    let env = envelope(1, class(), &[plain("rootfs", &fw)]);
    let mut one = dev.session();
    let mut two = dev.session();
    let plan = one.load_manifest(&env, 1).unwrap();
    expect_rejection(
        two.load_manifest(&env, 1),
        Category::Policy,
        "another session",
    );
    expect_rejection(two.payload_final(0), Category::Policy, "no manifest");
    let a = approve(&mut one, plan.items[0].index, &fw, 700);
    // Session two cannot commit with session one's token, nor roll one's update back.
    expect_rejection(
        two.commit(std::slice::from_ref(&a.token)),
        Category::Policy,
        "no manifest",
    );
    two.rollback().unwrap();
    two.abort().unwrap();
    one.commit(std::slice::from_ref(&a.token)).unwrap();
    // Once committed, a second session cannot load (install pending).
    expect_rejection(two.load_manifest(&env, 0), Category::Policy, "pending");
    // A token of one session is refused in another, even for the same manifest.
    drop(one);
    two.rollback().unwrap();
    let mut three = dev.session();
    three.load_manifest(&env, 1).unwrap();
    expect_rejection(three.commit(&[a.token]), Category::Policy, "not approved");
    let b = approve(&mut three, 0, &fw, 1500);
    let mut four = dev.session();
    expect_rejection(
        four.load_manifest(&env, 1),
        Category::Policy,
        "another session",
    );
    drop(three); // closing the session frees the update
    four.load_manifest(&env, 1).unwrap();
    approve(&mut four, 0, &fw, 1500);
    expect_rejection(
        four.commit(&[b.token]),
        Category::Authentication,
        "does not approve this session",
    );
}

#[test]
fn token_alterations_and_foreign_keys_are_refused() {
    let dev = Device::new();
    let fw = image(800, 10);
    let mut s = dev.session();
    let key = p384::ecdsa::VerifyingKey::from(&signing_public_key(&mut s))
        .to_sec1_point(false)
        .as_bytes()
        .to_vec();
    s.load_manifest(&envelope(1, class(), &[plain("rootfs", &fw)]), 0)
        .unwrap();
    let a = approve(&mut s, 0, &fw, 800);
    for i in (0..a.token.len()).step_by(7) {
        let mut t = a.token.clone();
        t[i] ^= 0x10;
        assert!(Token::verify(&t, &key).is_err(), "byte {i}");
        expect_rejection(
            s.commit(&[t]),
            Category::Authentication,
            "approval token refused",
        );
    }
    // A token with the same claims signed by another key.
    let claims = Token::verify(&a.token, &key).unwrap().claims;
    use suit_shared::crypto::CryptoProvider;
    let other = suit_shared::crypto::RUST_CRYPTO
        .private_key(suit_shared::crypto::Curve::P384, &[3u8; 48], None)
        .unwrap();
    expect_rejection(
        s.commit(&[claims.sign(&*other).unwrap()]),
        Category::Authentication,
        "",
    );
    s.commit(&[a.token]).unwrap();
}

#[test]
fn buffers_and_parameter_types_are_checked() {
    let dev = Device::new();
    let mut s = dev.session();
    let req = Request::GetInfo.encode();
    let ok_params = || {
        [
            Param::MemrefInput(req.clone()),
            Param::MemrefOutput(abi::MIN_RESPONSE_BUFFER),
            Param::None,
            Param::None,
        ]
    };
    s.invoke_params(CommandId::GetInfo as u32, &ok_params())
        .unwrap();
    // Undersized response buffer
    let mut p = ok_params();
    p[1] = Param::MemrefOutput(100);
    assert_eq!(
        s.invoke_params(CommandId::GetInfo as u32, &p),
        Err(suit_ta_core::TeeError::ShortBuffer {
            param: 1,
            needed: abi::MIN_RESPONSE_BUFFER
        })
    );
    // Wrong parameter types
    for (i, wrong) in [
        (0, Param::ValueInput(1, 2)),
        (0, Param::MemrefOutput(10)),
        (1, Param::MemrefInput(vec![])),
        (1, Param::ValueOutput),
        (2, Param::MemrefInput(vec![1])),
        (3, Param::MemrefOutput(10)),
        (2, Param::ValueInout(0, 0)),
        (3, Param::MemrefInout(vec![])),
    ] {
        let mut p = ok_params();
        p[i] = wrong;
        assert!(matches!(
            s.invoke_params(CommandId::GetInfo as u32, &p),
            Err(suit_ta_core::TeeError::BadParameters(_))
        ));
    }
    // LOAD_MANIFEST without its data parameter
    let load = Request::LoadManifest {
        target_slot: 0,
        nonce: None,
        facts: None,
    }
    .encode();
    let p = [
        Param::MemrefInput(load.clone()),
        Param::MemrefOutput(abi::MIN_RESPONSE_BUFFER),
        Param::None,
        Param::None,
    ];
    assert!(matches!(
        s.invoke_params(CommandId::LoadManifest as u32, &p),
        Err(suit_ta_core::TeeError::BadParameters(_))
    ));
    // Unknown command
    assert!(s.invoke_params(99, &ok_params()).is_err());
    // Request of another command / garbage / another ABI version: rejections, not crashes.
    for bad in [vec![], vec![0xff], load, vec![0x81, 0x18, 0x63]] {
        let mut p = ok_params();
        p[0] = Param::MemrefInput(bad);
        let out = s.invoke_params(CommandId::GetInfo as u32, &p).unwrap();
        let r = abi::decode_response(CommandId::GetInfo, &out.response).unwrap();
        assert!(r.is_err());
    }
    let mut p = ok_params();
    p[0] = Param::MemrefInput(vec![0x81, 0x18, 0x63]);
    let out = s.invoke_params(CommandId::GetInfo as u32, &p).unwrap();
    let r = abi::decode_response(CommandId::GetInfo, &out.response).unwrap();
    assert!(r.unwrap_err().message.contains("ABI version mismatch"));

    // Oversized chunk and envelope
    let fw = image(10, 11);
    let env = envelope(1, class(), &[plain("rootfs", &fw)]);
    s.load_manifest(&env, 0).unwrap();
    expect_rejection(
        s.payload_update(0, 0, &vec![0; 4097]),
        Category::Resource,
        "exceeds the limit",
    );
    s.abort().unwrap();
    expect_rejection(
        s.load_manifest(&vec![0; 64 * 1024 + 1], 0),
        Category::Resource,
        "envelope",
    );
    // DECRYPT_FOR_INSTALL with an output buffer smaller than the chunk
    let dreq = Request::DecryptForInstall {
        component: 0,
        token: vec![],
        offset: 0,
        last: false,
    }
    .encode();
    let p = [
        Param::MemrefInput(dreq),
        Param::MemrefOutput(abi::MIN_RESPONSE_BUFFER),
        Param::MemrefInput(vec![0; 100]),
        Param::MemrefOutput(50),
    ];
    assert!(matches!(
        s.invoke_params(CommandId::DecryptForInstall as u32, &p),
        Err(suit_ta_core::TeeError::ShortBuffer { param: 3, .. })
    ));
}

#[test]
fn corrupt_or_missing_state_is_never_silently_reset() {
    let mut dev = Device::new();
    let fw = image(300, 12);
    let mut s = dev.session();
    let key_before = s.get_info().unwrap().device_public_key;
    install_plain(
        &mut s,
        &envelope(4, class(), &[plain("rootfs", &fw)]),
        1,
        &[&fw],
    );
    drop(s);
    dev.restart();
    confirm_after_reboot(&dev, &fw);

    // Corrupt: every command that needs the state refuses, with a clear message.
    let good = std::fs::read(dev.state_file()).unwrap();
    let mut bad = good.clone();
    bad[20] ^= 0x01;
    std::fs::write(dev.state_file(), &bad).unwrap();
    dev.restart();
    let mut s = dev.session();
    expect_rejection(s.get_info(), Category::Resource, "corrupt");
    expect_rejection(
        s.load_manifest(&envelope(1, class(), &[plain("rootfs", &fw)]), 0),
        Category::Resource,
        "corrupt",
    );
    // Truncated
    std::fs::write(dev.state_file(), &good[..good.len() / 2]).unwrap();
    drop(s);
    dev.restart();
    expect_rejection(dev.session().get_info(), Category::Resource, "corrupt");
    // Still corrupt after a restart: never regenerated.
    assert_eq!(
        std::fs::read(dev.state_file()).unwrap(),
        &good[..good.len() / 2]
    );

    // Restored: floors are back.
    std::fs::write(dev.state_file(), &good).unwrap();
    dev.restart();
    let info = dev.session().get_info().unwrap();
    assert_eq!(info.floors, vec![(ComponentId::new([b"rootfs"]), 4)]);

    // Missing: first use again, which shows as a NEW device key (a wiped device is visible).
    std::fs::remove_file(dev.state_file()).unwrap();
    dev.restart();
    let info = dev.session().get_info().unwrap();
    assert_ne!(info.device_public_key, key_before);
    assert!(info.floors.is_empty());
}

#[test]
fn ab_slots_pick_the_matching_branch() {
    // A manifest made by suit-tool's A/B template: try-each over component-slot.
    let dir = tempfile::tempdir().unwrap();
    let a = image(700, 13);
    let b = image(900, 14);
    std::fs::write(dir.path().join("a.bin"), &a).unwrap();
    std::fs::write(dir.path().join("b.bin"), &b).unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        "sequence-number = 3\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"rootfs\"]\n\
         [[component.slot]]\nslot = 0\nimage = \"a.bin\"\nuri = \"http://x/a.bin\"\n\
         [[component.slot]]\nslot = 1\nimage = \"b.bin\"\nuri = \"http://x/b.bin\"\n",
    )
    .unwrap();
    let prepared = suit_host::tool::spec::Spec::load(&spec)
        .unwrap()
        .prepare(dir.path())
        .unwrap();
    let encoded = encode_manifest(&prepared.manifest(), prepared.digest_alg());
    let key = vendor_key();
    let env = sign_envelope(
        &build_envelope(&encoded, &[], prepared.digest_alg()),
        &key,
        key.default_alg(),
        None,
    )
    .unwrap();
    let dev = Device::new();
    let mut s = dev.session();
    for (slot, img, uri) in [(0, &a, "http://x/a.bin"), (1, &b, "http://x/b.bin")] {
        let plan = s.load_manifest(&env, slot).unwrap();
        assert_eq!(plan.items[0].source, PayloadSource::Uri(uri.into()));
        assert_eq!(plan.items[0].size, Some(img.len() as u64));
        s.abort().unwrap();
    }
    expect_rejection(
        s.load_manifest(&env, 2),
        Category::Applicability,
        "try-each",
    );
    install_plain(&mut s, &env, 1, &[&b]);
}

#[test]
fn suit_tool_verify_token() {
    use p384::pkcs8::{EncodePublicKey, LineEnding};
    let dev = Device::new();
    let fw = image(64, 15);
    let mut s = dev.session();
    let key = signing_public_key(&mut s);
    s.load_manifest(&envelope(1, class(), &[plain("rootfs", &fw)]), 1)
        .unwrap();
    let a = approve(&mut s, 0, &fw, 64);
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("device.pub.pem");
    std::fs::write(&pem, key.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    let token = dir.path().join("token.cose");
    std::fs::write(&token, &a.token).unwrap();
    let mut altered = a.token.clone();
    altered[20] ^= 1;
    let bad = dir.path().join("altered.cose");
    std::fs::write(&bad, &altered).unwrap();
    let tool = |args: &[&Path]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_suit-tool"))
            .arg("verify-token")
            .arg("--device-key")
            .args(args)
            .output()
            .unwrap()
    };
    let ok = tool(&[&pem, &token]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("valid approval token: component ['rootfs'] for slot 1"),
        "{text}"
    );
    assert_eq!(tool(&[&pem, &bad]).status.code(), Some(1));
    let other = dir.path().join("other.pub.pem");
    let other_key = p384::ecdsa::SigningKey::from_slice(&[5; 48]).unwrap();
    std::fs::write(
        &other,
        other_key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(tool(&[&other, &token]).status.code(), Some(1));
    assert_eq!(
        tool(&[&pem, &dir.path().join("missing")]).status.code(),
        Some(2)
    );
}

/// A signed envelope made from a spec with suit-tool's templates.
fn envelope_from_spec(dir: &Path, spec: &str) -> Vec<u8> {
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    let prepared = suit_host::tool::spec::Spec::load(&path)
        .unwrap()
        .prepare(dir)
        .unwrap();
    let encoded = encode_manifest(&prepared.manifest(), prepared.digest_alg());
    let key = vendor_key();
    sign_envelope(
        &build_envelope(&encoded, &[], prepared.digest_alg()),
        &key,
        key.default_alg(),
        None,
    )
    .unwrap()
}

#[test]
fn suit_tool_encrypted_component_with_ciphertext_check() {
    use p384::pkcs8::{EncodePublicKey, LineEnding};
    let mut dev = Device::new();
    let mut s = dev.session();
    let key = device_public_key(&mut s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("device.pub.pem"),
        key.to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let app = image(20_000, 16);
    std::fs::write(dir.path().join("app.bin"), &app).unwrap();
    let env = envelope_from_spec(
        dir.path(),
        "sequence-number = 9\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"app\"]\nimage = \"app.bin\"\nuri = \"http://x/app.bin.enc\"\n\
         [component.encryption]\nrecipient = \"device.pub.pem\"\n",
    );
    let ciphertext = std::fs::read(dir.path().join("app.bin.enc")).unwrap();
    let plan = s.load_manifest(&env, 0).unwrap();
    assert_eq!(plan.items.len(), 1, "{plan:?}");
    let item = plan.items[0].clone();
    assert_eq!(item.component_id, ComponentId::new([b"app"]));
    assert_eq!(
        item.source,
        PayloadSource::Uri("http://x/app.bin.enc".into())
    );
    assert_eq!(item.size, Some(app.len() as u64));
    assert_eq!(item.fetch_size, Some(ciphertext.len() as u64));
    assert_eq!(
        item.fetch_digest,
        Some(DigestAlg::Sha256.digest(&ciphertext))
    );
    assert!(item.encryption_info.is_some());
    // A tampered download is refused by the ciphertext digest, before the tag check.
    let mut bad = ciphertext.clone();
    bad[100] ^= 1;
    feed(&mut s, item.index, &bad, 4096);
    expect_rejection(s.payload_final(item.index), Category::Digest, "component 1");
    let a = approve(&mut s, item.index, &ciphertext, 4096);
    let mut out = Vec::new();
    let written = s
        .decrypt_stream(item.index, &a.token, &mut ciphertext.as_slice(), &mut out)
        .unwrap();
    assert_eq!(written, app.len() as u64);
    assert_eq!(out, app);
    // COMMIT re-runs the manifest: the ciphertext check is answered from what was streamed.
    s.commit(&[a.token]).unwrap();
    drop(s);
    dev.restart();
    let mut s = dev.session();
    let floors = confirm_all(&mut s, &[&app]);
    assert!(
        floors.contains(&(ComponentId::new([b"app"]), 9)),
        "{floors:?}"
    );
}

#[test]
fn suit_tool_multi_component_manifests_install_through_the_ta() {
    // Every component of a suit-tool manifest checks vendor and class, as the TA requires of
    // each component it installs; a device of another class refuses the whole update.
    let dir = tempfile::tempdir().unwrap();
    let kernel = image(3000, 21);
    let rootfs = image(5000, 22);
    std::fs::write(dir.path().join("kernel.bin"), &kernel).unwrap();
    std::fs::write(dir.path().join("rootfs.bin"), &rootfs).unwrap();
    let spec = |class: &str| {
        format!(
            "sequence-number = 4\nvendor = \"example.com\"\nclass = \"{class}\"\n\
             [[component]]\nid = [\"kernel\"]\nimage = \"kernel.bin\"\nuri = \"http://x/k\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"rootfs.bin\"\nuri = \"http://x/r\"\n"
        )
    };
    let env = envelope_from_spec(dir.path(), &spec("qemu-armv8a"));
    let dev = Device::new();
    let mut s = dev.session();
    let plan = s.load_manifest(&env, 1).unwrap();
    assert_eq!(plan.items.len(), 2, "{plan:?}");
    s.abort().unwrap();
    install_plain(&mut s, &env, 1, &[&kernel, &rootfs]);
    let other = envelope_from_spec(dir.path(), &spec("another-board"));
    let mut s = dev.session();
    assert!(s.load_manifest(&other, 0).is_err());
}

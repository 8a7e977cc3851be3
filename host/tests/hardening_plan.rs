//! Issue 9, the TA's planning and approval: what LOAD_MANIFEST requires of a manifest (a
//! plaintext digest and size for every installed payload, vendor and class checks for every
//! installed component, unique component ids), how it plans content conditions
//! (image-not-match, abandoned try-each branches, content alternatives) and the draft's
//! fetch → check → copy pattern through COMMIT. The real TA core through the simulator
//! backend, envelopes signed with the development vendor key.

#[path = "support/agent_config.rs"]
mod agent_config;
#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use agent_config::{agent_ok, AgentConfig};
use sim::{
    approve, class, expect_rejection, image, manifest, repo, sign, vendor, vendor_key, Device,
};
use suit_host::tee::simulator::MAX_ENVELOPE;
use suit_host::tee::Tee;
use suit_host::tool::crypt::OsRng;
use suit_shared::abi::{self, PayloadSource};
use suit_shared::command::{
    Command, CommandSequence, Condition, Directive, IndexSelection, ReportingPolicy,
};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::encryption::{AesKwAlg, ContentAlg, Encryptor, RecipientPublicKey};
use suit_shared::manifest::{Manifest, Severable};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Category;

/// A simulated TA with the backend's default envelope bound.
fn device() -> Device {
    Device::with(|c| c.max_envelope = MAX_ENVELOPE)
}

const RP: ReportingPolicy = ReportingPolicy(15);

fn cond(c: Condition) -> Command<'static> {
    Command::Condition(c, RP)
}

fn directive(d: Directive) -> Command<'static> {
    Command::Directive(d, RP)
}

fn index(i: usize) -> Command<'static> {
    Command::SetComponentIndex(IndexSelection::One(i))
}

fn set(p: Vec<Parameter<'_>>) -> Command<'_> {
    Command::OverrideParameters(p)
}

fn digest(d: &DigestValue) -> Parameter<'_> {
    Parameter::ImageDigest(d.as_suit_digest())
}

fn sha256(bytes: &[u8]) -> DigestValue {
    DigestAlg::Sha256.digest(bytes)
}

/// Vendor and class set and checked for the selected components.
fn applicability() -> Vec<Command<'static>> {
    vec![
        set(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        cond(Condition::VendorId),
        cond(Condition::ClassId),
    ]
}

/// A signed envelope with one-part component ids.
fn signed(
    ids: &[&str],
    shared: Vec<Command<'_>>,
    payload_fetch: Vec<Command<'_>>,
    install: Vec<Command<'_>>,
) -> Vec<u8> {
    fn sequence(commands: Vec<Command<'_>>) -> Severable<'_, CommandSequence<'_>> {
        if commands.is_empty() {
            Severable::Absent
        } else {
            Severable::Present {
                value: CommandSequence { commands },
                severed: false,
            }
        }
    }
    let ids = ids
        .iter()
        .map(|id| ComponentId::new([id.as_bytes()]))
        .collect();
    let manifest = Manifest {
        payload_fetch: sequence(payload_fetch),
        install: sequence(install),
        ..manifest(1, ids, shared, vec![])
    };
    sign(&manifest, &vendor_key())
}

/// LOAD_MANIFEST for `slot`, approve `fw` as the single item, COMMIT, reboot, CONFIRM.
fn install_and_confirm(dev: &mut Device, env: &[u8], slot: u64, fw: &[u8]) -> abi::Plan {
    let mut s = dev.session();
    let plan = s.load_manifest(env, slot).unwrap();
    assert_eq!(plan.items.len(), 1, "{plan:?}");
    let item = plan.items[0].clone();
    assert_eq!(item.digest, Some(sha256(fw)));
    assert_eq!(item.size, Some(fw.len() as u64));
    let a = approve(&mut s, item.index, fw, 4096);
    s.commit(&[a.token]).unwrap();
    drop(s);
    dev.restart();
    let mut s = dev.session();
    s.confirm_stream(item.index, &mut &fw[..], fw.len() as u64)
        .unwrap();
    let floors = s.confirm().unwrap();
    assert_eq!(floors, vec![(item.component_id.clone(), 1)]);
    plan
}

/// Encrypts `plaintext` to the device key: (ciphertext with tag, encryption info).
fn encrypt_for(s: &mut dyn Tee, plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let info = s.get_info().unwrap();
    let key = p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap();
    let recipient = RecipientPublicKey::P384 {
        key: &key,
        wrap: AesKwAlg::A256Kw,
    };
    let (mut enc, info) =
        Encryptor::for_recipient(ContentAlg::A256Gcm, &recipient, None, &mut OsRng).unwrap();
    let mut out = vec![0u8; plaintext.len()];
    enc.update(plaintext, &mut out).unwrap();
    out.extend_from_slice(&enc.finalize());
    (out, info)
}

// ----- item 2: a plaintext digest and size for every installed payload -----------------------

#[test]
fn an_encrypted_payload_needs_a_plaintext_digest_and_size() {
    let mut dev = device();
    let fw = image(5000, 1);
    let mut s = dev.session();
    let (ciphertext, info) = encrypt_for(&mut s, &fw);
    let uri = "http://example.com/fw.enc";
    let cipher_digest = sha256(&ciphertext);
    let fw_digest = sha256(&fw);
    let shared = || {
        let mut c = vec![Command::SetComponentIndex(IndexSelection::All)];
        c.extend(applicability());
        c
    };
    // Fetch the ciphertext into the cache (checked), copy-decrypt into the firmware component.
    let install = |plaintext_check: Vec<Parameter<'_>>| {
        let mut c = vec![
            index(1),
            set(vec![
                Parameter::Uri(uri),
                digest(&cipher_digest),
                Parameter::ImageSize(ciphertext.len() as u64),
            ]),
            directive(Directive::Fetch),
            cond(Condition::ImageMatch),
            index(0),
            set(vec![
                Parameter::SourceComponent(1),
                Parameter::EncryptionInfo(&info),
            ]),
            directive(Directive::Copy),
        ];
        if !plaintext_check.is_empty() {
            c.push(set(plaintext_check));
            c.push(cond(Condition::ImageMatch));
        }
        signed(&["fw", "cache"], shared(), vec![], c)
    };
    // The AEAD tag alone (and the ciphertext digest) do not make the plaintext approvable.
    let tag_only = install(vec![]);
    expect_rejection(
        s.load_manifest(&tag_only, 0),
        Category::Policy,
        "component 0 would be installed without a plaintext image-digest and image-size",
    );
    // A digest without a size is not enough either.
    let no_size = install(vec![digest(&fw_digest)]);
    expect_rejection(
        s.load_manifest(&no_size, 0),
        Category::Policy,
        "without a plaintext image-digest and image-size",
    );
    // With both, the update installs.
    let checked = install(vec![
        digest(&fw_digest),
        Parameter::ImageSize(fw.len() as u64),
    ]);
    let plan = s.load_manifest(&checked, 0).unwrap();
    let item = &plan.items[0];
    assert_eq!(item.fetch_digest, Some(cipher_digest.clone()));
    let a = approve(&mut s, item.index, &ciphertext, 4096);
    let mut out = Vec::new();
    s.decrypt_stream(item.index, &a.token, &mut ciphertext.as_slice(), &mut out)
        .unwrap();
    assert_eq!(out, fw);
    s.commit(&[a.token]).unwrap();
    drop(s);
    dev.restart();
}

#[test]
fn a_plain_payload_needs_a_size() {
    let dev = device();
    let fw = image(3000, 2);
    let d = sha256(&fw);
    let mut install = vec![
        set(vec![Parameter::Uri("http://example.com/fw"), digest(&d)]),
        directive(Directive::Fetch),
        cond(Condition::ImageMatch),
    ];
    let env = signed(&["fw"], applicability(), vec![], install.clone());
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Policy,
        "without a plaintext image-digest and image-size",
    );
    install.insert(0, set(vec![Parameter::ImageSize(fw.len() as u64)]));
    let env = signed(&["fw"], applicability(), vec![], install);
    dev.session().load_manifest(&env, 0).unwrap();
}

// ----- item 3: vendor-id and class-id checked for every installed component ------------------

fn fetch_checked(d: &DigestValue, size: usize) -> Vec<Command<'_>> {
    vec![
        set(vec![
            Parameter::Uri("http://example.com/fw"),
            digest(d),
            Parameter::ImageSize(size as u64),
        ]),
        directive(Directive::Fetch),
        cond(Condition::ImageMatch),
    ]
}

#[test]
fn an_install_needs_vendor_and_class_checks_for_its_component() {
    let dev = device();
    let fw = image(2000, 3);
    let d = sha256(&fw);
    let refused = |env: Vec<u8>| {
        expect_rejection(
            dev.session().load_manifest(&env, 0),
            Category::Policy,
            "without checking both vendor-id and class-id for it",
        )
    };
    let vendor_only = vec![
        set(vec![Parameter::VendorId(VendorId::Uuid(vendor()))]),
        cond(Condition::VendorId),
    ];
    let class_only = vec![
        set(vec![Parameter::ClassId(class())]),
        cond(Condition::ClassId),
    ];
    // No check at all, only one of them.
    refused(signed(&["fw"], vec![], vec![], fetch_checked(&d, fw.len())));
    refused(signed(
        &["fw"],
        vendor_only,
        vec![],
        fetch_checked(&d, fw.len()),
    ));
    refused(signed(
        &["fw"],
        class_only,
        vec![],
        fetch_checked(&d, fw.len()),
    ));
    // Checked, but set only in a try-each branch that was abandoned (slot 7 is not the target).
    let mut branch = applicability();
    branch.push(set(vec![Parameter::ComponentSlot(7)]));
    branch.push(cond(Condition::ComponentSlot));
    let abandoned = vec![Command::TryEach {
        branches: vec![CommandSequence { commands: branch }],
        empty_fallback: true,
    }];
    refused(signed(
        &["fw"],
        abandoned,
        vec![],
        fetch_checked(&d, fw.len()),
    ));
    // Two components installed, checks for the first only.
    let mut install = vec![index(0)];
    install.extend(fetch_checked(&d, fw.len()));
    install.push(index(1));
    install.extend(fetch_checked(&d, fw.len()));
    let mut first_only = vec![index(0)];
    first_only.extend(applicability());
    let env = signed(&["fw", "app"], first_only, vec![], install.clone());
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Policy,
        "installs component 1 without checking both vendor-id and class-id",
    );
    // Checked for both: planned.
    let mut both = vec![Command::SetComponentIndex(IndexSelection::All)];
    both.extend(applicability());
    let env = signed(&["fw", "app"], both, vec![], install);
    assert_eq!(dev.session().load_manifest(&env, 0).unwrap().items.len(), 2);
}

// ----- item 9: content conditions while planning ----------------------------------------------

#[test]
fn image_not_match_does_not_pin_a_digest() {
    let mut dev = device();
    let old = image(1500, 4);
    let fw = image(1600, 5);
    let (old_d, new_d) = (sha256(&old), sha256(&fw));
    // "Not the old image, and the new one": the check order of the draft's examples.
    let install = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
        set(vec![digest(&old_d)]),
        cond(Condition::ImageNotMatch),
        set(vec![digest(&new_d), Parameter::ImageSize(fw.len() as u64)]),
        cond(Condition::ImageMatch),
    ];
    let env = signed(&["fw"], applicability(), vec![], install);
    install_and_confirm(&mut dev, &env, 1, &fw);
    // An image-not-match of the very digest the manifest then requires can never pass.
    let contradiction = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
        set(vec![digest(&new_d), Parameter::ImageSize(fw.len() as u64)]),
        cond(Condition::ImageNotMatch),
        cond(Condition::ImageMatch),
    ];
    let env = signed(&["fw"], applicability(), vec![], contradiction);
    expect_rejection(
        dev.session().load_manifest(&env, 1),
        Category::Digest,
        "on component 0",
    );
}

/// try-each: [digest A, image-match, slot 0] or [digest B, image-match], after one fetch.
fn slot_or_content_branches(a: &DigestValue, b: &DigestValue, size: usize) -> Vec<u8> {
    let first = vec![
        set(vec![digest(a), Parameter::ImageSize(size as u64)]),
        cond(Condition::ImageMatch),
        set(vec![Parameter::ComponentSlot(0)]),
        cond(Condition::ComponentSlot),
    ];
    let second = vec![
        set(vec![digest(b), Parameter::ImageSize(size as u64)]),
        cond(Condition::ImageMatch),
    ];
    let install = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
        Command::TryEach {
            branches: vec![
                CommandSequence { commands: first },
                CommandSequence { commands: second },
            ],
            empty_fallback: false,
        },
    ];
    signed(&["fw"], applicability(), vec![], install)
}

#[test]
fn an_abandoned_try_each_branch_does_not_pin_its_digest() {
    let mut dev = device();
    let a = image(1000, 6);
    let b = image(1000, 7);
    let env = slot_or_content_branches(&sha256(&a), &sha256(&b), 1000);
    // For slot 1 the first branch always fails (whatever the content): B is the only content
    // the manifest accepts there.
    install_and_confirm(&mut dev, &env, 1, &b);
    // For slot 0 both A (first branch) and B (second) are accepted: alternatives.
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Policy,
        "unsupported: the manifest accepts alternative contents (component 0 differs",
    );
}

#[test]
fn content_alternatives_are_refused_as_unsupported() {
    let dev = device();
    let (a, b) = (sha256(&image(800, 8)), sha256(&image(800, 9)));
    let branch = |d| CommandSequence {
        commands: vec![
            set(vec![digest(d), Parameter::ImageSize(800)]),
            cond(Condition::ImageMatch),
        ],
    };
    let install = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
        Command::TryEach {
            branches: vec![branch(&a), branch(&b)],
            empty_fallback: false,
        },
    ];
    let env = signed(&["fw"], applicability(), vec![], install);
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Policy,
        "alternative contents",
    );
    // One alternative and nil: only the checked content is approvable.
    let install = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
        Command::TryEach {
            branches: vec![branch(&a)],
            empty_fallback: true,
        },
    ];
    let env = signed(&["fw"], applicability(), vec![], install);
    let plan = dev.session().load_manifest(&env, 0).unwrap();
    assert_eq!(plan.items[0].digest, Some(a));
}

// ----- item 10: the draft's fetch → check → copy (Example 4) without encryption ---------------

/// The shape of the manifest draft's Example 4: the shared sequence sets and checks vendor,
/// class, digest and size of component 0; payload-fetch fetches into a cache component (1)
/// and checks it; install copies it into component 0 and checks again.
pub fn example4(fw: &[u8], uri: &str) -> Vec<u8> {
    let d = sha256(fw);
    let mut shared = vec![index(0)];
    shared.push(set(vec![
        Parameter::VendorId(VendorId::Uuid(vendor())),
        Parameter::ClassId(class()),
        digest(&d),
        Parameter::ImageSize(fw.len() as u64),
    ]));
    shared.push(cond(Condition::VendorId));
    shared.push(cond(Condition::ClassId));
    let payload_fetch = vec![
        index(1),
        set(vec![digest(&d), Parameter::Uri(uri)]),
        directive(Directive::Fetch),
        cond(Condition::ImageMatch),
    ];
    let install = vec![
        index(0),
        set(vec![Parameter::SourceComponent(1)]),
        directive(Directive::Copy),
        cond(Condition::ImageMatch),
    ];
    signed(&["rootfs", "cache"], shared, payload_fetch, install)
}

#[test]
fn fetch_check_copy_without_encryption_commits() {
    let mut dev = device();
    let fw = image(9000, 10);
    let env = example4(&fw, "http://example.com/rootfs.bin");
    let mut s = dev.session();
    let plan = s.load_manifest(&env, 1).unwrap();
    let item = &plan.items[0];
    assert_eq!(item.component_id, ComponentId::new([b"rootfs"]));
    assert_eq!(
        item.source,
        PayloadSource::Uri("http://example.com/rootfs.bin".into())
    );
    // Other bytes are refused by the digest the fetch checks.
    let mut bad = fw.clone();
    bad[10] ^= 1;
    for (i, c) in bad.chunks(4096).enumerate() {
        s.payload_update(item.index, (i * 4096) as u64, c).unwrap();
    }
    expect_rejection(s.payload_final(item.index), Category::Digest, "component 0");
    drop(s);
    install_and_confirm(&mut dev, &env, 1, &fw);
}

// ----- item 11: duplicate component ids ----------------------------------------------------

#[test]
fn duplicate_component_ids_are_malformed() {
    let dev = device();
    let fw = image(700, 11);
    let d = sha256(&fw);
    let mut shared = vec![Command::SetComponentIndex(IndexSelection::All)];
    shared.extend(applicability());
    let mut install = vec![index(0)];
    install.extend(fetch_checked(&d, fw.len()));
    install.push(index(1));
    install.extend(fetch_checked(&d, fw.len()));
    let env = signed(&["fw", "fw"], shared, vec![], install);
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Malformed,
        "lists a component identifier twice",
    );
    // suit-tool's simulated device refuses it alike.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.suit"), &env).unwrap();
    std::fs::write(dir.path().join("fw.bin"), &fw).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .arg("process")
        .arg(dir.path().join("u.suit"))
        .arg("--trust-anchor")
        .arg(repo().join("keys/dev-vendor-es384.pub.pem"))
        .args(["--vendor-id", &vendor().to_string()])
        .args(["--class-id", &class().to_string()])
        .arg("--image")
        .arg(format!("0={}", dir.path().join("fw.bin").display()))
        .arg("--image")
        .arg(format!("1={}", dir.path().join("fw.bin").display()))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["category"], "malformed", "{json}");
}

/// The same manifest through the real `suit-agent` (simulator TA): install from a file (an
/// offline update), trial boot of slot B, boot-check confirms.
#[test]
fn fetch_check_copy_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("slot-a.img"), image(4096, 12)).unwrap();
    let config = AgentConfig {
        health_check: Some(r#"["/bin/true"]"#.to_string()),
        ..AgentConfig::new(d)
    }
    .write();
    let agent = |args: &[&str]| agent_ok(&config, args);
    let fw = image(70_000, 13);
    std::fs::write(d.join("rootfs.bin"), &fw).unwrap();
    let uri = format!("file://{}/rootfs.bin", d.display());
    std::fs::write(d.join("update.suit"), example4(&fw, &uri)).unwrap();
    let out = agent(&["install", d.join("update.suit").to_str().unwrap()]);
    assert!(out.contains("into slot B"), "{out}");
    // the image, then its dm-verity tree (verified boot)
    assert_eq!(
        std::fs::read(d.join("slot-b.img")).unwrap()[..fw.len()],
        fw[..]
    );
    // The trial boot, as the device's init plays it: slot B once.
    let state = std::fs::read_to_string(d.join("bootstate")).unwrap();
    assert!(state.contains("BOOT_ORDER=B A"), "{state}");
    std::fs::write(
        d.join("bootstate"),
        "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n",
    )
    .unwrap();
    std::fs::write(d.join("booted-slot"), "B\n").unwrap();
    let out = agent(&["boot-check"]);
    assert!(out.contains("confirmed slot B"), "{out}");
}

#[test]
fn planning_explores_a_bounded_number_of_paths() {
    let dev = device();
    let fw = image(600, 14);
    let d = sha256(&fw);
    // 200 image-not-match of distinct digests: each is a decision the planner explores.
    let others: Vec<DigestValue> = (0..200u32).map(|i| sha256(&i.to_le_bytes())).collect();
    let mut install = vec![
        set(vec![Parameter::Uri("http://example.com/fw")]),
        directive(Directive::Fetch),
    ];
    for o in &others {
        install.push(set(vec![digest(o)]));
        install.push(cond(Condition::ImageNotMatch));
    }
    install.push(set(vec![digest(&d), Parameter::ImageSize(600)]));
    install.push(cond(Condition::ImageMatch));
    let env = signed(&["fw"], applicability(), vec![], install.clone());
    expect_rejection(
        dev.session().load_manifest(&env, 0),
        Category::Policy,
        "paths to explore",
    );
    // 20 of them are planned.
    install.drain(2..2 + 2 * 180);
    let env = signed(&["fw"], applicability(), vec![], install);
    let plan = dev.session().load_manifest(&env, 0).unwrap();
    assert_eq!(plan.items[0].digest, Some(d));
}

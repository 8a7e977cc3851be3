//! Hardening of the TA's transport, sessions, state and reports (issue 9, items 4, 5, 6, 7, 13,
//! 14), through the simulator backend: the real TA core in-process.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::process::Command as Process;
use std::time::{SystemTime, UNIX_EPOCH};

use p384::pkcs8::EncodePublicKey;
use sim::{class, expect_rejection, image, manifest, sign, vendor, vendor_key, Device};
use suit_host::tee::simulator::SimulatorSession;
use suit_host::tee::{linux_user_identity, Tee, TeeError};
use suit_shared::abi::{self, CommandId, InstallState, Provisioning, Request};
use suit_shared::author::SigningKey;
use suit_shared::command::{Command, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::manifest::Manifest;
use suit_shared::params::{Parameter, VendorId};
use suit_shared::report::{Report, ReportResult};
use suit_shared::token::Token;
use suit_shared::Category;
use suit_ta_core::{ClientPolicy, Param};

/// A key the TA does not trust.
fn attacker_key() -> SigningKey {
    SigningKey::P384(p384::ecdsa::SigningKey::from_slice(&[7; 48]).unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a test manifest holds beyond one fetched, digest-checked component.
#[derive(Default)]
struct Options {
    reference_uri: Option<&'static str>,
    use_before: Option<u64>,
}

/// A signed envelope installing `image` as component `id`.
fn envelope(seq: u64, id: &[u8], image: &[u8], opts: &Options, key: &SigningKey) -> Vec<u8> {
    let rp = || ReportingPolicy(15);
    let digest = DigestAlg::Sha256.digest(image);
    let mut shared = vec![
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, rp()),
        Command::Condition(Condition::ClassId, rp()),
    ];
    if let Some(deadline) = opts.use_before {
        shared.push(Command::OverrideParameters(vec![Parameter::UseBefore(
            deadline,
        )]));
        shared.push(Command::Condition(Condition::UseBefore, rp()));
    }
    let install = vec![
        Command::OverrideParameters(vec![
            Parameter::Uri("http://example.com/fw"),
            Parameter::ImageDigest(SuitDigest {
                alg: DigestAlg::Sha256,
                bytes: digest.as_bytes(),
            }),
            Parameter::ImageSize(image.len() as u64),
        ]),
        Command::Directive(Directive::Fetch, rp()),
        Command::Condition(Condition::ImageMatch, rp()),
    ];
    let manifest = Manifest {
        reference_uri: opts.reference_uri,
        ..manifest(seq, vec![ComponentId::new([id])], shared, install)
    };
    sign(&manifest, key)
}

fn simple(seq: u64, image: &[u8]) -> Vec<u8> {
    envelope(seq, b"rootfs", image, &Options::default(), &vendor_key())
}

/// The device's signing public key (tokens, reports), SEC1 uncompressed.
fn device_key(tee: &mut dyn Tee) -> Vec<u8> {
    tee.get_info().unwrap().signing_public_key
}

/// LOAD_MANIFEST (with an optional verifier nonce), PAYLOAD_UPDATE/FINAL, COMMIT; the token.
fn install(tee: &mut dyn Tee, env: &[u8], fw: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
    let plan = tee.load_manifest_with_nonce(env, 1, nonce).unwrap();
    let token = tee
        .approve(plan.items[0].index, &mut &fw[..])
        .unwrap()
        .token;
    tee.commit(std::slice::from_ref(&token)).unwrap();
    token
}

fn confirm(tee: &mut dyn Tee, fw: &[u8]) -> Result<Vec<(ComponentId, u64)>, TeeError> {
    tee.confirm_stream(0, &mut &fw[..], fw.len() as u64)?;
    tee.confirm()
}

fn report(tee: &mut dyn Tee, nonce: Option<&[u8]>) -> Report {
    let key = device_key(tee);
    Report::verify(&tee.report(nonce).unwrap(), &key).unwrap()
}

// ----- item 4: nothing an unauthenticated envelope says is signed into a report -------------

#[test]
fn unauthenticated_envelope_is_reported_by_its_raw_digest_only() {
    let dev = Device::new();
    let mut s = dev.session();
    let fw = image(100, 1);
    let opts = Options {
        reference_uri: Some("https://attacker.example/evil.suit"),
        ..Options::default()
    };
    let forged = envelope(9, b"rootfs", &fw, &opts, &attacker_key());
    expect_rejection(s.load_manifest(&forged, 1), Category::Authentication, "");
    let r = report(&mut s, None);
    assert_eq!(
        r.manifest_uri, "",
        "the attacker's URI was signed into the report"
    );
    assert_eq!(r.manifest_digest, DigestAlg::Sha256.digest(&forged));
    assert!(matches!(r.result, ReportResult::Failure { .. }));

    // Once authentic, the manifest's own reference is reported.
    let genuine = envelope(9, b"rootfs", &fw, &opts, &vendor_key());
    let plan = s.load_manifest(&genuine, 1).unwrap();
    let r = report(&mut s, None);
    assert_eq!(r.manifest_uri, "https://attacker.example/evil.suit");
    assert_eq!(r.manifest_digest, plan.manifest_digest);
}

// ----- item 5: who may change state; CONFIRM after ABORT; factory mode --------------------

#[test]
fn linux_user_identity_matches_the_kernel_derivation() {
    // UUIDv5(tee_client_uuid_ns, "uid=<hex>"), computed independently with Python's uuid.
    let root = linux_user_identity(0);
    assert_eq!(root.login, abi::login::USER);
    let hex = |u: [u8; 16]| uuid::Uuid::from_bytes(u).to_string();
    assert_eq!(hex(root.uuid), "ef0180a3-13f3-5d1c-b7f5-888c0e21059a");
    assert_eq!(
        hex(linux_user_identity(1000).uuid),
        "fc34275c-d8dd-5ba7-968b-504718363b87"
    );
}

#[test]
fn only_the_configured_client_changes_state() {
    let mut dev = Device::with(|c| c.client = ClientPolicy::Only(linux_user_identity(0)));
    let fw = image(3000, 2);
    let env = simple(4, &fw);
    let other = || dev.ta.open_session_as(linux_user_identity(1000)).unwrap();

    // Another local user: may look, may not act.
    let mut s = other();
    s.get_info().unwrap();
    expect_rejection(s.load_manifest(&env, 1), Category::Policy, "TEE client");
    expect_rejection(
        s.provision(&Provisioning::default()),
        Category::Policy,
        "TEE client",
    );
    drop(s);

    // The agent's user installs.
    let mut root = dev.ta.open_session_as(linux_user_identity(0)).unwrap();
    install(&mut root, &env, &fw, None);
    drop(root);

    // Neither another user nor a public login can drop the pending trial.
    let mut s = other();
    expect_rejection(s.rollback(), Category::Policy, "TEE client");
    let mut public = dev.session();
    expect_rejection(public.rollback(), Category::Policy, "TEE client");
    expect_rejection(public.abort(), Category::Policy, "TEE client");
    assert!(matches!(
        public.get_info().unwrap().install,
        InstallState::Trial(_)
    ));
    drop((s, public));

    dev.restart();
    let mut s = dev.ta.open_session_as(linux_user_identity(1000)).unwrap();
    expect_rejection(confirm(&mut s, &fw), Category::Policy, "TEE client");
    let mut root = dev.ta.open_session_as(linux_user_identity(0)).unwrap();
    confirm(&mut root, &fw).unwrap();
}

#[test]
fn confirm_is_refused_after_abort_in_the_committing_session() {
    let dev = Device::new();
    let fw = image(2000, 3);
    let mut s = dev.session();
    install(&mut s, &simple(5, &fw), &fw, None);
    s.abort().unwrap();
    expect_rejection(confirm(&mut s, &fw), Category::Policy, "trial boot");
    let info = s.get_info().unwrap();
    assert!(
        info.floors.is_empty(),
        "the floor rose without a trial boot"
    );
}

#[test]
fn confirm_is_refused_after_rollback() {
    let mut dev = Device::new();
    let fw = image(2000, 4);
    let mut s = dev.session();
    install(&mut s, &simple(5, &fw), &fw, None);
    drop(s);
    dev.session().rollback().unwrap();
    dev.restart();
    let mut s = dev.session();
    expect_rejection(
        confirm(&mut s, &fw),
        Category::Policy,
        "no install is pending",
    );
    assert!(s.get_info().unwrap().floors.is_empty());
}

#[test]
fn provision_needs_a_factory_build() {
    let production = Device::with(|c| c.factory = false);
    let mut s = production.session();
    let p = Provisioning {
        device_id: Some(suit_shared::error::Uuid([7; 16])),
        ..Provisioning::default()
    };
    expect_rejection(s.provision(&p), Category::Policy, "factory build");
    let info = s.get_info().unwrap();
    assert!(!info.provisioned && info.device_id.is_none());

    let factory = Device::new();
    let mut s = factory.session();
    s.provision(&p).unwrap();
    expect_rejection(s.provision(&p), Category::Policy, "locked");
}

// ----- item 6: component ids are bounded, replies never follow a state change --------------

#[test]
fn long_component_ids_are_refused_before_anything_changes() {
    let dev = Device::new();
    let mut s = dev.session();
    let fw = image(500, 5);
    // Long enough that the approval token and the COMMIT reply outgrow the 16 KiB response
    // buffer: without a bound, PAYLOAD_FINAL and COMMIT changed state and then failed.
    let id = vec![b'x'; 17_000];
    let env = envelope(3, &id, &fw, &Options::default(), &vendor_key());
    expect_rejection(s.load_manifest(&env, 1), Category::Resource, "component id");
    // At the bound it works, and every reply fits.
    let id = vec![b'y'; abi::MAX_COMPONENT_ID - 4];
    let env = envelope(3, &id, &fw, &Options::default(), &vendor_key());
    install(&mut s, &env, &fw, None);
    assert!(matches!(
        s.get_info().unwrap().install,
        InstallState::Trial(_)
    ));
}

// ----- item 7: requests are capped per command before they are copied or parsed ------------

fn raw(s: &mut SimulatorSession, command: CommandId, request: Vec<u8>) -> Result<(), String> {
    let params = [
        Param::MemrefInput(request),
        Param::MemrefOutput(abi::MIN_RESPONSE_BUFFER),
        if command.data_in() {
            Param::MemrefInput(vec![0; 16])
        } else {
            Param::None
        },
        if command.data_out() {
            Param::MemrefOutput(16 + abi::DECRYPT_OUTPUT_SLACK)
        } else {
            Param::None
        },
    ];
    match s.invoke_params(command as u32, &params) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[test]
fn oversized_requests_are_refused_before_parsing() {
    let dev = Device::new();
    let mut s = dev.session();
    let huge_token = Request::DecryptForInstall {
        component: 0,
        token: vec![0; 256 * 1024],
        offset: 0,
        last: false,
    };
    let err = raw(&mut s, CommandId::DecryptForInstall, huge_token.encode()).unwrap_err();
    assert!(
        err.contains("ExcessData") && err.contains("param: 0"),
        "{err}"
    );
    let many_tokens = Request::Commit {
        tokens: vec![vec![0; 900]; abi::MAX_ITEMS + 8],
    };
    let err = raw(&mut s, CommandId::Commit, many_tokens.encode()).unwrap_err();
    assert!(err.contains("ExcessData"), "{err}");
    // Padding after a small request is refused the same way, for every command.
    for command in CommandId::ALL {
        let mut request = Request::GetInfo.encode();
        request.resize(command.max_request() + 1, 0);
        let err = raw(&mut s, command, request).unwrap_err();
        assert!(err.contains("ExcessData"), "{}: {err}", command.name());
    }
    // Requests of legitimate size still pass the transport.
    raw(&mut s, CommandId::GetInfo, Request::GetInfo.encode()).unwrap();
    let token = Request::DecryptForInstall {
        component: 0,
        token: vec![0; abi::MAX_TOKEN],
        offset: 0,
        last: false,
    };
    raw(&mut s, CommandId::DecryptForInstall, token.encode()).unwrap();
}

// ----- item 13: reports say pending until CONFIRM; verifier nonces -------------------------

#[test]
fn reports_say_pending_at_commit_and_success_at_confirm() {
    let mut dev = Device::new();
    let fw = image(1500, 6);
    let mut s = dev.session();
    install(&mut s, &simple(6, &fw), &fw, None);
    assert_eq!(report(&mut s, None).result, ReportResult::Pending);
    drop(s);
    dev.restart();
    let mut s = dev.session();
    confirm(&mut s, &fw).unwrap();
    assert_eq!(report(&mut s, None).result, ReportResult::Success);
}

#[test]
fn verifier_nonce_reaches_tokens_and_reports() {
    let dev = Device::new();
    let fw = image(1200, 7);
    let nonce = b"verifier-nonce-0042".to_vec();
    let mut s = dev.session();
    let key = device_key(&mut s);
    let token = install(&mut s, &simple(7, &fw), &fw, Some(&nonce));
    let claims = Token::verify(&token, &key).unwrap().claims;
    assert_eq!(claims.verifier_nonce.as_deref(), Some(&nonce[..]));
    let r = report(&mut s, Some(&nonce));
    assert_eq!(r.nonce.as_deref(), Some(&nonce[..]));

    // suit-tool checks an expected nonce.
    let dir = tempfile::tempdir().unwrap();
    let (pem, token_path) = (dir.path().join("device.pub.pem"), dir.path().join("token"));
    std::fs::write(
        &pem,
        p384::ecdsa::VerifyingKey::from_sec1_bytes(&key)
            .unwrap()
            .to_public_key_pem(p384::pkcs8::LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    std::fs::write(&token_path, &token).unwrap();
    let verify = |n: &str| {
        Process::new(env!("CARGO_BIN_EXE_suit-tool"))
            .arg("verify-token")
            .arg("--device-key")
            .arg(&pem)
            .args(["--nonce", n])
            .arg(&token_path)
            .output()
            .unwrap()
    };
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let ok = verify(&hex);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stale = verify("00112233");
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("expected nonce"));

    // An oversized nonce never reaches the TA's state.
    expect_rejection(
        s.load_manifest_with_nonce(&simple(8, &fw), 1, Some(&[0; 65])),
        Category::Malformed,
        "nonce",
    );
}

// ----- item 14: use-before -------------------------------------------------------------------

#[test]
fn use_before_refuses_expired_manifests_and_accepts_current_ones() {
    let dev = Device::new();
    let fw = image(800, 8);
    let expired = Options {
        use_before: Some(now() - 3600),
        ..Options::default()
    };
    let current = Options {
        use_before: Some(now() + 3600),
        ..Options::default()
    };
    let mut s = dev.session();
    expect_rejection(
        s.load_manifest(&envelope(9, b"rootfs", &fw, &expired, &vendor_key()), 1),
        Category::Applicability,
        "expired",
    );
    install(
        &mut s,
        &envelope(9, b"rootfs", &fw, &current, &vendor_key()),
        &fw,
        None,
    );
}

#[test]
fn agent_refuses_a_malformed_nonce() {
    for (args, bad) in [
        (
            vec!["install", "--nonce", "xyz", "file:///nonexistent.suit"],
            "xyz",
        ),
        (vec!["confirm", "--nonce", &"ab".repeat(65)], "ab"),
    ] {
        let out = Process::new(env!("CARGO_BIN_EXE_suit-agent"))
            .args(["--tee", "simulator", "--config", "/nonexistent/config.toml"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is not a nonce") && stderr.contains(bad),
            "{stderr}"
        );
    }
}

//! SUIT reports name where an update failed (issue 12): the manifest section (its SUIT_Manifest
//! key, suit-common's for the shared sequence) and the component index of the failing command,
//! as draft-ietf-suit-report's SUIT_Record does — through the simulator backend, i.e. the real
//! TA core in-process.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::process::Command as Process;

use p384::pkcs8::{EncodePublicKey, LineEnding};
use sim::{class, image, manifest, sign, vendor, vendor_key, Device};
use suit_host::tee::Tee;
use suit_shared::command::{Command, Condition, Directive, IndexSelection, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue, SuitDigest};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::processor::{Section, Sequence};
use suit_shared::report::{Reason, Report, ReportResult};

const RP: ReportingPolicy = ReportingPolicy(15);

fn index(i: usize) -> Command<'static> {
    Command::SetComponentIndex(IndexSelection::One(i))
}

/// Fetch `digest`/`size` into the current component and check it.
fn fetch_checked<'a>(uri: &'a str, digest: &'a DigestValue, size: usize) -> Vec<Command<'a>> {
    vec![
        Command::OverrideParameters(vec![
            Parameter::Uri(uri),
            Parameter::ImageDigest(SuitDigest {
                alg: DigestAlg::Sha256,
                bytes: digest.as_bytes(),
            }),
            Parameter::ImageSize(size as u64),
        ]),
        Command::Directive(Directive::Fetch, RP),
        Command::Condition(Condition::ImageMatch, RP),
    ]
}

/// Two components, vendor and class checked for both in the shared sequence (whose class is
/// `class_id`), each fetched and digest-checked in install; `extra` runs for component 1 after
/// its fetch.
fn two_components(
    class_id: suit_shared::error::Uuid,
    fw: &[[u8; 64]; 2],
    extra: Vec<Command<'static>>,
) -> Vec<u8> {
    let digests = [
        DigestAlg::Sha256.digest(&fw[0]),
        DigestAlg::Sha256.digest(&fw[1]),
    ];
    let shared = vec![
        Command::SetComponentIndex(IndexSelection::All),
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class_id),
        ]),
        Command::Condition(Condition::VendorId, RP),
        Command::Condition(Condition::ClassId, RP),
    ];
    let mut install = vec![index(0)];
    install.extend(fetch_checked("http://example.com/a", &digests[0], 64));
    install.push(index(1));
    install.extend(fetch_checked("http://example.com/b", &digests[1], 64));
    install.extend(extra);
    let m = manifest(
        1,
        vec![ComponentId::new([b"a"]), ComponentId::new([b"b"])],
        shared,
        install,
    );
    sign(&m, &vendor_key())
}

/// Component 1 must go to slot 7; the agent targets slot 1.
fn wrong_slot() -> Vec<Command<'static>> {
    vec![
        Command::OverrideParameters(vec![Parameter::ComponentSlot(7)]),
        Command::Condition(Condition::ComponentSlot, RP),
    ]
}

fn images() -> [[u8; 64]; 2] {
    let a = image(64, 1);
    let b = image(64, 2);
    [a.try_into().unwrap(), b.try_into().unwrap()]
}

fn report(tee: &mut dyn Tee) -> ReportResult {
    let info = tee.get_info().unwrap();
    Report::verify(&tee.report(None).unwrap(), &info.signing_public_key)
        .unwrap()
        .result
}

/// (section, component) of a failure report.
fn failed_at(result: ReportResult) -> (i64, u64, Reason) {
    match result {
        ReportResult::Failure {
            section,
            component,
            reason,
            ..
        } => (section, component, reason),
        other => panic!("expected a failure report, got {other:?}"),
    }
}

#[test]
fn a_failed_condition_in_component_1s_install_sequence_is_reported_there() {
    let dev = Device::new();
    let mut s = dev.session();
    let env = two_components(class(), &images(), wrong_slot());
    s.load_manifest(&env, 1).unwrap_err();
    assert_eq!(
        failed_at(report(&mut s)),
        (Section::Install.key(), 1, Reason::ConditionFailed)
    );
    assert_eq!(Section::Install.key(), 20, "suit-install's manifest key");
}

#[test]
fn a_failure_in_the_shared_sequence_names_suit_common() {
    let dev = Device::new();
    let mut s = dev.session();
    let other_class = suit_host::tool::spec::class_uuid(vendor(), "another-board");
    let env = two_components(other_class, &images(), Vec::new());
    s.load_manifest(&env, 1).unwrap_err();
    let (section, component, _) = failed_at(report(&mut s));
    assert_eq!((section, component), (Sequence::COMMON_KEY, 0));
    assert_eq!(Sequence::COMMON_KEY, 3, "suit-common's manifest key");
}

#[test]
fn a_payload_refused_while_streaming_names_its_component() {
    let dev = Device::new();
    let mut s = dev.session();
    let fw = images();
    let env = two_components(class(), &fw, Vec::new());
    let plan = s.load_manifest(&env, 1).unwrap();
    assert_eq!(plan.items[1].index, 1);
    s.approve(0, &mut &fw[0][..]).unwrap();
    let mut tampered = fw[1];
    tampered[10] ^= 1;
    s.approve(1, &mut &tampered[..]).unwrap_err();
    // Not while running a sequence (section 0), about plan item / component 1.
    let (section, component, _) = failed_at(report(&mut s));
    assert_eq!((section, component), (0, 1));
}

#[test]
fn suit_tool_verify_report_shows_where_it_failed() {
    let dev = Device::new();
    let mut s = dev.session();
    s.load_manifest(&two_components(class(), &images(), wrong_slot()), 1)
        .unwrap_err();
    let dir = tempfile::tempdir().unwrap();
    let info = s.get_info().unwrap();
    let key = p384::PublicKey::from_sec1_bytes(&info.signing_public_key).unwrap();
    let pem = dir.path().join("device.pub.pem");
    std::fs::write(&pem, key.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    let file = dir.path().join("report.cose");
    std::fs::write(&file, s.report(None).unwrap()).unwrap();
    let run = |json: bool| {
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_suit-tool"));
        cmd.arg("verify-report")
            .arg("--device-key")
            .arg(&pem)
            .arg(&file);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    assert_eq!(v["result"], "failure");
    assert_eq!(v["manifest-section"], 20);
    assert_eq!(v["component-index"], 1);
    assert!(
        run(false).contains("in manifest section 20, component 1"),
        "{}",
        run(false)
    );
}

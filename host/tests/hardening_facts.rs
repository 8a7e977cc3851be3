//! Conditions that can say no (issue 12): minimum-battery (26) and update-authorized (27)
//! answered from the device's facts the agent gives LOAD_MANIFEST — through the simulator
//! backend (the real TA core in-process) and `suit-tool process` (`--battery-mwh`,
//! `--not-authorized`).

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::path::Path;
use std::process::{Command as Process, Output};

use serde_json::Value;
use sim::{approve, class, expect_rejection, image, manifest, sign, vendor, vendor_key, Device};
use suit_host::tee::Tee;
use suit_shared::abi::{DeviceFacts, InstallState};
use suit_shared::command::{Command, CommandSequence, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::processor::Section;
use suit_shared::report::{Reason, Report, ReportResult};
use suit_shared::Category;

const RP: ReportingPolicy = ReportingPolicy(15);

fn applicability() -> Vec<Command<'static>> {
    vec![
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, RP),
        Command::Condition(Condition::ClassId, RP),
    ]
}

/// Fetch and check `fw` after `before` in the install sequence.
fn envelope(before: Vec<Command<'_>>, fw: &[u8]) -> Vec<u8> {
    let d = DigestAlg::Sha256.digest(fw);
    let mut install = before;
    install.extend([
        Command::OverrideParameters(vec![
            Parameter::Uri("http://example.com/fw"),
            Parameter::ImageDigest(d.as_suit_digest()),
            Parameter::ImageSize(fw.len() as u64),
        ]),
        Command::Directive(Directive::Fetch, RP),
        Command::Condition(Condition::ImageMatch, RP),
    ]);
    let m = manifest(1, vec![ComponentId::new([b"fw"])], applicability(), install);
    sign(&m, &vendor_key())
}

/// minimum-battery of `mwh` and update-authorized, before the fetch.
fn guarded(mwh: u64, fw: &[u8]) -> Vec<u8> {
    envelope(
        vec![
            Command::OverrideParameters(vec![Parameter::MinimumBattery(mwh)]),
            Command::Condition(Condition::MinimumBattery, RP),
            Command::Condition(Condition::UpdateAuthorized, RP),
        ],
        fw,
    )
}

fn facts(battery_mwh: Option<u64>, authorized: bool) -> Option<DeviceFacts> {
    Some(DeviceFacts {
        battery_mwh,
        authorized,
    })
}

fn failure_report(tee: &mut dyn Tee) -> (i64, u64, Reason) {
    let info = tee.get_info().unwrap();
    match Report::verify(&tee.report(None).unwrap(), &info.signing_public_key)
        .unwrap()
        .result
    {
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
fn battery_below_the_minimum_is_refused_and_nothing_changes() {
    let dev = Device::new();
    let fw = image(2000, 1);
    let env = guarded(5000, &fw);
    let mut s = dev.session();
    let before = s.get_info().unwrap();
    let state = std::fs::read(dev.state_file()).ok();
    expect_rejection(
        s.load_manifest_with_facts(&env, 1, None, facts(Some(4999), true)),
        Category::Applicability,
        "condition minimum-battery failed on component 0: battery at 4999 mWh, the manifest \
         requires 5000 mWh",
    );
    assert_eq!(
        failure_report(&mut s),
        (Section::Install.key(), 0, Reason::ConditionFailed)
    );
    let after = s.get_info().unwrap();
    assert_eq!(after.install, InstallState::Idle);
    assert_eq!(after.floors, before.floors);
    assert_eq!(std::fs::read(dev.state_file()).ok(), state);
    // The session holds no update: the same envelope goes through once charged.
    let plan = s
        .load_manifest_with_facts(&env, 1, None, facts(Some(5000), true))
        .unwrap();
    assert_eq!(plan.items.len(), 1);
}

#[test]
fn declined_authorization_is_refused_and_the_report_names_the_condition() {
    let dev = Device::new();
    let fw = image(2000, 2);
    let mut s = dev.session();
    expect_rejection(
        s.load_manifest_with_facts(&guarded(10, &fw), 1, None, facts(None, false)),
        Category::Applicability,
        "condition update-authorized failed on component 0",
    );
    assert_eq!(
        failure_report(&mut s),
        (Section::Install.key(), 0, Reason::ConditionFailed)
    );
}

#[test]
fn without_facts_the_device_has_no_battery_and_authorises() {
    let dev = Device::new();
    let fw = image(2000, 3);
    let env = guarded(u64::MAX, &fw);
    // No facts at all (an agent that reports none), and a device without battery.
    dev.session().load_manifest(&env, 1).unwrap();
    dev.session()
        .load_manifest_with_facts(&env, 1, None, facts(None, true))
        .unwrap();
    // A manifest that does not ask is not refused by the facts.
    dev.session()
        .load_manifest_with_facts(&envelope(vec![], &fw), 1, None, facts(Some(0), false))
        .unwrap();
}

/// Fetch, then try-each: [update-authorized, image-match A] or [image-match B].
fn authorized_or_fallback(a: &DigestValue, b: &DigestValue, size: u64) -> Vec<u8> {
    fn branch<'a>(
        first: Option<Command<'a>>,
        d: &'a DigestValue,
        size: u64,
    ) -> CommandSequence<'a> {
        let mut commands: Vec<Command<'a>> = first.into_iter().collect();
        commands.push(Command::OverrideParameters(vec![
            Parameter::ImageDigest(d.as_suit_digest()),
            Parameter::ImageSize(size),
        ]));
        commands.push(Command::Condition(Condition::ImageMatch, RP));
        CommandSequence { commands }
    }
    let install = vec![
        Command::OverrideParameters(vec![Parameter::Uri("http://example.com/fw")]),
        Command::Directive(Directive::Fetch, RP),
        Command::TryEach {
            branches: vec![
                branch(
                    Some(Command::Condition(Condition::UpdateAuthorized, RP)),
                    a,
                    size,
                ),
                branch(None, b, size),
            ],
            empty_fallback: false,
        },
    ];
    let m = manifest(1, vec![ComponentId::new([b"fw"])], applicability(), install);
    sign(&m, &vendor_key())
}

#[test]
fn commit_answers_from_the_facts_given_to_load_manifest() {
    let dev = Device::new();
    let (a, b) = (image(3000, 4), image(3000, 5));
    let env = authorized_or_fallback(
        &DigestAlg::Sha256.digest(&a),
        &DigestAlg::Sha256.digest(&b),
        3000,
    );
    let mut s = dev.session();
    // Declined: the first branch fails before its content check, B is the only content.
    let plan = s
        .load_manifest_with_facts(&env, 1, None, facts(None, false))
        .unwrap();
    assert_eq!(plan.items[0].digest, Some(DigestAlg::Sha256.digest(&b)));
    let approval = approve(&mut s, plan.items[0].index, &b, 4096);
    // COMMIT runs the manifest again: with other facts it would take the first branch.
    let pending = s.commit(&[approval.token]).unwrap();
    assert_eq!(pending.components[0].digest, DigestAlg::Sha256.digest(&b));
}

// ---- suit-tool process -------------------------------------------------------------------

fn tool(args: &[&str], dir: &Path) -> Output {
    let out = Process::new(env!("CARGO_BIN_EXE_suit-tool"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(101), "suit-tool panicked");
    out
}

/// `suit-tool create` of a one-component spec with `extra` top-level lines.
fn created(dir: &Path, extra: &str) -> String {
    std::fs::write(dir.join("fw.img"), image(1000, 6)).unwrap();
    std::fs::write(
        dir.join("spec.toml"),
        format!(
            "sequence-number = 1\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n{extra}\n\
             [[component]]\nid = [\"fw\"]\nimage = \"fw.img\"\nuri = \"http://example.com/fw\"\n"
        ),
    )
    .unwrap();
    let key = sim::repo().join("keys/dev-vendor-es384.priv.pem");
    let key = key.to_str().unwrap();
    let out = tool(
        &[
            "create",
            "--spec",
            "spec.toml",
            "--out",
            "fw.suit",
            "--key",
            key,
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    "fw.suit".to_string()
}

/// `suit-tool process --json` on the simulated device with `flags`: exit code and JSON.
fn process(dir: &Path, envelope: &str, flags: &[&str]) -> (Option<i32>, Value) {
    let anchor = sim::repo().join("keys/dev-vendor-es384.pub.pem");
    let vendor = vendor().to_string();
    let class = class().to_string();
    let mut args = vec![
        "process",
        envelope,
        "--trust-anchor",
        anchor.to_str().unwrap(),
        "--vendor-id",
        &vendor,
        "--class-id",
        &class,
        "--image",
        "0=fw.img",
        "--json",
    ];
    args.extend(flags);
    let out = tool(&args, dir);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn refused(verdict: (Option<i32>, Value), text: &str) {
    let (code, json) = verdict;
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["result"], "rejected", "{json}");
    assert_eq!(json["error"]["category"], "applicability", "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains(text), "{message:?} lacks {text:?}");
}

#[test]
fn process_answers_minimum_battery_from_battery_mwh() {
    let dir = tempfile::tempdir().unwrap();
    let env = created(dir.path(), "minimum-battery = 5000");
    refused(
        process(dir.path(), &env, &["--battery-mwh", "4999"]),
        "minimum-battery failed on component 0: battery at 4999 mWh",
    );
    for flags in [&["--battery-mwh", "5000"][..], &[]] {
        let (code, json) = process(dir.path(), &env, flags);
        assert_eq!((code, &json["result"]), (Some(0), &Value::from("accepted")));
    }
}

#[test]
fn process_not_authorized_fails_update_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let env = created(dir.path(), "update-authorized = true");
    refused(
        process(dir.path(), &env, &["--not-authorized"]),
        "condition update-authorized failed on component 0",
    );
    let (code, json) = process(dir.path(), &env, &[]);
    assert_eq!((code, &json["result"]), (Some(0), &Value::from("accepted")));
    // A manifest that does not ask is not refused.
    let plain = created(dir.path(), "");
    let (code, _) = process(
        dir.path(),
        &plain,
        &["--not-authorized", "--battery-mwh", "0"],
    );
    assert_eq!(code, Some(0));
}

//! Key separation (issue 14): the TA signs approval tokens and SUIT reports with its signing
//! key and decrypts with a distinct key-agreement key; GET_INFO reports both. A token or a
//! report never verifies with the agreement key.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use sim::{approve, class, image, manifest, sign, vendor, vendor_key, Device};
use suit_host::tee::Tee;
use suit_shared::command::{Command, Condition, Directive, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::report::Report;
use suit_shared::token::Token;

/// A signed envelope installing `fw` as "rootfs".
fn envelope(seq: u64, fw: &[u8]) -> Vec<u8> {
    let rp = || ReportingPolicy(15);
    let digest = DigestAlg::Sha256.digest(fw);
    let shared = vec![
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, rp()),
        Command::Condition(Condition::ClassId, rp()),
    ];
    let install = vec![
        Command::OverrideParameters(vec![
            Parameter::Uri("http://example.com/fw"),
            Parameter::ImageDigest(SuitDigest {
                alg: DigestAlg::Sha256,
                bytes: digest.as_bytes(),
            }),
            Parameter::ImageSize(fw.len() as u64),
        ]),
        Command::Directive(Directive::Fetch, rp()),
        Command::Condition(Condition::ImageMatch, rp()),
    ];
    let m = manifest(seq, vec![ComponentId::new([b"rootfs"])], shared, install);
    sign(&m, &vendor_key())
}

#[test]
fn get_info_reports_two_distinct_device_keys() {
    let mut dev = Device::new();
    let info = dev.session().get_info().unwrap();
    assert_eq!(info.device_public_key.len(), 97);
    assert_eq!(info.signing_public_key.len(), 97);
    assert_ne!(info.device_public_key, info.signing_public_key);
    dev.restart();
    let again = dev.session().get_info().unwrap();
    assert_eq!(
        (again.device_public_key, again.signing_public_key),
        (info.device_public_key, info.signing_public_key),
        "both keys persist"
    );
}

#[test]
fn tokens_and_reports_are_not_signed_with_the_agreement_key() {
    let dev = Device::new();
    let fw = image(3000, 9);
    let mut s = dev.session();
    let info = s.get_info().unwrap();
    s.load_manifest(&envelope(3, &fw), 1).unwrap();
    let approval = approve(&mut s, 0, &fw, 1024);
    assert!(Token::verify(&approval.token, &info.device_public_key).is_err());
    let token = Token::verify(&approval.token, &info.signing_public_key).unwrap();
    assert_eq!(token.claims.sequence_number, 3);

    let report = s.report(None).unwrap();
    assert!(Report::verify(&report, &info.device_public_key).is_err());
    Report::verify(&report, &info.signing_public_key).unwrap();
}

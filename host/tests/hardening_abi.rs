//! Issue 12, "ABI declared once": what GET_INFO says is derived from what the TA really has,
//! and the host's decoder refuses limits out of range instead of clamping them.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use sim::Device;
use suit_host::tee::Tee;
use suit_shared::abi::{self, CommandId, Reply, Request};
use suit_shared::auth::{alg, TrustAnchor};
use suit_shared::digest::DigestAlg;

fn p256_anchor() -> TrustAnchor {
    let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    TrustAnchor::from_sec1(key.verifying_key().to_sec1_point(false).as_bytes(), None).unwrap()
}

#[test]
fn get_info_advertises_the_signatures_its_anchors_verify() {
    // The development anchor is P-384: ES384 and ESP384 only.
    let device = Device::with(|_| {});
    let info = device.ta.open_session().get_info().unwrap();
    assert_eq!(info.algorithms.signature, vec![alg::ES384, alg::ESP384]);

    let device = Device::with(|c| c.trust_anchors = vec![p256_anchor()]);
    let info = device.ta.open_session().get_info().unwrap();
    assert_eq!(info.algorithms.signature, vec![alg::ES256, alg::ESP256]);

    let device = Device::with(|c| {
        c.trust_anchors.push(p256_anchor());
        c.trust_anchors.push(p256_anchor());
    });
    let info = device.ta.open_session().get_info().unwrap();
    assert_eq!(
        info.algorithms.signature,
        vec![alg::ES384, alg::ESP384, alg::ES256, alg::ESP256],
        "each algorithm once"
    );
}

#[test]
fn get_info_advertises_the_profile_digests_only() {
    let device = Device::with(|_| {});
    let info = device.ta.open_session().get_info().unwrap();
    assert_eq!(
        info.algorithms.digest,
        vec![DigestAlg::Sha256.cose_id(), DigestAlg::Sha384.cose_id()]
    );
    assert!(!info
        .algorithms
        .digest
        .contains(&DigestAlg::Sha512.cose_id()));
}

/// A TA announcing a max chunk of 0 is refused by the client: it used to be clamped to 1-byte
/// chunks.
#[test]
fn a_max_chunk_of_zero_is_an_error_not_one_byte_chunks() {
    let device = Device::with(|_| {});
    let mut session = device.ta.open_session();
    let (reply, _) = session.call(&Request::GetInfo, None).unwrap();
    let Reply::Info(mut info) = reply else {
        panic!("not an Info reply: {reply:?}");
    };
    info.max_chunk = 0;
    let bytes = abi::encode_response(&Ok(Reply::Info(info)));
    let e = abi::decode_response(CommandId::GetInfo, &bytes).unwrap_err();
    assert!(format!("{e}").contains("limit"), "{e}");
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if matches!(name.to_str(), Some("target" | "build" | ".git" | "data")) {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The TA's UUID is written in one file, `ta/uuid`; everything else reads it from there.
#[test]
fn the_ta_uuid_is_written_once() {
    let repo = sim::repo();
    let uuid = std::fs::read_to_string(repo.join("ta/uuid")).unwrap();
    assert_eq!(abi::DEFAULT_TA_UUID, uuid.trim());
    let mut files = Vec::new();
    for dir in ["shared", "host", "ta", "qemu", "tests", "fuzz"] {
        files_under(&repo.join(dir), &mut files);
    }
    files.push(repo.join("Makefile"));
    let holders: Vec<_> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f).is_ok_and(|text| text.contains(abi::DEFAULT_TA_UUID))
        })
        .map(|f| f.strip_prefix(&repo).unwrap_or(f).display().to_string())
        .collect();
    assert_eq!(holders, vec!["ta/uuid".to_string()]);
}

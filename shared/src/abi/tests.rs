//! Round trips and pinned encodings of the ABI.

use super::*;
use crate::digest::DigestAlg;
use crate::error::Uuid;
use alloc::vec;

#[test]
fn requests_round_trip() {
    let requests = [
        Request::GetInfo,
        Request::LoadManifest {
            target_slot: 1,
            nonce: None,
            facts: None,
        },
        Request::LoadManifest {
            target_slot: 0,
            nonce: Some(vec![6; MAX_NONCE]),
            facts: Some(DeviceFacts {
                battery_mwh: Some(u64::MAX),
                authorized: false,
            }),
        },
        Request::PayloadUpdate {
            component: 2,
            offset: 7,
        },
        Request::PayloadFinal { component: 0 },
        Request::DecryptForInstall {
            component: 1,
            token: vec![1, 2, 3],
            offset: 4096,
            last: true,
        },
        Request::Commit {
            tokens: vec![vec![9], vec![]],
        },
        Request::ConfirmUpdate {
            component: 0,
            offset: 0,
        },
        Request::Confirm,
        Request::Rollback,
        Request::Abort,
        Request::Report { nonce: None },
        Request::Report {
            nonce: Some(vec![5; 16]),
        },
        Request::Provision(Provisioning {
            kek: Some(SealedKek {
                sealed: vec![0x11; MAX_SEALED_KEK],
                kid: vec![b'k'; MAX_KID],
            }),
            vendor_id: Some(Uuid([1; 16])),
            class_id: None,
            device_id: Some(Uuid([3; 16])),
        }),
    ];
    for req in requests {
        let bytes = req.encode();
        assert!(bytes.len() <= req.command().max_request(), "{req:?}");
        assert_eq!(Request::decode(req.command(), &bytes).unwrap(), req);
    }
}

#[test]
fn version_mismatch_is_refused_clearly() {
    let mut w = Writer::new();
    w.array(1).u64(99);
    let e = Request::decode(CommandId::GetInfo, &w.into_bytes()).unwrap_err();
    assert!(
        alloc::format!("{e}").contains("ABI version mismatch"),
        "{e}"
    );
    let mut w = Writer::new();
    w.array(3).u64(8).u64(0).null();
    let e = decode_response(CommandId::Abort, &w.into_bytes()).unwrap_err();
    assert!(
        alloc::format!("{e}").contains("the TA speaks version 8"),
        "{e}"
    );
}

fn hex(bytes: &[u8]) -> alloc::string::String {
    bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
}

fn sample_pending() -> PendingInstall {
    let digest = DigestAlg::Sha256.digest(b"x");
    PendingInstall {
        slot: 1,
        sequence_number: 5,
        manifest_digest: digest.clone(),
        components: vec![InstalledComponent {
            component_id: ComponentId::new([b"fw"]),
            digest,
            size: 10,
        }],
    }
}

fn sample_info() -> Info {
    Info {
        abi_version: 2,
        max_chunk: 4096,
        max_envelope: 65536,
        algorithms: Algorithms {
            digest: vec![-16],
            signature: vec![-35],
            content_encryption: vec![3],
            key_distribution: vec![-3],
        },
        vendor_id: Uuid([1; 16]),
        class_id: Uuid([2; 16]),
        device_id: None,
        device_public_key: vec![4; 5],
        storage: StorageKind::Rpmb,
        provisioned: true,
        kek_present: false,
        floors: vec![(ComponentId::new([b"fw"]), 3)],
        install: InstallState::Trial(sample_pending()),
        last_outcome: LastOutcome::RolledBack,
        signing_public_key: vec![6; 5],
    }
}

/// The bytes of ABI version 2 as the hand-written codec produced them before the table, with
/// version 3's changes (the version byte, LOAD_MANIFEST's facts), version 4's (the version
/// byte, the plan item's verity root, STREAM_UPDATE/FINAL) and version 5's (the version byte,
/// GET_INFO's signing key) and version 6's (the version byte; PROVISION's KEK is sealed,
/// `[sealed, kid]` in the place of `[key, kid]`): the derived codec must not change any other.
#[test]
fn encodings_are_pinned() {
    let requests = [
        (Request::GetInfo, "8107"),
        (
            Request::LoadManifest {
                target_slot: 1,
                nonce: Some(vec![6; 4]),
                facts: None,
            },
            "8407014406060606f6",
        ),
        (
            Request::LoadManifest {
                target_slot: 0,
                nonce: None,
                facts: Some(DeviceFacts {
                    battery_mwh: Some(5000),
                    authorized: false,
                }),
            },
            "840700f682191388f4",
        ),
        (
            Request::PayloadUpdate {
                component: 2,
                offset: 7,
            },
            "83070207",
        ),
        (
            Request::DecryptForInstall {
                component: 1,
                token: vec![1, 2, 3],
                offset: 4096,
                last: true,
            },
            "85070143010203191000f5",
        ),
        (
            Request::Commit {
                tokens: vec![vec![9], vec![]],
            },
            "820782410940",
        ),
        (Request::Report { nonce: None }, "8207f6"),
        (
            Request::Provision(Provisioning {
                kek: Some(SealedKek {
                    sealed: vec![0x11; 16],
                    kid: b"fleet".to_vec(),
                }),
                vendor_id: Some(Uuid([1; 16])),
                class_id: None,
                device_id: Some(Uuid([3; 16])),
            }),
            concat!(
                "850782501111111111111111111111111111111145666c6565745001010101010101010101010101",
                "010101f65003030303030303030303030303030303"
            ),
        ),
        (Request::BootVerify { slot: 3 }, "820703"),
        (
            Request::StreamUpdate {
                component: 1,
                offset: 4096,
                hashes: 8192,
            },
            "840701191000192000",
        ),
        (Request::StreamFinal { component: 2 }, "820702"),
        (Request::UpdateAnchors, "8107"),
    ];
    for (request, expected) in requests {
        assert_eq!(hex(&request.encode()), expected, "{request:?}");
        let bytes = request.encode();
        assert_eq!(Request::decode(request.command(), &bytes).unwrap(), request);
    }
    let digest = DigestAlg::Sha256.digest(b"x");
    let info = sample_info();
    let plan = Plan {
        manifest_digest: digest.clone(),
        sequence_number: 3,
        slot: 1,
        items: vec![PlanItem {
            index: 0,
            component_id: ComponentId::new([b"fw"]),
            slot: 1,
            source: PayloadSource::Uri("http://x/fw".into()),
            size: Some(10),
            digest: Some(digest.clone()),
            encryption_info: Some(vec![0xa0]),
            fetch_size: None,
            fetch_digest: Some(digest.clone()),
            verity_root: Some(vec![7; 32]),
        }],
    };
    let boot = crate::boot::BootRecord {
        slot: 1,
        sequence_number: 2,
        status: crate::boot::BootStatus::Good,
        components: vec![crate::boot::BootComponent {
            component_id: ComponentId::new([b"fw"]),
            verity: crate::verity::VerityParams {
                root: [3; 32],
                salt: vec![4; 4],
                data_blocks: 9,
            },
        }],
    };
    let replies = [
        (
            CommandId::GetInfo,
            Reply::Info(alloc::boxed::Box::new(info)),
            concat!(
                "8307008f021910001a0001000084812f813822810381225001010101010101010101010101010101",
                "5002020202020202020202020202020202f645040404040401f5f481828142667703840105822f58",
                "202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488181838142667782",
                "2f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a48810a02450606060606"
            ),
        ),
        (
            CommandId::LoadManifest,
            Reply::Plan(plan),
            concat!(
                "83070084822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                "0301818a00814266770182006b687474703a2f2f782f66770a822f58202d711642b726b04401627c",
                "a9fbac32f5c8530fb1903cc4db02258717921a488141a0f6822f58202d711642b726b04401627ca9",
                "fbac32f5c8530fb1903cc4db02258717921a48815820070707070707070707070707070707070707",
                "0707070707070707070707070707"
            ),
        ),
        (
            CommandId::PayloadFinal,
            Reply::Approval(Approval {
                token: vec![1],
                digest,
                size: 3,
            }),
            concat!(
                "830700834101822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a",
                "488103"
            ),
        ),
        (
            CommandId::DecryptForInstall,
            Reply::Decrypted(Decrypted {
                written: 7,
                done: true,
            }),
            "8307008207f5",
        ),
        (
            CommandId::Commit,
            Reply::Committed(sample_pending()),
            concat!(
                "830700840105822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a",
                "4881818381426677822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717",
                "921a48810a"
            ),
        ),
        (
            CommandId::Confirm,
            Reply::Confirmed(vec![(ComponentId::new([b"fw" as &[u8], &[0]]), 4)]),
            "830700818282426677410004",
        ),
        (
            CommandId::Report,
            Reply::Report(vec![0xd2, 0x84]),
            "83070042d284",
        ),
        (
            CommandId::BootVerify,
            Reply::Boot(boot),
            concat!(
                "83070084010201818481426677582003030303030303030303030303030303030303030303030303",
                "03030303030303440404040409"
            ),
        ),
        (CommandId::Abort, Reply::Done, "830700f6"),
    ];
    for (command, reply, expected) in replies {
        let bytes = encode_response(&Ok(reply.clone()));
        assert_eq!(hex(&bytes), expected, "{command:?}");
        assert_eq!(decode_response(command, &bytes).unwrap(), Ok(reply));
    }
    let refusal = Refusal::from_error(&Error::Rollback {
        sequence: 2,
        floor: 3,
    });
    let bytes = encode_response(&Err(refusal));
    assert_eq!(hex(&bytes), "85070103181d820203");
    assert_eq!(
        decode_response(CommandId::Commit, &bytes).unwrap(),
        Err(Rejection {
            category: Category::Rollback,
            code: rejection::code::ROLLBACK,
            message: "rollback: manifest sequence number 2 is below the device's floor 3".into(),
        })
    );
}

/// A GET_INFO reply whose limits are out of range is refused, never clamped (a max chunk of 0
/// used to become 1-byte chunks, one above the ABI's limit the limit).
#[test]
fn get_info_limits_out_of_range_are_refused() {
    let info = |max_chunk: u32, max_envelope: u32| Info {
        max_chunk,
        max_envelope,
        ..sample_info()
    };
    let decode = |i: Info| {
        decode_response(
            CommandId::GetInfo,
            &encode_response(&Ok(Reply::Info(alloc::boxed::Box::new(i)))),
        )
    };
    assert!(decode(info(1, 1)).is_ok());
    assert!(decode(info(MAX_CHUNK_LIMIT as u32, u32::MAX)).is_ok());
    for bad in [
        info(0, 1024),
        info(MAX_CHUNK_LIMIT as u32 + 1, 1024),
        info(4096, 0),
    ] {
        let e = decode(bad).unwrap_err();
        assert!(alloc::format!("{e}").contains("limit"), "{e}");
    }
    // A value beyond 32 bits is refused too, not cut to u32::MAX or 0.
    let mut bytes = encode_response(&Ok(Reply::Info(alloc::boxed::Box::new(info(4096, 1024)))));
    // max-chunk 4096 is `19 10 00`; make it 2^32 + 4096.
    let at = bytes
        .windows(3)
        .position(|w| w == [0x19, 0x10, 0x00])
        .unwrap();
    bytes.splice(at..at + 3, [0x1b, 0, 0, 0, 1, 0, 0, 0x10, 0]);
    assert!(decode_response(CommandId::GetInfo, &bytes).is_err());
}

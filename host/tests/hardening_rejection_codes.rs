//! Issue 12, TA size: a rejection travels as a message code and its arguments (ABI version 7),
//! and the host renders exactly the messages the TA used to format. Every error variant, with
//! representative values, reads the same in-process (`Display`) and after a trip over the
//! wire; what the host cannot read is a typed error that says what the TA sent.

use suit_shared::abi::{
    self, decode_response, encode_response, rejection, Arg, CommandId, Refusal, Rejection,
};
use suit_shared::cbor::Writer;
use suit_shared::error::{IdValue, MapKey, Uuid};
use suit_shared::verity::TreeError;
use suit_shared::{Category, Error};
use suit_ta_core::error::Corruption;
use suit_ta_core::{StorageError, TaError};

const U1: Uuid = Uuid([0x11; 16]);
const U2: Uuid = Uuid([
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
]);

/// Every core error variant with the text the TA formatted before ABI version 7.
fn core_cases() -> Vec<(Error, &'static str)> {
    use Error::*;
    vec![
        (
            Cbor {
                context: "manifest",
                offset: 7,
                expected: "a map",
            },
            "malformed CBOR at byte 7 of the manifest: expected a map",
        ),
        (
            TrailingBytes {
                context: "envelope",
                count: 3,
            },
            "envelope has 3 trailing byte(s) after its end",
        ),
        (
            IndefiniteLength {
                context: "manifest",
                offset: 12,
            },
            "indefinite-length item at byte 12 of the manifest (SUIT requires definite lengths)",
        ),
        (
            DuplicateKey {
                context: "common",
                key: MapKey::Int(-3),
            },
            "duplicate key -3 in the common",
        ),
        (
            DuplicateKey {
                context: "common",
                key: MapKey::Int(4),
            },
            "duplicate key 4 in the common",
        ),
        (
            DuplicateKey {
                context: "text map",
                key: MapKey::Text("a\"\u{1b}".into()),
            },
            "duplicate key \"a\\\"\\u{1b}\" in the text map",
        ),
        (
            DuplicateKey {
                context: "text map",
                key: MapKey::Other(vec![0x81, 0x40]),
            },
            "duplicate key h'8140' in the text map",
        ),
        (
            MissingElement {
                context: "manifest",
                element: "common",
            },
            "the manifest lacks its required common element",
        ),
        (
            InvalidValue {
                context: "manifest",
                element: "version",
                reason: "must be 1",
            },
            "invalid version in the manifest: must be 1",
        ),
        (
            NotSuit {
                found: "another CBOR tag",
            },
            "expected a SUIT envelope (tag 107) or manifest (tag 1070), found another CBOR tag",
        ),
        (
            UnsupportedManifestVersion(2),
            "unsupported manifest version 2 (this processor implements version 1)",
        ),
        (
            LegacyInstallKey("manifest"),
            "the manifest uses key 17 for suit-install, as drafts before \
             draft-ietf-suit-manifest-29 did; current manifests carry it at key 20 — re-create \
             the manifest with a current tool",
        ),
        (
            SeveredElementAbsent("install"),
            "the install sequence is severed from the manifest and absent from this envelope \
             (stripped); this procedure needs the envelope with it",
        ),
        (
            UnexpectedSeveredElement("text"),
            "the envelope carries a text element but the manifest does not sever it",
        ),
        (
            ForbiddenInSharedSequence("directive-fetch"),
            "the shared sequence must not contain directive-fetch (draft-ietf-suit-manifest §6.2)",
        ),
        (
            ComponentIndexNotSet("install"),
            "the install sequence must begin with set-component-index because the manifest has \
             several components",
        ),
        (
            ComponentIndexOutOfRange { index: 5, count: 2 },
            "component index 5 is out of range (the manifest has 2 component(s))",
        ),
        (
            SoftFailureOutsideScope,
            "soft-failure may only be set inside try-each or run-sequence",
        ),
        (
            ParameterUnset {
                command: "directive-fetch",
                parameter: "uri",
                component: 1,
            },
            "directive-fetch on component 1 needs the uri parameter, which is not set",
        ),
        (
            IntegratedPayloadMissing("#fw\n".into()),
            "the manifest refers to integrated payload \"#fw\\u{a}\", which the envelope does not \
             carry",
        ),
        (
            NoAuthenticationBlock,
            "the envelope has no authentication block (COSE_Sign1/COSE_Mac0); it cannot be trusted",
        ),
        (
            BareManifest,
            "a bare manifest (tag 1070) carries no authentication wrapper; it cannot be trusted",
        ),
        (
            ManifestDigestMismatch,
            "the manifest does not match the digest in the authentication wrapper",
        ),
        (
            InvalidAuthenticationBlock {
                index: 2,
                reason: "malformed COSE_Sign1",
            },
            "authentication block 2: malformed COSE_Sign1",
        ),
        (
            NotAuthenticated("block 1 (COSE_Sign1, alg ES384) does not verify".into()),
            "no authentication block verified against the configured trust anchor(s): block 1 \
             (COSE_Sign1, alg ES384) does not verify",
        ),
        (
            UnsupportedDigestAlgorithm(-17),
            "unsupported digest algorithm -17 (supported: -16 SHA-256, -43 SHA-384, -44 SHA-512)",
        ),
        (
            VendorMismatch {
                component: 0,
                expected: IdValue::Uuid(U1),
                actual: U2,
            },
            "vendor identifier mismatch on component 0: manifest expects \
             11111111-1111-1111-1111-111111111111, device is 01234567-89ab-cdef-0123-456789abcdef",
        ),
        (
            VendorMismatch {
                component: 1,
                expected: IdValue::Pen(vec![0x86, 0x01]),
                actual: U1,
            },
            "vendor identifier mismatch on component 1: manifest expects PEN h'8601', device is \
             11111111-1111-1111-1111-111111111111",
        ),
        (
            ClassMismatch {
                component: 0,
                expected: U2,
                actual: U1,
            },
            "class identifier mismatch on component 0: manifest expects \
             01234567-89ab-cdef-0123-456789abcdef, device is 11111111-1111-1111-1111-111111111111",
        ),
        (
            DeviceMismatch {
                component: 3,
                expected: U1,
            },
            "device identifier mismatch on component 3: manifest expects \
             11111111-1111-1111-1111-111111111111",
        ),
        (
            ConditionFailed {
                condition: "minimum-battery",
                component: 0,
                detail: "battery at 5 mWh, the manifest requires 10 mWh".into(),
            },
            "condition minimum-battery failed on component 0: battery at 5 mWh, the manifest \
             requires 10 mWh",
        ),
        (
            Aborted,
            "the manifest aborted processing (suit-condition-abort)",
        ),
        (
            Rollback {
                sequence: 3,
                floor: u64::MAX,
            },
            "rollback: manifest sequence number 3 is below the device's floor 18446744073709551615",
        ),
        (
            ImageDigestMismatch { component: 1 },
            "image digest mismatch on component 1: the content does not match the manifest's \
             image-digest",
        ),
        (
            ImageNotMatchFailed { component: 0 },
            "image-not-match failed on component 0: the content matches the excluded digest",
        ),
        (
            ContentMismatch { component: 2 },
            "check-content failed on component 2: the content differs from the manifest",
        ),
        (
            SeveredDigestMismatch("install"),
            "the severed install element in the envelope does not match its digest in the manifest",
        ),
        (
            ImageSizeMismatch {
                component: 0,
                expected: 10,
                actual: 11,
            },
            "image size mismatch on component 0: manifest says 10 bytes, content has 11",
        ),
        (
            PayloadTooLarge {
                component: 0,
                limit: 4096,
            },
            "payload for component 0 exceeds the 4096 bytes the manifest allows",
        ),
        (Decryption("bad".into()), "decryption failed: bad"),
        (
            InvalidEncryptionInfo("the IV of AES-GCM must be 12 bytes"),
            "decryption failed: unusable encryption info: the IV of AES-GCM must be 12 bytes",
        ),
        (
            NoDecryptionKey("the device has no decryption keys".into()),
            "decryption failed: no key for this payload: the device has no decryption keys",
        ),
        (
            KeyUnwrapFailed,
            "decryption failed: the content key does not unwrap with the device's key(s) (wrong \
             key, or the recipient was altered)",
        ),
        (
            CiphertextTruncated,
            "decryption failed: the encrypted payload is shorter than its 16-byte authentication \
             tag (truncated)",
        ),
        (
            TagMismatch,
            "decryption failed: authentication tag mismatch (the payload was altered, truncated \
             or extended, or belongs to other encryption info); discard everything decrypted \
             from it",
        ),
        (
            Unsupported("directive-swap on this device".into()),
            "unsupported: directive-swap on this device",
        ),
        (
            AnchorSet("empty".into()),
            "trust-anchor update refused: empty",
        ),
        (
            AnchorKey {
                alg: "ES384",
                error: Box::new(InvalidValue {
                    context: "trust-anchor key",
                    element: "key",
                    reason: "not a SEC1 point on its curve",
                }),
            },
            "trust-anchor update refused: the key given for ES384 is not a key of that algorithm \
             (invalid key in the trust-anchor key: not a SEC1 point on its curve)",
        ),
        (
            UnknownCommand(-99),
            "unsupported command -99 (unknown commands must be rejected)",
        ),
        (UnknownParameter(42), "unsupported parameter 42"),
        (
            DependenciesNotSupported("suit-dependencies in suit-common"),
            "dependencies not supported: suit-dependencies in suit-common",
        ),
        (
            UnsupportedEncryptionAlgorithm {
                role: "content encryption",
                id: -65534,
                supported: "1 A128GCM",
            },
            "unsupported content encryption algorithm -65534 (supported: 1 A128GCM)",
        ),
        (
            UnauthenticatedEncryptionWithoutDigest { component: 0 },
            "component 0 is encrypted with AES-CTR, which has no integrity protection; it is \
             accepted only with an image-digest that the plaintext is checked against",
        ),
        (
            LimitExceeded {
                what: "components per manifest",
                limit: 8,
            },
            "limit exceeded: components per manifest (at most 8)",
        ),
        (Io("disk full".into()), "I/O error: disk full"),
        (RandomnessUnavailable, "the random number generator failed"),
        (
            UnreadableRejection {
                category: 7,
                code: 999,
                reason: "unknown code",
            },
            "the TA's rejection (category 7, code 999) cannot be read: unknown code (a TA and an \
             agent of different builds?)",
        ),
    ]
}

/// Every TA core error variant with the text the TA formatted before ABI version 7.
fn ta_cases() -> Vec<(TaError, &'static str)> {
    vec![
        (
            TaError::Suit(Error::Aborted),
            "the manifest aborted processing (suit-condition-abort)",
        ),
        (
            TaError::Processing {
                error: Error::ContentMismatch { component: 1 },
                at: None,
            },
            "check-content failed on component 1: the content differs from the manifest",
        ),
        (
            TaError::OutOfOrder {
                command: "COMMIT",
                reason: "no manifest is loaded (LOAD_MANIFEST first)".into(),
            },
            "COMMIT is not allowed now: no manifest is loaded (LOAD_MANIFEST first)",
        ),
        (
            TaError::Token("not signed with ES384".into()),
            "approval token refused: not signed with ES384",
        ),
        (
            TaError::TokenInvalid(Error::TrailingBytes {
                context: "approval token",
                count: 1,
            }),
            "approval token refused: approval token has 1 trailing byte(s) after its end",
        ),
        (
            TaError::Storage(StorageError("RPMB unreachable (0xf0100003)".into())),
            "secure storage: RPMB unreachable (0xf0100003)",
        ),
        (
            TaError::CorruptState(Corruption::Reason("checksum mismatch".into())),
            "the TA's state object in secure storage is corrupt (checksum mismatch); refusing to \
             continue because the anti-rollback floors and keys cannot be trusted — the device \
             needs servicing",
        ),
        (
            TaError::CorruptState(Corruption::Decode(Error::MissingElement {
                context: "suit-ta-state",
                element: "floors",
            })),
            "the TA's state object in secure storage is corrupt (the suit-ta-state lacks its \
             required floors element); refusing to continue because the anti-rollback floors and \
             keys cannot be trusted — the device needs servicing",
        ),
        (
            TaError::Diverged,
            "the manifest takes another path over the digests the TA computed than it did when \
             planning (LOAD_MANIFEST); nothing is committed",
        ),
        (
            TaError::NotBootable {
                slot: 1,
                reason: "its trial is no longer pending".into(),
                category: Category::Policy,
            },
            "component-slot 1 is not approved to boot: its trial is no longer pending",
        ),
        (
            TaError::Refused("an anchor update installs exactly one payload".into()),
            "refused by the TA's install policy: an anchor update installs exactly one payload",
        ),
        (
            TaError::Tree {
                component: 0,
                error: TreeError::Block(9),
            },
            "component 0: data block 9 does not match the dm-verity tree the manifest binds; \
             nothing of this chunk was released",
        ),
        (
            TaError::Tree {
                component: 1,
                error: TreeError::HashBlock { level: 2, index: 3 },
            },
            "component 1: hash block 3 of tree level 2 does not match the dm-verity tree the \
             manifest binds; nothing of this chunk was released",
        ),
        (
            TaError::Tree {
                component: 1,
                error: TreeError::MissingHashBlock { level: 0, index: 4 },
            },
            "component 1: hash block 4 of tree level 0 is needed and was not sent; nothing of \
             this chunk was released",
        ),
        (
            TaError::Tree {
                component: 2,
                error: TreeError::ExtraHashBytes(4096),
            },
            "component 2: 4096 bytes of hash blocks were sent that these data blocks do not \
             need; nothing of this chunk was released",
        ),
        (
            TaError::Tree {
                component: 0,
                error: TreeError::OutOfRange {
                    block: 10,
                    blocks: 8,
                },
            },
            "component 0: data block 10 is beyond the image's 8 blocks; nothing of this chunk \
             was released",
        ),
        (
            TaError::Bulk("read"),
            "the shared memory of this invoke could not be read",
        ),
        (
            TaError::TooLarge {
                what: "the envelope",
                size: 70000,
                limit: 65536,
            },
            "the envelope of 70000 bytes exceeds the limit of 65536 bytes",
        ),
    ]
}

fn over_the_wire(refusal: Refusal) -> Rejection {
    let bytes = encode_response(&Err(refusal));
    decode_response(CommandId::LoadManifest, &bytes)
        .expect("a response of this ABI")
        .expect_err("a rejection")
}

#[test]
fn every_core_error_reads_the_same_over_the_wire() {
    for (error, text) in core_cases() {
        assert_eq!(error.to_string(), text, "{error:?}");
        let rejection = over_the_wire(Refusal::from_error(&error));
        assert_eq!(rejection.message, text, "{error:?}");
        assert_eq!(rejection.category, error.category(), "{error:?}");
        assert_eq!(rejection.code, error.wire().0, "{error:?}");
    }
}

#[test]
fn every_ta_error_reads_the_same_over_the_wire() {
    for (error, text) in ta_cases() {
        assert_eq!(error.to_string(), text, "{error:?}");
        let rejection = over_the_wire(error.rejection());
        assert_eq!(rejection.message, text, "{error:?}");
        assert_eq!(rejection.category, error.category(), "{error:?}");
    }
}

/// Each code has one template, and every template's code is what an error sends.
#[test]
fn codes_are_unique_and_the_rejection_carries_no_text_but_arguments() {
    let mut codes: Vec<u16> = rejection::TEMPLATES.iter().map(|(c, _)| *c).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), rejection::TEMPLATES.len());
    let mut sent: Vec<u16> = core_cases().iter().map(|(e, _)| e.wire().0).collect();
    sent.extend(ta_cases().iter().map(|(e, _)| e.wire().0));
    sent.push(rejection::code::TA_RESPONSE_TOO_LARGE);
    sent.sort_unstable();
    sent.dedup();
    assert_eq!(
        sent, codes,
        "a template no error sends, or an error without a template"
    );
    // An argument-less rejection is a few bytes: no message text.
    let bytes = encode_response(&Err(Refusal::from_error(&Error::TagMismatch)));
    assert!(bytes.len() < 10, "{bytes:02x?}");
}

/// Writes the arguments of a hand-made rejection.
type ArgWriter = Box<dyn Fn(&mut Writer)>;

fn raw_rejection(category: u64, code: u64, args: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(5)
        .u64(abi::ABI_VERSION.into())
        .u64(1)
        .u64(category)
        .u64(code);
    args(&mut w);
    w.into_bytes()
}

#[test]
fn an_unknown_code_is_a_typed_error_naming_what_the_ta_sent() {
    let bytes = raw_rejection(7, 4242, |w| {
        w.array(0);
    });
    let e = decode_response(CommandId::Commit, &bytes).unwrap_err();
    assert_eq!(
        e,
        Error::UnreadableRejection {
            category: 7,
            code: 4242,
            reason: "unknown code"
        }
    );
    assert!(e.to_string().contains("category 7, code 4242"), "{e}");
    // A code beyond 16 bits, an unknown category.
    let bytes = raw_rejection(7, 1 << 20, |w| {
        w.array(0);
    });
    assert!(matches!(
        decode_response(CommandId::Commit, &bytes),
        Err(Error::UnreadableRejection { code: 1048576, .. })
    ));
    let bytes = raw_rejection(99, u64::from(rejection::code::ABORTED), |w| {
        w.array(0);
    });
    assert!(matches!(
        decode_response(CommandId::Commit, &bytes),
        Err(Error::UnreadableRejection {
            category: 99,
            reason: "unknown category",
            ..
        })
    ));
}

#[test]
fn arguments_that_do_not_fit_their_code_are_a_typed_error() {
    let rollback = u64::from(rejection::code::ROLLBACK);
    let misfits: Vec<ArgWriter> = vec![
        // too few, too many
        Box::new(|w: &mut Writer| {
            w.array(1).u64(1);
        }),
        Box::new(|w: &mut Writer| {
            w.array(3).u64(1).u64(2).u64(3);
        }),
        // text where a number belongs is fine for plain placeholders; bytes are not
        Box::new(|w: &mut Writer| {
            w.array(2).bytes(b"x").u64(2);
        }),
        // a nested message where none belongs, and an unknown nested code
        Box::new(|w: &mut Writer| {
            w.array(2).array(2).u64(28);
            w.array(0).u64(2);
        }),
    ];
    for args in misfits {
        let bytes = raw_rejection(3, rollback, args);
        let e = decode_response(CommandId::Commit, &bytes).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnreadableRejection {
                    category: 3,
                    code: 29,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // A class mismatch whose UUID is not 16 bytes.
    let class = u64::from(rejection::code::CLASS_MISMATCH);
    let bytes = raw_rejection(2, class, |w| {
        w.array(3).u64(0).bytes(&[1; 15]).bytes(&[2; 16]);
    });
    assert!(matches!(
        decode_response(CommandId::LoadManifest, &bytes),
        Err(Error::UnreadableRejection { category: 2, .. })
    ));
    // Nesting deeper than one level, and a map as an argument.
    let token = u64::from(rejection::code::TA_TOKEN_INVALID);
    let bytes = raw_rejection(1, token, |w| {
        w.array(1)
            .array(2)
            .u64(u64::from(rejection::code::ANCHOR_KEY));
        w.array(2).str("ES384").array(2).u64(28).array(0);
    });
    assert!(decode_response(CommandId::Commit, &bytes).is_err());
    let bytes = raw_rejection(1, token, |w| {
        w.array(1).map(0);
    });
    assert!(decode_response(CommandId::Commit, &bytes).is_err());
}

#[test]
fn long_text_arguments_are_cut_on_a_character_boundary() {
    let long = "é".repeat(abi::MAX_MESSAGE);
    let rejection = over_the_wire(Refusal::from_error(&Error::Io(long)));
    let text = rejection.message.strip_prefix("I/O error: ").unwrap();
    assert!(text.len() <= abi::MAX_MESSAGE && text.len() >= abi::MAX_MESSAGE - 1);
    assert!(text.chars().all(|c| c == 'é'));
}

/// The simulator's TA and the agent speak version 7: a rejection the agent shows is the
/// rendered text (the applicability message fleet feedback carries).
#[test]
fn a_refusal_built_by_hand_renders_like_the_error() {
    let refusal = Refusal {
        category: Category::Applicability,
        code: rejection::code::CLASS_MISMATCH,
        args: vec![Arg::Uint(0), U1.arg(), U2.arg()],
    };
    assert_eq!(
        format!("[{}] {}", refusal.category, refusal.message().unwrap()),
        "[applicability] class identifier mismatch on component 0: manifest expects \
         11111111-1111-1111-1111-111111111111, device is 01234567-89ab-cdef-0123-456789abcdef"
    );
}

//! Issue 12, TA size: the core's own COSE code (suit_shared::cbor::cose) replaced coset in
//! everything the TA links. coset stays a dev-dependency, as an independent reference: what
//! the core encodes coset decodes and re-encodes byte for byte, the to-be-signed structures
//! are coset's, and every block of the public vectors decodes alike in both.

use coset::{CoseSign, CoseSign1, TaggedCborSerializable};
use suit_shared::cbor::cose::{self, CoseBlock};
use suit_shared::crypto::{provider, Curve};
use suit_shared::digest::DigestAlg;
use suit_shared::envelope::Envelope;
use suit_shared::report::{Report, ReportResult};
use suit_shared::token::{Claims, Token, NONCE_LEN};

fn device_key() -> Box<dyn suit_shared::crypto::PrivateKey> {
    provider().private_key(Curve::P384, &[7; 48], None).unwrap()
}

fn claims() -> Claims {
    Claims {
        manifest_digest: DigestAlg::Sha256.digest(b"manifest"),
        sequence_number: 3,
        component_id: suit_shared::component::ComponentId::new([b"rootfs"]),
        slot: 1,
        image_digest: DigestAlg::Sha384.digest(b"image"),
        image_size: 5,
        nonce: [1; NONCE_LEN],
        verifier_nonce: Some(vec![2; 9]),
    }
}

#[test]
fn tokens_are_what_coset_encodes() {
    let key = device_key();
    let token = claims().sign(&*key).unwrap();
    let parsed = CoseSign1::from_tagged_slice(&token).unwrap();
    assert_eq!(parsed.clone().to_tagged_vec().unwrap(), token);
    assert_eq!(
        parsed.protected.header.alg,
        Some(coset::RegisteredLabelWithPrivate::Assigned(
            coset::iana::Algorithm::ES384
        ))
    );
    assert_eq!(parsed.payload.as_deref(), Some(&claims().encode()[..]));
    // The signature is over coset's Sig_structure.
    let tbs = parsed.tbs_data(b"");
    assert!(provider().verify(
        suit_shared::crypto::SigAlg::EcdsaP384Sha384,
        &key.public_sec1(),
        &tbs,
        &parsed.signature
    ));
    assert_eq!(
        Token::verify(&token, &key.public_sec1()).unwrap().claims,
        claims()
    );
}

#[test]
fn a_token_in_another_valid_encoding_is_refused() {
    let key = device_key();
    let token = claims().sign(&*key).unwrap();
    // The same COSE_Sign1 with its unprotected map given one more (ignored) parameter.
    let mut parsed = CoseSign1::from_tagged_slice(&token).unwrap();
    parsed
        .unprotected
        .rest
        .push((coset::Label::Int(99), coset::cbor::Value::Integer(1.into())));
    let other = parsed.to_tagged_vec().unwrap();
    let err = Token::verify(&other, &key.public_sec1()).unwrap_err();
    assert!(err.to_string().contains("deterministically"), "{err}");
}

#[test]
fn reports_carry_coset_readable_content_types() {
    let key = device_key();
    let report = Report {
        manifest_uri: String::from("https://example.com/m.suit"),
        manifest_digest: DigestAlg::Sha256.digest(b"m"),
        nonce: None,
        result: ReportResult::Success,
    };
    let signed = report.sign(&*key).unwrap();
    let parsed = CoseSign1::from_tagged_slice(&signed).unwrap();
    assert_eq!(parsed.clone().to_tagged_vec().unwrap(), signed);
    assert!(matches!(
        parsed.protected.header.content_type,
        Some(coset::ContentType::Text(_))
    ));
    Report::verify(&signed, &key.public_sec1()).unwrap();
}

/// Every COSE_Sign1 / COSE_Sign block of the public vectors: the core's decoder and coset
/// agree on headers, signatures and the data signed.
#[test]
fn public_vector_blocks_decode_as_coset_decodes_them() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/suit-vectors");
    let mut blocks = 0;
    let mut stack = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(env) = Envelope::decode(&bytes) else {
                continue;
            };
            let Some(auth) = env.auth.as_ref() else {
                continue;
            };
            let payload = auth.digest_encoding();
            for raw in auth.raw_blocks() {
                match raw.first() {
                    Some(0xd2) => {
                        let Ok(theirs) = CoseSign1::from_tagged_slice(raw) else {
                            assert!(
                                CoseBlock::decode_tagged(raw, cose::tag::SIGN1, "t").is_err()
                                    || cose::check_cose(raw, "t").is_err()
                            );
                            continue;
                        };
                        let Ok(CoseBlock::Sign1 {
                            headers, signature, ..
                        }) = CoseBlock::decode_tagged(raw, cose::tag::SIGN1, "t")
                        else {
                            panic!(
                                "{}: coset decodes a block the core does not",
                                path.display()
                            );
                        };
                        assert_eq!(signature, &theirs.signature[..]);
                        assert_eq!(headers.protected.kid, &theirs.protected.header.key_id[..]);
                        assert_eq!(headers.unprotected.kid, &theirs.unprotected.key_id[..]);
                        let mut detached = theirs.clone();
                        detached.payload = None;
                        assert_eq!(
                            cose::to_be_signed("Signature1", headers.protected_raw, None, payload),
                            detached.tbs_detached_data(payload, b"")
                        );
                        blocks += 1;
                    }
                    Some(0xd8) if raw.get(1) == Some(&98) => {
                        let Ok(theirs) = CoseSign::from_tagged_slice(raw) else {
                            continue;
                        };
                        let Ok(CoseBlock::Sign {
                            headers,
                            signatures,
                            ..
                        }) = CoseBlock::decode_tagged(raw, cose::tag::SIGN, "t")
                        else {
                            panic!(
                                "{}: coset decodes a block the core does not",
                                path.display()
                            );
                        };
                        assert_eq!(signatures.len(), theirs.signatures.len());
                        let mut detached = theirs.clone();
                        detached.payload = None;
                        for (ours, sig) in signatures.iter().zip(&theirs.signatures) {
                            assert_eq!(ours.signature, &sig.signature[..]);
                            assert_eq!(
                                cose::to_be_signed(
                                    "Signature",
                                    headers.protected_raw,
                                    Some(ours.headers.protected_raw),
                                    payload
                                ),
                                detached.tbs_detached_data(payload, b"", sig)
                            );
                        }
                        blocks += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(blocks >= 10, "only {blocks} blocks found under {root}");
}

/// RFC 9052 §3.1: `crit` belongs in the protected header. A public vector with `crit` added to
/// its unprotected header (which the signature does not cover, so the signature still
/// verifies) is refused, not authenticated.
#[test]
fn crit_in_the_unprotected_header_is_refused() {
    use coset::cbor::value::Value;
    use coset::{iana, RegisteredLabelWithPrivate};
    use suit_shared::manifest::Manifest;

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/suit-vectors");
    let bytes = std::fs::read(format!("{root}/manifest-draft37/example0.signed.suit")).unwrap();
    let anchor = suit_host::keys::load_trust_anchor(
        format!("{root}/keys/draft-es256-p256.pub.pem").as_ref(),
    )
    .unwrap();
    Manifest::authenticate(&bytes, std::slice::from_ref(&anchor)).unwrap();

    // envelope {2: bstr .cbor [digest, + bstr .cbor COSE_Sign1], ...}
    let mut envelope: Value = coset::cbor::de::from_reader(&bytes[..]).unwrap();
    let Value::Tag(_, inner) = &mut envelope else {
        panic!("the vector is a tagged envelope")
    };
    let Value::Map(members) = inner.as_mut() else {
        panic!("the envelope is a map")
    };
    let (_, wrapper) = members
        .iter_mut()
        .find(|(k, _)| *k == Value::Integer(2.into()))
        .unwrap();
    let Value::Bytes(wrapper_bytes) = wrapper else {
        panic!("the authentication wrapper is a bstr")
    };
    let mut blocks: Value = coset::cbor::de::from_reader(&wrapper_bytes[..]).unwrap();
    let Value::Array(items) = &mut blocks else {
        panic!("the authentication wrapper is an array")
    };
    let Value::Bytes(block) = &mut items[1] else {
        panic!("the block is a bstr")
    };
    let mut sign1 = CoseSign1::from_tagged_slice(block).unwrap();
    sign1.unprotected.crit = vec![RegisteredLabelWithPrivate::Assigned(
        iana::HeaderParameter::Alg,
    )];
    *block = sign1.to_tagged_vec().unwrap();
    let mut encoded = Vec::new();
    coset::cbor::ser::into_writer(&blocks, &mut encoded).unwrap();
    *wrapper_bytes = encoded;
    let mut forged = Vec::new();
    coset::cbor::ser::into_writer(&envelope, &mut forged).unwrap();

    let err = Manifest::authenticate(&forged, &[anchor]).unwrap_err();
    assert!(
        err.to_string()
            .contains("crit must be in the protected header"),
        "{err}"
    );
}

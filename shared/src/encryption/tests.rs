//! Known answers from draft-ietf-suit-firmware-encryption §6 (also in the public vectors,
//! which tests/encryption_vectors.rs reads from disk), chunking, and decoding rules.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::cbor::Writer;
use crate::error::Category;

fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const PLAINTEXT: &[u8] = b"This is a real firmware image.";
const CEK_GCM: &str = "15F785B5C931414411B4B71373A9C0F7";
const IV_GCM: &str = "F14AAB9D81D51F7AD943FE87";
const CIPHERTEXT_GCM: &str =
    "758C4B7BBAE2C4C1D462423E0F0DC3164FFA7B85BB94D4BD6D7ED26AB32FEB063385D4D3465927EC82CB5E198A59";
const WRAPPED_KW: &str = "75603FFC9518D794713C8CA8A115A7FB32565A6D59534D62";
const EPHEMERAL_X: &str = "73024F415AA51529A66CCEFD88F3F62A734492FF45F6AD37FD2888E73EAF19DA";
const EPHEMERAL_Y: &str = "4005B48A6FD091AA6ABFE3CFBEEDE88B347E521D43405FDBD7D2CFF0EBC21B26";
const WRAPPED_ECDH: &str = "A06B8E6550F308712B1DF044B21B7D11D9B22792F1DE0997";
const RECIPIENT_D: &str = "60FE6DD6D85D5740A5349B6F91267EEAC5BA81B8CB53EE249E4B4EB102C476B3";

/// How a test COSE_Encrypt is put together.
struct Spec {
    tag: u64,
    protected: Vec<u8>,
    unprotected: Vec<(i64, Vec<u8>)>,
    recipients: Vec<Vec<u8>>,
    ciphertext_nil: bool,
}

fn map_one(key: i64, value: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(1).i64(key).i64(value);
    w.into_bytes()
}

fn bstr(b: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(b);
    w.into_bytes()
}

fn kw_recipient(alg: i64, kid: Option<&[u8]>, wrapped: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(3).bytes(&[]);
    w.map(1 + usize::from(kid.is_some())).i64(1).i64(alg);
    if let Some(kid) = kid {
        w.i64(4).bytes(kid);
    }
    w.bytes(wrapped);
    w.into_bytes()
}

fn ecdh_recipient(crv: i64, x: &[u8], y: &[u8], kid: Option<&[u8]>, wrapped: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(3).bytes(&map_one(1, -29));
    w.map(1 + usize::from(kid.is_some()));
    w.i64(-1).map(4).i64(1).i64(2).i64(-1).i64(crv);
    w.i64(-2).bytes(x).i64(-3).bytes(y);
    if let Some(kid) = kid {
        w.i64(4).bytes(kid);
    }
    w.bytes(wrapped);
    w.into_bytes()
}

impl Spec {
    fn gcm(recipient: Vec<u8>) -> Self {
        Spec {
            tag: 96,
            protected: map_one(1, 1),
            unprotected: vec![(5, bstr(&hex(IV_GCM)))],
            recipients: vec![recipient],
            ciphertext_nil: true,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.tag(self.tag)
            .array(if self.tag == 96 { 4 } else { 3 })
            .bytes(&self.protected);
        w.map(self.unprotected.len());
        for (k, v) in &self.unprotected {
            w.i64(*k).raw(v);
        }
        if self.ciphertext_nil {
            w.null();
        } else {
            w.bytes(b"embedded");
        }
        if self.tag == 96 {
            w.array(self.recipients.len());
            for r in &self.recipients {
                w.raw(r);
            }
        }
        w.into_bytes()
    }
}

fn kek_a() -> RecipientKey {
    RecipientKey::Kek {
        kid: Some(b"kid-1".to_vec()),
        key: AesKey::from_slice(&[b'a'; 16]).unwrap(),
    }
}

fn ecdh_key() -> RecipientKey {
    RecipientKey::ecdh(
        crate::crypto::Curve::P256,
        &hex(RECIPIENT_D),
        Some(b"kid-2".to_vec()),
    )
    .unwrap()
}

fn decrypt_all(
    info: &EncryptionInfo<'_>,
    cek: &AesKey,
    ciphertext: &[u8],
    chunk: usize,
) -> Result<Vec<u8>> {
    let mut d = Decryptor::new(info, cek)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    for piece in ciphertext.chunks(chunk) {
        let n = d.update(piece, &mut buf)?;
        out.extend_from_slice(&buf[..n]);
    }
    d.finalize()?;
    Ok(out)
}

#[test]
fn a128kw_a128gcm_known_answer_in_every_chunk_size() {
    let encoded = Spec::gcm(kw_recipient(-3, Some(b"kid-1"), &hex(WRAPPED_KW))).encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    assert_eq!(info.content_alg, ContentAlg::A128Gcm);
    let cek = unwrap_cek(&info, &[kek_a()]).unwrap();
    assert_eq!(cek, AesKey::from_slice(&hex(CEK_GCM)).unwrap());
    let ciphertext = hex(CIPHERTEXT_GCM);
    for chunk in 1..=ciphertext.len() + 1 {
        assert_eq!(
            decrypt_all(&info, &cek, &ciphertext, chunk).unwrap(),
            PLAINTEXT,
            "chunk {chunk}"
        );
    }
}

#[test]
fn ecdh_es_p256_known_answer() {
    let recipient = ecdh_recipient(
        1,
        &hex(EPHEMERAL_X),
        &hex(EPHEMERAL_Y),
        Some(b"kid-2"),
        &hex(WRAPPED_ECDH),
    );
    let encoded = Spec::gcm(recipient).encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    // The KEK is listed first: it does not fit an ECDH recipient and is not tried.
    let cek = unwrap_cek(&info, &[kek_a(), ecdh_key()]).unwrap();
    assert_eq!(cek, AesKey::from_slice(&hex(CEK_GCM)).unwrap());
    assert_eq!(
        decrypt_all(&info, &cek, &hex(CIPHERTEXT_GCM), 7).unwrap(),
        PLAINTEXT
    );
}

#[test]
fn kdf_context_is_the_drafts() {
    // a128kw_kdf_context.diag: [-3, [nil,nil,nil], [nil,nil,nil], [128, << {1: -29} >>, 'SUIT Payload Encryption']]
    let expected = hex("84 22 83 f6 f6 f6 83 f6 f6 f6 83 18 80 44 a1 01 38 1c 57
         53 55 49 54 20 50 61 79 6c 6f 61 64 20 45 6e 63 72 79 70 74 69 6f 6e");
    assert_eq!(
        recipient::kdf_context(AesKwAlg::A128Kw, &map_one(1, -29)),
        expected
    );
}

#[test]
fn tampering_is_a_decryption_error() {
    let encoded = Spec::gcm(kw_recipient(-3, Some(b"kid-1"), &hex(WRAPPED_KW))).encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    let cek = unwrap_cek(&info, &[kek_a()]).unwrap();
    let good = hex(CIPHERTEXT_GCM);
    let mut cases: Vec<(&str, Vec<u8>, Error)> = Vec::new();
    for i in [0, 29, 30, 45] {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        cases.push(("bit flip", bad, Error::TagMismatch));
    }
    cases.push(("truncated by one", good[..45].to_vec(), Error::TagMismatch));
    cases.push((
        "truncated below the tag",
        good[..15].to_vec(),
        Error::CiphertextTruncated,
    ));
    cases.push(("empty", Vec::new(), Error::CiphertextTruncated));
    let mut longer = good.clone();
    longer.push(0);
    cases.push(("extended", longer, Error::TagMismatch));
    for (what, bytes, expected) in cases {
        for chunk in [1, 15, 16, 17, 64] {
            let err = decrypt_all(&info, &cek, &bytes, chunk).unwrap_err();
            assert_eq!(err, expected, "{what}, chunk {chunk}");
            assert_eq!(err.category(), Category::Decryption);
        }
    }
}

#[test]
fn key_selection_by_kind_and_kid() {
    let encoded = Spec::gcm(kw_recipient(-3, Some(b"kid-1"), &hex(WRAPPED_KW))).encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    // Unknown kid: nothing is tried.
    let other_kid = RecipientKey::Kek {
        kid: Some(b"kid-9".to_vec()),
        key: AesKey::from_slice(&[b'a'; 16]).unwrap(),
    };
    let err = unwrap_cek(&info, &[other_kid]).unwrap_err();
    assert!(matches!(err, Error::NoDecryptionKey(_)), "{err}");
    assert!(err.to_string().contains("'kid-1'"), "{err}");
    // Wrong KEK: the integrity check of the unwrap fails.
    let wrong = RecipientKey::Kek {
        kid: None,
        key: AesKey::from_slice(&[b'b'; 16]).unwrap(),
    };
    assert_eq!(
        unwrap_cek(&info, &[wrong]).unwrap_err(),
        Error::KeyUnwrapFailed
    );
    // A 32-byte KEK does not fit A128KW; the right key later in the list is found.
    let big = RecipientKey::Kek {
        kid: None,
        key: AesKey::from_slice(&[b'a'; 32]).unwrap(),
    };
    assert!(unwrap_cek(&info, &[big, kek_a()]).is_ok());
    // No keys at all.
    let err = unwrap_cek(&info, &[]).unwrap_err();
    assert_eq!(err.category(), Category::Decryption);
    // The message names kinds and kids but never key material.
    let text = alloc::format!("{:?} {err}", kek_a());
    assert!(!text.contains("aaaa") && !text.contains("6161"), "{text}");
}

#[test]
fn decoding_rules() {
    let recipient = || kw_recipient(-3, None, &hex(WRAPPED_KW));
    let decode_err = |spec: Spec| EncryptionInfo::decode(&spec.encode()).unwrap_err();

    let mut s = Spec::gcm(recipient());
    s.unprotected = vec![(5, bstr(&[0; 16]))];
    let e = decode_err(s);
    assert!(matches!(e, Error::InvalidEncryptionInfo(_)), "{e}");
    assert_eq!(e.category(), Category::Decryption);

    let mut s = Spec::gcm(recipient());
    s.protected = map_one(1, 24); // ChaCha20/Poly1305
    let e = decode_err(s);
    assert!(
        matches!(e, Error::UnsupportedEncryptionAlgorithm { id: 24, .. }),
        "{e}"
    );
    assert_eq!(e.category(), Category::Policy);

    let s = Spec::gcm(kw_recipient(-4, None, &hex(WRAPPED_KW))); // A192KW
    let e = decode_err(s);
    assert!(
        matches!(e, Error::UnsupportedEncryptionAlgorithm { id: -4, .. }),
        "{e}"
    );

    // An unsupported recipient beside a supported one is skipped.
    let mut s = Spec::gcm(kw_recipient(-4, None, &hex(WRAPPED_KW)));
    s.recipients.push(recipient());
    let encoded = s.encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    assert!(matches!(&info.recipients, Recipients::Wrapped(r) if r.len() == 1));

    let mut s = Spec::gcm(recipient());
    s.ciphertext_nil = false;
    assert_eq!(decode_err(s).category(), Category::Malformed);

    let mut s = Spec::gcm(recipient());
    s.tag = 98;
    assert_eq!(decode_err(s).category(), Category::Malformed);

    let mut s = Spec::gcm(recipient());
    s.unprotected.push((2, bstr(b"x")));
    assert_eq!(decode_err(s).category(), Category::Policy);

    // alg in both headers.
    let mut s = Spec::gcm(recipient());
    s.unprotected.push((1, vec![0x01]));
    assert_eq!(decode_err(s).category(), Category::Malformed);

    // Wrapped key of the wrong length for A128GCM.
    let s = Spec::gcm(kw_recipient(-3, None, &[0; 40]));
    assert!(matches!(decode_err(s), Error::InvalidEncryptionInfo(_)));

    // Ephemeral key not on the curve, and on an unsupported curve.
    let s = Spec::gcm(ecdh_recipient(
        1,
        &[1; 32],
        &[2; 32],
        None,
        &hex(WRAPPED_ECDH),
    ));
    assert!(matches!(decode_err(s), Error::InvalidEncryptionInfo(_)));
    let s = Spec::gcm(ecdh_recipient(
        3,
        &[1; 66],
        &[2; 66],
        None,
        &hex(WRAPPED_ECDH),
    ));
    assert!(matches!(
        decode_err(s),
        Error::UnsupportedEncryptionAlgorithm { id: 3, .. }
    ));

    // AES-CTR with a protected header.
    let mut s = Spec::gcm(recipient());
    s.protected = map_one(1, -65534);
    s.unprotected = vec![(5, bstr(&[0; 16]))];
    assert!(matches!(decode_err(s), Error::InvalidEncryptionInfo(_)));
}

#[test]
fn encrypt0_uses_a_preshared_content_key() {
    let mut s = Spec::gcm(Vec::new());
    s.tag = 16;
    s.unprotected.push((4, bstr(b"psk")));
    let encoded = s.encode();
    let info = EncryptionInfo::decode(&encoded).unwrap();
    assert_eq!(info.recipients, Recipients::Direct { kid: Some(b"psk") });
    let direct = RecipientKey::Direct {
        kid: Some(b"psk".to_vec()),
        key: AesKey::from_slice(&hex(CEK_GCM)).unwrap(),
    };
    let cek = unwrap_cek(&info, &[kek_a(), direct]).unwrap();
    // The AAD context differs ("Encrypt0"), so the COSE_Encrypt ciphertext does not verify.
    assert_eq!(
        decrypt_all(&info, &cek, &hex(CIPHERTEXT_GCM), 16).unwrap_err(),
        Error::TagMismatch
    );
    assert!(matches!(
        unwrap_cek(&info, &[kek_a()]).unwrap_err(),
        Error::NoDecryptionKey(_)
    ));
}

#[test]
fn secrets_stay_out_of_debug() {
    let key = AesKey::from_slice(&[0x42; 32]).unwrap();
    assert_eq!(alloc::format!("{key:?}"), "AesKey(<32 bytes, redacted>)");
    let p = ecdh_key();
    let text = alloc::format!("{p:?}");
    assert_eq!(
        text,
        "RecipientKey(P-256 ECDH key, kid 'kid-2', <redacted>)"
    );
    assert!(AesKey::from_slice(&[0; 24]).is_err());
}

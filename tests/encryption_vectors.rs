//! Every encryption vector of `../shared/suit-vectors` through the library: the draft's four
//! COSE_Encrypt examples, libcsuit's encrypted images and configs, and an independent P-384
//! vector of our profile made with Python `cryptography` (tests/fixtures); then the complete
//! encrypted manifests through the processor and the simulated device. `suit-tool` gets the
//! same vectors in host/tests/encryption.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use suit_host::tool::crypt::{load_kek, load_recipient_key};
use suit_host::tool::SimulatedDevice;
use suit_shared::auth::TrustAnchor;
use suit_shared::crypto::Curve;
use suit_shared::encryption::{
    unwrap_cek, ContentAlg, Decryptor, EncryptionInfo, KeyDistribution, RecipientKey, Recipients,
};
use suit_shared::error::Uuid;
use suit_shared::manifest::Manifest;
use suit_shared::processor::{DeviceIdentity, Processor, Section};
use suit_shared::{Category, Error};
use suit_tests::vectors;

const FIRMWARE: &[u8] = b"This is a real firmware image.";

/// Which device key opens a vector.
#[derive(Clone, Copy, Debug)]
enum Key {
    Kek,
    EcdhP256,
}

/// (encryption info, ciphertext, key, expected plaintext file or None for [`FIRMWARE`]).
const PAIRS: [(&str, &str, Key, Option<&str>); 8] = [
    (
        "encryption/suit-encryption-info-aes-kw-aes-gcm.cose",
        "encryption/encrypted-payload-aes-kw-aes-gcm.bin",
        Key::Kek,
        None,
    ),
    (
        "encryption/suit-encryption-info-aes-kw-aes-ctr.cose",
        "encryption/encrypted-payload-aes-kw-aes-ctr.bin",
        Key::Kek,
        None,
    ),
    (
        "encryption/suit-encryption-info-es-ecdh-aes-gcm.cose",
        "encryption/encrypted-payload-es-ecdh-aes-gcm.bin",
        Key::EcdhP256,
        None,
    ),
    (
        "encryption/suit-encryption-info-es-ecdh-aes-ctr.cose",
        "encryption/encrypted-payload-es-ecdh-aes-ctr.bin",
        Key::EcdhP256,
        None,
    ),
    (
        "libcsuit/encryption_info_aes.cose",
        "libcsuit/encrypted_image_aes.bin",
        Key::Kek,
        Some("libcsuit/raw_image.bin"),
    ),
    (
        "libcsuit/encryption_info_esdh.cose",
        "libcsuit/encrypted_image_esdh.bin",
        Key::EcdhP256,
        Some("libcsuit/raw_image.bin"),
    ),
    (
        "libcsuit/encryption_info_config_aes.cose",
        "libcsuit/encrypted_config_aes.bin",
        Key::Kek,
        None,
    ),
    (
        "libcsuit/encryption_info_config_esdh.cose",
        "libcsuit/encrypted_config_esdh.bin",
        Key::EcdhP256,
        None,
    ),
];

/// libcsuit's encrypted config (README: a 61-byte JSON document, the same for both).
const CONFIG_PREFIX: &[u8] = b"{\"name\":\"FOO Bar\"";

fn device_key(key: Key) -> RecipientKey {
    match key {
        Key::Kek => RecipientKey::Kek {
            kid: None,
            key: load_kek(&vectors::path("keys/a128kw-kek-16xa.bin")).unwrap(),
        },
        Key::EcdhP256 => {
            load_recipient_key(&vectors::path("keys/enc-ecdh-es-recipient-p256.priv.pem")).unwrap()
        }
    }
}

/// The P-256 recipient key from its JWK-style JSON (d), as the draft prints it.
fn ecdh_key_from_json() -> RecipientKey {
    let text = String::from_utf8(vectors::read("keys/enc-ecdh-es-recipient-p256.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d = json["d"].as_str().unwrap();
    let bytes: Vec<u8> = (0..d.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&d[i..i + 2], 16).unwrap())
        .collect();
    RecipientKey::ecdh(
        Curve::P256,
        &bytes,
        Some(json["kid"].as_str().unwrap().as_bytes().to_vec()),
    )
    .unwrap()
}

fn decrypt(
    info: &EncryptionInfo<'_>,
    keys: &[RecipientKey],
    ciphertext: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, Error> {
    let mut d = Decryptor::new(info, unwrap_cek(info, keys)?)?;
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
fn every_encryption_vector_decrypts_to_its_plaintext() {
    // The table covers every encryption info the index lists.
    for e in vectors::index() {
        if e["kind"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SUIT_Encryption_Info")
        {
            let file = e["file"].as_str().unwrap();
            assert!(PAIRS.iter().any(|p| p.0 == file), "{file} is not tested");
        }
    }
    for (info_file, ciphertext_file, key, expected) in PAIRS {
        let info_bytes = vectors::read(info_file);
        let info =
            EncryptionInfo::decode(&info_bytes).unwrap_or_else(|e| panic!("{info_file}: {e}"));
        let ciphertext = vectors::read(ciphertext_file);
        let plaintext = decrypt(&info, &[device_key(key)], &ciphertext, 7)
            .unwrap_or_else(|e| panic!("{info_file}: {e}"));
        match expected {
            Some(file) => assert_eq!(plaintext, vectors::read(file), "{info_file}"),
            None if info_file.contains("config") => {
                assert_eq!(plaintext.len(), 61, "{info_file}");
                assert!(plaintext.starts_with(CONFIG_PREFIX), "{info_file}");
            }
            None => assert_eq!(plaintext, FIRMWARE, "{info_file}"),
        }
        // Every chunk size around the block and tag length gives the same plaintext.
        for chunk in [1, 2, 15, 16, 17, 31, 32, 33, 45, 46, 47, 4096] {
            assert_eq!(
                decrypt(&info, &[device_key(key)], &ciphertext, chunk).unwrap(),
                plaintext
            );
        }
        // AES-GCM vectors fail on any altered byte; AES-CTR cannot tell (its digest must).
        let mut altered = ciphertext.clone();
        altered[0] ^= 0x80;
        let result = decrypt(&info, &[device_key(key)], &altered, 16);
        if info.content_alg == ContentAlg::A128Gcm {
            assert_eq!(result.unwrap_err(), Error::TagMismatch, "{info_file}");
        } else {
            assert_ne!(result.unwrap(), plaintext, "{info_file}");
        }
    }
}

#[test]
fn draft_keys_as_the_draft_prints_them() {
    // The JSON key carries kid 'kid-2', which the manifest's recipient names.
    let info_bytes = vectors::read("encryption/suit-encryption-info-es-ecdh-aes-gcm.cose");
    let info = EncryptionInfo::decode(&info_bytes).unwrap();
    let ciphertext = vectors::read("encryption/encrypted-payload-es-ecdh-aes-gcm.bin");
    assert_eq!(
        decrypt(&info, &[ecdh_key_from_json()], &ciphertext, 64).unwrap(),
        FIRMWARE
    );
    // The standalone vector names no kid; libcsuit's names 'kid-2'.
    let Recipients::Wrapped(r) = &info.recipients else {
        panic!("COSE_Encrypt expected")
    };
    assert_eq!(r[0].kid, None);
    let libcsuit = vectors::read("libcsuit/encryption_info_esdh.cose");
    let info = EncryptionInfo::decode(&libcsuit).unwrap();
    let Recipients::Wrapped(r) = &info.recipients else {
        panic!("COSE_Encrypt expected")
    };
    assert_eq!(r[0].kid, Some(&b"kid-2"[..]));
    // A device whose key has another kid does not try it.
    let mut other = ecdh_key_from_json();
    if let RecipientKey::Ecdh { kid, .. } = &mut other {
        *kid = Some(b"kid-3".to_vec());
    }
    let err = unwrap_cek(&info, &[other]).unwrap_err();
    assert!(matches!(err, Error::NoDecryptionKey(_)), "{err}");
    assert_eq!(err.category(), Category::Decryption);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn p384_ecdh_es_a256kw_a256gcm_from_an_independent_implementation() {
    let info_bytes = std::fs::read(fixture("p384-a256kw-a256gcm.cose")).unwrap();
    let info = EncryptionInfo::decode(&info_bytes).unwrap();
    assert_eq!(info.content_alg, ContentAlg::A256Gcm);
    let Recipients::Wrapped(r) = &info.recipients else {
        panic!("COSE_Encrypt expected")
    };
    assert!(matches!(r[0].distribution, KeyDistribution::EcdhEs { .. }));
    assert_eq!(r[0].distribution.cose_id(), -31);
    let key = load_recipient_key(&fixture("p384-a256kw-a256gcm.priv.pem")).unwrap();
    let ciphertext = std::fs::read(fixture("p384-a256kw-a256gcm.bin")).unwrap();
    let expected = std::fs::read(fixture("p384-a256kw-a256gcm.plaintext")).unwrap();
    for chunk in [1, 15, 16, 17, 1000, 1 << 20] {
        assert_eq!(
            decrypt(&info, std::slice::from_ref(&key), &ciphertext, chunk).unwrap(),
            expected
        );
    }
    // A P-256 key cannot open it; a fresh P-384 key fails the unwrap.
    let err = unwrap_cek(&info, &[device_key(Key::EcdhP256)]).unwrap_err();
    assert!(matches!(err, Error::NoDecryptionKey(_)), "{err}");
    let stranger = RecipientKey::ecdh(Curve::P384, &[7u8; 48], None).unwrap();
    assert_eq!(
        unwrap_cek(&info, &[stranger]).unwrap_err(),
        Error::KeyUnwrapFailed
    );
}

/// Runs the update procedure of an encrypted manifest on a simulated device; returns the
/// content of component 0.
fn process(
    file: &str,
    anchors: &[TrustAnchor],
    images: Images<'_>,
    keys: Vec<RecipientKey>,
) -> Result<Vec<u8>, Error> {
    let bytes = vectors::read(file);
    let authentic = Manifest::authenticate(&bytes, anchors)?;
    let images: BTreeMap<usize, PathBuf> =
        images.iter().map(|(i, f)| (*i, vectors::path(f))).collect();
    let identity = DeviceIdentity {
        vendor_id: Uuid([0; 16]),
        class_id: Uuid([0; 16]),
        device_id: None,
    };
    let mut device = SimulatedDevice::new(identity, 0, images).with_decryption_keys(keys);
    Processor::new(&authentic, &mut device).run(&Section::UPDATE)?;
    let out = std::env::temp_dir().join(format!(
        "suit-enc-vectors-{}-{}",
        std::process::id(),
        file.replace('/', "_")
    ));
    device.export(0, &out)?;
    let content = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    Ok(content)
}

fn hmac() -> TrustAnchor {
    TrustAnchor::Hmac256 {
        key: suit_host::keys::load_secret(&vectors::path("keys/hmac256-key-32xa.bin")).unwrap(),
        kid: None,
    }
}

fn es256() -> TrustAnchor {
    suit_host::keys::load_trust_anchor(&vectors::path("keys/draft-es256-p256.pub.pem")).unwrap()
}

/// Images the simulated device starts with: (component index, vector file).
type Images<'a> = &'a [(usize, &'a str)];

#[test]
fn encrypted_manifests_process_to_the_plaintext() {
    let gcm_payload = "encryption/encrypted-payload-aes-kw-aes-gcm.bin";
    let cases: [(&str, TrustAnchor, Images<'_>, Key); 8] = [
        (
            "encryption/suit-manifest-aes-kw-content.suit",
            hmac(),
            &[],
            Key::Kek,
        ),
        (
            "encryption/suit-manifest-aes-kw.suit",
            hmac(),
            &[(1, gcm_payload)],
            Key::Kek,
        ),
        (
            "encryption/suit-manifest-aes-kw-slot.suit",
            hmac(),
            &[(1, gcm_payload)],
            Key::Kek,
        ),
        (
            "encryption/suit-manifest-es-ecdh-content.suit",
            es256(),
            &[],
            Key::EcdhP256,
        ),
        ("libcsuit/suit_manifest_expAW.suit", hmac(), &[], Key::Kek),
        (
            "libcsuit/suit_manifest_expAF.suit",
            hmac(),
            &[(1, gcm_payload)],
            Key::Kek,
        ),
        (
            "libcsuit/suit_manifest_expAFS.suit",
            hmac(),
            &[(1, gcm_payload)],
            Key::Kek,
        ),
        (
            "libcsuit/suit_manifest_expEW.suit",
            es256(),
            &[],
            Key::EcdhP256,
        ),
    ];
    for (file, anchor, images, key) in cases {
        let anchors = [anchor];
        let content = process(file, &anchors, images, vec![device_key(key)])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(content, FIRMWARE, "{file}");
        // Without the key: refused as a decryption failure, never as something else.
        let err = process(file, &anchors, images, vec![]).unwrap_err();
        assert_eq!(err.category(), Category::Decryption, "{file}: {err}");
        // With the other kind of key only: the same.
        let other = match key {
            Key::Kek => Key::EcdhP256,
            Key::EcdhP256 => Key::Kek,
        };
        let err = process(file, &anchors, images, vec![device_key(other)]).unwrap_err();
        assert!(matches!(err, Error::NoDecryptionKey(_)), "{file}: {err}");
    }
    // A tampered fetched payload: the tag check fails and component 0 stays empty.
    let dir = std::env::temp_dir().join(format!("suit-enc-tamper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bad = vectors::read(gcm_payload);
    bad[3] ^= 1;
    let bad_path = dir.join("bad.bin");
    std::fs::write(&bad_path, &bad).unwrap();
    let bytes = vectors::read("encryption/suit-manifest-aes-kw.suit");
    let anchors = [hmac()];
    let authentic = Manifest::authenticate(&bytes, &anchors).unwrap();
    let identity = DeviceIdentity {
        vendor_id: Uuid([0; 16]),
        class_id: Uuid([0; 16]),
        device_id: None,
    };
    let mut device = SimulatedDevice::new(identity, 0, [(1, bad_path)].into_iter().collect())
        .with_decryption_keys(vec![device_key(Key::Kek)]);
    let err = Processor::new(&authentic, &mut device)
        .run(&Section::UPDATE)
        .unwrap_err();
    assert_eq!(err, Error::TagMismatch);
    assert!(
        device.export(0, &dir.join("out")).is_err(),
        "component 0 was written"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn manifests_with_dependencies_are_refused_as_unsupported() {
    let dependency = suit_host::keys::load_trust_anchor(&vectors::path(
        "keys/enc-dependency-es256-p256.pub.pem",
    ))
    .unwrap();
    for file in [
        "encryption/suit-manifest-es-ecdh-dependency.suit",
        "libcsuit/suit_manifest_expED.suit",
        "libcsuit/suit_manifest_expD.suit",
    ] {
        let err = process(
            file,
            &[es256(), dependency.clone()],
            &[],
            vec![device_key(Key::EcdhP256)],
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::DependenciesNotSupported(_)),
            "{file}: {err}"
        );
        assert_eq!(err.category(), Category::Policy);
    }
}

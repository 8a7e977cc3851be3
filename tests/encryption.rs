//! Payload encryption through the library: round trips of every supported combination
//! (A128KW, A256KW, ECDH-ES+A128KW, ECDH-ES+A256KW on P-256 and P-384, × A128GCM, A256GCM) with
//! chunks of every size around the block and tag length, randomised splits, and tampering —
//! each rejected with category `decryption` (or `policy` for an unsupported algorithm).

use suit_host::tool::crypt::OsRng;
use suit_shared::crypto::Curve;
use suit_shared::encryption::{
    unwrap_cek, AesKey, AesKwAlg, ContentAlg, Decryptor, EncryptionInfo, Encryptor, RecipientKey,
    RecipientPublicKey,
};
use suit_shared::{Category, Error};

/// A device key and the public counterpart to encrypt for.
struct Pair {
    name: &'static str,
    device: RecipientKey,
    public: Public,
}

enum Public {
    Kek(AesKey),
    P256(p256::PublicKey, AesKwAlg),
    P384(p384::PublicKey, AesKwAlg),
}

impl Pair {
    fn recipient(&self) -> RecipientPublicKey<'_> {
        match &self.public {
            Public::Kek(k) => RecipientPublicKey::Kek(k),
            Public::P256(key, wrap) => RecipientPublicKey::P256 { key, wrap: *wrap },
            Public::P384(key, wrap) => RecipientPublicKey::P384 { key, wrap: *wrap },
        }
    }
}

/// Deterministic test bytes (xorshift); not random in any cryptographic sense.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn p256_secret(seed: u8) -> p256::SecretKey {
    p256::SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn p384_secret(seed: u8) -> p384::SecretKey {
    p384::SecretKey::from_slice(&[seed; 48]).unwrap()
}

fn pairs() -> Vec<Pair> {
    let kek16 = [0x16; 16];
    let kek32 = [0x32; 32];
    let mut v = vec![
        Pair {
            name: "A128KW",
            device: RecipientKey::Kek {
                kid: Some(b"fleet-16".to_vec()),
                key: AesKey::from_slice(&kek16).unwrap(),
            },
            public: Public::Kek(AesKey::from_slice(&kek16).unwrap()),
        },
        Pair {
            name: "A256KW",
            device: RecipientKey::Kek {
                kid: None,
                key: AesKey::from_slice(&kek32).unwrap(),
            },
            public: Public::Kek(AesKey::from_slice(&kek32).unwrap()),
        },
    ];
    for (wrap, name256, name384) in [
        (
            AesKwAlg::A128Kw,
            "P-256 ECDH-ES+A128KW",
            "P-384 ECDH-ES+A128KW",
        ),
        (
            AesKwAlg::A256Kw,
            "P-256 ECDH-ES+A256KW",
            "P-384 ECDH-ES+A256KW",
        ),
    ] {
        v.push(Pair {
            name: name256,
            device: RecipientKey::ecdh(Curve::P256, &p256_secret(3).to_bytes(), None).unwrap(),
            public: Public::P256(p256_secret(3).public_key(), wrap),
        });
        v.push(Pair {
            name: name384,
            device: RecipientKey::ecdh(
                Curve::P384,
                &p384_secret(7).to_bytes(),
                Some(b"device-7".to_vec()),
            )
            .unwrap(),
            public: Public::P384(p384_secret(7).public_key(), wrap),
        });
    }
    v
}

/// Encrypts `plaintext` in chunks of `chunk`; returns (encryption info, ciphertext || tag).
fn seal(pair: &Pair, alg: ContentAlg, plaintext: &[u8], chunk: usize) -> (Vec<u8>, Vec<u8>) {
    let kid = match &pair.device {
        RecipientKey::Kek { kid, .. } | RecipientKey::Ecdh { kid, .. } => kid.clone(),
        _ => None,
    };
    let (mut enc, info) =
        Encryptor::for_recipient(alg, &pair.recipient(), kid.as_deref(), &mut OsRng).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    for piece in plaintext.chunks(chunk.max(1)) {
        let n = enc.update(piece, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out.extend_from_slice(&enc.finalize());
    (info, out)
}

/// Decrypts with splits given by `sizes` (cycled).
fn open(
    info: &[u8],
    keys: &[RecipientKey],
    ciphertext: &[u8],
    sizes: &[usize],
) -> Result<Vec<u8>, Error> {
    let info = EncryptionInfo::decode(info)?;
    let cek = unwrap_cek(&info, keys)?;
    open_with(&info, &cek, ciphertext, sizes)
}

/// Decrypts with a known content key, in updates of `sizes` bytes (cycled).
fn open_with(
    info: &EncryptionInfo<'_>,
    cek: &AesKey,
    ciphertext: &[u8],
    sizes: &[usize],
) -> Result<Vec<u8>, Error> {
    let mut d = Decryptor::new(info, cek)?;
    assert!(d.authenticates());
    let mut out = Vec::new();
    let mut rest = ciphertext;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        // An output exactly as long as the input is enough.
        let mut buf = vec![0u8; n];
        let m = d.update(&rest[..n], &mut buf)?;
        assert!(m <= n);
        out.extend_from_slice(&buf[..m]);
        rest = &rest[n..];
    }
    d.finalize()?;
    Ok(out)
}

#[test]
fn round_trips_every_combination_and_chunk_size() {
    let mut bytes = Bytes(0x5eed);
    let payloads: Vec<Vec<u8>> = [0, 1, 15, 16, 17, 32, 33, 1000, 70_001]
        .iter()
        .map(|&n| bytes.fill(n))
        .collect();
    for pair in pairs() {
        for alg in [ContentAlg::A128Gcm, ContentAlg::A256Gcm] {
            // Chunking does not depend on the key distribution: the (slow, in debug builds)
            // ECDH pairs get three of the payload sizes.
            let ecdh = !matches!(pair.public, Public::Kek(_));
            for (p, plaintext) in payloads.iter().enumerate() {
                if ecdh && ![0, 17, 1000].contains(&plaintext.len()) {
                    continue;
                }
                let (info, ciphertext) = seal(&pair, alg, plaintext, [1, 16, 4096][p % 3]);
                assert_eq!(ciphertext.len(), plaintext.len() + 16);
                let decoded = EncryptionInfo::decode(&info).unwrap();
                assert_eq!(decoded.content_alg, alg);
                let cek = unwrap_cek(&decoded, std::slice::from_ref(&pair.device)).unwrap();
                for sizes in [
                    &[1][..],
                    &[15],
                    &[16],
                    &[17],
                    &[7, 33],
                    &[4097],
                    &[usize::MAX],
                ] {
                    let got = open_with(&decoded, &cek, &ciphertext, sizes).unwrap_or_else(|e| {
                        panic!(
                            "{} {alg:?} {} bytes {sizes:?}: {e}",
                            pair.name,
                            plaintext.len()
                        )
                    });
                    assert_eq!(&got, plaintext, "{} {alg:?} {sizes:?}", pair.name);
                }
            }
        }
    }
}

#[test]
fn our_profile_p384_ecdh_es_a256kw_a256gcm() {
    let pair = pairs()
        .into_iter()
        .find(|p| p.name == "P-384 ECDH-ES+A256KW")
        .unwrap();
    let plaintext = Bytes(384).fill(3 * 65536 + 5);
    let (info, ciphertext) = seal(&pair, ContentAlg::A256Gcm, &plaintext, 65536);
    // Fresh content key and IV each time: the same plaintext never gives the same ciphertext.
    let (info2, ciphertext2) = seal(&pair, ContentAlg::A256Gcm, &plaintext, 65536);
    assert_ne!(info, info2);
    assert_ne!(ciphertext, ciphertext2);
    let decoded = EncryptionInfo::decode(&info).unwrap();
    let suit_shared::encryption::Recipients::Wrapped(r) = &decoded.recipients else {
        panic!("COSE_Encrypt expected")
    };
    assert_eq!(r[0].distribution.cose_id(), -31);
    assert_eq!(r[0].kid, Some(&b"device-7"[..]));
    for sizes in [&[1][..], &[15], &[16], &[17], &[3, 5, 7, 11, 13], &[65536]] {
        assert_eq!(
            open(
                &info,
                std::slice::from_ref(&pair.device),
                &ciphertext,
                sizes
            )
            .unwrap(),
            plaintext
        );
    }
}

#[test]
fn randomised_splits_agree() {
    let pair = pairs().remove(1);
    let mut rng = Bytes(0xC0FFEE);
    for case in 0..200 {
        let len = rng.below(300);
        let plaintext = rng.fill(len);
        let (info, ciphertext) = seal(&pair, ContentAlg::A256Gcm, &plaintext, 1 + rng.below(40));
        let sizes: Vec<usize> = (0..1 + rng.below(5)).map(|_| rng.below(40)).collect();
        // A zero-length update is legal and changes nothing.
        let got = open(
            &info,
            std::slice::from_ref(&pair.device),
            &ciphertext,
            &sizes.iter().map(|&s| s.max(1)).collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!(got, plaintext, "case {case} sizes {sizes:?}");
        if !ciphertext.is_empty() {
            let mut bad = ciphertext.clone();
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
            let err = open(
                &info,
                std::slice::from_ref(&pair.device),
                &bad,
                &[1 + rng.below(20)],
            )
            .unwrap_err();
            assert_eq!(err, Error::TagMismatch, "case {case}: flip at {at}");
        }
    }
}

fn assert_decryption(result: Result<Vec<u8>, Error>, what: &str) -> Error {
    let err = result.expect_err(what);
    assert_eq!(err.category(), Category::Decryption, "{what}: {err}");
    err
}

#[test]
fn tampering_and_wrong_keys_are_rejected() {
    let all = pairs();
    let kek = &all[0];
    let p384 = all
        .iter()
        .find(|p| p.name == "P-384 ECDH-ES+A256KW")
        .unwrap();
    let plaintext = Bytes(7).fill(1000);
    let (info, ct) = seal(p384, ContentAlg::A256Gcm, &plaintext, 100);
    let keys = std::slice::from_ref(&p384.device);
    let whole = [usize::MAX];
    let chunked = [17];
    for sizes in [&whole[..], &chunked] {
        for at in [0, 500, 999, 1000, 1015] {
            let mut bad = ct.clone();
            bad[at] ^= 0x40;
            let what = if at >= 1000 {
                "tag bit flip"
            } else {
                "ciphertext bit flip"
            };
            assert_eq!(
                assert_decryption(open(&info, keys, &bad, sizes), what),
                Error::TagMismatch
            );
        }
        let err = assert_decryption(
            open(&info, keys, &ct[..ct.len() - 1], sizes),
            "truncated by one",
        );
        assert_eq!(err, Error::TagMismatch);
        assert_decryption(open(&info, keys, &ct[..1000], sizes), "tag cut off");
        let err = assert_decryption(open(&info, keys, &ct[..10], sizes), "shorter than a tag");
        assert_eq!(err, Error::CiphertextTruncated);
        let mut longer = ct.clone();
        longer.extend_from_slice(&[0; 16]);
        assert_eq!(
            assert_decryption(open(&info, keys, &longer, sizes), "extended"),
            Error::TagMismatch
        );
    }
    // Wrong recipient key of the right kind and kid: the unwrap's integrity check fails.
    let wrong = RecipientKey::ecdh(
        Curve::P384,
        &p384_secret(8).to_bytes(),
        Some(b"device-7".to_vec()),
    )
    .unwrap();
    let err = assert_decryption(open(&info, &[wrong], &ct, &whole), "wrong recipient key");
    assert_eq!(err, Error::KeyUnwrapFailed);
    // Unknown kid: the key is not even tried.
    let other_kid = RecipientKey::ecdh(
        Curve::P384,
        &p384_secret(7).to_bytes(),
        Some(b"device-8".to_vec()),
    )
    .unwrap();
    let err = assert_decryption(open(&info, &[other_kid], &ct, &whole), "unknown kid");
    assert!(matches!(err, Error::NoDecryptionKey(_)), "{err}");
    // Wrong KEK.
    let (kinfo, kct) = seal(kek, ContentAlg::A128Gcm, &plaintext, 100);
    let wrong_kek = RecipientKey::Kek {
        kid: None,
        key: AesKey::from_slice(&[0x17; 16]).unwrap(),
    };
    let err = assert_decryption(open(&kinfo, &[wrong_kek], &kct, &whole), "wrong KEK");
    assert_eq!(err, Error::KeyUnwrapFailed);
    // Another payload's encryption info: another content key, the tag fails.
    let (info2, _) = seal(p384, ContentAlg::A256Gcm, &plaintext, 100);
    assert_eq!(
        assert_decryption(open(&info2, keys, &ct, &whole), "swapped info"),
        Error::TagMismatch
    );

    // Surgery on our own encoding: 0xd8 0x60 0x84 0x43 {1: alg} 0xa1 0x05 0x4c IV(12) ...
    assert_eq!(
        &info[..10],
        &[0xd8, 0x60, 0x84, 0x43, 0xa1, 0x01, 0x03, 0xa1, 0x05, 0x4c]
    );
    // An altered IV: the tag fails.
    let mut bad_iv = info.clone();
    bad_iv[10] ^= 1;
    assert_eq!(
        assert_decryption(open(&bad_iv, keys, &ct, &whole), "altered IV"),
        Error::TagMismatch
    );
    // An IV of the wrong length (16 bytes for AES-GCM).
    let mut long_iv = info[..9].to_vec();
    long_iv.push(0x50);
    long_iv.extend_from_slice(&info[10..22]);
    long_iv.extend_from_slice(&[0; 4]);
    long_iv.extend_from_slice(&info[22..]);
    let err = assert_decryption(open(&long_iv, keys, &ct, &whole), "IV of 16 bytes");
    assert!(matches!(err, Error::InvalidEncryptionInfo(_)), "{err}");
    // An unsupported content algorithm (A192GCM, 2): refused as policy, documented.
    let mut a192 = info.clone();
    a192[6] = 0x02;
    let err = open(&a192, keys, &ct, &whole).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedEncryptionAlgorithm { id: 2, .. }),
        "{err}"
    );
    assert_eq!(err.category(), Category::Policy);
    assert!(
        err.to_string().contains("A256GCM"),
        "the message lists what is supported: {err}"
    );
    // The algorithm switched to A128GCM: the content key no longer fits.
    let mut a128 = info.clone();
    a128[6] = 0x01;
    assert_decryption(open(&a128, keys, &ct, &whole), "algorithm switched");
}

#[test]
fn decryptor_contract() {
    let pair = pairs().remove(0);
    let (info, ct) = seal(&pair, ContentAlg::A128Gcm, b"0123456789abcdef0123", 5);
    let decoded = EncryptionInfo::decode(&info).unwrap();
    let cek = unwrap_cek(&decoded, std::slice::from_ref(&pair.device)).unwrap();
    // By reference (the key stays usable) and by value.
    let mut d = Decryptor::new(&decoded, &cek).unwrap();
    // Output shorter than the input is refused without consuming anything.
    let err = d.update(&ct, &mut [0u8; 4]).unwrap_err();
    assert_eq!(err.category(), Category::Malformed);
    let mut d = Decryptor::new(&decoded, cek).unwrap();
    let mut out = vec![0u8; ct.len()];
    // The first 16 bytes are held back: nothing is released yet.
    assert_eq!(d.update(&ct[..16], &mut out).unwrap(), 0);
    assert_eq!(d.update(&ct[16..], &mut out).unwrap(), 20);
    assert_eq!(&out[..20], b"0123456789abcdef0123");
    d.finalize().unwrap();
    // Secrets never show in Debug output.
    let text = format!(
        "{:?} {:?}",
        pair.device,
        Decryptor::new(
            &decoded,
            unwrap_cek(&decoded, std::slice::from_ref(&pair.device)).unwrap()
        )
        .unwrap()
    );
    assert!(
        !text.contains("16, 16") && !text.contains("0x16") && !text.contains("1616"),
        "{text}"
    );
    // AES-CTR (RFC 9459): an empty protected header, the 16-byte initial counter block.
    let (_, info) =
        Encryptor::for_recipient(ContentAlg::A128Ctr, &pair.recipient(), None, &mut OsRng).unwrap();
    let decoded = EncryptionInfo::decode(&info).unwrap();
    assert_eq!(decoded.content_alg, ContentAlg::A128Ctr);
    assert!(decoded.protected.is_empty());
    assert_eq!(decoded.iv.len(), 16);
}

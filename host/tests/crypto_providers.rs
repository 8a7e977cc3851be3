//! Every crypto provider passes the same operation tests: known answers from the standards
//! (FIPS 180-4 examples, the GCM specification's test cases, SP 800-38A, RFC 3394, RFC 6979)
//! and round trips across providers (what one makes, the other opens).

use suit_host::crypto::OPENSSL;
use suit_shared::crypto::{CryptoProvider, Curve, SigAlg, RUST_CRYPTO};
use suit_shared::digest::DigestAlg;
use suit_shared::encryption::AesKey;
use suit_shared::Error;

fn providers() -> [&'static dyn CryptoProvider; 2] {
    [&RUST_CRYPTO, &OPENSSL]
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(s: &str) -> AesKey {
    AesKey::from_slice(&hex(s)).unwrap()
}

/// A deterministic byte pattern.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

#[test]
fn sha2_known_answers_in_one_piece_and_in_chunks() {
    let cases = [
        (
            DigestAlg::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            DigestAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            DigestAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for p in providers() {
        for (alg, expected) in cases {
            let mut h = p.hash(alg);
            assert_eq!(h.alg(), alg);
            h.update(b"a");
            let fork = h.fork();
            h.update(b"bc");
            assert_eq!(h.finish().as_bytes(), hex(expected), "{} {alg:?}", p.name());
            let mut f = fork;
            f.update(b"bc");
            assert_eq!(f.finish().as_bytes(), hex(expected), "{} fork", p.name());
        }
        // Many chunks of odd sizes give the digest of the whole.
        let data = pattern(100_003, 1);
        let mut h = p.hash(DigestAlg::Sha256);
        for c in data.chunks(997) {
            h.update(c);
        }
        let mut one = RUST_CRYPTO.hash(DigestAlg::Sha256);
        one.update(&data);
        assert_eq!(h.finish(), one.finish(), "{}", p.name());
    }
}

/// (key, iv, plaintext, ciphertext, tag).
type GcmCase = (AesKey, [u8; 12], Vec<u8>, Vec<u8>, [u8; 16]);

/// The GCM specification's test cases 1, 2, 13 and 14.
fn gcm_cases() -> Vec<GcmCase> {
    let tag = |s: &str| <[u8; 16]>::try_from(hex(s)).unwrap();
    vec![
        (
            key(&"00".repeat(16)),
            [0; 12],
            vec![],
            vec![],
            tag("58e2fccefa7e3061367f1d57a4e7455a"),
        ),
        (
            key(&"00".repeat(16)),
            [0; 12],
            vec![0; 16],
            hex("0388dace60b6a392f328c2b971b2fe78"),
            tag("ab6e47d42cec13bdf53a67b21257bddf"),
        ),
        (
            key(&"00".repeat(32)),
            [0; 12],
            vec![],
            vec![],
            tag("530f8afbc74536b9a963b4f1c4cb738b"),
        ),
        (
            key(&"00".repeat(32)),
            [0; 12],
            vec![0; 16],
            hex("cea7403d4d606b6e074ec5d3baf39d18"),
            tag("d0d1c8a799996bf0265b98b5d48ab919"),
        ),
    ]
}

#[test]
fn aes_gcm_known_answers() {
    for p in providers() {
        for (k, iv, plain, cipher, tag) in gcm_cases() {
            let mut d = p.aes_gcm_decrypt(&k, &iv, b"").unwrap();
            let mut out = vec![0; cipher.len()];
            d.update(&cipher, &mut out).unwrap();
            assert_eq!(out, plain, "{}", p.name());
            d.verify(&tag).unwrap();
            let mut e = p.aes_gcm_encrypt(&k, &iv, b"").unwrap();
            let mut out = vec![0; plain.len()];
            e.update(&plain, &mut out).unwrap();
            assert_eq!(out, cipher, "{}", p.name());
            assert_eq!(e.tag(), tag, "{}", p.name());
        }
    }
}

#[test]
fn aes_gcm_round_trips_across_providers_in_any_chunking_and_refuses_alterations() {
    let k = key(&hex_string(&pattern(32, 9)));
    let iv = <[u8; 12]>::try_from(pattern(12, 3)).unwrap();
    let aad = pattern(41, 5);
    let plain = pattern(70_001, 7);
    for sealer in providers() {
        let mut e = sealer.aes_gcm_encrypt(&k, &iv, &aad).unwrap();
        let mut cipher = vec![0; plain.len()];
        for (i, o) in plain.chunks(4093).zip(cipher.chunks_mut(4093)) {
            e.update(i, o).unwrap();
        }
        let tag = e.tag();
        for opener in providers() {
            for chunk in [1, 15, 16, 17, 4096, 65_536, 100_000] {
                let mut d = opener.aes_gcm_decrypt(&k, &iv, &aad).unwrap();
                let mut out = vec![0; plain.len()];
                for (i, o) in cipher.chunks(chunk).zip(out.chunks_mut(chunk)) {
                    d.update(i, o).unwrap();
                }
                assert_eq!(out, plain, "{} -> {}", sealer.name(), opener.name());
                d.verify(&tag).unwrap();
            }
            // A flipped ciphertext bit, another AAD, another tag: TagMismatch.
            let mut bad = cipher.clone();
            bad[12_345] ^= 0x20;
            for (c, a, t) in [
                (&bad, &aad[..], tag),
                (&cipher, &aad[1..], tag),
                (&cipher, &aad[..], {
                    let mut t = tag;
                    t[15] ^= 1;
                    t
                }),
            ] {
                let mut d = opener.aes_gcm_decrypt(&k, &iv, a).unwrap();
                let mut out = vec![0; c.len()];
                d.update(c, &mut out).unwrap();
                assert_eq!(d.verify(&t).unwrap_err(), Error::TagMismatch);
            }
            // An output shorter than the input is an error, not a panic.
            let mut d = opener.aes_gcm_decrypt(&k, &iv, &aad).unwrap();
            assert!(d.update(&cipher[..32], &mut [0; 31]).is_err());
        }
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn aes_ctr_known_answer_sp800_38a() {
    // SP 800-38A F.5.5, CTR-AES256.Encrypt (CTR is its own inverse), blocks 1 and 2.
    let k = key("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let iv = <[u8; 16]>::try_from(hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")).unwrap();
    let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let cipher = hex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5");
    for p in providers() {
        let mut c = p.aes_ctr(&k, &iv).unwrap();
        let mut out = vec![0; 32];
        // Split inside a block: the keystream continues where it stopped.
        c.apply(&plain[..7], &mut out[..7]).unwrap();
        c.apply(&plain[7..], &mut out[7..]).unwrap();
        assert_eq!(out, cipher, "{}", p.name());
    }
}

#[test]
fn aes_key_wrap_known_answers_rfc3394() {
    // RFC 3394 §4.1 (128-bit KEK, 128-bit key) and §4.6 (256-bit KEK, 256-bit key).
    let cases = [
        (
            "000102030405060708090a0b0c0d0e0f",
            "00112233445566778899aabbccddeeff",
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
        ),
    ];
    for p in providers() {
        for (kek, k, wrapped) in cases {
            let (kek, k, wrapped) = (key(kek), key(k), hex(wrapped));
            assert_eq!(p.aes_key_wrap(&kek, &k).unwrap(), wrapped, "{}", p.name());
            assert_eq!(p.aes_key_unwrap(&kek, &wrapped).unwrap(), Some(k));
            let mut altered = wrapped.clone();
            altered[5] ^= 1;
            assert_eq!(p.aes_key_unwrap(&kek, &altered).unwrap(), None);
            assert!(p
                .aes_key_unwrap(&kek, &wrapped[..wrapped.len() - 1])
                .is_err());
            assert!(p.aes_key_unwrap(&kek, &[]).is_err());
        }
    }
}

/// RFC 6979 A.2.5 (P-256, SHA-256) and A.2.6 (P-384, SHA-384), message "sample":
/// (curve, private scalar, public x, public y, r, s).
fn rfc6979() -> [(
    Curve,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
); 2] {
    [
        (
            Curve::P256,
            "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
            "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
            "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
            "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
            "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
        ),
        (
            Curve::P384,
            "6b9d3dad2e1b8c1c05b19875b6659f4de23c3b667bf297ba9aa47740787137d8\
             96d5724e4c70a825f872c9ea60d2edf5",
            "ec3a4e415b4e19a4568618029f427fa5da9a8bc4ae92e02e06aae5286b300c64\
             def8f0ea9055866064a254515480bc13",
            "8015d9b72d7d57244ea8ef9ac0c621896708a59367f9dfb9f54ca84b3f1c9db1\
             288b231c3ae0d4fe7344fd2533264720",
            "94edbb92a5ecb8aad4736e56c691916b3f88140666ce9fa73d64c4ea95ad133c\
             81a648152e44acf96e36dd1e80fabe46",
            "99ef4aeb15f178cea1fe40db2603138f130e740a19624526203b6351d0a3a94f\
             a329c145786e679e7b82c71a38628ac8",
        ),
    ]
}

#[test]
fn ecdsa_known_answers_rfc6979_sign_and_verify() {
    for p in providers() {
        for (curve, d, x, y, r, s) in rfc6979() {
            let public = [vec![4], hex(x), hex(y)].concat();
            let signature = [hex(r), hex(s)].concat();
            let alg = curve.ecdsa();
            assert!(
                p.verify(alg, &public, b"sample", &signature),
                "{}",
                p.name()
            );
            let key = p.private_key(curve, &hex(d), None).unwrap();
            assert_eq!(key.curve(), curve);
            assert_eq!(key.public_sec1(), public, "{}", p.name());
            // Deterministic (RFC 6979): the very signature of the RFC.
            assert_eq!(key.sign(b"sample").unwrap(), signature, "{}", p.name());
            // Another message, a flipped bit, a truncated signature, the other curve's
            // algorithm, a point off the curve: all refused.
            assert!(!p.verify(alg, &public, b"samplE", &signature));
            let mut bad = signature.clone();
            bad[3] ^= 1;
            assert!(!p.verify(alg, &public, b"sample", &bad));
            assert!(!p.verify(alg, &public, b"sample", &signature[1..]));
            let other = match alg {
                SigAlg::EcdsaP256Sha256 => SigAlg::EcdsaP384Sha384,
                _ => SigAlg::EcdsaP256Sha256,
            };
            assert!(!p.verify(other, &public, b"sample", &signature));
            let mut off_curve = public.clone();
            *off_curve.last_mut().unwrap() ^= 1;
            assert!(!p.verify(alg, &off_curve, b"sample", &signature));
            assert!(!p.verify(alg, &[], b"sample", &signature));
            // r = 0 and s = 0 are never valid.
            let zero = vec![0; signature.len()];
            assert!(!p.verify(alg, &public, b"sample", &zero));
        }
    }
}

#[test]
fn signatures_cross_providers() {
    for signer in providers() {
        for curve in [Curve::P256, Curve::P384] {
            let key = signer
                .private_key(curve, &pattern(curve.field_len(), 0x11), None)
                .unwrap();
            let msg = pattern(1000, 2);
            let sig = key.sign(&msg).unwrap();
            assert_eq!(Some(sig.len()), curve.ecdsa().signature_len());
            for verifier in providers() {
                assert!(
                    verifier.verify(curve.ecdsa(), &key.public_sec1(), &msg, &sig),
                    "{} -> {}",
                    signer.name(),
                    verifier.name()
                );
            }
        }
    }
}

#[test]
fn ecdh_agrees_across_providers_and_refuses_bad_points() {
    for a in providers() {
        for b in providers() {
            for curve in [Curve::P256, Curve::P384] {
                let n = curve.field_len();
                let alice = a.private_key(curve, &pattern(n, 0x21), None).unwrap();
                let bob = b.private_key(curve, &pattern(n, 0x42), None).unwrap();
                let ab = alice.agree(&bob.public_sec1()).unwrap();
                let ba = bob.agree(&alice.public_sec1()).unwrap();
                assert_eq!(ab.len(), n);
                assert_eq!(*ab, *ba, "{} / {}", a.name(), b.name());
                let mut off = bob.public_sec1();
                off[n] ^= 1;
                assert!(alice.agree(&off).is_err());
                assert!(alice.agree(&[4]).is_err());
            }
        }
    }
}

#[test]
fn private_keys_refuse_bad_scalars() {
    for p in providers() {
        for curve in [Curve::P256, Curve::P384] {
            let n = curve.field_len();
            assert!(p.private_key(curve, &vec![0; n], None).is_err(), "zero");
            assert!(
                p.private_key(curve, &vec![0xff; n], None).is_err(),
                "above the order"
            );
            assert!(
                p.private_key(curve, &vec![1; n - 1], None).is_err(),
                "short"
            );
        }
    }
}

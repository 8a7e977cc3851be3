//! An approval token is verified once per component (issue 12): the agent hands the same
//! token back with every DECRYPT_FOR_INSTALL chunk and at COMMIT; the TA core verifies its
//! signature the first time and then only compares the bytes and the claims (under OP-TEE's
//! software ECC each P-384 verification costs about a second). A different token — altered,
//! or for another component — is still verified and refused.
//!
//! Counted through the process's crypto provider: a wrapper around the portable provider
//! records every signature it checks. One test in this binary: the provider is process-wide.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::sync::Mutex;

use sim::{approve, class, expect_rejection, image, manifest, sign, vendor, vendor_key, Device};
use suit_host::tee::Tee;
use suit_host::tool::crypt::OsRng;
use suit_shared::command::{Command, Condition, Directive, IndexSelection, ReportingPolicy};
use suit_shared::component::ComponentId;
use suit_shared::crypto::{
    self, AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, GeneratedKey, HashState,
    KeystreamCipher, PrivateKey, Rng, SigAlg, GCM_IV_LEN, RUST_CRYPTO,
};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::encryption::{AesKey, AesKwAlg, ContentAlg, Encryptor, RecipientPublicKey};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Category;

/// The portable provider, recording the signatures it verifies.
struct Counting {
    verified: Mutex<Vec<Vec<u8>>>,
}

static COUNTING: Counting = Counting {
    verified: Mutex::new(Vec::new()),
};

impl CryptoProvider for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState> {
        RUST_CRYPTO.hash(alg)
    }
    fn aes_gcm_decrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> suit_shared::Result<Box<dyn AeadDecrypt>> {
        RUST_CRYPTO.aes_gcm_decrypt(key, iv, aad)
    }
    fn aes_gcm_encrypt(
        &self,
        key: &AesKey,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
    ) -> suit_shared::Result<Box<dyn AeadEncrypt>> {
        RUST_CRYPTO.aes_gcm_encrypt(key, iv, aad)
    }
    fn aes_ctr(
        &self,
        key: &AesKey,
        iv: &[u8; 16],
    ) -> suit_shared::Result<Box<dyn KeystreamCipher>> {
        RUST_CRYPTO.aes_ctr(key, iv)
    }
    fn aes_key_wrap(&self, kek: &AesKey, key: &AesKey) -> suit_shared::Result<Vec<u8>> {
        RUST_CRYPTO.aes_key_wrap(kek, key)
    }
    fn aes_key_unwrap(&self, kek: &AesKey, wrapped: &[u8]) -> suit_shared::Result<Option<AesKey>> {
        RUST_CRYPTO.aes_key_unwrap(kek, wrapped)
    }
    fn private_key(
        &self,
        curve: Curve,
        scalar: &[u8],
        public_sec1: Option<&[u8]>,
    ) -> suit_shared::Result<Box<dyn PrivateKey>> {
        RUST_CRYPTO.private_key(curve, scalar, public_sec1)
    }
    fn generate_private_key(
        &self,
        curve: Curve,
        rng: Rng<'_>,
    ) -> suit_shared::Result<GeneratedKey> {
        RUST_CRYPTO.generate_private_key(curve, rng)
    }
    fn verify(&self, alg: SigAlg, public_sec1: &[u8], message: &[u8], signature: &[u8]) -> bool {
        self.verified.lock().unwrap().push(signature.to_vec());
        RUST_CRYPTO.verify(alg, public_sec1, message, signature)
    }
}

/// How many verifications so far checked the signature `token` carries (its last 96 bytes:
/// the ES384 signature ends the COSE_Sign1).
fn verifications_of(token: &[u8]) -> usize {
    let signature = &token[token.len() - 96..];
    COUNTING
        .verified
        .lock()
        .unwrap()
        .iter()
        .filter(|sig| sig.as_slice() == signature)
        .count()
}

/// Encrypts `fw` to the device key: (ciphertext with tag, encryption info).
fn encrypt_for(tee: &mut dyn Tee, fw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let info = tee.get_info().unwrap();
    let key = p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap();
    let recipient = RecipientPublicKey::P384 {
        key: &key,
        wrap: AesKwAlg::A256Kw,
    };
    let (mut enc, info) =
        Encryptor::for_recipient(ContentAlg::A256Gcm, &recipient, None, &mut OsRng).unwrap();
    let mut out = vec![0u8; fw.len()];
    enc.update(fw, &mut out).unwrap();
    out.extend_from_slice(&enc.finalize());
    (out, info)
}

/// A signed envelope: `['rootfs']` decrypted by a copy from `['staging']`, where the
/// ciphertext is fetched.
fn envelope(fw: &[u8], info: &[u8]) -> Vec<u8> {
    let rp = ReportingPolicy(15);
    let digest: DigestValue = DigestAlg::Sha256.digest(fw);
    let shared = vec![
        Command::SetComponentIndex(IndexSelection::All),
        Command::OverrideParameters(vec![
            Parameter::VendorId(VendorId::Uuid(vendor())),
            Parameter::ClassId(class()),
        ]),
        Command::Condition(Condition::VendorId, rp),
        Command::Condition(Condition::ClassId, rp),
    ];
    let install = vec![
        Command::SetComponentIndex(IndexSelection::One(1)),
        Command::OverrideParameters(vec![Parameter::Uri("http://example.com/rootfs")]),
        Command::Directive(Directive::Fetch, rp),
        Command::SetComponentIndex(IndexSelection::One(0)),
        Command::OverrideParameters(vec![
            Parameter::SourceComponent(1),
            Parameter::EncryptionInfo(info),
            Parameter::ImageDigest(digest.as_suit_digest()),
            Parameter::ImageSize(fw.len() as u64),
        ]),
        Command::Directive(Directive::Copy, rp),
        Command::Condition(Condition::ImageMatch, rp),
    ];
    let ids = vec![
        ComponentId::new([b"rootfs".as_slice()]),
        ComponentId::new([b"staging".as_slice()]),
    ];
    sign(&manifest(2, ids, shared, install), &vendor_key())
}

#[test]
fn a_token_is_verified_once_per_component() {
    assert!(
        crypto::install_default(&COUNTING),
        "another provider was installed first"
    );
    let dev = Device::new();
    let mut tee = dev.session();
    let fw = image(9000, 5);
    let (ciphertext, info) = encrypt_for(&mut tee, &fw);
    let env = envelope(&fw, &info);
    let plan = tee.load_manifest(&env, 1).unwrap();
    let index = plan.items[0].index;
    let token = approve(&mut tee, index, &ciphertext, 4096).token;

    // An altered token is verified, and refused, every time it is sent.
    let mut forged = token.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for _ in 0..2 {
        expect_rejection(
            tee.decrypt_for_install(index, &forged, 0, &ciphertext[..100], false),
            Category::Authentication,
            "approval token refused",
        );
    }
    assert_eq!(verifications_of(&forged), 2);

    // The real token: verified at the first chunk only, then at neither the 5 others nor COMMIT.
    let chunk = 1500;
    let n = ciphertext.chunks(chunk).count();
    assert!(n >= 6);
    let mut plaintext = Vec::new();
    for (i, c) in ciphertext.chunks(chunk).enumerate() {
        let out = tee
            .decrypt_for_install(index, &token, (i * chunk) as u64, c, i + 1 == n)
            .unwrap();
        plaintext.extend(out);
        assert_eq!(verifications_of(&token), 1, "chunk {i}");
    }
    assert_eq!(plaintext, fw);
    tee.commit(std::slice::from_ref(&token)).unwrap();
    assert_eq!(
        verifications_of(&token),
        1,
        "COMMIT verified the token again"
    );
}

//! The envelope is authenticated once per update (issue 12): LOAD_MANIFEST verifies its
//! signature; COMMIT re-runs the manifest over the digests the TA computed but does not verify
//! the signature again. Counted through the process's crypto provider: a wrapper around the
//! portable provider records every signature it checks, and the test counts those that are the
//! envelope's own signature (approval tokens, which COMMIT does verify, are signed by the device
//! key and are not in the envelope).
//!
//! One test in this binary: the provider is process-wide.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::sync::Mutex;

use sim::{image, sign, vendor_key, Device};
use suit_host::tee::Tee;
use suit_host::tool::spec::Spec;
use suit_shared::crypto::{
    self, AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, HashState, KeystreamCipher, PrivateKey,
    SigAlg, GCM_IV_LEN, RUST_CRYPTO,
};
use suit_shared::digest::DigestAlg;
use suit_shared::encryption::AesKey;

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
        rng: suit_shared::crypto::Rng<'_>,
    ) -> suit_shared::Result<suit_shared::crypto::GeneratedKey> {
        RUST_CRYPTO.generate_private_key(curve, rng)
    }
    fn verify(&self, alg: SigAlg, public_sec1: &[u8], message: &[u8], signature: &[u8]) -> bool {
        self.verified.lock().unwrap().push(signature.to_vec());
        RUST_CRYPTO.verify(alg, public_sec1, message, signature)
    }
}

/// How many verifications so far checked a signature that `envelope` carries.
fn envelope_verifications(envelope: &[u8]) -> usize {
    COUNTING
        .verified
        .lock()
        .unwrap()
        .iter()
        .filter(|sig| !sig.is_empty() && envelope.windows(sig.len()).any(|w| w == &sig[..]))
        .count()
}

/// A signed envelope installing `fw` as `['rootfs']`, fetched from a URI (written by
/// `suit-tool`'s spec).
fn envelope(fw: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fw.img"), fw).unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"rootfs\"]\nimage = \"fw.img\"\nuri = \"http://example.com/fw\"\n",
    )
    .unwrap();
    let prepared = Spec::load(&spec).unwrap().prepare(dir.path()).unwrap();
    sign(&prepared.manifest(), &vendor_key())
}

#[test]
fn an_update_verifies_the_envelope_signature_once() {
    assert!(
        crypto::install_default(&COUNTING),
        "another provider was installed first"
    );
    let dev = Device::new();
    let mut tee = dev.session();
    let fw = image(10_000, 3);
    let env = envelope(&fw);

    let plan = tee.load_manifest(&env, 1).unwrap();
    assert_eq!(envelope_verifications(&env), 1, "LOAD_MANIFEST");
    let token = tee
        .approve(plan.items[0].index, &mut &fw[..])
        .unwrap()
        .token;
    tee.commit(std::slice::from_ref(&token)).unwrap();
    assert_eq!(
        envelope_verifications(&env),
        1,
        "COMMIT verified the envelope's signature again"
    );
    // COMMIT did check the token: the provider saw verifications, just not of the envelope.
    assert!(COUNTING.verified.lock().unwrap().len() > 1);
}

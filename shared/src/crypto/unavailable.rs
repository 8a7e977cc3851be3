//! The provider of a build without `rustcrypto` before one is installed: it refuses every
//! operation (digests are all zeros, which match nothing), so nothing is ever approved by
//! mistake with no crypto behind it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{
    AeadDecrypt, AeadEncrypt, CryptoProvider, Curve, GeneratedKey, HashState, KeystreamCipher,
    PrivateKey, Rng, SigAlg, GCM_IV_LEN,
};
use crate::digest::{DigestAlg, DigestValue};
use crate::encryption::AesKey;
use crate::error::{Error, Result};

pub(super) struct Unavailable;

pub(super) static UNAVAILABLE: Unavailable = Unavailable;

fn refused<T>() -> Result<T> {
    Err(Error::Unsupported(alloc::string::String::from(
        "cryptography: no crypto provider is installed",
    )))
}

struct NoHash(DigestAlg);

impl HashState for NoHash {
    fn alg(&self) -> DigestAlg {
        self.0
    }
    fn update(&mut self, _data: &[u8]) {}
    fn finish(self: Box<Self>) -> DigestValue {
        let zeros = [0u8; 64];
        DigestValue::new(self.0, &zeros[..self.0.output_len()])
            .unwrap_or_else(|| DigestValue::from([0u8; 32]))
    }
    fn fork(&self) -> Box<dyn HashState> {
        Box::new(NoHash(self.0))
    }
}

impl CryptoProvider for Unavailable {
    fn name(&self) -> &'static str {
        "none"
    }
    fn hash(&self, alg: DigestAlg) -> Box<dyn HashState> {
        Box::new(NoHash(alg))
    }
    fn aes_gcm_decrypt(
        &self,
        _: &AesKey,
        _: &[u8; GCM_IV_LEN],
        _: &[u8],
    ) -> Result<Box<dyn AeadDecrypt>> {
        refused()
    }
    fn aes_gcm_encrypt(
        &self,
        _: &AesKey,
        _: &[u8; GCM_IV_LEN],
        _: &[u8],
    ) -> Result<Box<dyn AeadEncrypt>> {
        refused()
    }
    fn aes_ctr(&self, _: &AesKey, _: &[u8; 16]) -> Result<Box<dyn KeystreamCipher>> {
        refused()
    }
    fn aes_key_wrap(&self, _: &AesKey, _: &AesKey) -> Result<Vec<u8>> {
        refused()
    }
    fn aes_key_unwrap(&self, _: &AesKey, _: &[u8]) -> Result<Option<AesKey>> {
        refused()
    }
    fn private_key(&self, _: Curve, _: &[u8], _: Option<&[u8]>) -> Result<Box<dyn PrivateKey>> {
        refused()
    }
    fn generate_private_key(&self, _: Curve, _: Rng<'_>) -> Result<GeneratedKey> {
        refused()
    }
    fn x25519_public(&self, _: &[u8; 32]) -> Result<[u8; 32]> {
        refused()
    }
    fn x25519(&self, _: &[u8; 32], _: &[u8; 32]) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        refused()
    }
    fn verify(&self, _: SigAlg, _: &[u8], _: &[u8], _: &[u8]) -> bool {
        false
    }
}

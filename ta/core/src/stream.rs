//! One component's bytes streaming through the TA: decrypted when encrypted, hashed and
//! counted, in constant memory whatever the payload size; optionally the dm-verity root of the
//! plaintext too (O(tree height) memory), which the TA records for verified boot.

use alloc::boxed::Box;
use alloc::vec::Vec;

use suit_shared::abi::DECRYPT_OUTPUT_SLACK;
use suit_shared::digest::{DigestAlg, Hasher};
use suit_shared::verity::{RootHasher, VerityParams};
use suit_shared::{Error, Result};

use crate::plan::Computed;

/// Piece size for decrypting chunks that are only hashed.
const SCRATCH: usize = 4096;

/// A streaming decryptor (AEAD: the tag is checked in [`Decrypt::finish`]).
pub trait Decrypt: Send {
    /// Decrypts `input` into `output`; returns the number of plaintext bytes written, which
    /// may differ from the input length by what the decryptor holds back.
    fn update(&mut self, input: &[u8], output: &mut [u8]) -> Result<usize>;
    /// Releases what was held back into `output` and checks the authentication tag.
    fn finish(&mut self, output: &mut [u8]) -> Result<usize>;
}

/// Digest and length of a byte stream, bounded by a limit.
struct Tally {
    hasher: Hasher,
    count: u64,
    limit: Option<u64>,
    verity: Option<RootHasher>,
}

impl Tally {
    fn new(alg: DigestAlg, limit: Option<u64>) -> Self {
        Tally {
            hasher: Hasher::new(alg),
            count: 0,
            limit,
            verity: None,
        }
    }

    fn absorb(&mut self, component: usize, bytes: &[u8]) -> Result<()> {
        self.count = self.count.saturating_add(bytes.len() as u64);
        if let Some(limit) = self.limit {
            if self.count > limit {
                return Err(Error::PayloadTooLarge { component, limit });
            }
        }
        self.hasher.update(bytes);
        if let Some(v) = self.verity.as_mut() {
            v.update(bytes);
        }
        Ok(())
    }

    fn finish(self) -> Computed {
        Computed {
            digest: self.hasher.finalize(),
            size: self.count,
        }
    }
}

/// Hash, count and (optionally) decrypt one component's bytes.
pub struct PayloadStream {
    received: u64,
    plain: Tally,
    fetched: Option<Tally>,
    component: usize,
    decryptor: Option<Box<dyn Decrypt>>,
}

impl PayloadStream {
    /// A stream hashing the plaintext with `alg`, refusing more than `limit` plaintext bytes.
    pub fn new(
        component: usize,
        alg: DigestAlg,
        limit: Option<u64>,
        decryptor: Option<Box<dyn Decrypt>>,
    ) -> Self {
        PayloadStream {
            received: 0,
            plain: Tally::new(alg, limit),
            fetched: None,
            component,
            decryptor,
        }
    }

    /// Also hashes and counts the bytes as they arrive (before decryption), refusing more than
    /// `limit` of them.
    pub fn with_fetched(mut self, alg: DigestAlg, limit: Option<u64>) -> Self {
        self.fetched = Some(Tally::new(alg, limit));
        self
    }

    /// Also computes the dm-verity root of the plaintext with `salt` (see
    /// [`Self::finish_verified`]).
    pub fn with_verity(mut self, salt: &[u8]) -> Result<Self> {
        let hasher = RootHasher::new(salt).map_err(|e| Error::InvalidValue {
            context: "verified boot",
            element: "dm-verity salt",
            reason: match e {
                suit_shared::verity::VerityError::SaltTooLong(_) => "longer than 256 bytes",
                suit_shared::verity::VerityError::Empty => "empty",
            },
        })?;
        self.plain.verity = Some(hasher);
        Ok(self)
    }

    /// Bytes fed so far (before decryption): the offset the next chunk must have.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Feeds a chunk; with a decryptor the plaintext is also appended to `out` when given.
    pub fn update(&mut self, chunk: &[u8], out: Option<&mut Vec<u8>>) -> Result<()> {
        self.received = self.received.saturating_add(chunk.len() as u64);
        if let Some(fetched) = self.fetched.as_mut() {
            fetched.absorb(self.component, chunk)?;
        }
        let component = self.component;
        let Some(d) = self.decryptor.as_mut() else {
            if let Some(out) = out {
                out.extend_from_slice(chunk);
            }
            return self.plain.absorb(component, chunk);
        };
        let plain = &mut self.plain;
        match out {
            // Decrypt straight into the output.
            Some(out) => {
                let start = out.len();
                out.resize(start + chunk.len() + DECRYPT_OUTPUT_SLACK, 0);
                let n = d.update(chunk, &mut out[start..])?;
                out.truncate(start + n);
                plain.absorb(component, &out[start..])
            }
            // Only hashed: decrypt piece by piece through a small scratch buffer, so that
            // memory stays at one chunk whatever its size.
            None => {
                let mut scratch = zeroize::Zeroizing::new([0u8; SCRATCH + DECRYPT_OUTPUT_SLACK]);
                chunk.chunks(SCRATCH).try_for_each(|piece| {
                    let n = d.update(piece, &mut scratch[..])?;
                    plain.absorb(component, &scratch[..n])
                })
            }
        }
    }

    /// Ends the stream and returns digest and size of the plaintext. When
    /// [`Self::with_fetched`] asked for it, `check_fetched` first judges the bytes as they
    /// arrived (a tampered download is refused before any tag check); then the AEAD tag is
    /// checked (when decrypting).
    pub fn finish(
        self,
        out: Option<&mut Vec<u8>>,
        check_fetched: impl FnOnce(&Computed) -> Result<()>,
    ) -> Result<(Computed, Option<Computed>)> {
        self.finish_verified(out, check_fetched)
            .map(|(plain, fetched, _)| (plain, fetched))
    }

    /// [`Self::finish`], plus the dm-verity parameters of the plaintext when
    /// [`Self::with_verity`] asked for them (`None` for an empty plaintext: dm-verity cannot
    /// map it).
    pub fn finish_verified(
        mut self,
        out: Option<&mut Vec<u8>>,
        check_fetched: impl FnOnce(&Computed) -> Result<()>,
    ) -> Result<(Computed, Option<Computed>, Option<VerityParams>)> {
        let fetched = self.fetched.take().map(Tally::finish);
        if let Some(f) = &fetched {
            check_fetched(f)?;
        }
        if let Some(mut d) = self.decryptor.take() {
            let mut tail = alloc::vec![0u8; DECRYPT_OUTPUT_SLACK];
            let n = d.finish(&mut tail)?;
            tail.truncate(n);
            self.plain.absorb(self.component, &tail)?;
            if let Some(out) = out {
                out.extend_from_slice(&tail);
            }
        }
        let verity = self.plain.verity.take().and_then(|v| v.finalize().ok());
        Ok((self.plain.finish(), fetched, verity))
    }
}

//! One-pass streaming (docs/streaming.md): STREAM_UPDATE takes the hash blocks the next data
//! blocks need and a chunk of the payload as fetched (the ciphertext when encrypted), decrypts
//! it once, checks every 4096-byte block against the dm-verity tree whose root the manifest
//! binds (parameter verity-root) and releases only the blocks that passed; STREAM_FINAL checks
//! that every block passed and, for a stream that began at byte 0 of an encrypted payload,
//! the AEAD tag, then signs the approval token. Memory is constant in the image size: one
//! hash block per tree level and one partial data block.
//!
//! A stream may begin at any block boundary (a resume after a power cut or a dropped
//! connection, in a new session): the blocks before it are not checked again in this
//! session, and for an encrypted payload the keystream starts there and the tag, which covers
//! the whole ciphertext, cannot be checked. Every block released is still checked against the
//! tree, COMMIT records the tree's root for verified boot (dm-verity checks every block at
//! boot), and CONFIRM hashes the whole image again before the floor rises.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use suit_shared::abi::{Approval, CommandId, Decrypted, DECRYPT_OUTPUT_SLACK, STREAM_HASH_ROOM};
use suit_shared::digest::DigestValue;
use suit_shared::encryption::GCM_TAG_LEN;
use suit_shared::verity::{self, BlockChecker, VerityParams, BLOCK_SIZE, DIGEST_LEN};
use suit_shared::Error;

use super::session::{ItemState, Session};
use super::transport::Data;
use super::{offset_error, Core};
use crate::crypto::{stream_cipher, StreamCipher};
use crate::error::{Result, TaError};
use crate::plan::Computed;
use crate::platform::{Clock, Rng, Storage};

/// Longest AES-GCM plaintext: 2³² − 2 blocks of 16 bytes (SP 800-38D).
const MAX_GCM_TEXT: u64 = ((1 << 32) - 2) * 16;

/// How the stream decrypts.
enum Cipher {
    /// Not encrypted.
    Plain,
    /// Encrypted (AES-GCM from byte 0 checks its tag at STREAM_FINAL).
    Encrypted(StreamCipher),
}

/// One component streaming in one pass.
pub(super) struct OnePass {
    checker: BlockChecker,
    cipher: Cipher,
    /// Bytes of the fetched payload received so far (the offset the next chunk must have).
    received: u64,
    /// Size of the fetched payload (the plaintext, plus the tag for AES-GCM).
    fetched_size: u64,
    /// Plaintext size (image-size).
    plain_size: u64,
    /// Plaintext bytes decrypted so far (released or held in `partial`).
    plain_seen: u64,
    /// The next data block to check.
    next_block: u64,
    /// Decrypted plaintext of the next block, not yet checked (less than a block).
    partial: Vec<u8>,
    /// The AEAD tag as it arrives after the ciphertext.
    tag: [u8; GCM_TAG_LEN],
}

impl OnePass {
    /// Bytes received so far.
    pub(super) fn received(&self) -> u64 {
        self.received
    }
}

/// What a streamed item needs from its plan: root, digest (the tree's salt) and size.
fn tree_of(plan: &suit_shared::abi::PlanItem) -> Option<([u8; DIGEST_LEN], &DigestValue, u64)> {
    let root = <[u8; DIGEST_LEN]>::try_from(plan.verity_root.as_deref()?).ok()?;
    Some((root, plan.digest.as_ref()?, plan.size?))
}

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    /// A stream of `plan` beginning at byte `offset` of the fetched payload.
    fn one_pass(
        &mut self,
        command: CommandId,
        plan: &suit_shared::abi::PlanItem,
        offset: u64,
    ) -> Result<OnePass> {
        let component = plan.index;
        let Some((root, digest, plain_size)) = tree_of(plan) else {
            return Err(TaError::order(
                command,
                format!(
                    "component {component} has no dm-verity root in its manifest \
                     (verity-root): stream it with PAYLOAD_UPDATE/FINAL"
                ),
            ));
        };
        let blocks = verity::data_blocks(plain_size);
        let checker = BlockChecker::new(digest.as_bytes(), root, blocks).map_err(|e| {
            Error::InvalidValue {
                context: "verity-root",
                element: "tree",
                reason: match e {
                    verity::VerityError::SaltTooLong(_) => "image digest longer than a salt",
                    verity::VerityError::Empty => "an empty image has no tree",
                },
            }
        })?;
        let (cipher, tag) = match &plan.encryption_info {
            None => (Cipher::Plain, 0),
            Some(info) => {
                let (cipher, aead) = stream_cipher(info, self.state()?, offset)?;
                let tag = if aead { GCM_TAG_LEN as u64 } else { 0 };
                (Cipher::Encrypted(cipher), tag)
            }
        };
        if tag != 0 && plain_size > MAX_GCM_TEXT {
            return Err(Error::Decryption(
                "the payload exceeds the AES-GCM limit of 2^36 - 32 bytes".into(),
            )
            .into());
        }
        let fetched_size = plain_size.saturating_add(tag);
        if plan.fetch_size.is_some_and(|s| s != fetched_size) {
            return Err(TaError::Refused(format!(
                "component {component}: the fetched size the manifest checks is not the \
                 image size plus the tag; it cannot stream"
            )));
        }
        if !offset.is_multiple_of(BLOCK_SIZE as u64) || offset >= plain_size {
            return Err(TaError::order(
                command,
                format!(
                    "a stream of component {component} begins at offset 0 or at a block \
                     boundary (a multiple of {BLOCK_SIZE}) inside the image, not at {offset}"
                ),
            ));
        }
        Ok(OnePass {
            checker,
            cipher,
            received: offset,
            fetched_size,
            plain_size,
            plain_seen: offset,
            next_block: offset / BLOCK_SIZE as u64,
            partial: Vec::new(),
            tag: [0; GCM_TAG_LEN],
        })
    }

    /// STREAM_UPDATE: `data` is `hashes` bytes of hash blocks, then the chunk at `offset`.
    /// The approved plaintext goes to the data out (at most `out_capacity` bytes).
    pub(super) fn stream_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        hashes: u32,
        data: &mut Data<'_>,
        out_capacity: usize,
    ) -> Result<Decrypted> {
        const CMD: CommandId = CommandId::StreamUpdate;
        let update = s.open_update(CMD)?;
        let at = update.position(CMD, component)?;
        let item = &mut update.items[at];
        let split = usize::try_from(hashes).unwrap_or(usize::MAX);
        if split > data.len() {
            return Err(TaError::order(
                CMD,
                format!(
                    "{hashes} bytes of hash blocks announced, {} bytes of data sent",
                    data.len()
                ),
            ));
        }
        // The hash blocks are copied whole (a few, at most STREAM_HASH_ROOM), the chunk
        // piece by piece.
        if split > STREAM_HASH_ROOM {
            return Err(TaError::TooLarge {
                what: "the hash blocks of a chunk",
                size: split,
                limit: STREAM_HASH_ROOM,
            });
        }
        let chunk = split..data.len();
        // The last chunk may carry the AEAD tag beyond max-chunk (no invoke for 16 bytes).
        let limit = self.config.max_chunk + GCM_TAG_LEN;
        if chunk.len() > limit {
            return Err(TaError::TooLarge {
                what: "a payload chunk",
                size: chunk.len(),
                limit,
            });
        }
        let needed = chunk.len() + BLOCK_SIZE + DECRYPT_OUTPUT_SLACK;
        if out_capacity < needed {
            return Err(TaError::TooLarge {
                what: "the plaintext this chunk may release",
                size: needed,
                limit: out_capacity,
            });
        }
        let hash_blocks = data.copy(0..split)?;
        let mut pass = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::OnePass(pass) if offset == pass.received() => pass,
            // Going back to a block boundary restarts there; going forward skips bytes.
            ItemState::OnePass(pass) if offset > pass.received() => {
                let received = pass.received();
                item.state = ItemState::OnePass(pass);
                return Err(offset_error(CMD, component, offset, received));
            }
            ItemState::Pending | ItemState::Streaming(_) | ItemState::OnePass(_) => {
                Box::new(self.one_pass(CMD, &item.plan, offset)?)
            }
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is already approved"),
                ));
            }
        };
        // On error the stream is dropped (the item is Pending again) and nothing is released:
        // the agent restarts at 0 or resumes at the last block it wrote.
        let (done, written) = pass.feed(component, &hash_blocks, data, chunk)?;
        item.state = ItemState::OnePass(pass);
        Ok(Decrypted {
            written: u32::try_from(written).unwrap_or(u32::MAX),
            done,
        })
    }

    /// STREAM_FINAL: every block checked (and the tag, for a whole encrypted stream); signs
    /// the approval token.
    pub(super) fn stream_final(
        &mut self,
        s: &mut Session,
        component: u32,
        capacity: usize,
    ) -> Result<Approval> {
        const CMD: CommandId = CommandId::StreamFinal;
        let nonce = s.nonce;
        let update = s.open_update(CMD)?;
        let at = update.position(CMD, component)?;
        let item = &mut update.items[at];
        let pass = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::OnePass(pass) => pass,
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is not streaming (STREAM_UPDATE first)"),
                ));
            }
        };
        let blocks = pass.checker.data_blocks();
        if pass.received != pass.fetched_size || pass.next_block != blocks {
            let (received, size) = (pass.received, pass.fetched_size);
            item.state = ItemState::OnePass(pass);
            return Err(Error::ImageSizeMismatch {
                component: component as usize,
                expected: size,
                actual: received,
            }
            .into());
        }
        if let Cipher::Encrypted(StreamCipher::Gcm(gcm)) = pass.cipher {
            // The tag over the whole ciphertext; the plaintext was released block by block
            // as the tree authenticated it (docs/streaming.md). A failure drops the stream.
            gcm.verify(&pass.tag)?;
        }
        let plan = &item.plan;
        let Some((root, digest, size)) = tree_of(plan) else {
            return Err(TaError::order(CMD, "the plan item lost its tree"));
        };
        // Every block matched the tree the signed manifest binds, salted with the image
        // digest: the image is the one the manifest describes.
        let computed = Computed {
            digest: digest.clone(),
            size,
        };
        let fetched = item.fetched_payload.and_then(|_| {
            Some(Computed {
                digest: plan.fetch_digest.clone()?,
                size: plan.fetch_size?,
            })
        });
        let verity = VerityParams {
            root,
            salt: digest.as_bytes().to_vec(),
            data_blocks: blocks,
        };
        let approval = self.sign_approval(update, at, &computed, nonce, capacity)?;
        let item = &mut update.items[at];
        item.fetched = fetched;
        item.verity = Some(verity);
        item.state = ItemState::Installed(computed);
        Ok(approval)
    }
}

impl OnePass {
    /// Decrypts the bytes `chunk` of `data` piece by piece (each copied once into TA
    /// memory), checks every whole block (the last one zero-padded) with the hash blocks from
    /// `hashes` and writes the checked plaintext to the data out; whether the image is
    /// complete, and the bytes written. On error the stream is dropped by the caller and the
    /// invoke releases nothing (the data out's size is 0).
    fn feed(
        &mut self,
        component: u32,
        mut hashes: &[u8],
        data: &mut Data<'_>,
        chunk: Range<usize>,
    ) -> Result<(bool, usize)> {
        let left = self.fetched_size - self.received;
        if chunk.len() as u64 > left {
            return Err(Error::PayloadTooLarge {
                component: component as usize,
                limit: self.fetched_size,
            }
            .into());
        }
        // Bytes of the chunk before the tag (the tag is never plaintext).
        let plain_left = self.plain_size.saturating_sub(self.received);
        let body = chunk.start
            ..chunk.start
                + chunk
                    .len()
                    .min(usize::try_from(plain_left).unwrap_or(usize::MAX));
        let tail = body.end..chunk.end;
        let written = data.transform(body, 0, |piece, out| {
            self.absorb(component, piece, &mut hashes, out)
        })?;
        // What follows the ciphertext is the tag (the chunk is within the fetched size).
        let mut tag = [0u8; GCM_TAG_LEN];
        let tag = tag.get_mut(..tail.len()).ok_or(TaError::Bulk("read"))?;
        data.read(tail.start, tag)?;
        let at = usize::try_from(self.received.saturating_sub(self.plain_size)).unwrap_or(0);
        for (t, &b) in self.tag.iter_mut().skip(at).zip(tag.iter()) {
            *t = b;
        }
        self.received += tag.len() as u64;
        if !hashes.is_empty() {
            return Err(TaError::Tree {
                component,
                error: verity::TreeError::ExtraHashBytes(hashes.len()),
            });
        }
        Ok((
            self.plain_seen == self.plain_size && self.partial.is_empty(),
            written,
        ))
    }

    /// Decrypts one piece of the chunk after the plaintext held from before, checks every
    /// whole block (and the last, zero-padded, once the image is complete) and appends the
    /// checked plaintext to `out`; holds the rest (less than a block).
    fn absorb(
        &mut self,
        component: u32,
        piece: &[u8],
        hashes: &mut &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.extend_from_slice(&self.partial);
        let start = out.len();
        match &mut self.cipher {
            Cipher::Plain => out.extend_from_slice(piece),
            Cipher::Encrypted(cipher) => {
                out.resize(start + piece.len(), 0);
                match cipher {
                    StreamCipher::Keystream(k) => k.apply(piece, &mut out[start..])?,
                    StreamCipher::Gcm(gcm) => gcm.update(piece, &mut out[start..])?,
                }
            }
        }
        self.received += piece.len() as u64;
        self.plain_seen += piece.len() as u64;
        let complete = self.plain_seen == self.plain_size;
        let mut checked = 0;
        let mut block = [0u8; BLOCK_SIZE];
        while out.len() - checked >= BLOCK_SIZE || (complete && checked < out.len()) {
            let piece = &out[checked..out.len().min(checked + BLOCK_SIZE)];
            let whole = match <&[u8; BLOCK_SIZE]>::try_from(piece) {
                Ok(whole) => whole,
                // The image's last block, zero-padded as in the tree.
                Err(_) => {
                    block[..piece.len()].copy_from_slice(piece);
                    block[piece.len()..].fill(0);
                    &block
                }
            };
            self.checker
                .check(self.next_block, whole, hashes)
                .map_err(|error| TaError::Tree { component, error })?;
            self.next_block += 1;
            checked += piece.len();
        }
        self.partial.clear();
        self.partial.extend_from_slice(&out[checked..]);
        out.truncate(checked);
        Ok(())
    }
}

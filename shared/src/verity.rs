//! dm-verity hash trees (veritysetup "format 1", SHA-256, 4096-byte data and hash blocks).
//!
//! The boot stage mounts a slot only through dm-verity with a root hash the TA approved. The TA
//! derives that root itself while the approved plaintext streams through it ([`RootHasher`]: one
//! partial hash block per tree level, O(height × 4 KiB) memory); the agent and the vendor tool
//! build the public hash area that sits after the image in the slot ([`TreeBuilder`]).
//!
//! Layout of a slot: `[image, zero-padded to 4096][hash area]`, the hash area starting at byte
//! [`padded_len`]`(image)` (dm-verity's hash start block = data blocks), without superblock. The
//! hash area holds the tree's levels top first, exactly as `veritysetup format --no-superblock`
//! writes them.
//!
//! Format 1: a data block's digest is SHA-256(salt ‖ block); a hash block packs 128 digests,
//! zero-padded; each level hashes the one below (salt first again) until one block remains, and
//! the root is SHA-256(salt ‖ that block). A single data block has no hash area: the root is its
//! own digest. The salt is the image digest the SUIT manifest declares (for SHA-256 manifests,
//! SHA-256 of the plaintext image): the vendor tool, the agent and the TA all know it before the
//! first byte streams, and it differs per image.

use alloc::vec;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256};

/// Data and hash block size in bytes.
pub const BLOCK_SIZE: usize = 4096;
/// Digest length of the tree's hash (SHA-256).
pub const DIGEST_LEN: usize = 32;
/// Longest salt veritysetup and dm-verity accept, in bytes.
pub const MAX_SALT_LEN: usize = 256;
/// Digests per hash block.
const PER_BLOCK: usize = BLOCK_SIZE / DIGEST_LEN;
/// log2 of [`PER_BLOCK`].
const PER_BLOCK_BITS: u32 = PER_BLOCK.trailing_zeros();

/// Why a tree cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerityError {
    /// The salt is longer than dm-verity accepts.
    #[error(
        "dm-verity salt of {0} bytes is longer than the {MAX_SALT_LEN} bytes dm-verity accepts"
    )]
    SaltTooLong(usize),
    /// dm-verity cannot map an empty device.
    #[error("an empty image has no dm-verity tree (at least one 4096-byte block is needed)")]
    Empty,
}

/// Number of 4096-byte data blocks of an image of `len` bytes (zero-padded).
pub const fn data_blocks(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE as u64)
}

/// Length of an image of `len` bytes once zero-padded to a whole number of blocks: the byte offset
/// of the hash area in the slot.
pub const fn padded_len(len: u64) -> u64 {
    data_blocks(len).saturating_mul(BLOCK_SIZE as u64)
}

/// Number of levels of the tree over `blocks` data blocks (0 for a single block), as dm-verity
/// and veritysetup compute it.
pub const fn levels(blocks: u64) -> u32 {
    let mut levels = 0;
    while PER_BLOCK_BITS * levels < 64
        && (blocks.saturating_sub(1) >> (PER_BLOCK_BITS * levels)) != 0
    {
        levels += 1;
    }
    levels
}

/// Number of hash blocks at `level` (0 = the level right above the data).
const fn level_blocks(blocks: u64, level: u32) -> u64 {
    let shift = PER_BLOCK_BITS * (level + 1);
    if shift >= 64 {
        return 1;
    }
    blocks.div_ceil(1u64 << shift)
}

/// Size in bytes of the hash area (no superblock) over `blocks` data blocks.
pub const fn hash_area_len(blocks: u64) -> u64 {
    let mut total = 0;
    let mut level = 0;
    let top = levels(blocks);
    while level < top {
        total += level_blocks(blocks, level);
        level += 1;
    }
    total.saturating_mul(BLOCK_SIZE as u64)
}

/// What identifies a verity device: the values of a dm-verity table besides the devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// SHA-256 root hash of the tree.
    pub root: [u8; DIGEST_LEN],
    /// The salt the tree was computed with.
    pub salt: Vec<u8>,
    /// Number of 4096-byte data blocks (the image zero-padded).
    pub data_blocks: u64,
}

impl VerityParams {
    /// Byte offset of the hash area in the slot (right after the padded image).
    pub fn hash_offset(&self) -> u64 {
        self.data_blocks.saturating_mul(BLOCK_SIZE as u64)
    }

    /// Size in bytes of the hash area.
    pub fn hash_area_len(&self) -> u64 {
        hash_area_len(self.data_blocks)
    }
}

/// Per level, the finished hash blocks, bottom level first.
type KeptLevels = Vec<Vec<u8>>;

/// The levels' partial hash blocks, fed bottom up; optionally keeps every finished hash block.
struct Levels {
    salt: Vec<u8>,
    /// Per level, the hash block being filled (at most [`PER_BLOCK`] digests).
    open: Vec<Vec<u8>>,
    /// Per level, the finished hash blocks (only when building the whole tree).
    kept: Option<KeptLevels>,
}

impl Levels {
    fn new(salt: &[u8], keep: bool) -> Result<Self, VerityError> {
        if salt.len() > MAX_SALT_LEN {
            return Err(VerityError::SaltTooLong(salt.len()));
        }
        Ok(Levels {
            salt: salt.to_vec(),
            open: Vec::new(),
            kept: keep.then(Vec::new),
        })
    }

    fn hash(&self, block: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(block);
        h.finalize().into()
    }

    /// Appends a digest to `level`, first closing its block if it is full: a full block stays
    /// open until more arrives, so the top level's single block is never pushed further up.
    fn push(&mut self, level: usize, digest: &[u8; DIGEST_LEN]) {
        if self.open.len() <= level {
            self.open.push(Vec::with_capacity(BLOCK_SIZE));
        }
        if self.open[level].len() == BLOCK_SIZE {
            self.close(level);
        }
        self.open[level].extend_from_slice(digest);
    }

    /// Pads `level`'s open block, hashes it into the level above and starts a new one.
    fn close(&mut self, level: usize) {
        let mut block = core::mem::take(&mut self.open[level]);
        block.resize(BLOCK_SIZE, 0);
        let digest = self.hash(&block);
        if let Some(kept) = &mut self.kept {
            if kept.len() <= level {
                kept.push(Vec::new());
            }
            kept[level].extend_from_slice(&block);
        }
        self.open[level] = Vec::with_capacity(BLOCK_SIZE);
        self.push(level + 1, &digest);
    }

    /// Closes the levels below the top and returns the root of a tree over `blocks` data blocks.
    fn finish(&mut self, blocks: u64, last_leaf: [u8; DIGEST_LEN]) -> [u8; DIGEST_LEN] {
        let top = levels(blocks) as usize;
        if top == 0 {
            return last_leaf;
        }
        for level in 0..top - 1 {
            self.close(level);
        }
        let mut block = core::mem::take(&mut self.open[top - 1]);
        block.resize(BLOCK_SIZE, 0);
        let root = self.hash(&block);
        if let Some(kept) = &mut self.kept {
            if kept.len() < top {
                kept.push(Vec::new());
            }
            kept[top - 1].extend_from_slice(&block);
        }
        root
    }
}

/// Streaming computation of the root hash of an image fed in order, in chunks of any size.
pub struct RootHasher {
    levels: Levels,
    /// The data block being filled.
    block: Vec<u8>,
    blocks: u64,
    last_leaf: [u8; DIGEST_LEN],
}

impl RootHasher {
    /// A hasher for an image whose tree uses `salt`.
    pub fn new(salt: &[u8]) -> Result<Self, VerityError> {
        Self::with_levels(Levels::new(salt, false)?)
    }

    fn with_levels(levels: Levels) -> Result<Self, VerityError> {
        Ok(RootHasher {
            levels,
            block: Vec::with_capacity(BLOCK_SIZE),
            blocks: 0,
            last_leaf: [0; DIGEST_LEN],
        })
    }

    /// Feeds the next bytes of the image.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK_SIZE {
                self.leaf();
            }
        }
    }

    /// Hashes the full data block and pushes its digest to level 0.
    fn leaf(&mut self) {
        let digest = self.levels.hash(&self.block);
        self.block.clear();
        self.blocks += 1;
        if self.blocks > 1 {
            let previous = self.last_leaf;
            self.levels.push(0, &previous);
        }
        self.last_leaf = digest;
    }

    /// Zero-pads the last block and returns the tree's parameters.
    pub fn finalize(mut self) -> Result<VerityParams, VerityError> {
        self.finish().map(|(params, _)| params)
    }

    fn finish(&mut self) -> Result<(VerityParams, Option<KeptLevels>), VerityError> {
        if !self.block.is_empty() {
            self.block.resize(BLOCK_SIZE, 0);
            self.leaf();
        }
        if self.blocks == 0 {
            return Err(VerityError::Empty);
        }
        // The last leaf is held back so that a single-block image (no hash area) needs no level.
        if self.blocks > 1 {
            let last = self.last_leaf;
            self.levels.push(0, &last);
        }
        let root = self.levels.finish(self.blocks, self.last_leaf);
        let params = VerityParams {
            root,
            salt: self.levels.salt.clone(),
            data_blocks: self.blocks,
        };
        Ok((params, self.levels.kept.take()))
    }
}

/// Builds the whole hash area (for the agent and the vendor tool): memory grows with the tree,
/// 1/128 of the image.
pub struct TreeBuilder(RootHasher);

impl TreeBuilder {
    /// A builder for an image whose tree uses `salt`.
    pub fn new(salt: &[u8]) -> Result<Self, VerityError> {
        Ok(TreeBuilder(RootHasher::with_levels(Levels::new(
            salt, true,
        )?)?))
    }

    /// Feeds the next bytes of the image.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Zero-pads the last block and returns the parameters and the hash area (levels top first,
    /// as veritysetup lays them out without superblock).
    pub fn finalize(mut self) -> Result<(VerityParams, Vec<u8>), VerityError> {
        let (params, kept) = self.0.finish()?;
        let mut area = Vec::with_capacity(usize::try_from(params.hash_area_len()).unwrap_or(0));
        for level in kept.unwrap_or_default().iter().rev() {
            area.extend_from_slice(level);
        }
        Ok((params, area))
    }
}

/// Root, data blocks and hash area of `image` in one call.
pub fn build(image: &[u8], salt: &[u8]) -> Result<(VerityParams, Vec<u8>), VerityError> {
    let mut builder = TreeBuilder::new(salt)?;
    builder.update(image);
    builder.finalize()
}

/// The slot image: `image` zero-padded to whole blocks, followed by its hash area.
pub fn slot_image(image: &[u8], salt: &[u8]) -> Result<(VerityParams, Vec<u8>), VerityError> {
    let (params, area) = build(image, salt)?;
    let mut slot = image.to_vec();
    slot.resize(
        usize::try_from(params.hash_offset()).unwrap_or(slot.len()),
        0,
    );
    slot.extend_from_slice(&area);
    Ok((params, slot))
}

/// The level sizes of a tree, top first: for documentation and the tool's JSON.
pub fn level_sizes(blocks: u64) -> Vec<u64> {
    let top = levels(blocks);
    let mut sizes = vec![0; top as usize];
    for (i, size) in sizes.iter_mut().enumerate() {
        *size = level_blocks(blocks, top - 1 - i as u32);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// The tree computed the naive way: every level in memory.
    fn reference(data: &[u8], salt: &[u8]) -> ([u8; 32], Vec<u8>) {
        let mut padded = data.to_vec();
        padded.resize(data.len().div_ceil(BLOCK_SIZE) * BLOCK_SIZE, 0);
        let mut level: Vec<[u8; 32]> = padded.chunks(BLOCK_SIZE).map(|b| sha(&[salt, b])).collect();
        if level.len() == 1 {
            return (level[0], Vec::new());
        }
        let mut areas: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut area = Vec::new();
            for group in level.chunks(PER_BLOCK) {
                let mut block = group.concat();
                block.resize(BLOCK_SIZE, 0);
                area.extend_from_slice(&block);
            }
            let next: Vec<[u8; 32]> = area.chunks(BLOCK_SIZE).map(|b| sha(&[salt, b])).collect();
            areas.push(area);
            if next.len() == 1 {
                let whole = areas.iter().rev().flatten().copied().collect();
                return (next[0], whole);
            }
            level = next;
        }
    }

    #[test]
    fn geometry_matches_dm_verity() {
        assert_eq!(levels(1), 0);
        assert_eq!(levels(2), 1);
        assert_eq!(levels(128), 1);
        assert_eq!(levels(129), 2);
        assert_eq!(levels(128 * 128), 2);
        assert_eq!(levels(128 * 128 + 1), 3);
        assert_eq!(hash_area_len(1), 0);
        assert_eq!(hash_area_len(129), 3 * 4096);
        assert_eq!(hash_area_len(128 * 128 + 1), (1 + 2 + 129) * 4096);
        assert_eq!(level_sizes(128 * 128 + 1), vec![1, 2, 129]);
        assert_eq!(padded_len(4097), 8192);
        assert_eq!(data_blocks(0), 0);
    }

    #[test]
    fn absurd_block_counts_do_not_overflow() {
        let p = VerityParams {
            root: [0; 32],
            salt: Vec::new(),
            data_blocks: u64::MAX,
        };
        assert_eq!(p.hash_offset(), u64::MAX);
        assert_eq!(p.hash_area_len(), u64::MAX);
        assert_eq!(padded_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn single_block_root_is_the_block_digest() {
        let salt = [0xab; 32];
        let data = image(100);
        let mut block = data.clone();
        block.resize(BLOCK_SIZE, 0);
        let (params, area) = build(&data, &salt).unwrap();
        assert_eq!(params.root, sha(&[&salt, &block]));
        assert_eq!(params.data_blocks, 1);
        assert!(area.is_empty());
    }

    #[test]
    fn matches_the_naive_tree_for_boundary_sizes() {
        let salt = sha(&[b"salt"]);
        let cases = [
            (2usize, 0usize),
            (127, 1000),
            (128, 0),
            (129, 1),
            (257, 0),
            (128 * 128 + 1, 4095),
        ];
        for (blocks, short) in cases {
            {
                let len = blocks * BLOCK_SIZE - short;
                let data = image(len);
                let (want_root, want_area) = reference(&data, &salt);
                let (params, area) = build(&data, &salt).unwrap();
                assert_eq!(params.root, want_root, "{len} bytes");
                assert_eq!(area, want_area, "{len} bytes");
                assert_eq!(area.len() as u64, params.hash_area_len(), "{len} bytes");
                assert_eq!(params.data_blocks, blocks as u64);
            }
        }
    }

    #[test]
    fn any_chunking_gives_the_same_root() {
        let salt = [7u8; 48];
        let data = image(129 * BLOCK_SIZE + 17);
        let whole = build(&data, &salt).unwrap().0;
        for chunk in [1usize, 13, 4095, 4096, 4097, 65536, 1 << 20] {
            let mut h = RootHasher::new(&salt).unwrap();
            for piece in data.chunks(chunk) {
                h.update(piece);
            }
            h.update(&[]);
            assert_eq!(h.finalize().unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn salt_and_content_change_the_root() {
        let data = image(3 * BLOCK_SIZE);
        let a = build(&data, &[1; 32]).unwrap().0.root;
        assert_ne!(a, build(&data, &[2; 32]).unwrap().0.root);
        let mut tampered = data.clone();
        tampered[BLOCK_SIZE + 5] ^= 1;
        assert_ne!(a, build(&tampered, &[1; 32]).unwrap().0.root);
    }

    #[test]
    fn rejects_empty_images_and_long_salts() {
        assert_eq!(
            RootHasher::new(&[]).unwrap().finalize(),
            Err(VerityError::Empty)
        );
        assert!(matches!(
            RootHasher::new(&[0; 257]),
            Err(VerityError::SaltTooLong(257))
        ));
        assert!(RootHasher::new(&[0; 256]).is_ok());
    }

    #[test]
    fn slot_image_is_padded_image_then_tree() {
        let salt = [3u8; 32];
        let data = image(130 * BLOCK_SIZE - 1);
        let (params, slot) = slot_image(&data, &salt).unwrap();
        let (_, area) = build(&data, &salt).unwrap();
        assert_eq!(&slot[..data.len()], &data[..]);
        assert_eq!(slot[data.len()], 0);
        assert_eq!(&slot[params.hash_offset() as usize..], &area[..]);
    }
}

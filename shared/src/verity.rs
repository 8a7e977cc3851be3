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
        salted_hash(&self.salt, block)
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

/// Why a block or hash block does not belong to the tree a manifest binds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The data block's digest differs from the tree's.
    #[error("data block {0} does not match the dm-verity tree the manifest binds")]
    Block(u64),
    /// A hash block's digest differs from its parent's entry (or from the root).
    #[error("hash block {index} of tree level {level} does not match the dm-verity tree the manifest binds")]
    HashBlock {
        /// Level (0 = right above the data).
        level: u32,
        /// Index within the level.
        index: u64,
    },
    /// Fewer hash blocks came with the data than the blocks need.
    #[error("hash block {index} of tree level {level} is needed and was not sent")]
    MissingHashBlock {
        /// Level (0 = right above the data).
        level: u32,
        /// Index within the level.
        index: u64,
    },
    /// More hash bytes came than the blocks need.
    #[error("{0} bytes of hash blocks were sent that these data blocks do not need")]
    ExtraHashBytes(usize),
    /// A data block index beyond the image.
    #[error("data block {block} is beyond the image's {blocks} blocks")]
    OutOfRange {
        /// The block.
        block: u64,
        /// The image's data blocks.
        blocks: u64,
    },
}

/// Which hash block of each level a reader walking the tree holds. The TA's [`BlockChecker`]
/// and the agent that feeds it run the same cursor, so both agree on which hash blocks travel
/// with which data blocks: before data block `b`, every level `l` whose held block is not
/// `b >> (7 (l + 1))` needs that block, top level first (it is checked against its parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCursor {
    blocks: u64,
    /// Per level (0 = above the data), the index of the hash block held.
    held: Vec<Option<u64>>,
}

impl PathCursor {
    /// A cursor over the tree of an image of `data_blocks` blocks, holding nothing.
    pub fn new(data_blocks: u64) -> Self {
        PathCursor {
            blocks: data_blocks,
            held: vec![None; levels(data_blocks) as usize],
        }
    }

    /// Number of data blocks of the image.
    pub fn data_blocks(&self) -> u64 {
        self.blocks
    }

    /// The hash blocks `(level, index)` data block `block` needs that are not held, top level
    /// first (none when the tree has no levels).
    pub fn needs(&self, block: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        for level in (0..self.held.len()).rev() {
            let index = block >> (PER_BLOCK_BITS * (level as u32 + 1));
            if self.held[level] != Some(index) {
                out.push((level as u32, index));
            }
        }
        out
    }

    /// Marks the blocks of [`Self::needs`] as held.
    pub fn take(&mut self, needs: &[(u32, u64)]) {
        for &(level, index) in needs {
            if let Some(h) = self.held.get_mut(level as usize) {
                *h = Some(index);
            }
        }
    }

    /// Byte offset of hash block `index` of `level` in the hash area (levels top first, as in
    /// the slot after the padded image).
    pub fn area_offset(&self, level: u32, index: u64) -> u64 {
        let top = levels(self.blocks);
        let above: u64 = (level + 1..top).map(|l| level_blocks(self.blocks, l)).sum();
        (above + index).saturating_mul(BLOCK_SIZE as u64)
    }
}

/// Checks data blocks fed in order (from any starting block) against a root hash, holding one
/// verified hash block per level: O(tree height × 4 KiB) memory whatever the image size. The
/// hash blocks come with the data, in the order [`PathCursor::needs`] gives.
#[derive(Clone)]
pub struct BlockChecker {
    salt: Vec<u8>,
    root: [u8; DIGEST_LEN],
    cursor: PathCursor,
    /// Per level, the verified hash block held (empty until one is).
    held: Vec<Vec<u8>>,
}

impl BlockChecker {
    /// A checker for an image of `data_blocks` blocks whose tree has `root` with `salt`.
    pub fn new(salt: &[u8], root: [u8; DIGEST_LEN], data_blocks: u64) -> Result<Self, VerityError> {
        if salt.len() > MAX_SALT_LEN {
            return Err(VerityError::SaltTooLong(salt.len()));
        }
        if data_blocks == 0 {
            return Err(VerityError::Empty);
        }
        let cursor = PathCursor::new(data_blocks);
        Ok(BlockChecker {
            salt: salt.to_vec(),
            root,
            held: vec![Vec::new(); cursor.held.len()],
            cursor,
        })
    }

    fn hash(&self, block: &[u8]) -> [u8; DIGEST_LEN] {
        salted_hash(&self.salt, block)
    }

    /// Number of data blocks of the image.
    pub fn data_blocks(&self) -> u64 {
        self.cursor.blocks
    }

    /// Checks data block `block` (exactly [`BLOCK_SIZE`] bytes, the last one zero-padded),
    /// first taking the hash blocks it needs from the front of `hashes`. On error nothing
    /// changes.
    pub fn check(
        &mut self,
        block: u64,
        data: &[u8; BLOCK_SIZE],
        hashes: &mut &[u8],
    ) -> Result<(), TreeError> {
        if block >= self.cursor.blocks {
            return Err(TreeError::OutOfRange {
                block,
                blocks: self.cursor.blocks,
            });
        }
        let needs = self.cursor.needs(block);
        let mut rest = *hashes;
        // The new hash blocks, top first, borrowed from `hashes` until all are checked.
        let mut fresh: Vec<&[u8]> = Vec::with_capacity(needs.len());
        for &(level, index) in &needs {
            if rest.len() < BLOCK_SIZE {
                return Err(TreeError::MissingHashBlock { level, index });
            }
            let (hb, tail) = rest.split_at(BLOCK_SIZE);
            if self.hash(hb) != self.entry_in(&needs, &fresh, level as usize + 1, index) {
                return Err(TreeError::HashBlock { level, index });
            }
            fresh.push(hb);
            rest = tail;
        }
        if self.hash(data) != self.entry_in(&needs, &fresh, 0, block) {
            return Err(TreeError::Block(block));
        }
        for (&(level, _), hb) in needs.iter().zip(fresh) {
            let held = &mut self.held[level as usize];
            held.clear();
            held.extend_from_slice(hb);
        }
        self.cursor.take(&needs);
        *hashes = rest;
        Ok(())
    }

    /// The digest the tree gives entry `index` in the hash block of `level` that covers it:
    /// the root above the top level, else the block just checked (`fresh`) or the one held.
    fn entry_in(
        &self,
        needs: &[(u32, u64)],
        fresh: &[&[u8]],
        level: usize,
        index: u64,
    ) -> [u8; DIGEST_LEN] {
        if level >= self.held.len() {
            return self.root;
        }
        let block = needs
            .iter()
            .zip(fresh)
            .find(|((l, _), _)| *l as usize == level)
            .map_or(self.held[level].as_slice(), |(_, b)| b);
        entry(block, index)
    }
}

/// The agent's side of [`BlockChecker`]: which hash blocks of the hash area (levels top
/// first, as in the slot) travel with each chunk of a one-pass stream. After a chunk the TA
/// has the plaintext up to the bytes received (never past the image) and checks every whole
/// block of it, and the last, padded block once the image is complete; the hash blocks those
/// checks need go with that chunk, in [`PathCursor`] order.
pub struct HashFeed {
    cursor: PathCursor,
    image_len: u64,
    next_block: u64,
}

impl HashFeed {
    /// A feed for an image of `image_len` bytes, the stream beginning at `offset` (a block
    /// boundary).
    pub fn new(image_len: u64, offset: u64) -> Self {
        HashFeed {
            cursor: PathCursor::new(data_blocks(image_len)),
            image_len,
            next_block: offset / BLOCK_SIZE as u64,
        }
    }

    /// The hash blocks `(level, index)` the chunk that brings the received bytes to
    /// `received` needs, in order; each is at [`PathCursor::area_offset`] in the area.
    pub fn after(&mut self, received: u64) -> Vec<(u32, u64)> {
        let have = received.min(self.image_len);
        let end = if have == self.image_len {
            self.cursor.data_blocks()
        } else {
            have / BLOCK_SIZE as u64
        };
        let mut out = Vec::new();
        while self.next_block < end {
            let needs = self.cursor.needs(self.next_block);
            self.cursor.take(&needs);
            out.extend(needs);
            self.next_block += 1;
        }
        out
    }

    /// Byte offset of a hash block in the hash area.
    pub fn area_offset(&self, level: u32, index: u64) -> u64 {
        self.cursor.area_offset(level, index)
    }
}

/// Entry `index % 128` of a hash block.
fn entry(block: &[u8], index: u64) -> [u8; DIGEST_LEN] {
    let at = (index as usize % PER_BLOCK) * DIGEST_LEN;
    let mut d = [0; DIGEST_LEN];
    d.copy_from_slice(&block[at..at + DIGEST_LEN]);
    d
}

/// SHA-256 of `salt || block`, by the crypto provider (OP-TEE's in the GP TA).
fn salted_hash(salt: &[u8], block: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = crate::digest::Hasher::new(crate::digest::DigestAlg::Sha256);
    h.update(salt);
    h.update(block);
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(h.finalize().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

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

    /// The hash blocks a walk from `from` needs, per data block, taken from the area.
    fn walk(
        checker: &mut BlockChecker,
        data: &[u8],
        area: &[u8],
        from: u64,
    ) -> Result<(), TreeError> {
        let mut cursor = PathCursor::new(checker.cursor.data_blocks());
        for b in from..cursor.data_blocks() {
            let needs = cursor.needs(b);
            let mut hashes = Vec::new();
            for &(level, index) in &needs {
                let at = cursor.area_offset(level, index) as usize;
                hashes.extend_from_slice(&area[at..at + BLOCK_SIZE]);
            }
            cursor.take(&needs);
            let mut block = [0u8; BLOCK_SIZE];
            let start = b as usize * BLOCK_SIZE;
            let end = (start + BLOCK_SIZE).min(data.len());
            block[..end - start].copy_from_slice(&data[start..end]);
            let mut h = &hashes[..];
            checker.check(b, &block, &mut h)?;
            assert!(h.is_empty());
        }
        Ok(())
    }

    #[test]
    fn checker_accepts_the_tree_from_any_start() {
        let salt = [9u8; 32];
        for blocks in [1usize, 2, 128, 129, 128 * 128 + 3] {
            let data = image(blocks * BLOCK_SIZE - 5);
            let (params, area) = build(&data, &salt).unwrap();
            for from in [0, blocks as u64 / 2, blocks as u64 - 1] {
                let mut c = BlockChecker::new(&salt, params.root, params.data_blocks).unwrap();
                walk(&mut c, &data, &area, from).unwrap_or_else(|e| panic!("{blocks}/{from}: {e}"));
            }
        }
    }

    #[test]
    fn checker_refuses_tampering_and_changes_nothing() {
        let salt = [9u8; 32];
        let data = image(300 * BLOCK_SIZE);
        let (params, area) = build(&data, &salt).unwrap();
        let mut bad = data.clone();
        bad[200 * BLOCK_SIZE + 1] ^= 1;
        let mut c = BlockChecker::new(&salt, params.root, params.data_blocks).unwrap();
        assert_eq!(walk(&mut c, &bad, &area, 0), Err(TreeError::Block(200)));
        // The level-0 hash block covering blocks 256.. altered.
        let cursor = PathCursor::new(params.data_blocks);
        let mut bad_area = area.clone();
        bad_area[cursor.area_offset(0, 2) as usize + 3] ^= 1;
        let mut c = BlockChecker::new(&salt, params.root, params.data_blocks).unwrap();
        assert_eq!(
            walk(&mut c, &data, &bad_area, 0),
            Err(TreeError::HashBlock { level: 0, index: 2 })
        );
        // Missing hash blocks, and a refused block leaves the checker as it was.
        let mut c = BlockChecker::new(&salt, params.root, params.data_blocks).unwrap();
        let mut block = [0u8; BLOCK_SIZE];
        block.copy_from_slice(&data[..BLOCK_SIZE]);
        assert_eq!(
            c.check(0, &block, &mut &[][..]),
            Err(TreeError::MissingHashBlock { level: 1, index: 0 })
        );
        assert_eq!(c.cursor, PathCursor::new(params.data_blocks));
        assert!(matches!(
            c.check(300, &block, &mut &[][..]),
            Err(TreeError::OutOfRange { .. })
        ));
    }
}

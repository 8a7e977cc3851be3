//! A slot's storage — a block device (partition) or a regular file — as the agent leaves it
//! after writing an image, and the read-back check of it.
//!
//! After an install a slot holds the approved image and nothing else:
//!
//! * a **file** slot is truncated to the image's size;
//! * a **block-device** slot holds the image followed by zeros up to the device's end. The
//!   tail is zeroed with `fallocate(FALLOC_FL_ZERO_RANGE)`, the kernel's BLKZEROOUT, which
//!   costs next to nothing on flash and virtio disks with write-zeroes support (the kernel
//!   writes zero pages itself otherwise); where the device refuses it, the agent writes the
//!   zeros. Old content — an earlier, larger image, or bytes someone planted — never survives
//!   behind a new image.
//!
//! Once [`verify`] passed, the agent writes the image's dm-verity hash tree right after it
//! (`agent::verity`, verified boot): the slot then holds the image, zero padding to 4 KiB, the
//! tree, and (a device) zeros.
//!
//! [`verify`] reads the whole slot back from the device (its cached pages are dropped first,
//! so the bytes come from the storage, not from the page cache): the image must have the
//! approved digest, a file slot must end with it, and a device's tail must be all zeros. Its
//! cost is one read of the slot: e.g. ~20 s for a 4 GiB partition read at 200 MB/s.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use rustix::fs::{Advice, FallocateFlags};
use suit_shared::digest::{DigestValue, Hasher};

/// Buffer size for zeroing and reading back.
const BLOCK: usize = 1024 * 1024;

/// Why a slot does not read back as it should.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The slot could not be read.
    #[error("cannot read it back: {0}")]
    Io(#[from] io::Error),
    /// The image does not have the approved digest.
    #[error("the image does not have the digest the TA approved")]
    Digest,
    /// A file slot is not exactly the image.
    #[error("the file holds {actual} bytes, not the image's {expected}")]
    Length {
        /// The image's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// A device's tail after the image is not all zeros.
    #[error("the device is not zero after the image (byte {offset} is not)")]
    Tail {
        /// Offset of the first non-zero byte.
        offset: u64,
    },
}

/// Ends a slot after the image's `size` bytes were written to `slot` (open for writing):
/// truncates a file, zeroes the rest of a block device, and syncs.
pub fn finish(slot: &File, size: u64) -> io::Result<()> {
    let kind = slot.metadata()?.file_type();
    if kind.is_file() {
        slot.set_len(size)?;
    } else if kind.is_block_device() {
        slot.sync_all()?;
        zero_tail(slot, size)?;
    }
    slot.sync_all()
}

/// Zeroes a block device from `from` to its end.
fn zero_tail(dev: &File, from: u64) -> io::Result<()> {
    let end = (&*dev).seek(SeekFrom::End(0))?;
    if from >= end {
        return Ok(());
    }
    // fallocate on a block device takes whole logical blocks only.
    let block = rustix::fs::ioctl_blksszget(dev)
        .map_or(512, u64::from)
        .max(1);
    let aligned = from.div_ceil(block).saturating_mul(block).min(end);
    write_zeros(dev, from, aligned - from)?;
    if aligned < end {
        let mode = FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE;
        if let Err(e) = rustix::fs::fallocate(dev, mode, aligned, end - aligned) {
            tracing::debug!("fallocate(ZERO_RANGE) refused ({e}); writing zeros instead");
            write_zeros(dev, aligned, end - aligned)?;
        }
    }
    Ok(())
}

fn write_zeros(dev: &File, mut offset: u64, len: u64) -> io::Result<()> {
    let end = offset + len;
    let zeros = vec![0u8; BLOCK.min(usize::try_from(len).unwrap_or(BLOCK))];
    while offset < end {
        let n = (end - offset).min(zeros.len() as u64) as usize;
        dev.write_all_at(&zeros[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

/// Reads the slot at `path` back from the storage and checks that it holds exactly the
/// approved image of `size` bytes with digest `approved` (see the module documentation).
pub fn verify(path: &Path, size: u64, approved: &DigestValue) -> Result<(), VerifyError> {
    let mut slot = File::open(path)?;
    // Written pages are clean after the sync: dropping them makes the reads hit the storage.
    if let Err(e) = rustix::fs::fadvise(&slot, 0, None, Advice::DontNeed) {
        tracing::debug!("cannot drop the cached pages of {}: {e}", path.display());
    }
    let kind = slot.metadata()?.file_type();
    if kind.is_file() {
        let actual = slot.metadata()?.len();
        if actual != size {
            return Err(VerifyError::Length {
                expected: size,
                actual,
            });
        }
    }
    let mut hasher = Hasher::new(approved.alg());
    let mut buf = vec![0u8; BLOCK];
    let mut remaining = size;
    while remaining > 0 {
        let want = remaining.min(BLOCK as u64) as usize;
        let n = read_full(&mut slot, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        remaining -= n as u64;
    }
    if remaining > 0 || hasher.finalize() != *approved {
        return Err(VerifyError::Digest);
    }
    if kind.is_block_device() {
        let mut offset = size;
        loop {
            let n = read_full(&mut slot, &mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(VerifyError::Tail {
                    offset: offset + i as u64,
                });
            }
            offset += n as u64;
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
